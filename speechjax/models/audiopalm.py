"""AudioPaLM-style joint text + audio token vocabulary and task-tagged sequences.

The model is a `speechjax.models.token_lm.TokenLM` over `JointVocab`:

    0 BOS, 1 SEP, 2 EOS | task tags "[ASR]", "[TTS]" | text symbols | audio tokens
    └───────────── text vocabulary (t = text_size) ─────────────┘ └─ a = audio ─┘

Text symbols are those of `speechjax.text` (kind "transcript": characters, "|" between words), so
the pipeline's 1-based `targets` map to text id `text_offset + id − 1`. Audio tokens (k-means units) come
after every text id: a text-only LM with t tokens grows to t + a with `token_lm.extend_vocab`, its text
rows unchanged.

Sequences (one static length 4 + F + L; per row one direction):
    ASR  [BOS, [ASR], audio (runs deduplicated), SEP, text, EOS]    loss on text + EOS
    TTS  [BOS, [TTS], text, SEP, audio, EOS]                        loss on audio + EOS
"""
from __future__ import annotations

import dataclasses
import re

import jax.numpy as jnp

from speechjax import text as text_lib
from speechjax.models import audiolm

BOS, SEP, EOS = 0, 1, 2
TAGS = ("[ASR]", "[TTS]")
_TAG_RE = re.compile("(" + "|".join(re.escape(t) for t in TAGS) + ")")


@dataclasses.dataclass(frozen=True)
class JointVocab:
  text_symbols: tuple[str, ...]
  audio: int

  @property
  def text_offset(self) -> int:
    return 3 + len(TAGS)

  @property
  def text_size(self) -> int:
    return self.text_offset + len(self.text_symbols)

  @property
  def size(self) -> int:
    return self.text_size + self.audio

  def tag(self, name: str) -> int:
    return 3 + TAGS.index(name)

  def encode(self, text: str) -> list[int]:
    """Task tags and transcript text → ids, e.g. "[ASR]" or "[TTS] hello world" (text lower-cased,
    spaces as "|"; a symbol outside the vocabulary raises)."""
    ids = []
    for part in _TAG_RE.split(text):
      if part in TAGS:
        ids.append(self.tag(part))
      elif part.strip():
        for symbol in text_lib.symbols_of("transcript", part):
          if symbol not in self.text_symbols:
            raise ValueError(f"symbol {symbol!r} of {text!r} is not in the text vocabulary")
          ids.append(self.text_offset + self.text_symbols.index(symbol))
    return ids

  def decode(self, ids) -> str:
    """Ids → text: tags as written, transcript symbols as characters ("|" → space), audio as <a:k>."""
    out = []
    for i in map(int, ids):
      if 3 <= i < self.text_offset:
        out.append(TAGS[i - 3] + " ")
      elif self.text_offset <= i < self.text_size:
        symbol = self.text_symbols[i - self.text_offset]
        out.append(" " if symbol == text_lib.WORD_BOUNDARY else symbol)
      elif i >= self.text_size:
        out.append(f"<a:{i - self.text_size}>")
    return "".join(out)


def sequences(vocab: JointVocab, audio, text, asr, remove_duplicates: bool = True):
  """audio [B, F] tokens (−1 = padding), text [B, L] 1-based transcript ids (0 = padding), asr [B] bool
  (True: ASR, False: TTS) → (tokens [B, 4 + F + L], mask, target), packed to the front, padded with BOS."""
  batch = audio.shape[0]
  audio_real = audio >= 0
  audio_keep = audiolm.dedup(audio, audio_real) if remove_duplicates else audio_real
  audio_ids, text_ids = audio + vocab.text_size, text + vocab.text_offset - 1

  def one(value):
    return jnp.full([batch, 1], value, jnp.int32)

  def build(tag, first, first_keep, second, second_keep):
    ones = jnp.ones([batch, 1], bool)
    tokens = jnp.concatenate([one(BOS), one(tag), first, one(SEP), second, one(EOS)], axis=1)
    keep = jnp.concatenate([ones, ones, first_keep, ones, second_keep, ones], axis=1)
    target = jnp.concatenate([~ones, ~ones, jnp.zeros_like(first_keep), ~ones, second_keep, ones], axis=1)
    return tokens, keep, target

  asr_parts = build(vocab.tag("[ASR]"), audio_ids, audio_keep, text_ids, text > 0)
  tts_parts = build(vocab.tag("[TTS]"), text_ids, text > 0, audio_ids, audio_keep)
  tokens, keep, target = (jnp.where(asr[:, None], a, t) for a, t in zip(asr_parts, tts_parts))
  tokens, target, mask = audiolm.pack(keep, tokens.astype(jnp.int32), target)
  return jnp.where(mask, tokens, BOS), mask, target & mask
