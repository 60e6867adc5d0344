"""Convolutional relative position embedding of wav2vec 2.0 / HuBERT (fairseq `pos_conv`, HF
`Wav2Vec2PositionalConvEmbedding`).

A grouped 1-D conv over time (kernel 128, 16 groups, D → D) with weight normalisation over the kernel axis
(torch `weight_norm(dim=2)`: one gain per kernel tap, the norm taken over both channel axes), "same"
padding, then GELU. The caller adds the result to its input as a residual. torch pads kernel // 2 on both
sides and drops the extra last frame of an even kernel ("SamePad"); padding one frame less on the right
gives the same frames without computing the dropped one.

The grouped conv is computed as a scan over blocks of `TAPS_PER_STEP` kernel taps: each step multiplies
that many shifted copies of the input by their taps, group by group (one batched matmul, f32 accumulation),
and is rematerialised in the backward pass, so no shifted copy is kept. It is the same sum as XLA's grouped
conv (`feature_group_count`) in another order, and on a [4, 400, 768] input it compiles for TPU in 1.9 s
against 11 s and runs forward + backward on this CPU in 0.29 s against 1.95 s (docs/performance.md). Being
plain matmuls, it also partitions correctly: XLA's SPMD partitioner (jaxlib 0.10.2) returned the grouped
conv's weight gradient multiplied by the replica count when the batch was sharded over one mesh axis and
replicated over another (tests/nn/test_sharding.py compares sharded gradients with one device).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import linen as nn

from speechjax.nn.activations import gelu
from speechjax.nn.partitioning import logical


def weight_norm(v, g):
  """`v` [K, C_in/G, C_out] scaled so that every kernel tap k has norm `g[k]` ([K])."""
  norm = jnp.sqrt(jnp.sum(jnp.square(v), axis=(1, 2), keepdims=True))
  return v * (g[:, None, None] / norm)


TAPS_PER_STEP = 4   # fastest on this CPU of 1, 2, 4, 8, 16 at kernel 128 (docs/performance.md)
ONE_BLOCK_MAX_TAPS = 16   # kernels up to this size run as one block: tiny HuBERT's step (kernel 16)
                          # 0.0376 → 0.0349 s on this CPU against 4-tap steps


def grouped_conv(x, kernel, groups: int, taps_per_step: int | None = None):
  """"Same" grouped 1-D conv (cross-correlation, `kernel // 2` frames of left context): `x` [B, F, C_in],
  `kernel` [K, C_in/G, C_out] → [B, F, C_out] in `x.dtype`, accumulated in f32. `taps_per_step` defaults
  to all K taps in one block for K ≤ ONE_BLOCK_MAX_TAPS, else TAPS_PER_STEP."""
  b, f, c_in = x.shape
  k, c_group, c_out = kernel.shape
  if taps_per_step is None:
    taps_per_step = k if k <= ONE_BLOCK_MAX_TAPS else TAPS_PER_STEP
  steps = -(-k // taps_per_step)
  extra = steps * taps_per_step - k   # zero taps that complete the last block
  x = jnp.pad(x, ((0, 0), (k // 2, (k - 1) // 2 + extra), (0, 0)))
  x = x.reshape(b, -1, groups, c_group).transpose(2, 0, 1, 3)                    # [G, B, F + K', C/G]
  kernel = jnp.pad(kernel, ((0, extra), (0, 0), (0, 0)))
  kernel = kernel.reshape(steps, taps_per_step, c_group, groups, c_out // groups)
  kernel = kernel.transpose(0, 3, 1, 2, 4)                                        # [S, G, T, C/G, O/G]

  @jax.checkpoint
  def block(y, step):
    first = step * taps_per_step
    shifted = jnp.stack([jax.lax.dynamic_slice_in_dim(x, first + t, f, axis=2) for t in range(taps_per_step)],
                        axis=3)                                                   # [G, B, F, T, C/G]
    return y + jnp.einsum("gbftc,gtco->gbfo", shifted, kernel[step], preferred_element_type=jnp.float32), None

  y, _ = jax.lax.scan(block, jnp.zeros((groups, b, f, c_out // groups), jnp.float32), jnp.arange(steps))
  return y.transpose(1, 2, 0, 3).reshape(b, f, c_out).astype(x.dtype)


class PositionalConvEmbedding(nn.Module):
  """`x` [B, F, D] → position embedding [B, F, D] (not yet added to `x`).

  Parameters (HF names): `weight_v` [K, D/G, D] (flax conv layout), `weight_g` [K], `bias` [D].
  """
  kernel_size: int = 128
  groups: int = 16
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    features = x.shape[-1]
    if features % self.groups:
      raise ValueError(f"hidden size {features} is not divisible by num_conv_pos_embedding_groups="
                       f"{self.groups}")
    std = math.sqrt(4.0 / (self.kernel_size * features))   # fairseq / HF init
    v = self.param("weight_v", logical(nn.initializers.normal(std), None, "conv_in", "embed"),
                   (self.kernel_size, features // self.groups, features))
    # torch's weight_norm starts from g = |v|, so that the initial weight equals v.
    g = self.param("weight_g", logical(lambda _, shape: jnp.sqrt(jnp.sum(v * v, axis=(1, 2))), None),
                   (self.kernel_size,))
    bias = self.param("bias", logical(nn.initializers.zeros, "embed"), (features,))
    kernel = weight_norm(v, g).astype(self.dtype)
    y = grouped_conv(x.astype(self.dtype), kernel, self.groups)
    return gelu(y + bias.astype(self.dtype))
