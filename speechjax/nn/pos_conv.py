"""Convolutional relative position embedding of wav2vec 2.0 / HuBERT (fairseq `pos_conv`, HF
`Wav2Vec2PositionalConvEmbedding`).

A grouped 1-D conv over time (kernel 128, 16 groups, D → D) with weight normalisation over the kernel axis
(torch `weight_norm(dim=2)`: one gain per kernel tap, the norm taken over both channel axes), "same"
padding, then GELU. The caller adds the result to its input as a residual. torch pads kernel // 2 on both
sides and drops the extra last frame of an even kernel ("SamePad"); padding one frame less on the right
gives the same frames without computing the dropped one.

The groups run as separate ungrouped convs: with `feature_group_count`, XLA's SPMD partitioner (jaxlib
0.10.2) returns twice the weight gradient when the batch is sharded over one mesh axis and replicated over
another (tests/nn/test_sharding.py checks).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import linen as nn

from speechjax.nn.partitioning import logical


def weight_norm(v, g):
  """`v` [K, C_in/G, C_out] scaled so that every kernel tap k has norm `g[k]` ([K])."""
  norm = jnp.sqrt(jnp.sum(jnp.square(v), axis=(1, 2), keepdims=True))
  return v * (g[:, None, None] / norm)


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
    x, width = x.astype(self.dtype), features // self.groups
    padding = [(self.kernel_size // 2, (self.kernel_size - 1) // 2)]
    y = jnp.concatenate([
        jax.lax.conv_general_dilated(x[..., i * width:(i + 1) * width],
                                     kernel[..., i * width:(i + 1) * width], window_strides=(1,),
                                     padding=padding, dimension_numbers=("NWC", "WIO", "NWC"))
        for i in range(self.groups)], axis=-1)
    return nn.gelu(y + bias.astype(self.dtype), approximate=False)
