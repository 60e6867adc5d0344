"""Training-step throughput: audio-seconds/s and MFU of each config given.

    python benchmarks/train_throughput.py --config configs/frame_classifier.py:tiny [--config ...] \
        [--model wav2vec ...] [--batch 8] [--seconds 4] [--steps 10]

The peak FLOP/s is measured on the spot by a float32 matmul (the practical peak on a CPU; on TPU/GPU use the
chip table of speechjax.train.metrics instead). MFU uses two FLOP counts: the task's analytic model FLOPs
(`flops_per_example`, fwd + bwd) and the matmul + conv FLOPs of the step as traced (`traced_gflop_per_step`:
the jaxpr's dots and convs, scan bodies times their length; rematerialised work included).
Batches are random audio of the configured static shape; no input pipeline is involved, unless
`--pipeline-beside SECONDS`: then the config's tf.data training pipeline pulls one batch per SECONDS on a
thread beside the timed steps (what the trainer's input costs the step on a machine with few cores).
"""
import argparse
import json
import threading
import time

import jax
import numpy as np
from flax import linen as nn

from speechjax import config as config_lib
from speechjax.data import pipeline
from speechjax.launch import hlo_stats
from speechjax.parallel import mesh as mesh_lib
from speechjax.tasks import get_task
from speechjax.train import allocator, checkpoint, cpu_threefry, metrics


# --model NAME: shorthand for `--config` of a model family's preset (CPU-sized unless named otherwise)
MODELS = {
    "wav2vec": "configs/wav2vec.py:tiny",
    "vq-wav2vec": "configs/vq_wav2vec.py:tiny",
    "vq-wav2vec-kmeans": "configs/vq_wav2vec.py:tiny_kmeans",
}


def random_batch(cfg, batch_size: int, label_frames: dict) -> dict:
  rng = np.random.default_rng(0)
  t = cfg.data.max_sample_size
  batch = checkpoint.example_batch(cfg, batch_size)
  batch["audio"] = (0.1 * rng.standard_normal((batch_size, t))).astype(np.float32)
  for name, frames in label_frames.items():
    batch[f"labels/{name}"] = rng.integers(0, 8, (batch_size, frames)).astype(np.int32)
    batch[f"labels_mask/{name}"] = np.ones((batch_size, frames), bool)
  return batch


def load_config(spec: str, overrides: list[str], batch_size: int, seconds: float):
  return config_lib.load(spec, overrides + [f"--config.data.batch_size={batch_size}",
                                            f"--config.data.max_sample_size={int(seconds * 16000)}",
                                            "--config.optim.warmup_steps=1", "--config.train.num_steps=100"])


def build_step(spec: str, overrides: list[str], batch_size: int, seconds: float):
  """The trainer's train step of `spec` compiled for one random batch: (compiled, state, batch, task, FLOPs).

  FLOPs: matmul + conv FLOPs of the step's jaxpr with scan bodies multiplied by their length (XLA's
  `cost_analysis()` counts a loop body once, so it undercounts scanned layers)."""
  cpu_threefry.unroll()   # as the trainer does
  cfg = load_config(spec, overrides, batch_size, seconds)
  task = get_task(cfg)
  mesh = mesh_lib.make_mesh(cfg.mesh)
  rules = mesh_lib.rules(cfg.mesh)
  frames = {name: cfg.data.max_sample_size // 320 for name in cfg.data.labels}
  batch = random_batch(cfg, batch_size, frames)
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    abstract = jax.eval_shape(task.init_state, jax.random.PRNGKey(0), batch)
    shardings = task.state_shardings(abstract, mesh, rules, batch)
    state = jax.jit(task.init_state, out_shardings=shardings)(jax.random.PRNGKey(0), batch)
    step = jax.jit(task.train_step, in_shardings=(shardings, mesh_lib.batch_sharding(mesh)),
                   out_shardings=(shardings, mesh_lib.replicated(mesh)), donate_argnums=0)
    global_batch = mesh_lib.host_to_global(batch, mesh)
    traced = step.trace(state, global_batch)
    flops = hlo_stats.count_flops(traced.jaxpr.jaxpr)
    compiled = traced.lower().compile()
  return compiled, state, global_batch, task, flops


def time_steps(compiled, state, batch, steps: int):
  """Mean seconds per step after one warm-up step; returns (seconds, state)."""
  state, out = compiled(state, batch)
  jax.block_until_ready(out)
  start = time.perf_counter()
  for _ in range(steps):
    state, out = compiled(state, batch)
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / steps, state


def _pull_batches(cfg, interval: float, stop: threading.Event):
  batches = iter(pipeline.from_config(cfg.data, train=True))
  while not stop.wait(interval):
    next(batches)


def measure(spec: str, overrides: list[str], batch_size: int, seconds: float, steps: int, peak: float,
            pipeline_beside: float = 0.0):
  compiled, state, batch, task, traced_flops = build_step(spec, overrides, batch_size, seconds)
  stop = threading.Event()
  if pipeline_beside:
    cfg = load_config(spec, overrides, batch_size, seconds)
    threading.Thread(target=_pull_batches, args=(cfg, pipeline_beside, stop), daemon=True).start()
  step_time, _ = time_steps(compiled, state, batch, steps)
  stop.set()
  model_flops = batch_size * task.flops_per_example()
  total_peak = peak * jax.device_count()
  return {"config": spec, "batch": batch_size, "seconds": seconds, "step_time_s": round(step_time, 4),
          "audio_seconds_per_s": round(batch_size * seconds / step_time, 2),
          "model_gflop_per_step": round(model_flops / 1e9, 3), "traced_gflop_per_step": round(traced_flops / 1e9, 3),
          "mfu_model": round(model_flops / step_time / total_peak, 4),
          "mfu_traced": round(traced_flops / step_time / total_peak, 4),
          "peak_gflops_per_device": round(peak / 1e9, 1), "devices": jax.device_count(),
          "device": jax.devices()[0].device_kind}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--config", action="append", default=[])
  parser.add_argument("--model", action="append", default=[], choices=sorted(MODELS))
  parser.add_argument("--override", action="append", default=[], help="--config.a.b=v for every config")
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--seconds", type=float, default=4.0)
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--pipeline-beside", type=float, default=0.0, metavar="SECONDS",
                      help="run the config's tf.data pipeline beside the steps, one batch per SECONDS")
  args = parser.parse_args()
  allocator.reuse_freed_memory()   # as every `speechjax` command does
  specs = args.config + [MODELS[name] for name in args.model]
  if not specs:
    parser.error("give at least one --config or --model")
  peak = metrics.measure_matmul_flops(2048, repeats=5)
  for spec in specs:
    print(json.dumps(measure(spec, args.override, args.batch, args.seconds, args.steps, peak,
                             args.pipeline_beside)))


if __name__ == "__main__":
  main()
