"""Gated relative position bias of WavLM (unilm `WavLM.py`, HF `WavLMAttention`).

`RelativePositionBias`: a learned scalar per (bucket of the key − query offset, head), T5-style buckets in
both directions: `num_buckets // 2` per direction, offsets below `num_buckets // 4` get their own bucket,
larger ones log-spaced buckets up to `max_distance` (beyond: the last bucket); keys after the query use the
upper half. Computed once per forward pass and shared by every layer (HF keeps the table in layer 0).

`BiasGate`: per layer, head and query frame, a GRU-like gate from the attention input x (split into
heads, no projection): (a, b) = sigmoid(sums of 4 outputs each of Linear(D/H → 8)),
gate = a·(b·c_h − 1) + 2 with a learned per-head constant c_h (init 1). The attention adds gate · bias to
its logits.
"""
from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from speechjax.nn.partitioning import dense_inits, logical


def relative_position_buckets(query_length: int, key_length: int, num_buckets: int = 320,
                              max_distance: int = 800) -> np.ndarray:
  """Bucket of every (query, key) offset → [query_length, key_length] int32 (static, numpy).

  Float32 logs and truncation toward zero, as the PyTorch reference computes them."""
  offsets = np.arange(key_length)[None, :] - np.arange(query_length)[:, None]   # key − query
  half = num_buckets // 2
  exact = half // 2
  distance = np.abs(offsets)
  with np.errstate(divide="ignore"):   # log(0) for the offsets that use their exact bucket
    scaled = (np.log(distance.astype(np.float32) / np.float32(exact))
              / np.float32(math.log(max_distance / exact)) * np.float32(half - exact))
    far = (np.float32(exact) + np.where(distance < exact, np.float32(0), scaled)).astype(np.int64)
  far = np.minimum(far, half - 1)
  return ((offsets > 0) * half + np.where(distance < exact, distance, far)).astype(np.int32)


class RelativePositionBias(nn.Module):
  """Frames F → un-gated bias [H, F, F] float32. Parameter `embedding` [num_buckets, H] (HF
  `rel_attn_embed.weight`)."""
  num_heads: int
  num_buckets: int = 320
  max_distance: int = 800

  @nn.compact
  def __call__(self, num_frames: int):
    table = self.param("embedding", logical(nn.initializers.normal(0.02), None, "heads"),
                       (self.num_buckets, self.num_heads))
    buckets = relative_position_buckets(num_frames, num_frames, self.num_buckets, self.max_distance)
    return jnp.take(table.astype(jnp.float32), buckets, axis=0).transpose(2, 0, 1)


class BiasGate(nn.Module):
  """x [B, F, D] → gate [B, H, F, 1] float32 (see the module docstring). Parameters: `linear` (kernel
  [D/H, 8], HF `gru_rel_pos_linear`) and `const` [H] (HF `gru_rel_pos_const`)."""
  num_heads: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    b, f, d = x.shape
    heads = x.reshape(b, f, self.num_heads, d // self.num_heads)
    proj = nn.Dense(8, dtype=self.dtype, name="linear", **dense_inits("kv", None))(heads)
    a, g = jnp.split(nn.sigmoid(proj.astype(jnp.float32).reshape(b, f, self.num_heads, 2, 4).sum(-1)),
                     2, axis=-1)                                            # [B, F, H, 1] each
    const = self.param("const", logical(nn.initializers.ones, "heads"), (self.num_heads,))
    gate = a * (g * const[:, None] - 1.0) + 2.0
    return gate.transpose(0, 2, 1, 3)
