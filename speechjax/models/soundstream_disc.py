"""SoundStream's discriminators (Zeghidour et al. 2021, §3.4): one STFT discriminator and MelGAN's
multi-resolution waveform discriminators.

    disc = from_config(disc_config("tiny"))
    outputs = disc.apply({"params": p}, audio)      # audio [B, T] → [(logits [B, T_k], [feature maps]), ...]

Output k = 0 is the STFT discriminator, k = 1..K the waveform scales; every discriminator is fully
convolutional, so T_k grows with T. Feature maps are the activations after each hidden layer (for the
feature-matching loss).

STFT: |window| = stft_window, hop stft_hop, real and imaginary parts as 2 channels over [time, frequency]
(the Nyquist bin dropped: F = window / 2) → Conv2D 7×7 → 6 residual blocks (3×3 conv, then a
(s_t + 2)×(s_f + 2) conv with strides (s_t, s_f) alternating (1, 2) and (2, 2); channels
stft_channels × (1, 2, 4, 4, 8, 8)) → a 1 × F/2⁶ conv: one logit per output time step.
Waveform (MelGAN): at rates 1, 1/2, 1/4 (mean over 4 samples at stride 2): Conv(wave_channels, k15)
→ 4 grouped convs (kernel 41, stride 4, groups of 4 input channels, channels ×4 up to wave_max_channels)
→ Conv(k5) → Conv(1, k3). LeakyReLU(0.2) everywhere, no normalisation.
"""
from __future__ import annotations

import jax.numpy as jnp
import ml_collections
from flax import linen as nn

from speechjax.audio.spectral import stft
from speechjax.config import require
from speechjax.nn.folded_conv import FoldedConv, fold, folds_line_up, lane_fold, stage_folds, unfold
from speechjax.nn.partitioning import logical

STFT_CHANNEL_MULTS = (1, 2, 4, 4, 8, 8)
STFT_STRIDES = ((1, 2), (2, 2)) * 3

_PRESETS = {
    "tiny": dict(stft_window=512, stft_hop=128, stft_channels=4, wave_channels=4, wave_max_channels=32,
                 lane_fold=0),
    "16khz": dict(stft_window=1024, stft_hop=256, stft_channels=32, wave_channels=16, wave_max_channels=1024,
                  lane_fold=128),
}
_PRESETS["24khz"] = _PRESETS["16khz"]


def disc_config(preset: str = "16khz") -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({**_PRESETS[preset], "wave_scales": 3, "dtype": "float32"})


def validate(cfg) -> None:
  r = require
  r(cfg.stft_window % 2 ** 7 == 0, "task.discriminator.stft_window", cfg.stft_window,
    "must be a multiple of 128 (six frequency halvings of window / 2)")
  r(0 < cfg.stft_hop <= cfg.stft_window, "task.discriminator.stft_hop", cfg.stft_hop,
    "must be in (0, stft_window]")
  r(cfg.wave_scales >= 0, "task.discriminator.wave_scales", cfg.wave_scales, "must be >= 0")
  r(cfg.wave_channels % 4 == 0 or cfg.wave_channels < 4, "task.discriminator.wave_channels",
    cfg.wave_channels, "must be < 4 or a multiple of 4 (grouped convs of 4 channels)")
  lanes = lane_fold(cfg)
  r(lanes >= 0, "task.discriminator.lane_fold", lanes, "must be >= 0 (0 = no folding)")
  bins, stft_folds = cfg.stft_window // 2, _stft_folds(cfg)
  r(all((bins >> i) % f == 0 for i, f in enumerate(stft_folds)), "task.discriminator.lane_fold",
    lanes, f"gives STFT folds {stft_folds} that do not divide the {bins} frequency bins at "
    "every stage; use a smaller value or 0")
  for name, folds, stride in (("STFT", stft_folds, 2), ("waveform", _wave_folds(cfg), 4)):
    r(folds_line_up(folds, [stride] * len(folds)),
      "task.discriminator.lane_fold", lanes, f"gives {name} folds {folds}: each fold times {stride} "
      "must be a multiple of the one before; use a smaller value or 0")


def _inits(spatial_dims: int = 1) -> dict:
  """Conv initialisers: kernels [*spatial, in, out] (gathered over `in` for the conv, speechjax.nn.partitioning)."""
  axes = (None,) * spatial_dims + ("conv_in", "conv_out")
  return {"kernel_init": logical(nn.initializers.lecun_normal(), *axes),
          "bias_init": logical(nn.initializers.zeros, "conv_out")}


def _stft_folds(cfg) -> tuple[int, ...]:
  """Frequency-axis folds (speechjax.nn.folded_conv) of the stem's output and of each block's output."""
  widths = [cfg.stft_channels] + [cfg.stft_channels * m for m in STFT_CHANNEL_MULTS]
  return stage_folds(lane_fold(cfg), widths)


def _wave_widths(channels: int, max_channels: int) -> list[int]:
  """Channels of the waveform discriminator's stem and of its 4 strided convs (× 4 each, capped)."""
  widths = [channels]
  for _ in range(4):
    widths.append(min(4 * widths[-1], max_channels))
  return widths


def _wave_folds(cfg) -> tuple[int, ...]:
  """Time-axis folds of the stem's output and of each strided conv's output."""
  return stage_folds(lane_fold(cfg), _wave_widths(cfg.wave_channels, cfg.wave_max_channels))


def downsample(audio):
  """[B, T] → [B, ceil(T / 2)]: mean over windows of 4 samples at stride 2 (zero-padded by 1 each side)."""
  padded = jnp.pad(audio, ((0, 0), (1, 2 + audio.shape[1] % 2)))
  n = (audio.shape[1] + 1) // 2
  return sum(padded[:, i:i + 2 * n:2] for i in range(4)) / 4.0


def _leaky(x):
  return nn.leaky_relu(x, 0.2)


class STFTDiscriminator(nn.Module):
  """audio [B, T] → (logits [B, frames'] f32, feature maps). `folds`: see _stft_folds (all 1: unfolded)."""
  window: int
  hop: int
  channels: int
  folds: tuple[int, ...]
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, audio):
    def conv(features, kernel, fold_in, fold_out, strides=(1, 1), padding="SAME", name=None):
      return FoldedConv(features, kernel, strides, padding, fold_in=fold_in, fold_out=fold_out,
                        dtype=self.dtype, name=name, **_inits(2))

    spec = stft(audio.astype(jnp.float32), self.window, self.hop)[..., :-1]
    x = fold(jnp.stack([spec.real, spec.imag], -1).astype(self.dtype), self.folds[0])   # [B, frames, F, 2]
    x = _leaky(conv(self.channels, (7, 7), self.folds[0], self.folds[0], name="stem")(x))
    features = [x]
    for i, (mult, stride) in enumerate(zip(STFT_CHANNEL_MULTS, STFT_STRIDES)):
      width, f_in, f_out = self.channels * mult, self.folds[i], self.folds[i + 1]
      y = _leaky(conv(width, (3, 3), f_in, f_in, name=f"block{i}_conv")(x))
      y = conv(width, (stride[0] + 2, stride[1] + 2), f_in, f_out, stride, name=f"block{i}_down")(y)
      skip = conv(width, (1, 1), f_in, f_out, stride, name=f"block{i}_skip")(x)
      x = _leaky(y + skip)
      features.append(x)
    x = unfold(x, self.folds[-1])
    logits = conv(1, (1, x.shape[2]), 1, 1, padding="VALID", name="logits")(x)
    return logits[:, :, 0, 0].astype(jnp.float32), features


class WaveDiscriminator(nn.Module):
  """audio [B, T] → (logits [B, T / 256] f32, feature maps). `folds`: see _wave_folds (all 1: unfolded)."""
  channels: int
  max_channels: int
  folds: tuple[int, ...]
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, audio):
    def conv(features, kernel, fold_in, fold_out, stride=1, groups=1, name=None):
      return FoldedConv(features, (kernel,), (stride,), "SAME", feature_group_count=groups, fold_in=fold_in,
                        fold_out=fold_out, dtype=self.dtype, name=name, **_inits())

    f = self.folds
    x = fold(audio[..., None].astype(self.dtype), f[0])
    x = _leaky(conv(self.channels, 15, f[0], f[0], name="stem")(x))
    features, widths = [x], _wave_widths(self.channels, self.max_channels)
    for i in range(4):
      x = _leaky(conv(widths[i + 1], 41, f[i], f[i + 1], 4, max(widths[i] // 4, 1), name=f"down{i}")(x))
      features.append(x)
    x = _leaky(conv(widths[4], 5, f[4], f[4], name="post")(x))
    features.append(x)
    logits = unfold(conv(1, 3, f[4], f[4], name="logits")(x), f[4])
    return logits[..., 0].astype(jnp.float32), features


def _wave_folds_for(folds: tuple[int, ...], length: int) -> tuple[int, ...]:
  """`folds` where `length` samples fold evenly at every stride-4 stage, else no folding (same result)."""
  fits = all((length // 4 ** i) % f == 0 and length % 4 ** i == 0 for i, f in enumerate(folds) if f > 1)
  return folds if fits else (1,) * len(folds)


class Discriminators(nn.Module):
  """`audio` [B, T] → [(logits [B, T_k] f32, feature maps), ...]: STFT first, then the wave scales.
  Feature maps of folded stages are folded (speechjax.nn.folded_conv): same elements, other shape."""
  config: ml_collections.FrozenConfigDict

  @nn.compact
  def __call__(self, audio):
    c, dtype = self.config, jnp.dtype(self.config.dtype)
    outputs = [STFTDiscriminator(c.stft_window, c.stft_hop, c.stft_channels, _stft_folds(c), dtype,
                                 name="stft")(audio)]
    x = audio
    for k in range(c.wave_scales):
      if k:
        x = downsample(x)
      folds = _wave_folds_for(_wave_folds(c), x.shape[1])
      outputs.append(WaveDiscriminator(c.wave_channels, c.wave_max_channels, folds, dtype, name=f"wave{k}")(x))
    return outputs


def from_config(cfg) -> Discriminators:
  validate(cfg)
  return Discriminators(ml_collections.FrozenConfigDict(cfg))
