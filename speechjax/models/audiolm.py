"""AudioLM (Borsos et al. 2022): three token LMs over one shared vocabulary, and their training sequences.

Vocabulary (`Vocab`): id 0 = BOS; semantic token k → 1 + k; acoustic level q code c → 1 + K + q·N + c
(K semantic classes, N codes per RVQ level, Q levels), so no two streams collide.

Stages (each a `speechjax.models.token_lm.TokenLM`; loss only on the stage's own stream):
    semantic  [BOS, z_1 … z_S]                                  p(z)
    coarse    [BOS, z_1 … z_S, y_1^0 … y_1^{Q'−1}, y_2^0, …]     p(coarse | semantic)
    fine      [BOS, coarse of the crop, fine of the crop]       p(fine levels Q'…Q−1 | coarse)
Acoustic levels are flattened time-major (`codebook_patterns` "flatten"). Consecutive duplicate semantic
tokens are removed (`dedup`), which makes lengths vary per row: every sequence is packed to the front
(`pack`) and padded to the static length of its crop.

Generation (`continue_tokens`): prompt → semantic (stage 1) → coarse (stage 2, given
all semantic tokens and the coarse prompt) → fine (stage 3, given all coarse tokens and the fine prompt)
→ codec decode. Each stage samples only ids of the stream its position holds (`token_lm.generate`'s
`token_range`). Stage 3 runs in non-overlapping chunks (AudioLM: 3 s), all chunks as one batch.
`speechjax generate` (speechjax.eval.generate) wires this to wav files and checkpoints.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from speechjax.models import token_lm
from speechjax.nn import codebook_patterns

STAGES = ("semantic", "coarse", "fine")
BOS = 0


@dataclasses.dataclass(frozen=True)
class Vocab:
  semantic: int          # K
  codebook: int          # N
  levels: int            # Q
  coarse_levels: int     # Q'

  def acoustic_offset(self, level: int) -> int:
    return 1 + self.semantic + level * self.codebook

  def size(self, stage: str) -> int:
    """Vocabulary of a stage's model: everything up to its last stream."""
    levels = {"semantic": 0, "coarse": self.coarse_levels, "fine": self.levels}[stage]
    return self.acoustic_offset(levels)

  def stage_levels(self, stage: str) -> tuple[int, int]:
    """[first, last) acoustic levels a stage predicts."""
    return {"semantic": (0, 0), "coarse": (0, self.coarse_levels),
            "fine": (self.coarse_levels, self.levels)}[stage]


def sequence_length(stage: str, vocab: Vocab, semantic_frames: int, acoustic_frames: int) -> int:
  """Static token length (BOS included) of a crop with these frame counts."""
  if stage == "semantic":
    return 1 + semantic_frames
  if stage == "coarse":
    return 1 + semantic_frames + acoustic_frames * vocab.coarse_levels
  return 1 + acoustic_frames * vocab.levels


def pack(keep, *arrays):
  """Moves the kept entries of each row to the front, in order. keep [B, L] bool, arrays [B, L] →
  (arrays packed, mask [B, L] of the packed entries); entries after the mask are arbitrary."""
  order = jnp.argsort(~keep, axis=1, stable=True)
  packed = tuple(jnp.take_along_axis(a, order, axis=1) for a in arrays)
  mask = jnp.arange(keep.shape[1])[None] < keep.sum(1, keepdims=True)
  return (*packed, mask)


def dedup(tokens, mask):
  """bool [B, L]: the real tokens that differ from the real token before them (run starts)."""
  previous = jnp.pad(tokens[:, :-1], [(0, 0), (1, 0)], constant_values=-1)
  previous_real = jnp.pad(mask[:, :-1], [(0, 0), (1, 0)])
  return mask & ~(previous_real & (tokens == previous))


def acoustic_ids(codes, vocab: Vocab, first: int, last: int):
  """codes [B, F, Q] (−1 = padding) → levels [first, last) as vocabulary ids [B, F·(last − first)],
  flattened time-major, and their mask."""
  levels = codes[..., first:last]
  offsets = jnp.array([vocab.acoustic_offset(q) for q in range(first, last)], codes.dtype)
  flat = codebook_patterns.to_sequence(levels + offsets, "flatten")[..., 0]
  real = codebook_patterns.to_sequence(levels >= 0, "flatten", fill=False)[..., 0]
  return flat, real


def stage_sequence(stage: str, vocab: Vocab, semantic=None, codes=None, remove_duplicates: bool = True):
  """A stage's training sequences from semantic labels [B, F_s] and/or acoustic codes [B, F_a, Q]
  (−1 = padding) → (tokens [B, S] int32, mask [B, S] real tokens, target [B, S] tokens the stage predicts).
  S = `sequence_length`; tokens are packed to the front, padding is BOS."""
  parts = []                                           # (ids, real, predicted)
  batch = (semantic if semantic is not None else codes).shape[0]
  bos = jnp.full([batch, 1], BOS, jnp.int32)
  parts.append((bos, jnp.ones([batch, 1], bool), False))
  if stage in ("semantic", "coarse"):
    real = semantic >= 0
    keep = dedup(semantic, real) if remove_duplicates else real
    parts.append((semantic + 1, keep, stage == "semantic"))
  if stage == "coarse":
    parts.append((*acoustic_ids(codes, vocab, 0, vocab.coarse_levels), True))
  if stage == "fine":
    parts.append((*acoustic_ids(codes, vocab, 0, vocab.coarse_levels), False))
    parts.append((*acoustic_ids(codes, vocab, vocab.coarse_levels, vocab.levels), True))
  tokens = jnp.concatenate([p[0] for p in parts], axis=1).astype(jnp.int32)
  keep = jnp.concatenate([p[1] for p in parts], axis=1)
  target = jnp.concatenate([jnp.full(p[0].shape, p[2]) for p in parts], axis=1)
  tokens, target, mask = pack(keep, tokens, target)
  return jnp.where(mask, tokens, BOS), mask, target & mask


def _range(batch: int, start: int, low, high):
  """`token_lm.generate`'s token_range [B, L]: [low, high) per position (numpy [L]) from `start` on; the
  prompt positions before it are unconstrained."""
  before = np.arange(len(low)) < start
  low, high = np.where(before, 0, low), np.where(before, np.iinfo(np.int32).max, high)
  return tuple(jnp.broadcast_to(jnp.asarray(x, jnp.int32), (batch, len(x))) for x in (low, high))


def _acoustic_range(vocab: Vocab, batch: int, length: int, start: int, first: int, last: int):
  """token_range of positions ≥ start cycling through levels first..last−1 (time-major)."""
  level = first + np.mod(np.arange(length) - start, last - first)
  low = np.array([vocab.acoustic_offset(q) for q in level])
  return _range(batch, start, low, low + vocab.codebook)


def _sample(stage, models, prompt, prompt_length, rng, length, token_range, temperature, top_k):
  cfg, params = models[stage]
  rngs = jax.random.split(rng, prompt.shape[0])
  return token_lm.generate(cfg, params, prompt, prompt_length, rngs, length, temperature, top_k,
                           token_range=token_range)


def fine_codes(models: dict, vocab: Vocab, coarse_codes, fine_prompt, chunk_frames: int, rng,
               temperature: float = 0.6, top_k: int = 0):
  """Stage 3 in non-overlapping chunks (AudioLM: 3 s): coarse codes [B, F, Q'] and the prompt's fine codes
  [B, F', Q − Q'] (F' ≤ F) → fine codes [B, F, Q − Q']. Chunk c is sampled from [BOS, coarse of its frames,
  fine of its prompt frames]; all chunks of all rows run as one batch of B · ceil(F / chunk_frames) rows."""
  batch, frames, coarse = coarse_codes.shape
  fine, known = vocab.levels - coarse, fine_prompt.shape[1]
  chunks = -(-frames // chunk_frames)
  pad = chunks * chunk_frames - frames

  def to_chunks(codes):   # [B, F, q] -> [B · chunks, chunk_frames, q]
    codes = jnp.pad(codes, [(0, 0), (0, pad), (0, 0)])
    return codes.reshape(batch * chunks, chunk_frames, codes.shape[-1])
  fine_known = jnp.pad(fine_prompt, [(0, 0), (0, frames - known), (0, 0)])
  ids = jnp.concatenate([jnp.zeros([batch * chunks, 1], jnp.int32),
                         acoustic_ids(to_chunks(coarse_codes), vocab, 0, coarse)[0],
                         acoustic_ids(jnp.concatenate([jnp.zeros_like(to_chunks(coarse_codes)),
                                                       to_chunks(fine_known)], -1),
                                      vocab, coarse, vocab.levels)[0]], axis=1)
  start = 1 + chunk_frames * coarse
  known_in_chunk = np.clip(known - np.arange(chunks) * chunk_frames, 0, chunk_frames)
  prompt_length = jnp.asarray(np.tile(start + known_in_chunk * fine, batch), jnp.int32)
  length = start + chunk_frames * fine
  out = _sample("fine", models, ids, prompt_length, rng, length,
                _acoustic_range(vocab, batch * chunks, length, start, coarse, vocab.levels), temperature, top_k)
  offsets = jnp.array([vocab.acoustic_offset(q) for q in range(coarse, vocab.levels)])
  codes = out[:, start:].reshape(batch, chunks * chunk_frames, fine) - offsets
  return codes[:, :frames]


def continue_tokens(models: dict, vocab: Vocab, semantic_prompt, codes_prompt, semantic_frames: int,
                    acoustic_frames: int, rng, temperatures=(0.6, 0.8, 0.6), top_k: int = 0,
                    fine_chunk_frames: int = 0):
  """Continues prompts through the three stages; jit-able with everything but the arrays static.

  models {stage: (model config, params)}; semantic_prompt [B, F_s'] (−1 = padding), codes_prompt
  [B, F_a', Q] (the same F_a' frames for every row) → (semantic ids [B, semantic_frames] (runs
  deduplicated, as the stages were trained), codes [B, acoustic_frames, Q]). Stage 3 runs in chunks of
  `fine_chunk_frames` (0 = all frames at once)."""
  batch = codes_prompt.shape[0]
  rngs = jax.random.split(rng, 3)
  coarse = vocab.coarse_levels
  # stage 1: [BOS, semantic...]
  tokens, mask, _ = stage_sequence("semantic", vocab, semantic_prompt)
  length = 1 + semantic_frames
  tokens = jnp.pad(tokens, [(0, 0), (0, max(length - tokens.shape[1], 0))])[:, :length]
  token_range = _range(batch, 1, np.full(length, 1), np.full(length, 1 + vocab.semantic))
  semantic = _sample("semantic", models, tokens, jnp.minimum(mask.sum(1), length), rngs[0], length,
                     token_range, temperatures[0], top_k)[:, 1:]
  # stage 2: [BOS, semantic, coarse levels of every frame]
  prefix = jnp.concatenate([jnp.zeros([batch, 1], jnp.int32), semantic,
                            acoustic_ids(codes_prompt, vocab, 0, coarse)[0]], axis=1)
  length = 1 + semantic_frames + acoustic_frames * coarse
  out = _sample("coarse", models, prefix, jnp.full([batch], prefix.shape[1]), rngs[1], length,
                _acoustic_range(vocab, batch, length, 1 + semantic_frames, 0, coarse), temperatures[1], top_k)
  offsets = jnp.array([vocab.acoustic_offset(q) for q in range(coarse)])
  coarse_codes = out[:, 1 + semantic_frames:].reshape(batch, acoustic_frames, coarse) - offsets
  # stage 3: fine levels given the coarse ones, chunk by chunk
  fine = fine_codes(models, vocab, coarse_codes, codes_prompt[..., coarse:],
                    fine_chunk_frames or acoustic_frames, rngs[2], temperatures[2], top_k)
  return semantic - 1, jnp.concatenate([coarse_codes, fine], axis=-1)
