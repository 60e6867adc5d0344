"""Two lower bounds on the wav2vec 2.0 Base train step on this machine: its matmuls alone and its optimizer alone.

    python benchmarks/base_step_bounds.py [--batch 2 --seconds 4]

1. Every matmul of the 12 encoder layers (Q/K/V/O projections, the two FFN matmuls, the attention scores and
   context; forward, input gradient and weight gradient), each compiled alone at the step's shapes and
   timed: its rate against `metrics.measure_matmul_flops` (the "peak" of MFU) and the layers' total.
2. The optimizer update (the preset's AdamW with `skip_nonfinite`, with it off, and plain `optax.adamw`) on
   the Base parameters compiled alone, and the memory bandwidth it would need.
Together they say how much of the step could be matmul time at best, i.e. the highest MFU this CPU could
show with XLA:CPU's own matmuls (docs/performance.md).
"""
import argparse
import time

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn
from jax import lax

import train_throughput  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
import w2v2_vs_hf_flax
from speechjax.nn import conv_encoder
from speechjax.tasks import get_task
from speechjax.train import allocator, metrics, optim

MM = (((1,), (0,)), ((), ()))   # [m, k] · [k, n]: forward
NT = (((1,), (1,)), ((), ()))   # [m, k] · [n, k]: input gradient dY · Wᵀ
TN = (((0,), (0,)), ((), ()))   # [k, m] · [k, n]: weight gradient Xᵀ · dY


def best_seconds(fn, *args, repeats: int = 20, rounds: int = 5) -> float:
  jax.block_until_ready(fn(*args))
  best = float("inf")
  for _ in range(rounds):
    start = time.perf_counter()
    for _ in range(repeats):
      out = fn(*args)
    jax.block_until_ready(out)
    best = min(best, (time.perf_counter() - start) / repeats)
  return best


def matmul_bound(batch: int, seconds: float, peak: float, layers: int = 12) -> float:
  frames = conv_encoder.output_length(int(seconds * 16000))   # 199 per 4 s
  rows, d, ff, heads, head_dim = batch * frames, 768, 3072, 12, 64
  bh = batch * heads
  shapes = {   # name: (lhs, rhs, dimension numbers, matmuls per layer)
      "projection fwd": ((rows, d), (d, d), MM, 4), "projection dx": ((rows, d), (d, d), NT, 4),
      "projection dw": ((rows, d), (rows, d), TN, 4),
      "FFN in fwd": ((rows, d), (d, ff), MM, 1), "FFN in dx": ((rows, ff), (d, ff), NT, 1),
      "FFN in dw": ((rows, d), (rows, ff), TN, 1),
      "FFN out fwd": ((rows, ff), (ff, d), MM, 1), "FFN out dx": ((rows, d), (ff, d), NT, 1),
      "FFN out dw": ((rows, ff), (rows, d), TN, 1),
      "scores fwd": ((bh, frames, head_dim), (bh, frames, head_dim), (((2,), (2,)), ((0,), (0,))), 1),
      "context fwd, and 4 backward matmuls": ((bh, frames, frames), (bh, frames, head_dim),
                                              (((2,), (1,)), ((0,), (0,))), 5),
  }
  total_flops = total_seconds = 0.0
  for name, (lhs, rhs, dims, count) in shapes.items():
    a, b = jnp.ones(lhs), jnp.ones(rhs)
    fn = jax.jit(lambda a, b, dims=dims: lax.dot_general(a, b, dims))
    out_size = jax.eval_shape(fn, a, b).size
    flops = 2.0 * out_size * lhs[dims[0][0][0]]
    seconds_each = best_seconds(fn, a, b)
    total_flops += layers * count * flops
    total_seconds += layers * count * seconds_each
    print(f"  {name:38s} {flops / seconds_each / 1e9:6.1f} GFLOP/s ({flops / seconds_each / peak:4.0%} of peak)"
          f"  ×{layers * count}: {layers * count * seconds_each * 1e3:6.1f} ms")
  print(f"  encoder-layer matmuls: {total_flops / 1e9:.1f} GFLOP in {total_seconds:.3f} s "
        f"({total_flops / total_seconds / peak:.0%} of peak)")
  return total_seconds


def optimizer_bound(batch: int, seconds: float) -> None:
  cfg = train_throughput.load_config("configs/wav2vec2.py:base", list(w2v2_vs_hf_flax.PEER_STYLE), batch,
                                     seconds)
  task = get_task(cfg)
  example = train_throughput.random_batch(cfg, batch, {})
  params = jax.tree.map(lambda p: jnp.zeros(p.shape, p.dtype),
                        nn.unbox(task.abstract_variables(example)["params"]))
  grads = jax.tree.map(lambda p: jnp.full_like(p, 1e-3), params)
  count = sum(p.size for p in jax.tree.leaves(params))
  no_skip = cfg.optim.copy_and_resolve_references()
  no_skip.skip_nonfinite = False
  variants = {"preset (AdamW + skip_nonfinite)": optim.make_optimizer(cfg.optim, 1000)[0],
              "skip_nonfinite off": optim.make_optimizer(no_skip, 1000)[0],
              "plain optax.adamw": optax.adamw(1e-4, b1=0.9, b2=0.98, eps=1e-6, weight_decay=0.01)}
  for name, tx in variants.items():
    @jax.jit
    def update(params, opt_state, tx=tx):
      updates, opt_state = tx.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), opt_state
    seconds_each = best_seconds(update, params, tx.init(params), repeats=5, rounds=3)
    # read params, grads, two moments; write params and the moments: 7 float32 arrays of every param
    print(f"  {name:32s} {seconds_each * 1e3:6.0f} ms ({7 * 4 * count / seconds_each / 1e9:.1f} GB/s of "
          f"the 7 × {count / 1e6:.1f}M floats an update must move)")


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=2)
  parser.add_argument("--seconds", type=float, default=4.0)
  args = parser.parse_args()
  allocator.reuse_freed_memory()   # as every `speechjax` command does
  peak = metrics.measure_matmul_flops()
  print(f"matmul peak (measure_matmul_flops): {peak / 1e9:.1f} GFLOP/s")
  print(f"wav2vec 2.0 Base encoder-layer matmuls, batch {args.batch} × {args.seconds:g} s, each compiled alone:")
  matmul_bound(args.batch, args.seconds, peak)
  print("optimizer update on the Base parameters, compiled alone:")
  optimizer_bound(args.batch, args.seconds)


if __name__ == "__main__":
  main()
