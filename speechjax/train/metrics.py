"""Metrics: `metrics.jsonl` + TensorBoard event files (process 0 only, through tf.io.gfile: local or
gs:// workdirs), throughput, MFU, memory."""
from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

# Dense bf16 peak FLOP/s per chip (vendor figures), used for MFU when train.peak_flops is 0.
PEAK_FLOPS = {"TPU v4": 275e12, "TPU v5 lite": 197e12, "TPU v5e": 197e12, "TPU v5p": 459e12,
              "TPU v6 lite": 918e12, "TPU v6e": 918e12, "NVIDIA H100": 989e12, "NVIDIA H200": 989e12,
              "NVIDIA A100": 312e12}


def peak_flops_per_device(configured: float = 0.0) -> float:
  """`configured` if > 0, else the table entry for this device kind, else a measured matmul rate."""
  if configured > 0:
    return configured
  kind = jax.devices()[0].device_kind
  for name, value in PEAK_FLOPS.items():
    if kind.startswith(name):
      return value
  return measure_matmul_flops()


def measure_matmul_flops(n: int = 1024, repeats: int = 10, dtype=jnp.float32) -> float:
  """Achieved FLOP/s of an n×n matmul on one device: the practical peak on CPUs."""
  x = jnp.ones((n, n), dtype)
  f = jax.jit(lambda a: a @ a)
  f(x).block_until_ready()
  start = time.perf_counter()
  for _ in range(repeats):
    y = f(x)
  y.block_until_ready()
  return 2.0 * n**3 * repeats / (time.perf_counter() - start)


def memory_in_use() -> int:
  """Bytes in use on device 0 (0 where the backend does not report it, e.g. CPU)."""
  stats = jax.local_devices()[0].memory_stats() or {}
  return int(stats.get("bytes_in_use", 0))


class Writer:
  """Appends scalars to `<workdir>/metrics.jsonl` and TensorBoard events; no-op off process 0."""

  def __init__(self, workdir: str):
    self.active = jax.process_index() == 0
    if not self.active:
      return
    import tensorflow as tf   # TensorBoard summaries; the trainer imports tf anyway for data
    self._tf = tf
    self._events = tf.summary.create_file_writer(workdir)
    self._jsonl = tf.io.gfile.GFile(os.path.join(workdir, "metrics.jsonl"), "a")   # gs:// too

  def write(self, step: int, scalars: dict, prefix: str = "train") -> None:
    if not self.active:
      return
    values = {f"{prefix}/{k}": float(np.asarray(v)) for k, v in scalars.items()}
    self._jsonl.write(json.dumps({"step": step, **values}) + "\n")
    self._jsonl.flush()
    with self._events.as_default(step=step):
      for k, v in values.items():
        self._tf.summary.scalar(k, v)
    self._events.flush()

  def close(self):
    if self.active:
      self._jsonl.close()
      self._events.close()


class Throughput:
  """Step timing → steps/s, audio-seconds/s and MFU over the last logging window."""

  def __init__(self, audio_seconds_per_step: float, flops_per_step: float, peak_flops_total: float):
    self.audio_seconds_per_step = audio_seconds_per_step
    self.flops_per_step = flops_per_step
    self.peak = peak_flops_total
    self.reset()

  def reset(self):
    self.start, self.steps = time.perf_counter(), 0

  def tick(self):
    self.steps += 1

  def report(self) -> dict:
    elapsed = max(time.perf_counter() - self.start, 1e-9)
    step_time = elapsed / max(self.steps, 1)
    out = {"step_time": step_time, "audio_seconds_per_s": self.audio_seconds_per_step / step_time,
           "mfu": self.flops_per_step / step_time / self.peak if self.peak else 0.0,
           "memory_bytes": memory_in_use()}
    self.reset()
    return out
