"""Threefry random bits on CPU as straight-line code instead of JAX's rolled loop.

JAX lowers its threefry hash (every `jax.random` draw with the default key implementation: dropout masks,
span masks, negatives) for CPU as a `fori_loop` over its five 4-round blocks, to keep compile times short.
XLA:CPU runs that loop's body as several small kernels per iteration, for every random call site of the
step. Straight-line, with both programs timed alternately in one process on a 2-core CPU (2026-12-07):
tiny HuBERT (batch 8 × 2 s, dropout 0.1) 92.7 → 87.7 ms per step, wav2vec 2.0 Base 7.00 → 6.55 s, about
5–6 %, with no change in compile time seen (`benchmarks/RESULTS.md`, docs/performance.md). The GPU and TPU
lowerings are already straight-line.

`unroll()` registers JAX's own straight-line lowering for the CPU platform too. The hash, and so every
random bit, stays the same (`tests/train/test_cpu_threefry.py` compares the bits against a process that
keeps the rolled loop). The trainer applies it; `SPEECHJAX_ROLLED_THREEFRY=1` keeps JAX's default.
It changes programs lowered afterwards, not ones already compiled.
"""
from __future__ import annotations

import os


def unroll() -> bool:
  """Registers the straight-line threefry lowering for CPU; False where opted out or JAX lacks the hook."""
  if os.environ.get("SPEECHJAX_ROLLED_THREEFRY", "") not in ("", "0"):
    return False
  try:   # JAX internals: if a JAX version moves them, keep its default rather than fail
    from jax._src.interpreters import mlir
    from jax._src.random import threefry2x32
    primitive, rule = threefry2x32.threefry2x32_p, threefry2x32._threefry2x32_lowering_rule
  except (ImportError, AttributeError):
    return False
  mlir.register_lowering(primitive, rule, platform="cpu")
  return True
