"""Crop-mode training batches from a split held in host memory (`data.in_memory=True`).

The same batch contract and saveable position as `pipeline.Pipeline` in crop mode (random crops starting on
a label-frame boundary, padding and masks, too-short utterances dropped and counted), with ~20× less host
CPU per batch: on a 2-core machine the tf.data graph's per-example parse / crop / pad ops run on the cores
the XLA step uses (docs/performance.md, "The main job"). Made for small corpora and small models (the
HuBERT loop on the synthetic corpus); the audio is held as int16, 2 bytes per sample (2 h: 230 MB).

Determinism and resume: epoch e of a host is a full permutation of its utterances and one crop offset per
utterance, both drawn from numpy generators seeded by (seed, e, process_index); the position is (epoch,
batches consumed in that epoch), and a restored position continues exactly. The batches differ from the
tf.data pipeline's (a full shuffle here, a 1000-record buffer there).
"""
from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from speechjax.data import pipeline, records


class InMemoryPipeline:
  """Iterator of host-local numpy batches (see `pipeline` for the fields) with a saveable position."""

  def __init__(self, spec: pipeline.PipelineSpec):
    _check_spec(spec)
    self.spec = spec
    self.meta = records.read_meta(spec.data_dir)
    files, shard_records = pipeline.host_files(self.meta, spec)
    self.hops = pipeline.label_hops(self.meta, spec)
    self.crop_unit = pipeline.crop_unit(spec, self.hops)
    _check_fits_in_memory(self.meta.splits[spec.split].num_samples, spec)
    self._load(files, shard_records)
    self.epoch, self.batch_in_epoch = 0, 0
    self._order = self._starts = None

  def _load(self, files: list[str], shard_records: bool) -> None:
    """Reads this host's utterances (in shard order) into flat arrays with offsets."""
    spec = self.spec
    ds = tf.data.TFRecordDataset(files)
    if shard_records:
      ds = ds.shard(spec.process_count, spec.process_index)
    ds = ds.map(lambda r: records.parse_example(r, spec.labels, decode_audio=False),
                num_parallel_calls=tf.data.AUTOTUNE)
    audio, labels, host = [], {n: [] for n in self.hops}, {k: [] for k in pipeline.HOST_FIELDS}
    self.num_too_short = 0
    for ex in ds.as_numpy_iterator():
      samples = np.frombuffer(ex["audio"], "<i2")
      if len(samples) < max(spec.min_sample_size, 1):
        self.num_too_short += 1
        continue
      audio.append(samples)
      for n in self.hops:
        labels[n].append(ex[f"labels/{n}"].astype(np.int32))
      for k in host:
        host[k].append(ex[k])
    if not audio:
      raise ValueError(f"data.min_sample_size={spec.min_sample_size}: no utterance of {spec.data_dir} "
                       f"split {spec.split!r} is that long ({self.num_too_short} dropped)")
    self.lengths = np.array([len(a) for a in audio], np.int64)
    self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])
    self.audio = np.concatenate(audio)
    self.labels = {n: (np.concatenate(v), np.concatenate([[0], np.cumsum([len(x) for x in v])]))
                   for n, v in labels.items()}
    self.host = {k: np.array(v, dtype=object) for k, v in host.items()}
    self.batches_per_epoch = len(audio) // spec.batch_size
    if not self.batches_per_epoch:
      raise ValueError(f"data.batch_size={spec.batch_size}: more than the {len(audio)} utterances this host "
                       f"holds of {spec.data_dir} split {spec.split!r}")

  # --- position -----------------------------------------------------------------------------
  @property
  def position(self) -> dict:
    return {"epoch": self.epoch, "batch": self.batch_in_epoch}

  def restore(self, position: dict) -> None:
    self.epoch, self.batch_in_epoch = int(position["epoch"]), int(position["batch"])
    self._order = None

  # --- iteration ----------------------------------------------------------------------------
  def __iter__(self):
    return self

  def __next__(self) -> dict:
    if self.batch_in_epoch == self.batches_per_epoch:
      self.epoch, self.batch_in_epoch, self._order = self.epoch + 1, 0, None
    if self._order is None:
      self._order, self._starts = self._draw_epoch(self.epoch)
    rows = self._order[self.batch_in_epoch * self.spec.batch_size:][:self.spec.batch_size]
    self.batch_in_epoch += 1
    return self._batch(rows)

  def _draw_epoch(self, epoch: int):
    """(utterance order, crop start in samples per utterance) of `epoch`."""
    rng = np.random.default_rng([self.spec.seed, epoch, self.spec.process_index])
    order = rng.permutation(len(self.lengths))
    slack_units = np.maximum(self.lengths - self.spec.max_sample_size, 0) // self.crop_unit
    starts = (rng.random(len(self.lengths)) * (slack_units + 1)).astype(np.int64) * self.crop_unit
    return order, starts

  def _batch(self, rows: np.ndarray) -> dict:
    t, b = self.spec.max_sample_size, len(rows)
    audio = np.zeros((b, t), np.float32)
    audio_mask = np.zeros((b, t), bool)
    out = {k: v[rows] for k, v in self.host.items()}
    frames = {n: t // hop for n, hop in self.hops.items()}
    labels = {n: np.full((b, f), -1, np.int32) for n, f in frames.items()}
    for i, u in enumerate(rows):
      start = int(self._starts[u])
      n = min(t, int(self.lengths[u]) - start)
      first = self.offsets[u] + start
      audio[i, :n] = self.audio[first:first + n] / np.float32(32768.0)
      audio_mask[i, :n] = True
      for name, hop in self.hops.items():
        flat, offsets = self.labels[name]
        lab = flat[offsets[u]:offsets[u + 1]][start // hop:(start + n) // hop][:frames[name]]
        labels[name][i, :len(lab)] = lab
    out.update(audio=audio, audio_mask=audio_mask)
    for name in self.hops:
      out[f"labels/{name}"] = labels[name]
      out[f"labels_mask/{name}"] = labels[name] >= 0
    return out


def _check_spec(spec: pipeline.PipelineSpec) -> None:
  """ValueError naming the field of a setting only the tf.data pipeline has."""
  unsupported = {"data.bucket_boundaries": spec.bucket_boundaries, "data.targets": spec.targets,
                 "data.train_subset_seconds": spec.max_seconds, "data.eval_skip_seconds": spec.skip_seconds}
  for field, value in unsupported.items():
    if value:
      raise ValueError(f"data.in_memory=True: {field}={value!r} is not supported in memory (crop mode "
                       "only); set data.in_memory=False")
  if not (spec.repeat and spec.random_crop):
    raise ValueError("data.in_memory=True is for training pipelines (endless, random crops)")


def _check_fits_in_memory(num_samples: int, spec: pipeline.PipelineSpec) -> None:
  need = 2 * num_samples // spec.process_count
  have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  if need > have // 2:
    raise ValueError(f"data.in_memory=True: split {spec.split!r} of {spec.data_dir} needs "
                     f"{need / 2**30:.1f} GiB of int16 audio per host, more than half of this host's "
                     f"{have / 2**30:.1f} GiB; set data.in_memory=False")
