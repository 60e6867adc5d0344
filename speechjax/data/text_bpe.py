"""`speechjax bpe`: train a BPE tokenizer on the transcripts of a prepared data set (the text side of the
LLMs on the built-in corpus: `data.text_tokenizer`).

    speechjax bpe --data data/synth-small/records --vocab-size 500 --out data/synth-small/records/bpe500.json

Trains on the train split only (the held-out voices' text stays unseen); prints the vocabulary size and the
mean tokens per transcript. See `speechjax.text_tokenizer`.
"""
from __future__ import annotations

from speechjax import text_tokenizer
from speechjax.data import vocab


def add_arguments(parser):
  parser.add_argument("--data", required=True, help="a prepared data set")
  parser.add_argument("--split", default="train")
  parser.add_argument("--vocab-size", type=int, default=500)
  parser.add_argument("--out", required=True, help="the tokenizer.json to write")


def run(args) -> int:
  texts = [t for t in vocab.read_field(args.data, args.split, "transcript") if t]
  if not texts:
    raise ValueError(f"{args.data}: split {args.split!r} has no transcripts")
  tokenizer = text_tokenizer.train_bpe(texts, args.vocab_size, args.out)
  mean = sum(len(tokenizer.encode(t)) for t in texts) / len(texts)
  print(f"{args.out}: {tokenizer.vocab_size} tokens from {len(texts)} transcripts, {mean:.1f} tokens each")
  return 0
