"""Codebook interleaving patterns (MusicGen): RVQ codes `[B, T, Q]` ↔ a token sequence `[B, S, K]`.

A pattern lays the T·Q codes of an utterance out on S autoregressive steps of K slots each:

    flatten   S = T·Q, K = 1   step t·Q + q holds (t, q)             (AudioLM: time-major, level-minor)
    parallel  S = T,   K = Q   step t, slot q holds (t, q)           (all levels of a frame at once)
    delay     S = T+Q−1, K = Q step s, slot q holds (s − q, q)       (MusicGen default: level q lags q steps;
                                                                     slots outside the codes hold `fill`)

Each layout is a static index table (numpy, built at trace time), so both directions are single gathers
inside jit and `from_sequence(to_sequence(codes))` is exactly `codes`.
"""
from __future__ import annotations

import numpy as np
import jax.numpy as jnp

PATTERNS = ("flatten", "parallel", "delay")


def layout(pattern: str, frames: int, levels: int) -> np.ndarray:
  """int32 [S, K]: index t·Q + q of the code at each (step, slot), −1 where the slot is empty."""
  t, q = np.meshgrid(np.arange(frames), np.arange(levels), indexing="ij")   # [T, Q]
  flat = (t * levels + q).astype(np.int32)
  if pattern == "flatten":
    return flat.reshape(-1, 1)
  if pattern == "parallel":
    return flat
  if pattern == "delay":
    table = np.full([frames + levels - 1, levels], -1, np.int32)
    table[t + q, q] = flat
    return table
  raise ValueError(f"codebook pattern {pattern!r}: expected one of {PATTERNS}")


def _positions(pattern: str, frames: int, levels: int) -> np.ndarray:
  """int32 [T·Q]: position s·K + k of code t·Q + q in the flattened sequence (inverse of `layout`)."""
  table = layout(pattern, frames, levels).reshape(-1)
  inverse = np.empty(frames * levels, np.int32)
  filled = np.nonzero(table >= 0)[0]
  inverse[table[filled]] = filled
  return inverse


def num_steps(pattern: str, frames: int, levels: int) -> int:
  """S, the autoregressive steps of `frames` frames of `levels` codes."""
  return layout(pattern, frames, levels).shape[0]


def to_sequence(codes, pattern: str, fill: int = -1):
  """codes [B, T, Q] int → sequence [B, S, K]; empty slots (delay) hold `fill`."""
  codes = jnp.asarray(codes)
  b, t, q = codes.shape
  table = layout(pattern, t, q)
  gathered = jnp.take(codes.reshape(b, t * q), jnp.maximum(table, 0).reshape(-1), axis=1)
  gathered = gathered.reshape(b, *table.shape)
  return jnp.where(table >= 0, gathered, jnp.asarray(fill, codes.dtype))


def from_sequence(sequence, pattern: str, frames: int, levels: int):
  """sequence [B, S, K] (as from `to_sequence`) → codes [B, T, Q]; the empty slots are ignored."""
  b = sequence.shape[0]
  flat = sequence.reshape(b, -1)
  return jnp.take(flat, _positions(pattern, frames, levels), axis=1).reshape(b, frames, levels)


def valid(pattern: str, frames: int, levels: int) -> np.ndarray:
  """bool [S, K]: which slots hold a code."""
  return layout(pattern, frames, levels) >= 0
