"""Supervised frame classifier: conv feature encoder → MLP → per-frame logits.

A small baseline (phone classification from the synthetic corpus's alignments) and the stand-in model that
exercises the trainer end to end. `model.apply(variables, audio, audio_mask)` →
    {"logits": [B, F, num_classes] float32, "frame_mask": [B, F] bool}
"""
from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import ml_collections
from flax import linen as nn

from speechjax.nn import conv_encoder
from speechjax.nn.partitioning import dense_inits, norm_inits


class FrameClassifier(nn.Module):
  num_classes: int
  conv_layers: Sequence[tuple[int, int, int]] = conv_encoder.DEFAULT_LAYERS
  embed_dim: int = 256
  mlp_dim: int = 1024
  extractor_mode: str = "group_norm"
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, audio, audio_mask, train: bool = False):
    x = conv_encoder.ConvFeatureEncoder(self.conv_layers, self.extractor_mode, dtype=self.dtype,
                                        name="feature_encoder")(audio)
    x = nn.LayerNorm(dtype=self.dtype, name="feature_norm", **norm_inits("conv_out"))(x)
    x = nn.Dense(self.embed_dim, dtype=self.dtype, name="proj", **dense_inits("conv_out", "embed"))(x)
    x = nn.with_logical_constraint(x, ("batch", "length", "embed"))
    h = nn.gelu(nn.Dense(self.mlp_dim, dtype=self.dtype, name="mlp_in",
                         **dense_inits("embed", "mlp"))(x), approximate=False)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head", **dense_inits("mlp", "vocab"))(h)
    return {"logits": logits.astype(jnp.float32),
            "frame_mask": conv_encoder.frame_mask(audio_mask, self.conv_layers)}


def from_config(cfg: ml_collections.ConfigDict) -> FrameClassifier:
  return FrameClassifier(num_classes=cfg.num_classes, conv_layers=tuple(map(tuple, cfg.conv_layers)),
                         embed_dim=cfg.embed_dim, mlp_dim=cfg.mlp_dim,
                         extractor_mode=cfg.extractor_mode, dtype=jnp.dtype(cfg.dtype))


def forward_flops(cfg: ml_collections.ConfigDict, num_samples: int) -> float:
  layers = tuple(map(tuple, cfg.conv_layers))
  frames = conv_encoder.output_length(num_samples, layers)
  dense = layers[-1][0] * cfg.embed_dim + cfg.embed_dim * cfg.mlp_dim + cfg.mlp_dim * cfg.num_classes
  return conv_encoder.forward_flops(num_samples, layers) + 2.0 * frames * dense
