"""`speechjax tokenize`: discrete ids per utterance from a trained model, as fairseq-style label files.

    speechjax tokenize --model vq-wav2vec --ckpt WORKDIR --data DIR --out OUT [--split train ...]

Writes, per split, `OUT/{split}.km` (one line of space-separated ids per utterance, speechjax.data.labels)
and `OUT/{split}.ids` (the utterance ids, same order), plus `OUT/dict.km.txt` for ids 0..vocab−1 and
`OUT/tokens.json` ({"model", "vocab_size", "rate"}).

`--model` picks a tokenizer factory from TOKENIZERS: a small function (config, model, params) → Tokenizer.
vq-wav2vec: the G codes of a frame become one id Σ_g code_g · V^(G−1−g) (vocabulary V^G, 100 Hz).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable

import jax
import numpy as np

from speechjax.cluster import features
from speechjax.data import labels, records


@dataclasses.dataclass(frozen=True)
class Tokenizer:
  encode: Callable   # (audio [B, T] f32, lengths [B]) -> (ids [B, F] int, frame counts [B])
  vocab_size: int
  rate: int          # ids per second


def combine_codes(codes, num_vars: int):
  """Product-quantizer codes [..., G] → one id per frame [...] in [0, num_vars^G)."""
  ids = np.zeros(codes.shape[:-1], np.int64)
  for g in range(codes.shape[-1]):
    ids = ids * num_vars + codes[..., g]
  return ids


def vq_wav2vec_tokenizer(config, model, params) -> Tokenizer:
  """Eval-mode codes of a vq-wav2vec checkpoint (Gumbel argmax or nearest k-means codeword)."""
  from speechjax.models import wav2vec   # models stay out of the verb's import path until needed
  cfg = config.model
  if cfg.model_type != "vq_wav2vec":
    raise ValueError(f"--model vq-wav2vec: the checkpoint holds model_type={cfg.model_type!r}")

  @jax.jit
  def forward(audio, audio_mask):
    out = model.apply({"params": params}, audio, audio_mask)
    return out["codes"], out["frame_mask"].sum(-1)

  def encode(audio, lengths):
    codes, counts = forward(audio, np.arange(audio.shape[1])[None, :] < lengths[:, None])
    return combine_codes(np.asarray(codes), cfg.vq_vars), np.asarray(counts)
  rate = records.SAMPLE_RATE // wav2vec.receptive_field(wav2vec.conv_layers(cfg))[1]
  return Tokenizer(encode, cfg.vq_vars ** cfg.vq_groups, rate)


TOKENIZERS = {"vq-wav2vec": vq_wav2vec_tokenizer}


def tokenize_split(data_dir: str, split: str, tokenizer: Tokenizer, batch_size: int = 8,
                   bucket: int = 16000) -> tuple[list[str], list[np.ndarray]]:
  """(utterance ids, ids [F_i] per utterance) of one prepared split, in record order."""
  uids, sequences = [], []
  for batch_ids, audio, lengths in features.padded_batches(features.utterances(data_dir, split), batch_size,
                                                                   bucket):
    ids, counts = tokenizer.encode(audio, lengths)
    uids.extend(batch_ids)
    sequences.extend(row[:n] for row, n in zip(ids, counts))
  return uids, sequences


def write_split(out_dir: str, split: str, uids, sequences) -> None:
  labels.write_km(os.path.join(out_dir, f"{split}.km"), sequences)
  records.write_atomic(os.path.join(out_dir, f"{split}.ids"), "".join(f"{u}\n" for u in uids).encode())


def add_arguments(parser):
  parser.add_argument("--model", required=True, choices=sorted(TOKENIZERS))
  parser.add_argument("--ckpt", required=True, help="workdir or checkpoint dir of the model")
  parser.add_argument("--data", required=True, help="a prepared data set")
  parser.add_argument("--out", required=True)
  parser.add_argument("--split", action="append", help="splits to tokenize (default: all)")
  parser.add_argument("--batch-size", type=int, default=8)


def run(args) -> int:
  import speechjax
  tokenizer = TOKENIZERS[args.model](*speechjax.load(args.ckpt))
  os.makedirs(args.out, exist_ok=True)
  for split in args.split or sorted(records.read_meta(args.data).splits):
    uids, sequences = tokenize_split(args.data, split, tokenizer, args.batch_size)
    write_split(args.out, split, uids, sequences)
    print(json.dumps({"split": split, "utterances": len(uids), "tokens": int(sum(map(len, sequences)))}))
  labels.write_dict(os.path.join(args.out, "dict.km.txt"), tokenizer.vocab_size)
  records.write_atomic(os.path.join(args.out, "tokens.json"), json.dumps(
      {"model": args.model, "vocab_size": tokenizer.vocab_size, "rate": tokenizer.rate}).encode())
  return 0
