"""The on-disk record format shared by `prepare` (writer) and `pipeline` (reader).

A prepared data set is a directory:

    DIR/meta.json                       what is in it (see `DatasetMeta`)
    DIR/<split>-00000-of-00004.tfrecord one file per shard, tf.train.Example records
    DIR/report.tsv                      inputs that were skipped, with the reason

Each record holds one utterance:

    id          bytes    unique utterance id
    audio       bytes    int16 little-endian PCM, 16 kHz mono
    num_samples int64    number of samples in `audio`
    transcript  bytes    UTF-8 text ("" when unknown)
    phones      bytes    space-separated phone symbols ("" when unknown)
    speaker     bytes    speaker / voice id ("" when unknown)
    language    bytes    language code ("" when unknown)
    labels/<n>  int64[F] frame labels named <n>; frame i covers samples [i*hop, (i+1)*hop),
                         hop = sample_rate / frame_rate of that label set (see meta.json)

Files are written under a temporary name and renamed when complete, so a killed `prepare` never
leaves a shard that looks finished.
"""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import tensorflow as tf

SAMPLE_RATE = 16000
FORMAT = "speechjax-records-v1"
TEXT_FIELDS = ("id", "transcript", "phones", "speaker", "language")


@dataclasses.dataclass
class LabelSet:
  """A frame-label stream stored with every record as `labels/<name>`."""
  frame_rate: int                 # label frames per second (100 = 10 ms, 50 = 20 ms)
  num_classes: int
  vocab: list[str] | None = None  # symbol of each class id, when the classes have names

  @property
  def hop(self) -> int:
    """Samples per label frame."""
    return SAMPLE_RATE // self.frame_rate


@dataclasses.dataclass
class SplitInfo:
  shards: list[str]
  num_examples: int
  num_samples: int

  @property
  def hours(self) -> float:
    return self.num_samples / SAMPLE_RATE / 3600


@dataclasses.dataclass
class DatasetMeta:
  """Contents of meta.json."""
  splits: dict[str, SplitInfo]
  labels: dict[str, LabelSet] = dataclasses.field(default_factory=dict)
  source: str = ""
  sample_rate: int = SAMPLE_RATE
  format: str = FORMAT

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

  @classmethod
  def from_json(cls, text: str) -> "DatasetMeta":
    d = json.loads(text)
    if d.get("format") != FORMAT:
      raise ValueError(f"meta.json: format is {d.get('format')!r}, expected {FORMAT!r}")
    return cls(
        splits={k: SplitInfo(**v) for k, v in d["splits"].items()},
        labels={k: LabelSet(**v) for k, v in d.get("labels", {}).items()},
        source=d.get("source", ""), sample_rate=d["sample_rate"], format=d["format"])


def read_meta(data_dir: str) -> DatasetMeta:
  path = os.path.join(data_dir, "meta.json")
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(
        f"{path} not found: {data_dir!r} is not a prepared data set (run `speechjax prepare`)")
  with tf.io.gfile.GFile(path) as f:
    return DatasetMeta.from_json(f.read())


def split_files(data_dir: str, meta: DatasetMeta, split: str) -> list[str]:
  """Paths of a split's shard files, in shard order."""
  return [os.path.join(data_dir, s) for s in meta.splits[split].shards]


def write_meta(data_dir: str, meta: DatasetMeta) -> None:
  write_atomic(os.path.join(data_dir, "meta.json"), meta.to_json().encode())


def write_atomic(path: str, data: bytes) -> None:
  """Writes `data` to `path` through a temporary file and a rename."""
  tmp = path + ".tmp"
  with tf.io.gfile.GFile(tmp, "wb") as f:
    f.write(data)
  tf.io.gfile.rename(tmp, path, overwrite=True)


def shard_name(split: str, index: int, count: int) -> str:
  return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


def to_int16(audio: np.ndarray) -> np.ndarray:
  """float [-1, 1] → int16, clipping out-of-range values. `audio`: [T]."""
  return np.clip(np.round(np.asarray(audio, np.float64) * 32767.0), -32768, 32767).astype("<i2")


def encode_example(uid: str, audio: np.ndarray, labels: dict[str, np.ndarray] | None = None,
                   **text: str) -> bytes:
  """Serialises one utterance. `audio`: [T] float in [-1, 1] or int16; labels: name → [F] ints."""
  pcm = audio.astype("<i2") if audio.dtype == np.int16 else to_int16(audio)
  unknown = set(text) - set(TEXT_FIELDS)
  if unknown:
    raise ValueError(f"unknown text fields {sorted(unknown)}; allowed: {TEXT_FIELDS}")

  def b(s):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[s.encode("utf-8")]))

  feats = {name: b(text.get(name, "")) for name in TEXT_FIELDS}
  feats["id"] = b(uid)
  feats["audio"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[pcm.tobytes()]))
  feats["num_samples"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[len(pcm)]))
  for name, values in (labels or {}).items():
    feats[f"labels/{name}"] = tf.train.Feature(
        int64_list=tf.train.Int64List(value=np.asarray(values, np.int64).tolist()))
  return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


def feature_spec(label_names=()) -> dict:
  spec = {name: tf.io.FixedLenFeature([], tf.string, default_value="") for name in TEXT_FIELDS}
  spec["audio"] = tf.io.FixedLenFeature([], tf.string)
  spec["num_samples"] = tf.io.FixedLenFeature([], tf.int64)
  for name in label_names:
    spec[f"labels/{name}"] = tf.io.VarLenFeature(tf.int64)
  return spec


def parse_example(serialized, label_names=(), decode_audio: bool = True):
  """tf.data map fn: record → dict(audio=[T] float32 (int16 PCM bytes if not `decode_audio`),
  labels/<n>=[F] int32, text fields)."""
  ex = tf.io.parse_single_example(serialized, feature_spec(label_names))
  if decode_audio:
    ex["audio"] = tf.cast(tf.io.decode_raw(ex["audio"], tf.int16), tf.float32) / 32768.0
  for name in label_names:
    key = f"labels/{name}"
    ex[key] = tf.cast(tf.sparse.to_dense(ex[key]), tf.int32)
  return ex


class ShardedWriter:
  """Writes a split as `num_shards` TFRecord files, examples assigned round-robin.

  Shards are written as `<name>.tmp` and renamed on `close()`; use as a context manager.
  """

  def __init__(self, out_dir: str, split: str, num_shards: int):
    self.out_dir, self.split, self.num_shards = out_dir, split, num_shards
    tf.io.gfile.makedirs(out_dir)
    self.names = [shard_name(split, i, num_shards) for i in range(num_shards)]
    self._writers = [tf.io.TFRecordWriter(os.path.join(out_dir, n + ".tmp")) for n in self.names]
    self.num_examples = 0
    self.num_samples = 0

  def write(self, record: bytes, num_samples: int) -> None:
    self._writers[self.num_examples % self.num_shards].write(record)
    self.num_examples += 1
    self.num_samples += num_samples

  def close(self) -> SplitInfo:
    for w, n in zip(self._writers, self.names):
      w.close()
      path = os.path.join(self.out_dir, n)
      tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
    return SplitInfo(shards=self.names, num_examples=self.num_examples,
                     num_samples=self.num_samples)

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    if exc[0] is None:
      self.info = self.close()
    else:
      for w in self._writers:
        w.close()
