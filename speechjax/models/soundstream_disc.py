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
from speechjax.nn.partitioning import logical

STFT_CHANNEL_MULTS = (1, 2, 4, 4, 8, 8)
STFT_STRIDES = ((1, 2), (2, 2)) * 3

_PRESETS = {
    "tiny": dict(stft_window=512, stft_hop=128, stft_channels=4, wave_channels=4, wave_max_channels=32),
    "16khz": dict(stft_window=1024, stft_hop=256, stft_channels=32, wave_channels=16, wave_max_channels=1024),
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


def _inits(spatial_dims: int = 1) -> dict:
  """Conv initialisers; kernels [*spatial, in, out] shard their output channels only."""
  axes = (None,) * (spatial_dims + 1) + ("conv_out",)
  return {"kernel_init": logical(nn.initializers.lecun_normal(), *axes),
          "bias_init": logical(nn.initializers.zeros, "conv_out")}


def downsample(audio):
  """[B, T] → [B, ceil(T / 2)]: mean over windows of 4 samples at stride 2 (zero-padded by 1 each side)."""
  padded = jnp.pad(audio, ((0, 0), (1, 2 + audio.shape[1] % 2)))
  n = (audio.shape[1] + 1) // 2
  return sum(padded[:, i:i + 2 * n:2] for i in range(4)) / 4.0


def _leaky(x):
  return nn.leaky_relu(x, 0.2)


class STFTDiscriminator(nn.Module):
  window: int
  hop: int
  channels: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, audio):
    spec = stft(audio.astype(jnp.float32), self.window, self.hop)[..., :-1]
    x = jnp.stack([spec.real, spec.imag], -1).astype(self.dtype)       # [B, frames, F, 2]
    x = _leaky(nn.Conv(self.channels, (7, 7), padding="SAME", dtype=self.dtype, name="stem", **_inits(2))(x))
    features = [x]
    for i, (mult, stride) in enumerate(zip(STFT_CHANNEL_MULTS, STFT_STRIDES)):
      width = self.channels * mult
      y = _leaky(nn.Conv(width, (3, 3), padding="SAME", dtype=self.dtype, name=f"block{i}_conv",
                         **_inits(2))(x))
      y = nn.Conv(width, (stride[0] + 2, stride[1] + 2), stride, padding="SAME", dtype=self.dtype,
                  name=f"block{i}_down", **_inits(2))(y)
      skip = nn.Conv(width, (1, 1), stride, dtype=self.dtype, name=f"block{i}_skip", **_inits(2))(x)
      x = _leaky(y + skip)
      features.append(x)
    logits = nn.Conv(1, (1, x.shape[2]), padding="VALID", dtype=self.dtype, name="logits", **_inits(2))(x)
    return logits[:, :, 0, 0].astype(jnp.float32), features


class WaveDiscriminator(nn.Module):
  channels: int
  max_channels: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, audio):
    x = _leaky(nn.Conv(self.channels, (15,), padding="SAME", dtype=self.dtype, name="stem",
                       **_inits())(audio[..., None].astype(self.dtype)))
    features = [x]
    for i in range(4):
      width = min(4 * x.shape[-1], self.max_channels)
      x = _leaky(nn.Conv(width, (41,), (4,), padding="SAME", feature_group_count=max(x.shape[-1] // 4, 1),
                         dtype=self.dtype, name=f"down{i}", **_inits())(x))
      features.append(x)
    x = _leaky(nn.Conv(x.shape[-1], (5,), padding="SAME", dtype=self.dtype, name="post", **_inits())(x))
    features.append(x)
    logits = nn.Conv(1, (3,), padding="SAME", dtype=self.dtype, name="logits", **_inits())(x)
    return logits[..., 0].astype(jnp.float32), features


class Discriminators(nn.Module):
  """`audio` [B, T] → [(logits [B, T_k] f32, feature maps), ...]: STFT first, then the wave scales."""
  config: ml_collections.FrozenConfigDict

  @nn.compact
  def __call__(self, audio):
    c, dtype = self.config, jnp.dtype(self.config.dtype)
    outputs = [STFTDiscriminator(c.stft_window, c.stft_hop, c.stft_channels, dtype, name="stft")(audio)]
    x = audio
    for k in range(c.wave_scales):
      if k:
        x = downsample(x)
      outputs.append(WaveDiscriminator(c.wave_channels, c.wave_max_channels, dtype, name=f"wave{k}")(x))
    return outputs


def from_config(cfg) -> Discriminators:
  validate(cfg)
  return Discriminators(ml_collections.FrozenConfigDict(cfg))
