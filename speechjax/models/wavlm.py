"""WavLM (Chen et al. 2022) in Flax: the encoder (= HF `WavLMModel`) and the pretraining model.

WavLM is HuBERT (same conv extractor, feature projection, positional conv, masked prediction of cluster
labels with the same heads) whose self-attention adds a gated relative position bias:
    bias[h, q, k] = rel_attn_embed[bucket(k − q), h]        once per forward pass, shared by all layers
    logits += gate(x)[b, h, q] · bias[h, q, k]              gate per layer from the attention input x
(`speechjax.nn.rel_pos_bias`; switched on in the shared transformer by `num_buckets > 0`). Utterance
mixing, WavLM's other change, is data augmentation: see `speechjax.tasks.pretrain_wavlm`.

Outputs: those of `speechjax.models.hubert` (the encoder's params live under `wavlm` in the pretraining
tree, as HF's `base_model_prefix`). Config fields: hubert.py's, plus `num_buckets` (320) and
`max_bucket_distance` (800, HF and the released checkpoints; the unilm class default is 1280).

Presets: `tiny` (CPU tests), `base` (960 h LibriSpeech), `base_plus` (94k h; the same network as `base`),
`large` (HuBERT Large's layout: layer-norm extractor, pre-LN, no dropout).
"""
from __future__ import annotations

import ml_collections

from speechjax.config import ConfigError, require
from speechjax.models import hubert, wav2vec2
from speechjax.models.family import Family, HFNames
from speechjax.nn import conv_encoder

_PRESETS = {"tiny": "tiny", "base": "base", "base_plus": "base", "large": "large"}   # → hubert preset


def model_config(preset: str = "base") -> ml_collections.ConfigDict:
  """`tiny`, `base`, `base_plus`, `large` (HuBERT's presets plus the relative position bias)."""
  if preset not in _PRESETS:
    raise ConfigError(f"wavlm model preset {preset!r}: expected one of {sorted(_PRESETS)}")
  cfg = hubert.model_config(_PRESETS[preset])
  cfg.model_type = "wavlm"
  cfg.num_buckets, cfg.max_bucket_distance = 320, 800
  return cfg


def validate(cfg) -> None:
  wav2vec2.validate(cfg)
  require(cfg.num_buckets >= 4, "model.num_buckets", cfg.num_buckets,
          "needs at least 4 (exact and log-spaced buckets in both directions)")
  require(cfg.max_bucket_distance > cfg.num_buckets // 4, "model.max_bucket_distance",
          cfg.max_bucket_distance, f"must exceed num_buckets // 4 = {cfg.num_buckets // 4}")
  require(cfg.feat_proj_layer_norm, "model.feat_proj_layer_norm", cfg.feat_proj_layer_norm,
          "WavLM always has the LayerNorm before the feature projection")


class WavLMModel(wav2vec2.Wav2Vec2Model):
  """The WavLM encoder: `Wav2Vec2Model` driven by a WavLM config (num_buckets > 0)."""


class WavLMForPreTraining(hubert.HubertForPreTraining):
  """WavLM encoder (scope `wavlm`) + HuBERT's final_proj / label_embs heads → outputs + `logits`."""
  _encoder = ("wavlm", WavLMModel)


def from_config(cfg, heads: bool = True):
  """`WavLMForPreTraining(num_classes=cfg.num_classes)` (or the bare `WavLMModel` with heads=False)."""
  validate(cfg)
  frozen = ml_collections.FrozenConfigDict(cfg)
  if not heads:
    return WavLMModel(frozen)
  num_classes = tuple(int(k) for k in cfg.num_classes)
  require(bool(num_classes) and min(num_classes) >= 1, "model.num_classes", cfg.num_classes,
          "needs one positive class count per label set")
  return WavLMForPreTraining(frozen, num_classes)


def forward_flops(cfg, num_samples: int) -> float:
  """Matmul FLOPs of one `WavLMForPreTraining` forward pass: HuBERT's + the gate's Linear(D/H → 8) per
  layer (the bias lookup and the gating are not matmuls)."""
  frames = conv_encoder.output_length(num_samples, wav2vec2.conv_layers(cfg))
  gates = cfg.num_hidden_layers * 2.0 * frames * cfg.hidden_size * 8
  return hubert.forward_flops(cfg, num_samples) + gates


FAMILY = Family("wavlm", model_config, from_config, forward_flops, encoder=WavLMModel,
                hf=HFNames("WavLMModel", "wavlm.", pretraining_heads=False), validate=validate,
                encoder_flops=wav2vec2.encoder_flops)
