"""w2v-BERT (Chung et al. 2021) on the w2v-BERT 2.0 encoder (HF `Wav2Vec2BertModel`).

Encoder (`Wav2Vec2BertModel`, HF names; `speechjax.interop.hf` converts its weights):
    audio [B, T] → 80-bin fbank, per-utterance per-bin standardised, stacked by 2 → [B, F, 160] at 50 Hz
    (`speechjax.audio.w2v_bert_features`, = `SeamlessM4TFeatureExtractor`); or those features given
    → feature_projection (LayerNorm(160), Linear 160 → D, dropout) → time / channel masks
    → conformer stack: Shaw relative-key attention (distance clipped to [−64, +8]), causal depthwise conv
      with LayerNorm, no LayerNorm after the stack (`speechjax.nn.conformer`).
The call takes audio and its sample mask, or features [B, F, 160] and their frame mask (HF's
`input_features` and `attention_mask`); outputs as `Wav2Vec2Model` (`frame_mask`, `mask`, `features`:
the normed 160-d input of the projection, `last_hidden_state`, `hidden_states`), without a feature penalty.
HF's optional adapter and intermediate FFN (fine-tuned checkpoints) are not supported.

Pretraining (`W2vBertForPreTraining`, `speechjax.tasks.pretrain_w2v_bert`): the first
`contrastive_layers` layers are the contrastive module, the rest the MLM module.
    Gumbel quantizer on the (unmasked) normed features → codes [B, F, G], quantized vectors
    project_hid(output of layer contrastive_layers) and project_q(quantized) → wav2vec 2.0's contrastive
      loss (`projected_states`, `projected_quantized`)
    mlm_proj(last_hidden_state) → `mlm_logits` [B, F, G, V]: cross-entropy against the codes at masked frames
The paper quantizes the output of a conv subsampler; here the quantizer reads the stacked fbank that the
projection reads (w2v-BERT 2.0 has no conv front end).

Presets: `tiny` (CPU: D=64, 2 + 2 layers), `base` (D=768, 6 + 6 layers), `xl` (the paper's 0.6B and the
w2v-BERT 2.0 encoder: D=1024, 12 + 12 layers, 16 heads, FFN 4096, one codebook of 1024).
"""
from __future__ import annotations

import jax.numpy as jnp
import ml_collections
from flax import linen as nn

from speechjax.audio import w2v_bert_features
from speechjax.config import ConfigError, require
from speechjax.models import wav2vec2, wav2vec2_conformer
from speechjax.models.family import Family, HFNames
from speechjax.nn import conformer
from speechjax.nn.transformer import FeatureProjection, linear_inits

_BASE = dict(
    model_type="wav2vec2_bert", feature_projection_input_dim=w2v_bert_features.FEATURE_DIM, hidden_size=768,
    num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, hidden_act="swish",
    layer_norm_eps=1e-5, hidden_dropout=0.1, attention_dropout=0.1, activation_dropout=0.0,
    feat_proj_dropout=0.1, feat_quantizer_dropout=0.0, conformer_conv_dropout=0.1, layerdrop=0.0,
    position_embeddings_type="relative_key", left_max_position_embeddings=64, right_max_position_embeddings=8,
    rotary_embedding_base=10000.0, conv_depthwise_kernel_size=31, conv_norm="layer_norm",
    mask_prob=0.65, mask_length=10, min_masks=2, mask_no_overlap=False, mask_min_space=1,
    mask_channel_prob=0.0, mask_channel_length=10, mask_channel_min_masks=0,
    contrastive_layers=6, num_codevector_groups=1, num_codevectors_per_group=1024, codevector_dim=256,
    proj_codevector_dim=256, scan_layers=True, remat_policy="none", dtype="float32", attention_impl="xla")

_PRESETS = {
    "tiny": dict(hidden_size=64, num_hidden_layers=4, contrastive_layers=2, num_attention_heads=4,
                 intermediate_size=128, conv_depthwise_kernel_size=15, num_codevectors_per_group=64,
                 codevector_dim=32, proj_codevector_dim=32, scan_layers=False),
    "base": {},
    "xl": dict(hidden_size=1024, num_hidden_layers=24, contrastive_layers=12, num_attention_heads=16,
               intermediate_size=4096, codevector_dim=768, proj_codevector_dim=768),
}


def model_config(preset: str = "base") -> ml_collections.ConfigDict:
  """`tiny` (CPU tests), `base`, `xl` (see the module docstring)."""
  if preset not in _PRESETS:
    raise ConfigError(f"wav2vec2_bert model preset {preset!r}: expected one of {sorted(_PRESETS)}")
  return ml_collections.ConfigDict({**_BASE, **_PRESETS[preset]})


def validate(cfg) -> None:
  wav2vec2.validate_encoder(cfg)
  require(cfg.conv_norm in conformer.CONV_NORMS, "model.conv_norm", cfg.conv_norm,
          f"expected one of {conformer.CONV_NORMS}")
  require(cfg.position_embeddings_type in ("relative_key", "relative", "rotary"),
          "model.position_embeddings_type", cfg.position_embeddings_type,
          "expected 'relative_key', 'relative' or 'rotary'")
  require(0 < cfg.contrastive_layers < cfg.num_hidden_layers, "model.contrastive_layers",
          cfg.contrastive_layers, f"must leave MLM layers: 0 < it < num_hidden_layers={cfg.num_hidden_layers}")
  require(cfg.feature_projection_input_dim == w2v_bert_features.FEATURE_DIM,
          "model.feature_projection_input_dim", cfg.feature_projection_input_dim,
          f"the fbank front end gives {w2v_bert_features.FEATURE_DIM}")


class Wav2Vec2BertModel(wav2vec2.Wav2Vec2Model):
  """The w2v-BERT 2.0 encoder (module docstring): `inputs` audio [B, T] with its sample mask, or features
  [B, F, 160] with their frame mask."""

  @nn.compact
  def __call__(self, inputs, input_mask, *, train: bool = False, mask_time=None,
               output_hidden_states: bool = False):
    c, dtype = self.config, jnp.dtype(self.config.dtype)
    if inputs.ndim == 2:
      feats, frame_mask = w2v_bert_features.w2v_bert_features(inputs, input_mask.sum(-1).astype(jnp.int32))
    else:
      feats, frame_mask = inputs, input_mask.astype(bool)
    x, normed = FeatureProjection(c.hidden_size, True, c.feat_proj_dropout, c.layer_norm_eps, dtype,
                                  name="feature_projection")(feats.astype(dtype), train)
    out = self.mask_and_encode(x, frame_mask, mask_time, train, output_hidden_states)
    return {**out, "features": normed}

  def encoder_stack(self) -> nn.Module:
    config = wav2vec2_conformer.conformer_config(self.config, causal_conv=True, final_layer_norm=False)
    return conformer.ConformerEncoder(config, name="encoder")


class W2vBertForPreTraining(nn.Module):
  """Encoder + quantizer + project_q / project_hid (contrastive module) + mlm_proj (MLM module)."""
  config: ml_collections.FrozenConfigDict

  @nn.compact
  def __call__(self, inputs, input_mask, *, train: bool = False, mask_time=None,
               gumbel_temperature: float = 2.0, output_hidden_states: bool = False):
    del output_hidden_states   # always computed: the contrastive module's output is one of them
    c, dtype = self.config, jnp.dtype(self.config.dtype)
    out = Wav2Vec2BertModel(c, name="wav2vec2_bert")(inputs, input_mask, train=train, mask_time=mask_time,
                                                output_hidden_states=True)
    heads = wav2vec2.contrastive_heads(c, out["hidden_states"][c.contrastive_layers], out, gumbel_temperature,
                                       train)
    groups, vocab = c.num_codevector_groups, c.num_codevectors_per_group
    mlm = nn.Dense(groups * vocab, dtype=dtype, name="mlm_proj",
                   **linear_inits("embed", None, c.hidden_size))(out["last_hidden_state"])
    return {**out, **heads, "mlm_logits": mlm.reshape(*mlm.shape[:2], groups, vocab).astype(jnp.float32)}


def from_config(cfg, heads: bool = True) -> nn.Module:
  validate(cfg)
  frozen = ml_collections.FrozenConfigDict(cfg)
  return W2vBertForPreTraining(frozen) if heads else Wav2Vec2BertModel(frozen)


def encoder_flops(cfg, num_samples: int) -> tuple[float, int]:
  """(matmul FLOPs of the encoder over `num_samples` samples: projection and conformer layers, fbank
  front end excluded; frames F)."""
  frames = int(w2v_bert_features.num_stacked_frames(num_samples))
  projection = 2.0 * frames * cfg.feature_projection_input_dim * cfg.hidden_size
  return projection + cfg.num_hidden_layers * wav2vec2_conformer.layer_flops(cfg, frames), frames


def forward_flops(cfg, num_samples: int) -> float:
  """Matmul FLOPs of one `W2vBertForPreTraining` forward pass: encoder + quantizer, projections, MLM head."""
  flops, frames = encoder_flops(cfg, num_samples)
  d, p, cv = cfg.hidden_size, cfg.proj_codevector_dim, cfg.codevector_dim
  codes = cfg.num_codevector_groups * cfg.num_codevectors_per_group
  heads = (d * p + codes * cfg.feature_projection_input_dim + cfg.num_codevectors_per_group * cv + cv * p
           + d * codes)
  return flops + 2.0 * frames * heads


FAMILY = Family("wav2vec2_bert", model_config, from_config, forward_flops, encoder=Wav2Vec2BertModel,
                hf=HFNames("Wav2Vec2BertModel", "wav2vec2_bert.", pretraining_heads=False), validate=validate,
                encoder_flops=encoder_flops)
