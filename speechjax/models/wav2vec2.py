"""wav2vec 2.0 (Baevski et al. 2020) in Flax: the encoder (= HF `Wav2Vec2Model`) and the pretraining
model (= HF `Wav2Vec2ForPreTraining`: encoder + Gumbel quantizer + `project_q` + `project_hid`).

    cfg = model_config("base")
    model = from_config(cfg)                      # Wav2Vec2ForPreTraining
    out = model.apply({"params": params}, audio, audio_mask, train=True, gumbel_temperature=2.0,
                      rngs={"dropout": k1, "mask": k2, "gumbel": k3})

Outputs (all jnp arrays) of `Wav2Vec2Model`:
    frame_mask [B, F] bool        real frames (computed from real samples only)
    mask [B, F] bool              time mask applied: `mask_time` if given, else sampled (rng "mask") when
                                  train and mask_prob > 0, else all False; never True on padding
    features [B, F, C]            layer-normed conv features, unmasked (the quantizer input)
    feature_penalty f32 []        mean of squared conv features (before that LayerNorm) over real frames
    last_hidden_state [B, F, D]
    hidden_states                 tuple of L+1 [B, F, D] (HF convention), only if output_hidden_states
`Wav2Vec2ForPreTraining` adds:
    projected_states [B, F, P] f32     project_hid(last_hidden_state), P = proj_codevector_dim
    projected_quantized [B, F, P] f32  project_q(quantized unmasked features), for all frames
    codes [B, F, G] int32              chosen codeword per group
    prob_perplexity, code_perplexity   f32 scalars over masked real frames if any frame is masked, else
                                       over real frames

Config fields (HF `Wav2Vec2Config` names where HF has the knob; fairseq names in brackets):
    conv_layers          ((channels, kernel, stride), ...)  [conv_feature_layers; HF conv_dim/kernel/stride]
    extractor_mode       "group_norm" | "layer_norm"        [extractor_mode; HF feat_extract_norm group/layer]
    conv_bias, feature_grad_mult                              GradMultiply on the conv encoder's gradient
    hidden_size, num_hidden_layers, num_attention_heads, intermediate_size
    do_stable_layer_norm  pre-LN layers, LN after the stack  [layer_norm_first]
    num_conv_pos_embeddings, num_conv_pos_embedding_groups   [conv_pos, conv_pos_groups]
    layer_norm_eps
    hidden_dropout, attention_dropout, activation_dropout    [dropout, attention_dropout, activation_dropout]
    feat_proj_dropout     after the feature projection        [dropout_input]
    feat_quantizer_dropout on the quantizer input            [dropout_features]
    layerdrop             [encoder_layerdrop]
    feat_proj_layer_norm  LN before the projection (HuBERT may disable it)
    mask_prob, mask_length, min_masks, mask_no_overlap, mask_min_space          time masking
    mask_channel_prob, mask_channel_length, mask_channel_min_masks             channel masking (fine-tuning)
    num_codevector_groups, num_codevectors_per_group         [latent_groups, latent_vars]
    codevector_dim        concatenated codeword size         [latent_dim, or final_dim when 0]
    proj_codevector_dim   output size of project_q/project_hid [final_dim]
    scan_layers, remat_policy ("none" | "full" | "dots"), dtype (compute; params stay float32)
The waveform normalisation of Large (fairseq `task.normalize`) is a data option, not part of the model.
"""
from __future__ import annotations

import jax.numpy as jnp
import ml_collections
from flax import linen as nn

from speechjax.config import ConfigError, require
from speechjax.models.family import Family, HFNames
from speechjax.nn import attention, conv_encoder, masking
from speechjax.nn.grad import scale_gradient
from speechjax.nn.layer_stack import REMAT_POLICIES
from speechjax.nn.partitioning import logical
from speechjax.nn.quantizers import GumbelVectorQuantizer
from speechjax.nn.transformer import (SCAN_MIN_LAYERS, EncoderConfig, FeatureProjection, TransformerEncoder,
                                      linear_inits)

TINY_CONV = ((32, 10, 5), (32, 8, 4), (32, 4, 4), (32, 4, 4))   # stride 320, like the base stack

_BASE = dict(
    model_type="wav2vec2", conv_layers=conv_encoder.DEFAULT_LAYERS, extractor_mode="group_norm",
    conv_bias=False, feature_grad_mult=0.1, hidden_size=768, num_hidden_layers=12,
    num_attention_heads=12, intermediate_size=3072, do_stable_layer_norm=False,
    num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16, layer_norm_eps=1e-5,
    hidden_dropout=0.1, attention_dropout=0.1, activation_dropout=0.0, feat_proj_dropout=0.1,
    feat_quantizer_dropout=0.1, layerdrop=0.05, feat_proj_layer_norm=True,
    mask_prob=0.65, mask_length=10, min_masks=2, mask_no_overlap=False, mask_min_space=1,
    mask_channel_prob=0.0, mask_channel_length=10, mask_channel_min_masks=0,
    num_codevector_groups=2, num_codevectors_per_group=320, codevector_dim=256,
    proj_codevector_dim=256, scan_layers=False, remat_policy="none", dtype="float32",
    attention_impl="xla")   # "flash": the Pallas TPU kernel (no attention dropout), speechjax/nn/attention.py

_PRESETS = {
    "tiny": dict(conv_layers=TINY_CONV, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=128, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                 num_codevectors_per_group=16, codevector_dim=32, proj_codevector_dim=32),
    "base": {},
    "large": dict(extractor_mode="layer_norm", conv_bias=True, feature_grad_mult=1.0, hidden_size=1024,
                  num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                  do_stable_layer_norm=True, hidden_dropout=0.0, attention_dropout=0.0,
                  feat_proj_dropout=0.0, feat_quantizer_dropout=0.0, layerdrop=0.0, codevector_dim=768,
                  proj_codevector_dim=768),
}


def model_config(preset: str = "base") -> ml_collections.ConfigDict:
  """`tiny` (CPU tests), `base` (LS-960 Base), `large` (LV-60 Large)."""
  if preset not in _PRESETS:
    raise ConfigError(f"wav2vec2 model preset {preset!r}: expected one of {sorted(_PRESETS)}")
  cfg = ml_collections.ConfigDict({**_BASE, **_PRESETS[preset]})
  cfg.scan_layers = cfg.num_hidden_layers >= SCAN_MIN_LAYERS
  return cfg


def validate(cfg) -> None:
  """Raises ConfigError naming the field for settings the model cannot build."""
  require(cfg.extractor_mode in ("group_norm", "layer_norm"), "model.extractor_mode", cfg.extractor_mode,
          "expected 'group_norm' or 'layer_norm'")
  require(cfg.hidden_size % cfg.num_conv_pos_embedding_groups == 0, "model.num_conv_pos_embedding_groups",
          cfg.num_conv_pos_embedding_groups, f"must divide hidden_size={cfg.hidden_size}")
  validate_encoder(cfg)


def validate_encoder(cfg) -> None:
  """The checks shared with encoders without the conv front end (w2v-BERT)."""
  require(cfg.hidden_size % cfg.num_attention_heads == 0, "model.num_attention_heads",
          cfg.num_attention_heads, f"must divide hidden_size={cfg.hidden_size}")
  require(cfg.remat_policy == "none" or cfg.remat_policy in REMAT_POLICIES, "model.remat_policy",
          cfg.remat_policy, f"expected 'none' or one of {sorted(REMAT_POLICIES)}")
  require(cfg.dtype in ("float32", "bfloat16", "float16"), "model.dtype", cfg.dtype,
          "expected float32, bfloat16 or float16")
  require(cfg.mask_length >= 1, "model.mask_length", cfg.mask_length, "must be at least 1")
  impl = cfg.get("attention_impl", "xla")
  require(impl in attention.IMPLEMENTATIONS, "model.attention_impl", impl,
          f"expected one of {attention.IMPLEMENTATIONS}")
  require(impl == "xla" or cfg.attention_dropout == 0, "model.attention_impl", impl,
          f"the flash kernel has no attention dropout: needs model.attention_dropout=0 "
          f"(is {cfg.attention_dropout})")
  if "num_codevector_groups" in cfg:
    require(cfg.codevector_dim % cfg.num_codevector_groups == 0, "model.codevector_dim",
            cfg.codevector_dim, f"must be divisible by num_codevector_groups={cfg.num_codevector_groups}")


def encoder_config(cfg) -> EncoderConfig:
  """The transformer stack's config from a wav2vec 2.0 / HuBERT / WavLM model config (HF field names)."""
  return EncoderConfig(
      num_layers=cfg.num_hidden_layers, num_heads=cfg.num_attention_heads,
      intermediate_size=cfg.intermediate_size, stable=cfg.do_stable_layer_norm,
      pos_conv_kernel=cfg.num_conv_pos_embeddings, pos_conv_groups=cfg.num_conv_pos_embedding_groups,
      dropout=cfg.hidden_dropout, attention_dropout=cfg.attention_dropout,
      activation_dropout=cfg.activation_dropout, layerdrop=cfg.layerdrop, eps=cfg.layer_norm_eps,
      scan_layers=cfg.scan_layers, remat_policy=cfg.remat_policy, dtype=jnp.dtype(cfg.dtype),
      num_buckets=cfg.get("num_buckets", 0), max_distance=cfg.get("max_bucket_distance", 800),
      attention_impl=cfg.get("attention_impl", "xla"))   # checkpoints from before the field: "xla"


def conv_layers(cfg) -> tuple[tuple[int, int, int], ...]:
  return tuple(tuple(int(v) for v in layer) for layer in cfg.conv_layers)


def _feature_penalty(conv, frame_mask):
  """Mean of squared conv features [B, F, C] over real frames (fairseq `features_pen`), float32."""
  squares = jnp.square(conv.astype(jnp.float32)).mean(-1)
  return jnp.sum(squares * frame_mask) / jnp.maximum(frame_mask.sum(), 1)


def _check_inputs(audio, audio_mask, layers):
  if audio.ndim != 2 or audio_mask.shape != audio.shape:
    raise ValueError(f"audio {audio.shape} and audio_mask {audio_mask.shape} must both be [batch, time]")
  if conv_encoder.output_length(audio.shape[1], layers) < 1:
    raise ValueError(f"audio of {audio.shape[1]} samples is shorter than the conv receptive field")


class Wav2Vec2Model(nn.Module):
  """The wav2vec 2.0 encoder (also HuBERT's: see speechjax.models.hubert). See the module docstring."""
  config: ml_collections.FrozenConfigDict

  @nn.compact
  def __call__(self, audio, audio_mask, *, train: bool = False, mask_time=None,
               output_hidden_states: bool = False):
    c, dtype, layers = self.config, jnp.dtype(self.config.dtype), conv_layers(self.config)
    _check_inputs(audio, audio_mask, layers)
    conv = conv_encoder.ConvFeatureEncoder(layers, c.extractor_mode, c.conv_bias, dtype,
                                           name="feature_extractor")(audio)
    if c.feature_grad_mult != 1.0:
      conv = scale_gradient(conv, c.feature_grad_mult)
    frame_mask = conv_encoder.frame_mask(audio_mask.astype(bool), layers)
    x, features = FeatureProjection(c.hidden_size, c.feat_proj_layer_norm, c.feat_proj_dropout,
                                    c.layer_norm_eps, dtype, name="feature_projection")(conv, train)
    out = self.mask_and_encode(x, frame_mask, mask_time, train, output_hidden_states)
    return {**out, "features": features, "feature_penalty": _feature_penalty(conv, frame_mask)}

  def mask_and_encode(self, x, frame_mask, mask_time, train, output_hidden_states) -> dict:
    """Projected features x [B, F, D] → time mask (`masked_spec_embed`), channel mask (training), the
    encoder stack: {"frame_mask", "mask", "last_hidden_state"(, "hidden_states")}."""
    c = self.config
    mask = self._time_mask(frame_mask, mask_time, train)
    embed = self.param("masked_spec_embed", logical(nn.initializers.uniform(1.0), "embed"),
                       (c.hidden_size,))
    x = jnp.where(mask[..., None], embed.astype(x.dtype), x)
    if train and c.mask_channel_prob > 0:
      channels = masking.compute_channel_mask(self.make_rng("mask"), x.shape[0], x.shape[-1],
                                              c.mask_channel_prob, c.mask_channel_length,
                                              c.mask_channel_min_masks)
      x = jnp.where(channels[:, None, :], 0, x)
    last, hidden = self.encoder_stack()(x, frame_mask, train, output_hidden_states)
    out = {"frame_mask": frame_mask, "mask": mask, "last_hidden_state": last}
    if output_hidden_states:
      out["hidden_states"] = hidden
    return out

  def encoder_stack(self) -> nn.Module:
    """The layer stack over the projected features (a conformer in `speechjax.models.wav2vec2_conformer`)."""
    return TransformerEncoder(encoder_config(self.config), name="encoder")

  def _time_mask(self, frame_mask, mask_time, train):
    """The [B, F] bool time mask: given, sampled (train), or none; restricted to real frames."""
    c = self.config
    if mask_time is not None:
      if mask_time.shape != frame_mask.shape:
        raise ValueError(f"mask_time {mask_time.shape} must be [batch, frames] = {frame_mask.shape}")
      return mask_time.astype(bool) & frame_mask
    if train and c.mask_prob > 0:
      return masking.compute_mask(self.make_rng("mask"), frame_mask, c.mask_prob, c.mask_length,
                                  c.min_masks, c.mask_no_overlap, c.mask_min_space)
    return jnp.zeros_like(frame_mask)


class Wav2Vec2ForPreTraining(nn.Module):
  """Encoder + Gumbel quantizer + project_q + project_hid (see the module docstring)."""
  config: ml_collections.FrozenConfigDict
  _encoder = ("wav2vec2", Wav2Vec2Model)   # (scope name, class) of the encoder; the conformer swaps it

  @nn.compact
  def __call__(self, audio, audio_mask, *, train: bool = False, mask_time=None,
               gumbel_temperature: float = 2.0, output_hidden_states: bool = False):
    c = self.config
    name, encoder = self._encoder
    out = encoder(c, name=name)(audio, audio_mask, train=train, mask_time=mask_time,
                                output_hidden_states=output_hidden_states)
    return {**out, **contrastive_heads(c, out["last_hidden_state"], out, gumbel_temperature, train)}


def contrastive_heads(c, context, out, gumbel_temperature, train: bool) -> dict:
  """The contrastive heads, created in the calling module (call inside its compact method): project_hid of
  `context` [B, F, D], the Gumbel quantizer of `out["features"]` (over masked frames, else real ones) and
  project_q → projected_states, projected_quantized, codes, prob_perplexity, code_perplexity. Shared with
  w2v-BERT, whose context is an intermediate layer."""
  dtype = jnp.dtype(c.dtype)
  projected_states = nn.Dense(c.proj_codevector_dim, dtype=dtype, name="project_hid",
                              **linear_inits("embed", None, c.hidden_size))(context)
  features = nn.Dropout(c.feat_quantizer_dropout, deterministic=not train)(out["features"])
  selected = jnp.where(out["mask"].any(), out["mask"], out["frame_mask"])
  q = GumbelVectorQuantizer(c.num_codevector_groups, c.num_codevectors_per_group, c.codevector_dim,
                            dtype, name="quantizer")(features, selected, gumbel_temperature, train)
  projected_quantized = nn.Dense(c.proj_codevector_dim, dtype=dtype, name="project_q",
                                 **linear_inits(None, None, c.codevector_dim))(q["quantized"])
  return {"projected_states": projected_states.astype(jnp.float32),
          "projected_quantized": projected_quantized.astype(jnp.float32), "codes": q["codes"],
          "prob_perplexity": q["prob_perplexity"], "code_perplexity": q["code_perplexity"]}


def from_config(cfg, heads: bool = True) -> nn.Module:
  """`Wav2Vec2ForPreTraining` (or the bare `Wav2Vec2Model` with heads=False) from a model ConfigDict."""
  validate(cfg)
  frozen = ml_collections.FrozenConfigDict(cfg)
  return Wav2Vec2ForPreTraining(frozen) if heads else Wav2Vec2Model(frozen)


def front_flops(cfg, num_samples: int) -> tuple[float, int]:
  """(matmul FLOPs of the conv stack and the feature projection over `num_samples` samples, frames F)."""
  layers = conv_layers(cfg)
  frames = conv_encoder.output_length(num_samples, layers)
  projection = 2.0 * frames * layers[-1][0] * cfg.hidden_size
  return conv_encoder.forward_flops(num_samples, layers) + projection, frames


def encoder_flops(cfg, num_samples: int) -> tuple[float, int]:
  """(matmul FLOPs of one encoder forward pass over `num_samples` samples, number of frames F):
  conv stack, feature projection, positional conv, attention projections, the two F² attention
  matmuls, FFN. 2 FLOPs per multiply-add."""
  front, frames = front_flops(cfg, num_samples)
  d, f = cfg.hidden_size, float(frames)
  pos_conv = 2 * f * d * (d // cfg.num_conv_pos_embedding_groups) * cfg.num_conv_pos_embeddings
  per_layer = 2 * f * 4 * d * d + 2 * 2 * f * f * d + 2 * f * 2 * d * cfg.intermediate_size
  return front + pos_conv + cfg.num_hidden_layers * per_layer, frames


def head_flops(cfg, frames: int) -> float:
  """Matmul FLOPs of the pretraining heads over `frames` frames: project_hid + quantizer logits +
  codeword lookup (one-hot matmul) + project_q."""
  p, cv = cfg.proj_codevector_dim, cfg.codevector_dim
  logits = cfg.num_codevector_groups * cfg.num_codevectors_per_group * conv_layers(cfg)[-1][0]
  return 2.0 * frames * (cfg.hidden_size * p + logits + cfg.num_codevectors_per_group * cv + cv * p)


def forward_flops(cfg, num_samples: int) -> float:
  """Matmul FLOPs of one `Wav2Vec2ForPreTraining` forward pass: encoder + heads."""
  flops, frames = encoder_flops(cfg, num_samples)
  return flops + head_flops(cfg, frames)


FAMILY = Family("wav2vec2", model_config, from_config, forward_flops, encoder=Wav2Vec2Model,
                hf=HFNames("Wav2Vec2Model", "wav2vec2.", pretraining_heads=True), validate=validate,
                encoder_flops=encoder_flops)
