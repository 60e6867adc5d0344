"""Feature dumping for clustering: MFCC (100 Hz) or hidden states of layer L of a checkpoint (50 Hz).

`dump` streams a prepared split through an extractor and appends to per-host shard files, so no host ever
holds all frames:

    <out>/<split>_<rank>_<count>.f32    float32 frames, row-major [N_frames, D]
    <out>/<split>_<rank>_<count>.len    frames per utterance, one per line (fairseq's .len)
    <out>/<split>_<rank>_<count>.ids    utterance ids, one per line
    <out>/<split>_<rank>_<count>.json   {"dim", "rate", "kind", "frames", "utterances"} — written last

Layer L is 1-based as in fairseq's `dump_hubert_feature.py`: the output of transformer layer L
(`hidden_states[L]`, HF convention). Batches are padded to a multiple of `bucket` samples, so only a few
shapes compile. Files go through tf.io.gfile, so `out` may be on GCS.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from typing import Callable, Iterator

import jax
import numpy as np
import tensorflow as tf

from speechjax.audio import features as audio_features
from speechjax.data import records


def shard_base(out_dir: str, split: str, rank: int, count: int) -> str:
  return os.path.join(out_dir, f"{split}_{rank}_{count}")


def utterances(data_dir: str, split: str, rank: int = 0, count: int = 1,
               labels: tuple[str, ...] = ()) -> Iterator[dict]:
  """This host's utterances of a prepared split in record order: {"id", "audio" [T] f32, labels...}."""
  meta = records.read_meta(data_dir)
  files = records.split_files(data_dir, meta, split)
  ds = tf.data.TFRecordDataset(files).shard(count, rank)
  ds = ds.map(lambda r: records.parse_example(r, labels), num_parallel_calls=tf.data.AUTOTUNE,
              deterministic=True)
  for ex in ds.as_numpy_iterator():
    yield {"id": ex["id"].decode(), "audio": ex["audio"],
           **{f"labels/{n}": ex[f"labels/{n}"] for n in labels}}


Extractor = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def mfcc_extractor() -> tuple[Extractor, int]:
  """(audio [B,T], lengths [B]) → (features [B,F,39], frame counts [B]); 100 Hz."""
  def extract(audio, lengths):
    feats, counts = audio_features.mfcc(audio, lengths)
    return np.asarray(feats), np.asarray(counts)
  return extract, 100


LAYER_RATE = 50   # frames per second of encoder hidden states (stride 320 at 16 kHz)


def layer_extractor(checkpoint: str, layer: int) -> tuple[Extractor, int]:
  """Hidden states after transformer layer `layer` (1-based) of a checkpoint's encoder; 50 Hz."""
  import speechjax   # the checkpoint's own config rebuilds the model
  return layer_forward(*speechjax.load(checkpoint), layer), LAYER_RATE


@functools.partial(jax.jit, static_argnames=("model", "layer"))
def _hidden_states(params, audio, audio_mask, *, model, layer: int):
  """Hidden states after layer `layer` [B, F, D] and frame counts [B]. The params are an argument, not
  constants of the program: every checkpoint of one architecture (the loop's iterations, the layer choice)
  runs the same compiled program, and the loop's persistent cache keeps it (closing over the params
  compiled every shape again per checkpoint and layer: ~0.75 s each, 3 s of a 12 s dump)."""
  out = model.apply({"params": params}, audio, audio_mask, output_hidden_states=True)
  return out["hidden_states"][layer], out["frame_mask"].sum(-1)


def layer_forward(config, model, params, layer: int) -> Extractor:
  """(audio [B,T], lengths [B]) → (hidden states after layer `layer` [B,F,D], frame counts [B])."""
  num_layers = config.model.num_hidden_layers
  if not 1 <= layer <= num_layers:
    raise ValueError(f"layer={layer}: the checkpoint's encoder has layers 1..{num_layers}")
  params = jax.device_put(params)

  def extract(audio, lengths):
    mask = np.arange(audio.shape[1])[None, :] < lengths[:, None]
    feats, counts = _hidden_states(params, audio, mask, model=model, layer=layer)
    return np.asarray(feats), np.asarray(counts)
  return extract


def make_extractor(kind: str, checkpoint: str = "", layer: int = 0) -> tuple[Extractor, int]:
  if kind == "mfcc":
    return mfcc_extractor()
  if kind == "layer":
    return layer_extractor(checkpoint, layer)
  raise ValueError(f"features kind={kind!r}: expected 'mfcc' or 'layer'")


# Padding length per batch (samples). The first conv layer's GroupNorm of HuBERT / wav2vec 2.0 (fairseq's
# "default" extractor) normalises over padded time too, so features depend slightly on the padding: dump and
# tokenize share this bucket and batch size, so `tokenize --model hubert` reproduces the labels of the loop.
BUCKET, BATCH_SIZE = 32000, 8


def padded_batches(utts: Iterator[dict], batch_size: int, bucket: int):
  """Groups utterances into zero-padded batches: (ids, audio [B, T_bucket], lengths [B])."""
  group = []
  for utt in utts:
    group.append(utt)
    if len(group) == batch_size:
      yield _pad(group, bucket)
      group = []
  if group:
    yield _pad(group, bucket)


def _pad(group, bucket):
  lengths = np.array([len(u["audio"]) for u in group])
  audio = np.zeros((len(group), math.ceil(lengths.max() / bucket) * bucket), np.float32)
  for row, u in enumerate(group):
    audio[row, :len(u["audio"])] = u["audio"]
  return [u["id"] for u in group], audio, lengths


def dump(data_dir: str, split: str, out_dir: str, extractor: Extractor, rate: int, kind: str,
         rank: int = 0, count: int = 1, batch_size: int = BATCH_SIZE, bucket: int = BUCKET) -> dict:
  """Writes this host's shard of features (see the module doc); returns the shard's JSON summary."""
  tf.io.gfile.makedirs(out_dir)
  base = shard_base(out_dir, split, rank, count)
  frames, dim, ids, lens = 0, None, [], []
  with tf.io.gfile.GFile(base + ".f32", "wb") as data:
    for batch_ids, audio, lengths in padded_batches(utterances(data_dir, split, rank, count), batch_size,
                                              bucket):
      feats, counts = extractor(audio, lengths)
      dim = feats.shape[-1]
      for uid, f, n in zip(batch_ids, feats, counts):
        data.write(np.ascontiguousarray(f[:n], np.float32).tobytes())
        ids.append(uid)
        lens.append(int(n))
        frames += int(n)
  with tf.io.gfile.GFile(base + ".len", "w") as f:
    f.write("".join(f"{n}\n" for n in lens))
  with tf.io.gfile.GFile(base + ".ids", "w") as f:
    f.write("".join(f"{i}\n" for i in ids))
  summary = {"dim": dim, "rate": rate, "kind": kind, "frames": frames, "utterances": len(ids)}
  records.write_atomic(base + ".json", json.dumps(summary).encode())
  return summary


def _read(path: str, mode: str = "r"):
  with tf.io.gfile.GFile(path, mode) as f:
    return f.read()


class FeatureShard:
  """A dumped shard: `features` [N, D], per-utterance `lengths`, `ids`, `info`. The features are
  memory-mapped from a local file and read whole (on first use) from a remote one such as gs://."""

  def __init__(self, base: str):
    if not tf.io.gfile.exists(base + ".json"):
      raise FileNotFoundError(f"{base}.json missing: the feature dump is incomplete")
    self.base = base
    self.info = json.loads(_read(base + ".json"))
    self.lengths = np.array(_read(base + ".len").split(), np.int64)
    self.ids = _read(base + ".ids").split()
    self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])

  @functools.cached_property
  def features(self) -> np.ndarray:
    shape = (int(self.info["frames"]), int(self.info["dim"] or 0))
    if not shape[0]:
      return np.zeros(shape, np.float32)
    if "://" not in self.base:
      return np.memmap(self.base + ".f32", np.float32, "r", shape=shape)
    return np.frombuffer(_read(self.base + ".f32", "rb"), np.float32).reshape(shape)

  def utterance(self, i: int) -> np.ndarray:
    return self.features[self.offsets[i]:self.offsets[i + 1]]


def shards(feature_dir: str, split: str) -> list[FeatureShard]:
  """Every dumped shard of a split, in name order."""
  names = tf.io.gfile.listdir(feature_dir) if tf.io.gfile.isdir(feature_dir) else []
  bases = sorted({os.path.join(feature_dir, n[:-len(".json")]) for n in names
                  if n.startswith(f"{split}_") and n.endswith(".json")})
  if not bases:
    raise FileNotFoundError(f"no dumped features for split {split!r} in {feature_dir}")
  return [FeatureShard(b) for b in bases]


def _id_keys(ids: list[str], seed: int) -> np.ndarray:
  """A seeded pseudo-random uint64 key per utterance id (the same in every process)."""
  return np.array([int.from_bytes(hashlib.blake2b(f"{seed}/{uid}".encode(), digest_size=8).digest(),
                                  "little") for uid in ids], np.uint64)


def sample_source(feature_shards: list[FeatureShard], percent: float, seed: int = 0, rank: int = 0,
                  count: int = 1):
  """A re-iterable k-means source over `percent` of the utterances (fairseq's `--percent`; ≤0 = all).

  The chosen utterances are the ceil(percent · N) of all shards' N with the smallest seeded hashes of
  their ids, so the choice depends neither on the order nor on the sharding of the dump. The source
  yields process `rank`'s share (of `count`): shards rank, rank + count, ...; every shard must be
  readable by every process."""
  keys = [_id_keys(shard.ids, seed) for shard in feature_shards]
  total = sum(len(k) for k in keys)
  take = total if percent <= 0 else max(1, math.ceil(total * percent))
  threshold = np.sort(np.concatenate(keys))[take - 1] if total else 0
  mine = [(shard, np.flatnonzero(k <= threshold))
          for shard, k in zip(feature_shards[rank::count], keys[rank::count])]

  def chunks():
    for shard, picks in mine:
      for i in picks:
        if shard.lengths[i]:
          yield np.asarray(shard.utterance(i))
  return chunks
