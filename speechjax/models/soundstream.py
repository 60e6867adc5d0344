"""SoundStream (Zeghidour et al. 2021): a causal conv encoder, a residual VQ, a mirrored causal decoder.

    cfg = model_config("16khz")
    model = from_config(cfg)
    codes = model.apply(variables, audio, 4, method="encode")        # [B, T / hop, 4] int32
    audio = model.apply(variables, codes, method="decode")           # [B, F · hop]
    out = model.apply(variables, audio, audio_mask, num_active, denoise, train=True,
                      rngs={"vq": key}, mutable=["vq_stats"])      # training: updates the codebooks

`variables` = {"params": ..., "vq_stats": ...} (the codebooks live in "vq_stats": speechjax.nn.rvq).

Encoder: Conv(C, k7) → B blocks [3 residual units (dilations 1, 3, 9) at c channels, ELU, Conv(2c,
kernel 2S, stride S)] → ELU → Conv(D, k3). Residual unit: x + Conv(k1)(ELU(Conv(k7, dilation d)(ELU(x)))).
Decoder mirrors it: Conv(C·2^B, k7) → B blocks [ELU, ConvTranspose(c/2, kernel 2S, stride S),
3 residual units] → ELU → Conv(1, k7). No normalisation layers, no skip connections.

Every conv is causal: padding on the past only; a transposed conv drops its last S outputs. So encoder
frame t (samples [t·hop, (t+1)·hop)) depends only on samples before (t+1)·hop, and on at most
`receptive_field(cfg)` of them: audio can be encoded in chunks with that much left context and give the
codes of the whole utterance (streaming). Frames: F = T / hop, hop = Π strides; T must be a multiple of hop.

FiLM denoising (`film` = "encoder" | "decoder"): a per-example flag (True = remove noise) conditions the
embedding after the encoder or before the decoder: a' = γ(flag) ⊙ a + β(flag) (γ = 1, β = 0 at init).

Config fields: sample_rate, channels (C), strides, embedding_dim (D), kernel_size (7), dilations,
num_quantizers (N_q), codebook_size (N), vq_decay, dead_code_threshold, kmeans_iters, film, dtype.
Bitrate at n_q codebooks: n_q · log2 N · sample_rate / hop bits per second (`bitrate`).
"""
from __future__ import annotations

import math

import jax.numpy as jnp
import ml_collections
from flax import linen as nn

from speechjax.config import ConfigError, require
from speechjax.nn import folded_conv, rvq
from speechjax.nn.partitioning import logical

_BASE = dict(
    model_type="soundstream", sample_rate=16000, channels=32, strides=(2, 4, 5, 8), embedding_dim=256,
    kernel_size=7, dilations=(1, 3, 9), num_quantizers=12, codebook_size=1024, vq_decay=0.99,
    dead_code_threshold=2.0, kmeans_iters=10, film="none", lane_fold=0, dtype="float32")

_PRESETS = {
    # CPU-sized: 16 kHz, 50 Hz frames, 8 codebooks of 256 (400 bps each, 3.2 kbps in all).
    "tiny": dict(channels=8, embedding_dim=64, num_quantizers=8, codebook_size=256),
    # AudioLM's SoundStream: 16 kHz, 50 Hz frames, 12 × 1024 codes = 6 kbps.
    "16khz": dict(lane_fold=128),
    # The paper's scalable model: 24 kHz, 75 Hz frames, 24 × 1024 codes = 18 kbps (750 bps each).
    "24khz": dict(sample_rate=24000, num_quantizers=24, lane_fold=128),
}
FILM_MODES = ("none", "encoder", "decoder")


def model_config(preset: str = "16khz") -> ml_collections.ConfigDict:
  """`tiny` (CPU tests), `16khz` (AudioLM's codec), `24khz` (the paper's)."""
  if preset not in _PRESETS:
    raise ConfigError(f"soundstream model preset {preset!r}: expected one of {sorted(_PRESETS)}")
  return ml_collections.ConfigDict({**_BASE, **_PRESETS[preset]})


def validate(cfg) -> None:
  """Raises ConfigError naming the field for settings the model cannot build."""
  require(cfg.sample_rate > 0, "model.sample_rate", cfg.sample_rate, "must be > 0")
  require(len(cfg.strides) >= 1 and all(s >= 1 for s in cfg.strides), "model.strides", cfg.strides,
          "must be one or more positive integers")
  require(cfg.channels >= 1, "model.channels", cfg.channels, "must be >= 1")
  require(cfg.embedding_dim >= 1, "model.embedding_dim", cfg.embedding_dim, "must be >= 1")
  require(cfg.num_quantizers >= 1, "model.num_quantizers", cfg.num_quantizers, "must be >= 1")
  require(cfg.codebook_size >= 2, "model.codebook_size", cfg.codebook_size, "must be >= 2")
  require(0.0 < cfg.vq_decay < 1.0, "model.vq_decay", cfg.vq_decay, "must be in (0, 1)")
  require(cfg.dead_code_threshold >= 0, "model.dead_code_threshold", cfg.dead_code_threshold,
          "must be >= 0 (0 = never replace)")
  require(cfg.kmeans_iters >= 0, "model.kmeans_iters", cfg.kmeans_iters, "must be >= 0")
  require(cfg.film in FILM_MODES, "model.film", cfg.film, f"expected one of {FILM_MODES}")
  require(cfg.dtype in ("float32", "bfloat16"), "model.dtype", cfg.dtype, "expected float32 or bfloat16")
  lanes = folded_conv.lane_fold(cfg)
  require(lanes >= 0, "model.lane_fold", lanes, "must be >= 0 (0 = no folding)")
  folds = stage_folds(cfg)
  require(hop_length(cfg) % folds[0] == 0 and folded_conv.folds_line_up(folds, cfg.strides),
      "model.lane_fold", lanes, f"gives stage folds {folds}: each fold times the next stride must be "
      f"a multiple of the previous fold, and the first must divide the hop; use a smaller value or 0")


def hop_length(cfg) -> int:
  """Samples per frame: the product of the strides."""
  return math.prod(cfg.strides)


def frame_rate(cfg) -> float:
  return cfg.sample_rate / hop_length(cfg)


def bitrate(cfg, n_q) -> float:
  """Bits per second with the first n_q codebooks: n_q · log2 N · frame rate."""
  return n_q * math.log2(cfg.codebook_size) * frame_rate(cfg)


def stage_folds(cfg) -> tuple[int, ...]:
  """Fold factor (speechjax.nn.folded_conv) of the signal at each rate: samples, after each down block.

  A stage of c < lane_fold channels is folded by lane_fold // c, so its activations fill the lanes; the
  frame rate (the quantizer's input) is never folded. lane_fold = 0: nothing is folded."""
  widths = [cfg.channels * 2 ** i for i in range(len(cfg.strides))]
  return folded_conv.stage_folds(folded_conv.lane_fold(cfg), widths) + (1,)


def _encoder_convs(cfg) -> list[tuple[int, int, int, int, int]]:
  """(in channels, out channels, kernel, stride, dilation) of every encoder conv, in order."""
  c, k = cfg.channels, cfg.kernel_size
  convs = [(1, c, k, 1, 1)]
  for i, stride in enumerate(cfg.strides):
    width = c * 2 ** i
    for d in cfg.dilations:
      convs += [(width, width, k, 1, d), (width, width, 1, 1, 1)]
    convs.append((width, 2 * width, 2 * stride, stride, 1))
  return convs + [(c * 2 ** len(cfg.strides), cfg.embedding_dim, 3, 1, 1)]


def receptive_field(cfg) -> int:
  """Past samples (the frame's own included) that one encoder frame depends on."""
  span, step = 1, 1   # samples covered, in units of the input of the layer being added
  for _, _, kernel, stride, dilation in _encoder_convs(cfg):
    span += (kernel - 1) * dilation * step
    step *= stride
  return span + hop_length(cfg) - 1


def forward_flops(cfg, num_samples: int) -> float:
  """Conv FLOPs (2 per multiply-add) of encoder + decoder on `num_samples` samples (VQ excluded).

  The decoder mirrors the encoder, so it costs about as much."""
  flops, length = 0.0, num_samples
  for c_in, c_out, kernel, stride, _ in _encoder_convs(cfg):
    length //= stride
    flops += 2.0 * kernel * c_in * c_out * length
  return 2.0 * flops


def _conv_inits() -> dict:
  return {"kernel_init": logical(nn.initializers.lecun_normal(), None, "conv_in", "conv_out"),
          "bias_init": logical(nn.initializers.zeros, "conv_out")}


class CausalConv(nn.Module):
  """[B, T, C_in] → [B, T / stride, features]; output t sees inputs up to t·stride + stride − 1.

  Input folded by fold_in, output by fold_out (speechjax.nn.folded_conv); 1 = plain [B, T, C]."""
  features: int
  kernel: int
  stride: int = 1
  dilation: int = 1
  dtype: jnp.dtype = jnp.float32
  fold_in: int = 1
  fold_out: int = 1

  @nn.compact
  def __call__(self, x):
    pad = (self.kernel - 1) * self.dilation + 1 - self.stride
    return folded_conv.FoldedConv(
        self.features, (self.kernel,), (self.stride,), [(pad, 0)], (self.dilation,), fold_in=self.fold_in,
        fold_out=self.fold_out, dtype=self.dtype, name="conv", **_conv_inits())(x)


class CausalConvTranspose(nn.Module):
  """[B, F, C_in] → [B, F · stride, features], kernel 2·stride; output n sees inputs up to n // stride.

  Input folded by fold_in, output by fold_out, as CausalConv."""
  features: int
  stride: int
  dtype: jnp.dtype = jnp.float32
  fold_in: int = 1
  fold_out: int = 1

  @nn.compact
  def __call__(self, x):
    return folded_conv.FoldedCausalConvTranspose(
        self.features, self.stride, self.fold_in, self.fold_out, dtype=self.dtype, name="conv",
        **_conv_inits())(x)


class ResidualUnit(nn.Module):
  """x + Conv(k1)(ELU(Conv(kernel, dilation)(ELU(x)))), channels and fold kept."""
  kernel: int
  dilation: int
  dtype: jnp.dtype = jnp.float32
  fold: int = 1

  @nn.compact
  def __call__(self, x):
    channels, f = x.shape[-1] // self.fold, self.fold
    y = CausalConv(channels, self.kernel, dilation=self.dilation, dtype=self.dtype, fold_in=f, fold_out=f,
                   name="dilated")(nn.elu(x))
    return x + CausalConv(channels, 1, dtype=self.dtype, fold_in=f, fold_out=f, name="pointwise")(nn.elu(y))


class Encoder(nn.Module):
  """`audio` [B, T] → embeddings [B, T / hop, D]."""
  config: ml_collections.FrozenConfigDict

  @nn.compact
  def __call__(self, audio):
    c, dtype, folds = self.config, jnp.dtype(self.config.dtype), stage_folds(self.config)
    x = folded_conv.fold(audio[..., None].astype(dtype), folds[0])
    x = CausalConv(c.channels, c.kernel_size, dtype=dtype, fold_in=folds[0], fold_out=folds[0], name="stem")(x)
    for i, stride in enumerate(c.strides):
      width = c.channels * 2 ** i
      for j, dilation in enumerate(c.dilations):
        x = ResidualUnit(c.kernel_size, dilation, dtype, folds[i], name=f"block{i}_unit{j}")(x)
      x = CausalConv(2 * width, 2 * stride, stride, dtype=dtype, fold_in=folds[i], fold_out=folds[i + 1],
                     name=f"block{i}_down")(nn.elu(x))
      x = nn.with_logical_constraint(x, ("batch", "length", "conv_out"))
    return CausalConv(c.embedding_dim, 3, dtype=dtype, name="project")(nn.elu(x))


class Decoder(nn.Module):
  """Embeddings [B, F, D] → audio [B, F · hop] float32."""
  config: ml_collections.FrozenConfigDict

  @nn.compact
  def __call__(self, x):
    c, dtype, folds = self.config, jnp.dtype(self.config.dtype), stage_folds(self.config)
    x = CausalConv(c.channels * 2 ** len(c.strides), c.kernel_size, dtype=dtype, name="stem")(x.astype(dtype))
    for i, stride in enumerate(reversed(c.strides)):
      stage = len(c.strides) - 1 - i          # the rate this block upsamples to
      x = CausalConvTranspose(c.channels * 2 ** stage, stride, dtype, folds[stage + 1], folds[stage],
                              name=f"block{i}_up")(nn.elu(x))
      x = nn.with_logical_constraint(x, ("batch", "length", "conv_out"))
      for j, dilation in enumerate(c.dilations):
        x = ResidualUnit(c.kernel_size, dilation, dtype, folds[stage], name=f"block{i}_unit{j}")(x)
    x = CausalConv(1, c.kernel_size, dtype=dtype, fold_in=folds[0], fold_out=folds[0], name="project")(nn.elu(x))
    return folded_conv.unfold(x, folds[0])[..., 0].astype(jnp.float32)


class FiLM(nn.Module):
  """a [B, F, D], flag [B] bool → γ(flag) ⊙ a + β(flag); γ, β: one row per flag value."""

  @nn.compact
  def __call__(self, a, flag):
    shape = (2, a.shape[-1])
    gamma = self.param("gamma", logical(nn.initializers.ones, None, "embed"), shape)
    beta = self.param("beta", logical(nn.initializers.zeros, None, "embed"), shape)
    mode = flag.astype(jnp.int32)
    return a * gamma[mode][:, None, :].astype(a.dtype) + beta[mode][:, None, :].astype(a.dtype)


class SoundStream(nn.Module):
  """The codec; see the module docstring."""
  config: ml_collections.FrozenConfigDict

  def setup(self):
    c = self.config
    self.encoder = Encoder(c)
    self.quantizer = rvq.ResidualVQ(c.num_quantizers, c.codebook_size, c.embedding_dim, c.vq_decay,
                                    c.dead_code_threshold, c.kmeans_iters)
    self.decoder = Decoder(c)
    if c.film != "none":
      self.film = FiLM()

  def _condition(self, x, denoise, where: str):
    if self.config.film != where:
      return x
    flag = jnp.zeros(x.shape[:1], bool) if denoise is None else denoise
    return self.film(x, flag)

  def _embed(self, audio, denoise):
    hop = hop_length(self.config)
    if audio.ndim != 2 or audio.shape[1] % hop:
      raise ValueError(f"audio {audio.shape} must be [batch, time] with time a multiple of hop={hop}")
    return self._condition(self.encoder(audio), denoise, "encoder")

  def _synthesize(self, quantized, denoise):
    return self.decoder(self._condition(quantized, denoise, "decoder"))

  def __call__(self, audio, audio_mask, num_active, denoise=None, *, train: bool = False) -> dict:
    """`audio` [B, T], `audio_mask` [B, T] bool, `num_active` [B] int32 (codebooks per example),
    `denoise` [B] bool or None → dict: audio [B, T] f32 (reconstruction) and the quantizer's outputs
    (quantized [B, F, D], codes [B, F, N_q], commitment, perplexity / usage / replaced [N_q])."""
    embeddings = self._embed(audio, denoise)
    frame_mask = audio_mask[:, ::hop_length(self.config)].astype(bool)   # frames that start on real audio
    vq = self.quantizer(embeddings, frame_mask, num_active, train=train)
    return {**vq, "audio": self._synthesize(vq["quantized"], denoise)}

  def encode(self, audio, n_q: int, denoise=None):
    """`audio` [B, T] → codes [B, T / hop, n_q] int32 of the first n_q codebooks (n_q ≤ N_q, static)."""
    if not 1 <= n_q <= self.config.num_quantizers:
      raise ValueError(f"n_q={n_q} must be in [1, num_quantizers={self.config.num_quantizers}]")
    embeddings = self._embed(audio, denoise)
    frames = jnp.ones(embeddings.shape[:2], bool)
    every = jnp.full(embeddings.shape[:1], self.config.num_quantizers, jnp.int32)
    return self.quantizer(embeddings, frames, every)["codes"][..., :n_q]

  def decode(self, codes, denoise=None):
    """`codes` [B, F, n_q] int32 (any n_q ≤ N_q) → audio [B, F · hop] float32."""
    if not 1 <= codes.shape[-1] <= self.config.num_quantizers:
      raise ValueError(f"codes {codes.shape}: the last dim must be in [1, {self.config.num_quantizers}]")
    return self._synthesize(self.quantizer.decode(codes), denoise)


def from_config(cfg) -> SoundStream:
  validate(cfg)
  return SoundStream(ml_collections.FrozenConfigDict(cfg))


def init_variables(model: SoundStream, rng, audio) -> dict:
  """{"params", "vq_stats"} for `audio` [B, T] (T a multiple of hop; only its shape matters)."""
  active = jnp.full(audio.shape[:1], model.config.num_quantizers, jnp.int32)
  return model.init(rng, audio, jnp.ones(audio.shape, bool), active, jnp.zeros(audio.shape[:1], bool))
