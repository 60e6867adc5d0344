"""`speechjax tokenize`: a prepared data set → token records (the same records plus discrete-id label sets).

    speechjax tokenize --model hubert --ckpt HUBERT --layer 6 --kmeans km.npz --data DIR --out SEM
    speechjax tokenize --model soundstream --ckpt CODEC --n_q 4 --data SEM --out TOKENS
    speechjax tokenize --model vq-wav2vec --ckpt VQW2V --data DIR --out VQ
    speechjax tokenize --model w2v-bert --ckpt W2V_BERT --layer 3 --kmeans km.npz --data DIR --out SEM

Each model adds label streams to every record (`speechjax.cluster.labeling.write_labeled_records`), which
the input pipeline crops with the audio (`data.labels`):

    hubert       `km`                     k-means ids of layer L's hidden states (semantic tokens), 50 Hz
    w2v-bert     `km`                     the same on a w2v-BERT checkpoint (AudioLM's semantic tokens)
    soundstream  `codec0` … `codec{n−1}`  RVQ codes of levels 0..n−1 (acoustic tokens), the codec's rate
    vq-wav2vec   `km`                     the G codes of a frame as one id Σ_g code_g · V^(G−1−g), 100 Hz

Tokenizing an already tokenized set keeps its label sets, so semantic and acoustic streams end up in one
record set (as above). Beside the records: fairseq `{split}.{stream}` label files (one line of ids per
utterance, record order), `{split}.ids` (utterance ids), `dict.{stream}.txt`, and `tokens.json`
({"model", "streams", "vocab_size", "rate"}).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable

import jax
import numpy as np

from speechjax.cluster import features, labeling
from speechjax.data import records


@dataclasses.dataclass(frozen=True)
class Tokenizer:
  encode: Callable        # (audio [B, T] f32, lengths [B]) -> (ids [B, F, S] int, frame counts [B])
  streams: tuple          # S label-set names, one per last-axis entry of the ids
  vocab_size: int         # ids of every stream lie in [0, vocab_size)
  rate: int               # frames per second


def combine_codes(codes, num_vars: int):
  """Product-quantizer codes [..., G] → one id per frame [...] in [0, num_vars^G)."""
  ids = np.zeros(codes.shape[:-1], np.int64)
  for g in range(codes.shape[-1]):
    ids = ids * num_vars + codes[..., g]
  return ids


def _require_model(config, model_type: str, flag: str) -> None:
  if config.model.model_type != model_type:
    raise ValueError(f"--model {flag}: the checkpoint holds model_type={config.model.model_type!r}")


def vq_wav2vec_tokenizer(config, model, params) -> Tokenizer:
  """Eval-mode codes of a vq-wav2vec checkpoint (Gumbel argmax or nearest k-means codeword)."""
  from speechjax.models import wav2vec   # models stay out of the verb's import path until needed
  cfg = config.model
  _require_model(config, "vq_wav2vec", "vq-wav2vec")

  @jax.jit
  def forward(audio, audio_mask):
    out = model.apply({"params": params}, audio, audio_mask)
    return out["codes"], out["frame_mask"].sum(-1)

  def encode(audio, lengths):
    codes, counts = forward(audio, np.arange(audio.shape[1])[None, :] < lengths[:, None])
    return combine_codes(np.asarray(codes), cfg.vq_vars)[..., None], np.asarray(counts)
  rate = records.SAMPLE_RATE // wav2vec.receptive_field(wav2vec.conv_layers(cfg))[1]
  return Tokenizer(encode, ("km",), cfg.vq_vars ** cfg.vq_groups, rate)


def hubert_tokenizer(config, model, params, layer: int, centroids: np.ndarray) -> Tokenizer:
  """Semantic tokens: nearest k-means centroid [K, D] of the hidden states after transformer layer `layer`
  (1-based) of any encoder checkpoint (HuBERT, WavLM, wav2vec 2.0)."""
  from speechjax.cluster import kmeans
  extract = features.layer_forward(config, model, params, layer)

  def encode(audio, lengths):
    feats, counts = extract(audio, lengths)
    ids = kmeans.assign(feats.reshape(-1, feats.shape[-1]), centroids)
    return ids.reshape(feats.shape[:2])[..., None], counts
  return Tokenizer(encode, ("km",), len(centroids), features.LAYER_RATE)


def soundstream_tokenizer(config, model, params, n_q: int) -> Tokenizer:
  """Acoustic tokens: the first `n_q` RVQ levels of a SoundStream checkpoint (0 = all), one stream each."""
  from speechjax.models.codec import Codec
  _require_model(config, "soundstream", "soundstream")
  codec = Codec(config, model, params)
  n_q = n_q or config.model.num_quantizers
  if codec.sample_rate != records.SAMPLE_RATE or records.SAMPLE_RATE % codec.hop:
    raise ValueError(f"--model soundstream: records are {records.SAMPLE_RATE} Hz; the codec runs at "
                     f"{codec.sample_rate} Hz with hop {codec.hop}: tokenize needs a 16 kHz codec whose "
                     f"hop divides 16000")
  if not 1 <= n_q <= config.model.num_quantizers:
    raise ValueError(f"--n_q={n_q}: the codec has {config.model.num_quantizers} quantizers")

  def encode(audio, lengths):
    return codec.encode(audio, n_q), lengths // codec.hop   # frames wholly inside the utterance
  return Tokenizer(encode, tuple(f"codec{q}" for q in range(n_q)), config.model.codebook_size,
                   records.SAMPLE_RATE // codec.hop)


def tokenize_split(data_dir: str, split: str, tokenizer: Tokenizer, batch_size: int = features.BATCH_SIZE,
                   bucket: int = features.BUCKET) -> tuple[list[str], list[np.ndarray]]:
  """(utterance ids, ids [F_i, S] per utterance) of one prepared split, in record order."""
  uids, sequences = [], []
  for batch_ids, audio, lengths in features.padded_batches(features.utterances(data_dir, split), batch_size,
                                                           bucket):
    ids, counts = tokenizer.encode(audio, lengths)
    uids.extend(batch_ids)
    sequences.extend(np.asarray(row[:n], np.int64) for row, n in zip(ids, counts))
  return uids, sequences


def write(data_dir: str, out_dir: str, tokenizer: Tokenizer, by_split: dict, info: dict) -> None:
  """Token records of `data_dir` in `out_dir` from {split: (uids, sequences)}, plus the files beside them."""
  streams = [labeling.LabelStream(name, {split: dict(zip(uids, (seq[:, s] for seq in sequences)))
                                         for split, (uids, sequences) in by_split.items()},
                                  tokenizer.rate, tokenizer.vocab_size)
             for s, name in enumerate(tokenizer.streams)]
  missing = labeling.write_labeled_records(data_dir, out_dir, streams)
  if any(missing.values()):
    raise ValueError(f"tokenize: utterances without tokens per split: {missing}")
  for split, (uids, _) in by_split.items():
    records.write_atomic(os.path.join(out_dir, f"{split}.ids"), "".join(f"{u}\n" for u in uids).encode())
  records.write_atomic(os.path.join(out_dir, "tokens.json"), json.dumps(
      {**info, "streams": list(tokenizer.streams), "vocab_size": tokenizer.vocab_size,
       "rate": tokenizer.rate}).encode())


def make_tokenizer(args) -> Tokenizer:
  import speechjax
  loaded = speechjax.load(args.ckpt)
  if args.model == "vq-wav2vec":
    return vq_wav2vec_tokenizer(*loaded)
  if args.model == "soundstream":
    return soundstream_tokenizer(*loaded, args.n_q)
  if args.layer is None or args.kmeans is None:
    raise ValueError(f"--model {args.model} needs --layer and --kmeans")
  if args.model == "w2v-bert":
    _require_model(loaded[0], "wav2vec2_bert", "w2v-bert")
  from speechjax.cluster import kmeans
  return hubert_tokenizer(*loaded, args.layer, kmeans.load(args.kmeans)[0].centroids)


def add_arguments(parser):
  parser.add_argument("--model", required=True, choices=("hubert", "w2v-bert", "soundstream", "vq-wav2vec"))
  parser.add_argument("--ckpt", required=True, help="workdir or checkpoint dir of the model")
  parser.add_argument("--data", required=True, help="a prepared data set")
  parser.add_argument("--out", required=True, help="where the token records go")
  parser.add_argument("--layer", type=int, help="hubert, w2v-bert: 1-based encoder layer")
  parser.add_argument("--kmeans", help="hubert, w2v-bert: centroids from `speechjax kmeans`")
  parser.add_argument("--n_q", type=int, default=0, help="soundstream: RVQ levels (0 = all)")
  parser.add_argument("--batch-size", type=int, default=features.BATCH_SIZE)


def run(args) -> int:
  tokenizer = make_tokenizer(args)
  by_split = {}
  for split in sorted(records.read_meta(args.data).splits):
    by_split[split] = tokenize_split(args.data, split, tokenizer, args.batch_size)
    print(json.dumps({"split": split, "utterances": len(by_split[split][0]),
                      "frames": int(sum(map(len, by_split[split][1])))}))
  write(args.data, args.out, tokenizer, by_split,
        {"model": args.model, "ckpt": args.ckpt, "layer": args.layer, "kmeans": args.kmeans})
  return 0
