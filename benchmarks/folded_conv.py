"""Lane folding (`model.lane_fold`) on SoundStream's 16 kHz codec, unfolded against folded, in one run:

    python benchmarks/folded_conv.py [--cpu-repeats 5] [--skip-tpu]

1. CPU: the codec's forward + backward on 2 × 1 s (median of --cpu-repeats, after one warm-up call).
2. TPU compiler (libtpu, no TPU): the encoder alone, forward + backward, bf16, 4 × 2 s on one v4 core:
   compile seconds, temporaries, bytes accessed and XLA's FLOPs. Prints one JSON line per measurement.
"""
import argparse
import json
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from speechjax.launch import compile as compile_lib
from speechjax.launch import plan
from speechjax.models import soundstream
from speechjax.train import allocator


def codec_config(lane_fold: int, dtype: str = "float32"):
  cfg = soundstream.model_config("16khz")
  cfg.lane_fold, cfg.dtype = lane_fold, dtype
  return cfg


def cpu_fwd_bwd_seconds(lane_fold: int, repeats: int) -> float:
  model = soundstream.from_config(codec_config(lane_fold))
  audio = jnp.asarray(np.random.default_rng(0).standard_normal((2, 16000)) * 0.3, jnp.float32)
  variables = soundstream.init_variables(model, jax.random.key(0), audio)
  args = (audio, jnp.ones(audio.shape, bool), jnp.array([12, 12], jnp.int32))

  def loss(params):
    out, _ = model.apply({**variables, "params": params}, *args, train=True, rngs={"vq": jax.random.key(1)},
                         mutable=["vq_stats"])
    return jnp.mean(jnp.square(out["audio"] - audio))

  step = jax.jit(jax.value_and_grad(loss))
  jax.block_until_ready(step(variables["params"]))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(step(variables["params"]))
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def tpu_encoder_compile(lane_fold: int) -> dict:
  device = compile_lib.tpu_devices(plan.parse_topology("v4-8"))[0]
  sharding = jax.sharding.SingleDeviceSharding(device)
  encoder = soundstream.Encoder(ml_collections.FrozenConfigDict(codec_config(lane_fold, "bfloat16")))
  audio = jax.ShapeDtypeStruct((4, 32000), jnp.float32, sharding=sharding)
  params = jax.eval_shape(lambda: encoder.init(jax.random.key(0), jnp.zeros((1, 32000))))
  params = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), params)

  def loss(p, a):
    return jnp.mean(jnp.square(encoder.apply(p, a).astype(jnp.float32)))

  start = time.perf_counter()
  compiled = jax.jit(jax.value_and_grad(loss)).lower(params, audio).compile()
  seconds = time.perf_counter() - start
  cost = compiled.cost_analysis()
  return {"compile_s": round(seconds, 1), "temporaries_mib": compiled.memory_analysis().temp_size_in_bytes / 2**20,
          "bytes_accessed_gb": cost["bytes accessed"] / 1e9, "xla_gflop": cost["flops"] / 1e9}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--cpu-repeats", type=int, default=5)
  parser.add_argument("--skip-tpu", action="store_true")
  args = parser.parse_args()
  allocator.reuse_freed_memory()
  for lane_fold in (0, 128):
    ms = 1e3 * cpu_fwd_bwd_seconds(lane_fold, args.cpu_repeats)
    print(json.dumps({"lane_fold": lane_fold, "cpu_codec_fwd_bwd_2x1s_ms": round(ms)}), flush=True)
  if not args.skip_tpu:
    for lane_fold in (0, 128):
      print(json.dumps({"lane_fold": lane_fold, "tpu_v4_encoder_fwd_bwd_4x2s": tpu_encoder_compile(lane_fold)}),
            flush=True)


if __name__ == "__main__":
  main()
