"""wav2vec (Schneider et al. 2019) in Flax: fairseq `Wav2VecModel` with the convolutional ("cnn") context
network, K step-specific projections, and no quantizer (see speechjax.models.vq_wav2vec for that).

    cfg = model_config("base")
    model = from_config(cfg)
    out = model.apply({"params": params}, audio, audio_mask)

Network (every part causal):
    encoder   conv stack on the waveform (VALID convs, no bias), each conv → CausalGroupNorm → ReLU, then
              log(|z| + 1) if `log_compression`. Frame t depends on samples [t·stride, t·stride + receptive
              field) only.
    context   conv layers (channels, kernel) with stride 1, left-padded by kernel − 1 with copies of the
              first frame (fairseq's replication pad), each conv → CausalGroupNorm → ReLU; with
              `skip_connections` x ← (block(x) + residual) · sqrt(residual_scale), the residual through a
              1×1 projection when the width changes. c_t depends on z_{≤t} only.
    steps     K step-specific affine maps of c_t (fairseq's ConvTranspose2d(D, C, (1, K)) is exactly this):
              prediction k (k = 1..K) of row t targets frame t + offset + k − 1.
`offset` = `prediction_offset`, "auto" = ceil(receptive field / stride) (fairseq's "auto"; 3 for the paper's
encoder): the first target frame then starts after the last sample that c_t has seen.

Deviation from fairseq, on purpose: fairseq's GroupNorm(1 group) pools its statistics over the whole
utterance, which makes the network non-causal and padding-dependent. CausalGroupNorm pools over the frames
up to t instead. (A per-frame norm would also be causal, but it erases the energy contour: a tiny model then
collapses its features to the class prior of the binary loss.) No dropout.

Outputs (jnp arrays):
    frame_mask [B, F] bool          real frames (computed from real samples only)
    features [B, F, C]              encoder output z
    targets [B, F, C]               what the predictions are scored against (= features here)
    context [B, F, D]               context network output c
    predictions [B, F, K, C] f32    step-specific projections of c

Config fields (fairseq names in brackets):
    conv_layers          ((channels, kernel, stride), ...)   [conv_feature_layers]
    log_compression      [log_compression]
    context_layers       ((channels, kernel), ...)           [conv_aggregator_layers; stride is always 1]
    skip_connections, residual_scale                         [skip_connections_agg, residual_scale]
    prediction_steps     K                                   [prediction_steps]
    prediction_offset    "auto" or a frame count             [offset]
    dtype                compute dtype; params stay float32
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
from flax import linen as nn

from speechjax.config import ConfigError, require
from speechjax.models.family import Family
from speechjax.nn import conv_encoder
from speechjax.nn.partitioning import gathered_conv, logical
from speechjax.nn.transformer import HeadDense

PAPER_CONV = ((512, 10, 5), (512, 8, 4), (512, 4, 2), (512, 4, 2), (512, 4, 2))   # stride 160 (10 ms)
TINY_CONV = tuple((32, k, s) for _, k, s in PAPER_CONV)

_BASE = dict(model_type="wav2vec", conv_layers=PAPER_CONV, log_compression=True,
             context_layers=((512, 3),) * 9, skip_connections=True, residual_scale=0.5,
             prediction_steps=12, prediction_offset="auto", dtype="float32")

_PRESETS = {
    "tiny": dict(conv_layers=TINY_CONV, context_layers=((64, 3),) * 3, prediction_steps=4),
    "base": {},                                                   # the paper's model (9 × k=3, ≈210 ms)
    "large": dict(conv_layers=PAPER_CONV + ((512, 1, 1),) * 2,    # README "wav2vec large" command
                  context_layers=tuple((512, k) for k in range(2, 14))),
}


def model_config(preset: str = "base") -> ml_collections.ConfigDict:
  """`tiny` (CPU tests), `base` (the paper's wav2vec), `large` (the README's wav2vec large)."""
  if preset not in _PRESETS:
    raise ConfigError(f"wav2vec model preset {preset!r}: expected one of {sorted(_PRESETS)}")
  return ml_collections.ConfigDict({**_BASE, **_PRESETS[preset]})


def conv_layers(cfg) -> tuple[tuple[int, int, int], ...]:
  return tuple(tuple(int(v) for v in layer) for layer in cfg.conv_layers)


def context_layers(cfg) -> tuple[tuple[int, int], ...]:
  return tuple(tuple(int(v) for v in layer) for layer in cfg.context_layers)


def receptive_field(layers) -> tuple[int, int]:
  """(receptive field, stride) in samples of a conv stack ((channels, kernel, stride), ...)."""
  field, jump = 1, 1
  for _, kernel, stride in layers:
    field, jump = field + (kernel - 1) * jump, jump * stride
  return field, jump


def prediction_offset(cfg) -> int:
  """Frames between c_t and the target of its first prediction step (see the module docstring)."""
  if cfg.prediction_offset == "auto":
    field, stride = receptive_field(conv_layers(cfg))
    return math.ceil(field / stride)
  return int(cfg.prediction_offset)


def validate(cfg) -> None:
  """Raises ConfigError naming the field for settings the model cannot build."""
  require(len(cfg.conv_layers) > 0 and all(len(l) == 3 for l in cfg.conv_layers), "model.conv_layers",
          cfg.conv_layers, "expected a non-empty tuple of (channels, kernel, stride)")
  require(len(cfg.context_layers) > 0 and all(len(l) == 2 and l[1] >= 1 for l in cfg.context_layers),
          "model.context_layers", cfg.context_layers, "expected a non-empty tuple of (channels, kernel ≥ 1)")
  require(cfg.prediction_steps >= 1, "model.prediction_steps", cfg.prediction_steps, "must be at least 1")
  offset = str(cfg.prediction_offset)
  require(offset == "auto" or offset.isdigit(), "model.prediction_offset", cfg.prediction_offset,
          "expected 'auto' or a non-negative number of frames")
  require(0 < cfg.residual_scale <= 1, "model.residual_scale", cfg.residual_scale, "must be in (0, 1]")
  require(cfg.dtype in ("float32", "bfloat16", "float16"), "model.dtype", cfg.dtype,
          "expected float32, bfloat16 or float16")


def check_inputs(audio, audio_mask, layers) -> None:
  if audio.ndim != 2 or audio_mask.shape != audio.shape:
    raise ValueError(f"audio {audio.shape} and audio_mask {audio_mask.shape} must both be [batch, time]")
  if conv_encoder.output_length(audio.shape[1], layers) < 1:
    raise ValueError(f"audio of {audio.shape[1]} samples is shorter than the conv receptive field")


class CausalGroupNorm(nn.Module):
  """fairseq's GroupNorm(1 group) made causal: frame t of `x` [B, F, C] is normalised with the mean and
  variance over all channels of frames 0..t (fairseq pools over the whole utterance). Keeps the relative
  energy contour that a per-frame norm would erase; right padding never reaches earlier frames."""
  eps: float = 1e-5
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    h = x.astype(jnp.float32)
    count = jnp.arange(1, x.shape[1] + 1, dtype=jnp.float32)[None, :, None]
    mean = jnp.cumsum(h.mean(-1, keepdims=True), axis=1) / count
    power = jnp.cumsum(jnp.square(h).mean(-1, keepdims=True), axis=1) / count
    h = (h - mean) * jax.lax.rsqrt(jnp.maximum(power - jnp.square(mean), 0.0) + self.eps)
    scale = self.param("scale", logical(nn.initializers.ones, "conv_out"), (x.shape[-1],))
    bias = self.param("bias", logical(nn.initializers.zeros, "conv_out"), (x.shape[-1],))
    return (h * scale + bias).astype(self.dtype)


def conv_block(x, channels: int, kernel: int, stride: int, dtype, index: int):
  """Inside a parent's compact `__call__`: VALID conv (no bias) → CausalGroupNorm → ReLU, as submodules
  `conv{index}` and `norm{index}`. `x` [B, F, C_in] → [B, F', channels]."""
  x = nn.Conv(channels, (kernel,), (stride,), padding="VALID", use_bias=False, dtype=dtype,
              name=f"conv{index}", conv_general_dilated=gathered_conv,
              kernel_init=logical(nn.initializers.kaiming_normal(), None, "conv_in", "conv_out"))(x)
  x = nn.relu(CausalGroupNorm(dtype=dtype, name=f"norm{index}")(x))
  return nn.with_logical_constraint(x, ("batch", "length", "conv_out"))


class FeatureEncoder(nn.Module):
  """`audio` [B, T] → z [B, F, C_last], F = conv_encoder.output_length(T): conv blocks, then log(|z| + 1)
  if `log_compression`. Frame t depends on samples [t·stride, t·stride + receptive field) only."""
  layers: tuple[tuple[int, int, int], ...]
  log_compression: bool = True
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, audio):
    x = audio[..., None].astype(self.dtype)
    for i, (channels, kernel, stride) in enumerate(self.layers):
      x = conv_block(x, channels, kernel, stride, self.dtype, i)
    return jnp.log1p(jnp.abs(x)) if self.log_compression else x


class ContextNetwork(nn.Module):
  """Causal conv stack: `x` [B, F, C] → [B, F, channels of the last layer] (see the module docstring)."""
  layers: tuple[tuple[int, int], ...]
  skip_connections: bool = True
  residual_scale: float = 0.5
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    x = x.astype(self.dtype)
    for i, (channels, kernel) in enumerate(self.layers):
      residual = x
      x = conv_block(jnp.pad(x, ((0, 0), (kernel - 1, 0), (0, 0)), mode="edge"), channels, kernel, 1,
                     self.dtype, i)
      if self.skip_connections:
        if residual.shape[-1] != channels:
          residual = nn.Dense(channels, use_bias=False, dtype=self.dtype, name=f"residual{i}",
                              kernel_init=logical(nn.initializers.lecun_normal(), "conv_in", "conv_out"))(
                                  residual)
        x = (x + residual) * math.sqrt(self.residual_scale)
    return x


def encode(cfg, audio, audio_mask):
  """Inside a parent's compact `__call__`: (encoder output z [B, F, C], frame_mask [B, F] bool).
  Creates the parent's submodule `feature_extractor`."""
  layers = conv_layers(cfg)
  check_inputs(audio, audio_mask, layers)
  z = FeatureEncoder(layers, cfg.log_compression, jnp.dtype(cfg.dtype), name="feature_extractor")(audio)
  return z, conv_encoder.frame_mask(audio_mask.astype(bool), layers)


def predict(cfg, x):
  """Inside a parent's compact `__call__`: context network over `x` [B, F, C] and the K step projections
  back to C channels. Returns (context [B, F, D], predictions [B, F, K, C] float32). Creates the parent's
  submodules `context_network` and `steps`."""
  dtype = jnp.dtype(cfg.dtype)
  context = ContextNetwork(context_layers(cfg), cfg.skip_connections, cfg.residual_scale, dtype,
                           name="context_network")(x)
  predictions = HeadDense((context.shape[-1], cfg.prediction_steps, x.shape[-1]),
                          ("conv_in", None, "conv_out"), "bfd,dkc->bfkc", dtype, name="steps")(context)
  return context, predictions.astype(jnp.float32)


class Wav2Vec(nn.Module):
  """Encoder + context network + step projections; targets are the encoder outputs (module docstring)."""
  config: ml_collections.FrozenConfigDict

  @nn.compact
  def __call__(self, audio, audio_mask, *, train: bool = False):
    del train   # no dropout; the argument keeps the Task's call uniform across the wav2vec family
    z, frame_mask = encode(self.config, audio, audio_mask)
    context, predictions = predict(self.config, z)
    return {"frame_mask": frame_mask, "features": z, "targets": z, "context": context,
            "predictions": predictions}


def from_config(cfg) -> nn.Module:
  validate(cfg)
  return Wav2Vec(ml_collections.FrozenConfigDict(cfg))


def network_flops(cfg, num_samples: int, quantizer_flops_per_frame: float = 0.0) -> float:
  """Matmul FLOPs of encoder + (quantizer, given per frame) + context network + step projections over
  `num_samples` samples (2 per multiply-add)."""
  layers = conv_layers(cfg)
  frames = float(conv_encoder.output_length(num_samples, layers))
  flops = conv_encoder.forward_flops(num_samples, layers) + frames * quantizer_flops_per_frame
  channels_in = layers[-1][0]
  for channels, kernel in context_layers(cfg):
    flops += 2 * frames * kernel * channels_in * channels
    if cfg.skip_connections and channels != channels_in:
      flops += 2 * frames * channels_in * channels
    channels_in = channels
  return flops + 2 * frames * channels_in * cfg.prediction_steps * layers[-1][0]


def forward_flops(cfg, num_samples: int) -> float:
  """Matmul FLOPs of one `Wav2Vec` forward pass over `num_samples` samples."""
  return network_flops(cfg, num_samples)


FAMILY = Family("wav2vec", model_config, from_config, forward_flops)
