"""tf.data input pipeline: prepared records → static-shape numpy batches (docs/design.md, Data flow and
Contracts: Batch).

Per host:  this host's shard files → per-epoch deterministic shuffle → parse → drop too short (counted)
           → random crop (fairseq semantics) or length bucketing → pad → batch → prefetch.

A batch is a dict of numpy arrays with a leading batch dim:
    audio            [B, T] float32 in [-1, 1]
    audio_mask       [B, T] bool, True = real sample
    labels/<n>       [B, F_n] int32, -1 = padding; F_n = T // hop_n
    labels_mask/<n>  [B, F_n] bool
    targets          [B, L] int32 token ids of `targets` (a text field), 1-based in `target_vocab`
                     (0 = CTC blank / padding), L = max_target_length; only when `targets` is set
    targets_mask     [B, L] bool
    id, transcript, phones, speaker   [B] bytes (host-side only, never sent to devices)

Determinism and resume: epoch e of a host is a pure function of (seed, e, process_index); the iterator's
position is (epoch, batches consumed in that epoch). Restoring a position skips that many *records* of the
epoch before any decoding (crop mode), so a resumed run sees exactly the batches an uninterrupted run would.
"""
from __future__ import annotations

import dataclasses
import math

import tensorflow as tf

from speechjax.data import records, vocab

HOST_FIELDS = ("id", "transcript", "phones", "speaker")


@dataclasses.dataclass(frozen=True)
class PipelineSpec:
  """Everything that determines the batches of one host."""
  data_dir: str
  split: str
  batch_size: int                   # per host
  max_sample_size: int              # T: crop/pad length in samples
  min_sample_size: int = 0          # shorter utterances are dropped (and counted)
  labels: tuple[str, ...] = ()      # label sets to emit, named as in meta.json
  seed: int = 0
  shuffle_buffer: int = 1000        # 0 = no shuffling (evaluation)
  random_crop: bool = True          # False: crop from the start (evaluation)
  bucket_boundaries: tuple[int, ...] = ()  # non-empty: bucket by length instead of cropping
  targets: str = ""                 # "phones" | "transcript": emit token targets (never cropped: longer
                                    # audio, longer targets and unknown symbols are dropped and counted)
  target_vocab: tuple[str, ...] = ()  # symbols; id = index + 1 (see speechjax.data.vocab)
  text_tokenizer: str = ""          # a tokenizer.json: `transcript` targets are its subword ids instead
  max_target_length: int = 0        # L
  max_seconds: float = 0.0          # > 0: only the first utterances of the split (shard order, before any
                                    # shuffling) up to this much audio, e.g. a 10-minute labelled subset
  skip_seconds: float = 0.0         # > 0: only the utterances after the first this-much audio (the
                                    # complement of max_seconds: held-out utterances of the same split)
  process_index: int = 0
  process_count: int = 1
  repeat: bool = True               # False: one epoch, last partial batch padded (evaluation)
  prefetch: int = 2
  num_threads: int = 0              # tf.data threads; 0 = as many as tf.data likes


def host_files(meta: records.DatasetMeta, spec: PipelineSpec) -> tuple[list[str], bool]:
  """This host's shard files, and whether records must be sharded inside the files."""
  if spec.split not in meta.splits:
    raise ValueError(f"data.split: {spec.split!r} not in {spec.data_dir} (has {sorted(meta.splits)})")
  files = records.split_files(spec.data_dir, meta, spec.split)
  if len(files) >= spec.process_count and len(files) % spec.process_count == 0:
    return files[spec.process_index::spec.process_count], False
  return files, True   # fewer (or unevenly many) files than hosts: shard records instead


def label_hops(meta: records.DatasetMeta, spec: PipelineSpec) -> dict[str, int]:
  missing = [n for n in spec.labels if n not in meta.labels]
  if missing:
    raise ValueError(f"data.labels: {missing} not in {spec.data_dir} (has {sorted(meta.labels)})")
  return {n: meta.labels[n].hop for n in spec.labels}


def crop_unit(spec: PipelineSpec, hops: dict[str, int]) -> int:
  """Samples between crop starts (every label set's frame boundary); `max_sample_size` must be a multiple."""
  unit = math.lcm(1, *hops.values())
  if spec.max_sample_size % unit:
    raise ValueError(f"data.max_sample_size={spec.max_sample_size} must be a multiple of "
                     f"{unit} (the label hop) so labels crop consistently")
  return unit


class Pipeline:
  """Iterator of host-local numpy batches with a saveable position."""

  def __init__(self, spec: PipelineSpec):
    self.spec = spec
    self.meta = records.read_meta(spec.data_dir)
    self.files, self._shard_records = host_files(self.meta, spec)
    self.hops = label_hops(self.meta, spec)
    self.crop_unit = crop_unit(spec, self.hops)
    self.num_too_short = tf.Variable(0, dtype=tf.int64, trainable=False)
    self.num_too_long = tf.Variable(0, dtype=tf.int64, trainable=False)      # audio or targets (targets)
    self.num_unknown_symbol = tf.Variable(0, dtype=tf.int64, trainable=False)
    self._tokens = None
    if spec.targets:
      self._tokens = (vocab.SubwordTargets(spec.text_tokenizer) if spec.text_tokenizer
                      else vocab.TargetTokenizer(spec.targets, spec.target_vocab))
    if spec.targets and spec.max_target_length < 1:
      raise ValueError("data.max_target_length must be positive when data.targets is set")
    self.epoch, self.batch_in_epoch = 0, 0
    self._iter = None

  # --- position -----------------------------------------------------------------------------
  @property
  def position(self) -> dict:
    return {"epoch": self.epoch, "batch": self.batch_in_epoch}

  def restore(self, position: dict) -> None:
    self.epoch, self.batch_in_epoch = int(position["epoch"]), int(position["batch"])
    self._iter = None

  # --- iteration ----------------------------------------------------------------------------
  def __iter__(self):
    return self

  def __next__(self) -> dict:
    if self._iter is None:
      self._iter = iter(self._dataset(self.epoch, self.batch_in_epoch))
    batch = {k: v.numpy() for k, v in next(self._iter).items()}
    epoch = int(batch.pop("_epoch")[0])
    if epoch != self.epoch:
      self.epoch, self.batch_in_epoch = epoch, 0
    self.batch_in_epoch += 1
    return batch

  # --- tf.data graph ------------------------------------------------------------------------
  def _dataset(self, start_epoch: int, skip_batches: int) -> tf.data.Dataset:
    spec = self.spec
    first = self._epoch(tf.constant(start_epoch, tf.int64), skip_batches)
    if spec.repeat:
      rest = tf.data.Dataset.range(start_epoch + 1, 2**62).flat_map(lambda e: self._epoch(e, 0))
      first = first.concatenate(rest)
    options = tf.data.Options()
    options.deterministic = True
    if spec.num_threads:
      options.threading.private_threadpool_size = spec.num_threads
      options.threading.max_intra_op_parallelism = 1
    return first.prefetch(spec.prefetch).with_options(options)

  def _epoch(self, epoch, skip_batches: int) -> tf.data.Dataset:
    spec = self.spec
    seed = tf.cast(epoch, tf.int64) * 1_000_003 + spec.seed
    if spec.max_seconds or spec.skip_seconds:
      ds = self._subset().shard(spec.process_count, spec.process_index)
    else:
      files = tf.data.Dataset.from_tensor_slices(self.files)
      if spec.shuffle_buffer:
        files = files.shuffle(len(self.files), seed=seed)
      ds = files.interleave(tf.data.TFRecordDataset, cycle_length=min(4, len(self.files)),
                            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
      if self._shard_records:
        ds = ds.shard(spec.process_count, spec.process_index)
    if spec.shuffle_buffer:
      ds = ds.shuffle(spec.shuffle_buffer, seed=seed)
    ds = ds.filter(self._long_enough)
    ds = ds.enumerate()   # record index within the epoch: the crop's random stream
    if not spec.bucket_boundaries:   # fixed batch size: skip whole batches' records before decoding
      ds, skip_batches = ds.skip(skip_batches * spec.batch_size), 0
    ds = ds.map(lambda i, r: self._parse(seed, i, r), num_parallel_calls=tf.data.AUTOTUNE)
    if self._tokens is not None:
      ds = ds.map(self._add_targets, num_parallel_calls=tf.data.AUTOTUNE).filter(self._targets_fit)
    ds = self._bucket(ds) if spec.bucket_boundaries else self._crop_batch(ds)
    ds = ds.skip(skip_batches)
    return ds.map(lambda b: {**b, "_epoch": tf.fill([tf.shape(b["audio"])[0]], epoch)})

  def _parse(self, seed, index, record):
    ex = records.parse_example(record, self.spec.labels)
    ex["_rng"] = tf.stack([seed, index])
    return ex

  def _subset(self):
    """The split's records in shard order whose running audio total ends in (skip_seconds, max_seconds]."""
    files = records.split_files(self.spec.data_dir, self.meta, self.spec.split)
    skip = int(self.spec.skip_seconds * records.SAMPLE_RATE)
    limit = int(self.spec.max_seconds * records.SAMPLE_RATE) if self.spec.max_seconds else 2**62

    def running_total(total, record):
      n = tf.io.parse_single_example(
          record, {"num_samples": tf.io.FixedLenFeature([], tf.int64)})["num_samples"]
      return total + n, (total + n, record)
    ds = tf.data.TFRecordDataset(files).scan(tf.constant(0, tf.int64), running_total)
    ds = ds.take_while(lambda total, _: total <= limit).filter(lambda total, _: total > skip)
    return ds.map(lambda _, record: record)

  def _add_targets(self, ex):
    return {**ex, "targets": self._tokens(ex[self.spec.targets])}

  def _targets_fit(self, ex):
    """Whole utterances only (a crop would cut the transcript); counts every dropped one."""
    too_long = ((tf.shape(ex["audio"])[0] > self.spec.max_sample_size)
                | (tf.shape(ex["targets"])[0] > self.spec.max_target_length))
    unknown = tf.reduce_any(ex["targets"] < 1)
    if too_long:
      self.num_too_long.assign_add(1)
    elif unknown:
      self.num_unknown_symbol.assign_add(1)
    return ~too_long & ~unknown

  def _long_enough(self, record):
    """Reads only the length field; counts every dropped utterance."""
    n = tf.io.parse_single_example(
        record, {"num_samples": tf.io.FixedLenFeature([], tf.int64)})["num_samples"]
    ok = n >= max(self.spec.min_sample_size, 1)
    if not ok:
      self.num_too_short.assign_add(1)
    return ok

  def _crop(self, ex, length: int):
    """Crops `ex` to at most `length` samples, starting on a multiple of `crop_unit`."""
    n = tf.shape(ex["audio"])[0]
    slack_units = tf.maximum(n - length, 0) // self.crop_unit
    if self.spec.random_crop:
      start_unit = tf.random.stateless_uniform([], ex["_rng"], 0, slack_units + 1, tf.int32)
    else:
      start_unit = tf.constant(0, tf.int32)
    start = start_unit * self.crop_unit
    out = {k: ex[k] for k in HOST_FIELDS + (("targets",) if self._tokens else ())}
    out["audio"] = ex["audio"][start:start + length]
    crop_len = tf.shape(out["audio"])[0]
    for name, hop in self.hops.items():
      out[f"labels/{name}"] = ex[f"labels/{name}"][start // hop:(start + crop_len) // hop]
    return out

  def _pad(self, ex, length: int):
    """Pads a cropped example to `length` samples and adds masks."""
    n = tf.shape(ex["audio"])[0]
    out = {k: ex[k] for k in HOST_FIELDS}
    out["audio"] = tf.pad(ex["audio"], [[0, length - n]])
    out["audio_mask"] = tf.range(length) < n
    for name, hop in self.hops.items():
      lab = ex[f"labels/{name}"]
      frames = length // hop
      lab = lab[:frames]
      out[f"labels/{name}"] = tf.pad(lab, [[0, frames - tf.shape(lab)[0]]], constant_values=-1)
      out[f"labels_mask/{name}"] = tf.range(frames) < tf.shape(lab)[0]
    if self._tokens is not None:
      length_l = self.spec.max_target_length
      out["targets"] = tf.pad(ex["targets"], [[0, length_l - tf.shape(ex["targets"])[0]]])
      out["targets_mask"] = tf.range(length_l) < tf.shape(ex["targets"])[0]
    return out

  def _crop_batch(self, ds):
    t = self.spec.max_sample_size
    ds = ds.map(lambda ex: self._pad(self._crop(ex, t), t), num_parallel_calls=tf.data.AUTOTUNE)
    return self._batch(ds, self.spec.batch_size)

  def _batch(self, ds, batch_size):
    if self.spec.repeat:
      return ds.batch(batch_size, drop_remainder=True)
    return ds.batch(batch_size).map(lambda b: _pad_rows(b, batch_size))

  def _bucket(self, ds):
    """Groups by length into buckets of ~constant total samples; each bucket has one static shape."""
    bounds = sorted(self.spec.bucket_boundaries)
    if bounds[-1] != self.spec.max_sample_size:
      raise ValueError("data.bucket_boundaries: the last boundary must equal data.max_sample_size")
    if any(b % self.crop_unit for b in bounds):
      raise ValueError(f"data.bucket_boundaries must be multiples of {self.crop_unit}")
    budget = self.spec.batch_size * self.spec.max_sample_size
    sizes = [max(1, budget // b) for b in bounds]

    def key(ex):
      n = tf.shape(ex["audio"])[0]
      return tf.reduce_sum(tf.cast(n > tf.constant(bounds[:-1]), tf.int64))

    def reduce(k, group):
      length = tf.gather(tf.constant(bounds, tf.int64), k)
      size = tf.gather(tf.constant(sizes, tf.int64), k)
      padded = group.map(lambda ex: self._pad(ex, tf.cast(length, tf.int32)))
      return padded.batch(size, drop_remainder=True)

    ds = ds.map(lambda ex: self._crop(ex, bounds[-1]), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.group_by_window(key, reduce,
                              window_size_func=lambda k: tf.gather(tf.constant(sizes, tf.int64), k))


def _pad_rows(batch, batch_size):
  """Pads a partial batch to `batch_size` rows (masks False, labels -1, strings "")."""
  def pad(key, x):
    value = -1 if key.startswith("labels/") else ("" if x.dtype == tf.string else False
                                                 if x.dtype == tf.bool else 0)
    rows = [[0, batch_size - tf.shape(x)[0]]] + [[0, 0]] * (len(x.shape) - 1)
    return tf.pad(x, rows, constant_values=tf.constant(value, x.dtype))
  return {k: pad(k, v) for k, v in batch.items()}


def make_pipeline(data_dir, split, batch_size, max_sample_size, **kwargs) -> Pipeline:
  return Pipeline(PipelineSpec(data_dir=data_dir, split=split, batch_size=batch_size,
                               max_sample_size=max_sample_size, **kwargs))


def default_config():
  """The `data` section of a run config."""
  import ml_collections
  return ml_collections.ConfigDict({
      "path": "data/synth-small/records",   # a prepared data set (speechjax prepare)
      "train_split": "train", "eval_split": "test",
      "batch_size": 8,                      # global, over all hosts
      "max_sample_size": 64000,             # crop/pad length in samples (4 s)
      "min_sample_size": 8000,
      "labels": (),                         # label sets to load, e.g. ("phone_20ms",)
      "shuffle_buffer": 1000, "seed": 0,
      "bucket_boundaries": (),              # non-empty: length bucketing instead of cropping
      "targets": "",                        # "phones" | "transcript": token targets (CTC); no cropping
      "target_vocab": (),                   # () = scanned from the train split by the task
      "text_tokenizer": "",                 # tokenizer.json: transcript targets as its subword ids (LLMs)
      "max_target_length": 0,
      "train_subset_seconds": 0.0,          # > 0: train on the first N seconds of the train split only
      "eval_skip_seconds": 0.0,             # > 0: evaluate on the eval split after its first N seconds
      "in_memory": False,                   # True: training batches from the split held in host memory
                                            # (speechjax.data.memory; crop mode; less host CPU per batch)
  })


def from_config(data_cfg, train: bool, process_index: int = 0, process_count: int = 1) -> Pipeline:
  """This host's training (endless, shuffled, random crops) or evaluation (one pass) pipeline."""
  if data_cfg.batch_size % process_count:
    raise ValueError(f"config.data.batch_size={data_cfg.batch_size}: not divisible by the "
                     f"{process_count} processes")
  spec = PipelineSpec(
      data_dir=data_cfg.path, split=data_cfg.train_split if train else data_cfg.eval_split,
      batch_size=data_cfg.batch_size // process_count, max_sample_size=data_cfg.max_sample_size,
      min_sample_size=data_cfg.min_sample_size, labels=tuple(data_cfg.labels), seed=data_cfg.seed,
      shuffle_buffer=data_cfg.shuffle_buffer if train else 0, random_crop=train,
      bucket_boundaries=tuple(data_cfg.bucket_boundaries) if train else (),
      targets=data_cfg.get("targets", ""), target_vocab=tuple(data_cfg.get("target_vocab", ())),
      text_tokenizer=data_cfg.get("text_tokenizer", ""),
      max_target_length=data_cfg.get("max_target_length", 0),
      max_seconds=data_cfg.get("train_subset_seconds", 0.0) if train else 0.0,
      skip_seconds=0.0 if train else data_cfg.get("eval_skip_seconds", 0.0),
      process_index=process_index, process_count=process_count, repeat=train)
  if train and data_cfg.get("in_memory", False):
    from speechjax.data import memory   # memory builds on this module
    return memory.InMemoryPipeline(spec)
  return Pipeline(spec)


def batch_shapes(data_cfg, batch_size: int, label_hops: dict[str, int]) -> dict[str, tuple[tuple, str]]:
  """{field: (shape, dtype)} of the device fields of a batch `from_config` emits with `batch_size` rows
  (crop mode; `label_hops` gives each label set's samples per frame, as meta.json does)."""
  t = data_cfg.max_sample_size
  shapes = {"audio": ((batch_size, t), "float32"), "audio_mask": ((batch_size, t), "bool")}
  for name in data_cfg.labels:
    frames = t // label_hops[name]
    shapes[f"labels/{name}"] = ((batch_size, frames), "int32")
    shapes[f"labels_mask/{name}"] = ((batch_size, frames), "bool")
  if data_cfg.get("targets", ""):
    shapes["targets"] = ((batch_size, data_cfg.max_target_length), "int32")
    shapes["targets_mask"] = ((batch_size, data_cfg.max_target_length), "bool")
  return shapes
