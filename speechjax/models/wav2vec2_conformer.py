"""wav2vec 2.0 with conformer layers (fairseq `wav2vec2` with `layer_type: conformer`, HF
`Wav2Vec2ConformerModel` / `Wav2Vec2ConformerForPreTraining`).

The conv feature encoder, feature projection, masking, Gumbel quantizer and pretraining heads are wav2vec
2.0's (`speechjax.models.wav2vec2`, same outputs, same `pretrain_w2v2` task); the transformer stack is
replaced by a conformer stack (`speechjax.nn.conformer`) with a LayerNorm after it. Positions come from the
attention ("relative": Transformer-XL, or "rotary"): there is no positional conv (HF builds one and never
calls it; `speechjax.interop.hf` skips its weights).

Config fields: wav2vec2.py's (the positional-conv and `do_stable_layer_norm` fields are unused) plus
    position_embeddings_type   "relative" | "rotary"               [fairseq pos_enc_type rel_pos | rope]
    rotary_embedding_base      10000
    hidden_act                 "swish" (fairseq, the released checkpoints) | "gelu" (HF's config default)
    conv_depthwise_kernel_size 31 (odd)                             [depthwise_conv_kernel_size]
    conformer_conv_dropout     dropout after the conv module
    conv_norm                  "batch_norm" (HF / fairseq; frozen statistics, see speechjax.nn.conformer)
                               | "layer_norm" (per frame; speechjax's choice for pretraining from scratch)
Presets: `tiny` (CPU), `base` (fairseq wav2vec2_conformer_base_librispeech), `large`
(wav2vec2_conformer_large_librivox, HF wav2vec2-conformer-{rel-pos,rope}-large).
"""
from __future__ import annotations

import jax.numpy as jnp
import ml_collections
from flax import linen as nn

from speechjax.config import ConfigError, require
from speechjax.models import wav2vec2
from speechjax.models.family import Family, HFNames
from speechjax.nn import conformer
from speechjax.nn.transformer import ACTIVATIONS

_CONFORMER = dict(model_type="wav2vec2_conformer", position_embeddings_type="relative",
                  rotary_embedding_base=10000.0, hidden_act="swish", conv_depthwise_kernel_size=31,
                  conformer_conv_dropout=0.1,
                  conv_norm="batch_norm")
_PRESETS = {
    "tiny": ("tiny", dict(conv_depthwise_kernel_size=15, conv_norm="layer_norm")),
    "base": ("base", {}),
    "large": ("large", dict(conformer_conv_dropout=0.0)),
}


def model_config(preset: str = "base") -> ml_collections.ConfigDict:
  """`tiny` (CPU tests), `base`, `large` (wav2vec 2.0's presets with conformer layers)."""
  if preset not in _PRESETS:
    raise ConfigError(f"wav2vec2_conformer model preset {preset!r}: expected one of {sorted(_PRESETS)}")
  base, fields = _PRESETS[preset]
  cfg = wav2vec2.model_config(base)
  cfg.update({**_CONFORMER, **fields})
  return cfg


def validate(cfg) -> None:
  wav2vec2.validate(cfg)
  require(cfg.position_embeddings_type in ("relative", "rotary"), "model.position_embeddings_type",
          cfg.position_embeddings_type, "expected 'relative' or 'rotary'")
  require(cfg.conv_depthwise_kernel_size % 2 == 1, "model.conv_depthwise_kernel_size",
          cfg.conv_depthwise_kernel_size, "must be odd ('same' padding)")
  require(cfg.hidden_act in ACTIVATIONS, "model.hidden_act", cfg.hidden_act,
          f"expected one of {sorted(ACTIVATIONS)}")
  require(cfg.conv_norm in conformer.CONV_NORMS, "model.conv_norm", cfg.conv_norm,
          f"expected one of {conformer.CONV_NORMS}")


def conformer_config(cfg, position: str | None = None, causal_conv: bool = False,
                     final_layer_norm: bool = True) -> conformer.ConformerConfig:
  """The conformer stack's config from a model config (HF field names)."""
  return conformer.ConformerConfig(
      num_layers=cfg.num_hidden_layers, num_heads=cfg.num_attention_heads,
      intermediate_size=cfg.intermediate_size, position=position or cfg.position_embeddings_type,
      rotary_base=cfg.get("rotary_embedding_base", 10000.0),
      left_max_distance=cfg.get("left_max_position_embeddings", 64),
      right_max_distance=cfg.get("right_max_position_embeddings", 8),
      activation=cfg.hidden_act, conv_kernel=cfg.conv_depthwise_kernel_size, conv_norm=cfg.conv_norm,
      causal_conv=causal_conv,
      final_layer_norm=final_layer_norm, dropout=cfg.hidden_dropout, attention_dropout=cfg.attention_dropout,
      activation_dropout=cfg.activation_dropout, conv_dropout=cfg.conformer_conv_dropout,
      layerdrop=cfg.layerdrop, eps=cfg.layer_norm_eps, scan_layers=cfg.scan_layers,
      remat_policy=cfg.remat_policy, dtype=jnp.dtype(cfg.dtype),
      attention_impl=cfg.get("attention_impl", "xla"))


class Wav2Vec2ConformerModel(wav2vec2.Wav2Vec2Model):
  """`Wav2Vec2Model` with the conformer stack (same call and outputs)."""

  def encoder_stack(self) -> nn.Module:
    return conformer.ConformerEncoder(conformer_config(self.config), name="encoder")


class Wav2Vec2ConformerForPreTraining(wav2vec2.Wav2Vec2ForPreTraining):
  """Conformer encoder (scope `wav2vec2_conformer`, HF's prefix) + wav2vec 2.0's quantizer and heads."""
  _encoder = ("wav2vec2_conformer", Wav2Vec2ConformerModel)


def from_config(cfg, heads: bool = True) -> nn.Module:
  validate(cfg)
  frozen = ml_collections.FrozenConfigDict(cfg)
  return Wav2Vec2ConformerForPreTraining(frozen) if heads else Wav2Vec2ConformerModel(frozen)


def layer_flops(cfg, frames: int) -> float:
  """Matmul FLOPs of one conformer layer over `frames` frames: two FFNs, q/k/v/out, the F² attention
  matmuls (plus the position terms), the conv module's pointwise and depthwise convs."""
  d, f = cfg.hidden_size, float(frames)
  attention = 2 * f * 4 * d * d + 2 * 2 * f * f * d
  distances = cfg.get("left_max_position_embeddings", 0) + cfg.get("right_max_position_embeddings", 0) + 1
  position = {"relative": 2 * f * (2 * f) * d + 2 * (2 * f) * d * d, "rotary": 0.0,
              "relative_key": 2 * f * d * distances}[cfg.position_embeddings_type]
  ffn = 2 * (2 * f * 2 * d * cfg.intermediate_size)
  conv = 2 * f * 3 * d * d + 2 * f * d * cfg.conv_depthwise_kernel_size
  return attention + position + ffn + conv


def encoder_flops(cfg, num_samples: int) -> tuple[float, int]:
  """(matmul FLOPs of the encoder over `num_samples` samples: wav2vec 2.0's front end, conformer layers,
  no positional conv; frames F)."""
  front, frames = wav2vec2.front_flops(cfg, num_samples)
  return front + cfg.num_hidden_layers * layer_flops(cfg, frames), frames


def forward_flops(cfg, num_samples: int) -> float:
  """Matmul FLOPs of one `Wav2Vec2ConformerForPreTraining` forward pass: encoder + wav2vec 2.0's heads."""
  flops, frames = encoder_flops(cfg, num_samples)
  return flops + wav2vec2.head_flops(cfg, frames)


FAMILY = Family("wav2vec2_conformer", model_config, from_config, forward_flops, encoder=Wav2Vec2ConformerModel,
                hf=HFNames("Wav2Vec2ConformerModel", "wav2vec2_conformer.", pretraining_heads=True),
                validate=validate, encoder_flops=encoder_flops)
