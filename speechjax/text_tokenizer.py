"""Subword tokenizers for LLM text (Speech-LLaMA, text LMs), behind one small interface.

    tok = TextTokenizer.load("path/to/checkpoint_dir")   # its tokenizer.json (HF `tokenizers`, as shipped
                                                         # with TinyLlama, SmolLM, Llama 3 checkpoints)
    tok = train_bpe(texts, vocab_size=500, out="bpe.json")   # a BPE trained here (the built-in corpus)
    ids = tok.encode("hello world"); text = tok.decode(ids)
    tok.bos_id, tok.eos_id, tok.vocab_size

`encode` adds no special tokens (the caller places BOS / EOS); `decode` drops them. BOS / EOS come from
`tokenizer_config.json` beside the file when there is one (`bos_token`, `eos_token`), else from the first of
"<s>" / "<|begin_of_text|>" and "</s>" / "<|end_of_text|>" in the vocabulary. SentencePiece `tokenizer.model`
files are not read here (most LLaMA-family checkpoints also ship a tokenizer.json).

`train_bpe` trains a BPE with `tokenizers` on the given texts (deterministic for the same texts): "▁"-marked
words (Metaspace, as SentencePiece), specials <pad> = 0, <s> = 1, </s> = 2, <unk> = 3.
"""
from __future__ import annotations

import json
import os

SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
_BOS_NAMES = ("<s>", "<|begin_of_text|>")
_EOS_NAMES = ("</s>", "<|end_of_text|>")


class TextTokenizer:
  """A `tokenizers.Tokenizer` with its BOS and EOS ids."""

  def __init__(self, tokenizer, bos_id: int, eos_id: int):
    self.tokenizer, self.bos_id, self.eos_id = tokenizer, bos_id, eos_id

  @property
  def vocab_size(self) -> int:
    return self.tokenizer.get_vocab_size(with_added_tokens=True)

  def encode(self, text: str) -> list[int]:
    return self.tokenizer.encode(text, add_special_tokens=False).ids

  def decode(self, ids) -> str:
    return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)

  @classmethod
  def load(cls, path: str) -> "TextTokenizer":
    """From a tokenizer.json file, or a directory holding one (an HF checkpoint directory)."""
    import tokenizers   # pylint: disable=import-outside-toplevel
    file = os.path.join(path, "tokenizer.json") if os.path.isdir(path) else path
    if not os.path.isfile(file):
      raise FileNotFoundError(f"{path}: no tokenizer.json (SentencePiece tokenizer.model files are not read)")
    tokenizer = tokenizers.Tokenizer.from_file(file)
    names = _special_names(os.path.dirname(os.path.abspath(file)))
    vocab = tokenizer.get_vocab(with_added_tokens=True)

    def find(key, fallbacks):
      for name in ((names[key],) if names.get(key) else ()) + fallbacks:
        if name in vocab:
          return vocab[name]
      raise ValueError(f"{file}: no {key} in the vocabulary (tried {names.get(key) or fallbacks})")
    return cls(tokenizer, find("bos_token", _BOS_NAMES), find("eos_token", _EOS_NAMES))

  def save(self, file: str) -> None:
    self.tokenizer.save(file)


def _special_names(directory: str) -> dict:
  """bos_token / eos_token names from tokenizer_config.json (strings or {"content": ...}), if any."""
  path = os.path.join(directory, "tokenizer_config.json")
  if not os.path.isfile(path):
    return {}
  with open(path) as f:
    config = json.load(f)
  out = {}
  for key in ("bos_token", "eos_token"):
    value = config.get(key)
    out[key] = value.get("content") if isinstance(value, dict) else value
  return out


def train_bpe(texts, vocab_size: int, out: str | None = None) -> TextTokenizer:
  """A BPE of `vocab_size` tokens (specials included) trained on `texts` (an iterable of strings); saved
  to `out` when given."""
  import tokenizers   # pylint: disable=import-outside-toplevel
  from tokenizers import decoders, models, pre_tokenizers, trainers   # pylint: disable=import-outside-toplevel
  tokenizer = tokenizers.Tokenizer(models.BPE(unk_token="<unk>"))
  tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
  tokenizer.decoder = decoders.Metaspace()
  trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS), show_progress=False)
  tokenizer.train_from_iterator(list(texts), trainer)
  result = TextTokenizer(tokenizer, SPECIALS.index("<s>"), SPECIALS.index("</s>"))
  if out:
    result.save(out)
  return result
