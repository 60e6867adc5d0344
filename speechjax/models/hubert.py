"""HuBERT (Hsu et al. 2021) in Flax: the encoder (= HF `HubertModel`) and the pretraining model.

The encoder is wav2vec 2.0's (`speechjax.models.wav2vec2.Wav2Vec2Model`: same conv extractor, positional
conv and transformer) with an optional LayerNorm before the feature projection (`feat_proj_layer_norm`,
HF) and no quantizer. `HubertForPreTraining` adds fairseq's prediction heads:
    final_proj   Dense D → final_dim × n_label_sets (untied: one chunk per label set)
    label_embs   [Σ K_i, final_dim], U(0, 1) init (fairseq `label_embs_concat`)
and returns the encoder outputs (see wav2vec2.py) plus
    logits       tuple with one [B, F, K_i] float32 array per label set:
                 cosine(final_proj chunk i, label_embs of set i) / logit_temp

Config fields: wav2vec2.py's encoder fields, plus `final_dim`, `logit_temp` (0.1) and `num_classes`
(classes per label set, e.g. (500,); the task may override it from its label sets).
"""
from __future__ import annotations

import jax.numpy as jnp
import ml_collections
from flax import linen as nn

from speechjax.config import ConfigError, require
from speechjax.models import wav2vec2
from speechjax.models.family import Family, HFNames
from speechjax.nn.partitioning import logical
from speechjax.nn.transformer import linear_inits

_HEADS = ("num_codevector_groups", "num_codevectors_per_group", "codevector_dim", "proj_codevector_dim",
          "feat_quantizer_dropout")

_PRESETS = {
    "tiny": dict(final_dim=32, num_classes=(32,), mask_prob=0.8),
    "base": dict(final_dim=256, num_classes=(500,), mask_prob=0.8),
    "large": dict(final_dim=768, num_classes=(500,), mask_prob=0.8, conv_bias=False),
    "xlarge": dict(final_dim=1024, num_classes=(500,), mask_prob=0.8, conv_bias=False,
                   hidden_size=1280, num_hidden_layers=48, intermediate_size=5120),
}


def model_config(preset: str = "base") -> ml_collections.ConfigDict:
  """`tiny` (CPU tests), `base`, `large`, `xlarge` (fairseq's HuBERT yamls: Large/X-Large use the
  layer-norm extractor without conv bias, pre-LN layers, no dropout, feature_grad_mult 1)."""
  if preset not in _PRESETS:
    raise ConfigError(f"hubert model preset {preset!r}: expected one of {sorted(_PRESETS)}")
  cfg = wav2vec2.model_config("large" if preset == "xlarge" else preset)
  for field in _HEADS:
    del cfg[field]
  cfg.model_type = "hubert"
  cfg.logit_temp = 0.1
  cfg.update(_PRESETS[preset])
  return cfg


class HubertModel(wav2vec2.Wav2Vec2Model):
  """The HuBERT encoder: `Wav2Vec2Model` driven by a HuBERT config (same call and outputs)."""


def cosine_logits(x, embeddings, temperature: float):
  """cosine(x [B, F, P], embeddings [K, P]) / temperature → [B, F, K] float32 (norms clamped at 1e-8
  like torch.cosine_similarity)."""
  x, embeddings = x.astype(jnp.float32), embeddings.astype(jnp.float32)
  x = x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-8)
  embeddings = embeddings / jnp.maximum(jnp.linalg.norm(embeddings, axis=-1, keepdims=True), 1e-8)
  return jnp.einsum("bfp,kp->bfk", x, embeddings) / temperature


class HubertForPreTraining(nn.Module):
  """Encoder + final_proj + label_embs → encoder outputs + `logits` (see the module docstring)."""
  config: ml_collections.FrozenConfigDict
  num_classes: tuple[int, ...]
  _encoder = ("hubert", HubertModel)   # (scope name, class) of the encoder; WavLM reuses these heads

  @nn.compact
  def __call__(self, audio, audio_mask, *, train: bool = False, mask_time=None,
               output_hidden_states: bool = False):
    c, dtype = self.config, jnp.dtype(self.config.dtype)
    name, encoder = self._encoder
    out = encoder(c, name=name)(audio, audio_mask, train=train, mask_time=mask_time,
                                output_hidden_states=output_hidden_states)
    sets = len(self.num_classes)
    proj = nn.Dense(c.final_dim * sets, dtype=dtype, name="final_proj",
                    **linear_inits("embed", None, c.hidden_size))(out["last_hidden_state"])
    embs = self.param("label_embs", logical(nn.initializers.uniform(1.0), "vocab", None),
                      (sum(self.num_classes), c.final_dim))
    bounds = [sum(self.num_classes[:i]) for i in range(sets + 1)]
    chunks = jnp.split(proj, sets, axis=-1)
    logits = tuple(cosine_logits(chunk, embs[lo:hi], c.logit_temp)
                   for chunk, lo, hi in zip(chunks, bounds[:-1], bounds[1:]))
    return {**out, "logits": logits}


def from_config(cfg, heads: bool = True) -> nn.Module:
  """`HubertForPreTraining(num_classes=cfg.num_classes)` (or the bare `HubertModel` with heads=False)."""
  wav2vec2.validate(cfg)
  frozen = ml_collections.FrozenConfigDict(cfg)
  if not heads:
    return HubertModel(frozen)
  num_classes = tuple(int(k) for k in cfg.num_classes)
  require(bool(num_classes) and min(num_classes) >= 1, "model.num_classes", cfg.num_classes,
          "needs one positive class count per label set")
  return HubertForPreTraining(frozen, num_classes)


def forward_flops(cfg, num_samples: int) -> float:
  """Matmul FLOPs of one `HubertForPreTraining` forward pass: encoder + final_proj + cosine logits."""
  flops, frames = wav2vec2.encoder_flops(cfg, num_samples)
  sets = len(cfg.num_classes)
  heads = cfg.hidden_size * cfg.final_dim * sets + cfg.final_dim * sum(cfg.num_classes)
  return flops + 2.0 * frames * heads


FAMILY = Family("hubert", model_config, from_config, forward_flops, encoder=HubertModel,
                hf=HFNames("HubertModel", "hubert.", pretraining_heads=False), validate=wav2vec2.validate,
                encoder_flops=wav2vec2.encoder_flops)
