"""Held-out perplexity of a text LM run (`configs/llama.py`, task `text_lm`) against n-gram baselines.

Every transcript of the records' test split (held-out voices; the same sentences drawn by the same grammar
but not the same draws) is scored as [t1 .. tn, EOS] after BOS, in nats per token, exactly (no batching
approximation). Baselines: add-k (k = 0.1) unigram, bigram and 4-gram models fitted on the train split's
transcripts with the same ids (`speechjax.eval.ctc_decode.CharNgramLM`, EOS a token like the others).

    python benchmarks/text_lm_perplexity.py --ckpt workdir/speech_llm_ml/text_lm
"""
from __future__ import annotations

import argparse
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from speechjax.data import vocab
from speechjax.eval.ctc_decode import CharNgramLM
from speechjax.models import speech_llm
from speechjax.tasks import pretrained
from speechjax.text import symbols_of


def token_ids(config, split: str) -> list[list[int]]:
  """[t1 .. tn, EOS] per transcript of `split`, in the run's ids."""
  data = config.data
  index = {s: i + 1 for i, s in enumerate(data.target_vocab)}
  eos = speech_llm.text_ids(data).eos
  rows = []
  for text in vocab.read_field(data.path, split, "transcript"):
    symbols = symbols_of(data.targets, text)
    rows.append([index[s] for s in symbols] + [eos])   # an unknown symbol raises: the splits share symbols
  return rows


def lm_nats(config, model, params, rows: list[list[int]], batch: int = 64) -> tuple[float, int]:
  """(total nats, tokens) of the LLaMA on the rows."""
  bos = speech_llm.text_ids(config.data).bos
  width = max(len(r) for r in rows)

  @jax.jit
  def nats(inputs, outputs, mask):
    logits = model.apply({"params": params}, inputs, mask=inputs > 0)
    return jnp.where(mask, optax.softmax_cross_entropy_with_integer_labels(logits, outputs), 0.0).sum()

  total = 0.0
  for start in range(0, len(rows), batch):
    chunk = rows[start:start + batch]
    outputs = np.zeros([batch, width], np.int32)
    inputs = np.zeros([batch, width], np.int32)
    for i, r in enumerate(chunk):
      outputs[i, :len(r)] = r
      inputs[i, :len(r)] = [bos] + r[:-1]
    total += float(nats(inputs, outputs, outputs > 0))
  return total, sum(len(r) for r in rows)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--ckpt", required=True, help="text_lm workdir")
  parser.add_argument("--out", default="", help="write the figures as JSON here")
  args = parser.parse_args()
  config, model, params = pretrained.load_model(args.ckpt)
  train, test = token_ids(config, config.data.train_split), token_ids(config, config.data.eval_split)
  vocab_size = speech_llm.text_ids(config.data).vocab_size
  figures = {"test_transcripts": len(test), "test_tokens": sum(len(r) for r in test)}
  for name, order in (("unigram", 1), ("bigram", 2), ("4gram", 4)):
    ngram = CharNgramLM(order, vocab_size).fit(train)
    nats = -sum(ngram.log_prob(r) for r in test)
    figures[f"{name}_perplexity"] = math.exp(nats / figures["test_tokens"])
  nats, tokens = lm_nats(config, model, params, test)
  figures["text_lm_nats_per_token"] = nats / tokens
  figures["text_lm_perplexity"] = math.exp(nats / tokens)
  print(json.dumps(figures, indent=1))
  if args.out:
    with open(args.out, "w", encoding="utf-8") as f:
      json.dump(figures, f, indent=1)


if __name__ == "__main__":
  main()
