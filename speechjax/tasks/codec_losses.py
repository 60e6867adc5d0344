"""SoundStream's losses (Zeghidour et al. 2021, §3.5). Audio `[B, T]` float; discriminator outputs are the
list of (logits [B, T_k], feature maps) of `speechjax.models.soundstream_disc.Discriminators`.

    L_D    = 1/K Σ_k [ mean_t max(0, 1 − D_k(x)) + mean_t max(0, 1 + D_k(G(x))) ]         hinge
    L_adv  = 1/K Σ_k mean_t max(0, 1 − D_k(G(x)))
    L_feat = 1/(K·L) Σ_{k,l} mean |D_k^l(x) − D_k^l(G(x))|                               feature matching
    L_rec  = Σ_{s=2^6..2^11} mean_t ‖S^s_t(x) − S^s_t(G(x))‖₁ + α_s mean_t ‖log S^s_t(x) − log S^s_t(G(x))‖₂

S^s: 64-bin mel magnitude spectrogram, window s, hop s/4; α_s = sqrt(s/2). The paper sums over frames; the
mean over frames (and examples) keeps the scale independent of the crop length.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from speechjax.audio import spectral

MEL_WINDOWS = tuple(2 ** i for i in range(6, 12))
LOG_EPS = 1e-5


def reconstruction_loss(target, estimate, sample_rate: int, windows=MEL_WINDOWS, n_mels: int = 64):
  """Multi-scale mel loss L_rec: f32 scalar."""
  total = jnp.zeros([], jnp.float32)
  for window in windows:
    s_target = spectral.mel_spectrogram(target, sample_rate, window, n_mels)
    s_estimate = spectral.mel_spectrogram(estimate, sample_rate, window, n_mels)
    l1 = jnp.abs(s_target - s_estimate).sum(-1).mean()
    log_diff = jnp.log(s_target + LOG_EPS) - jnp.log(s_estimate + LOG_EPS)
    l2 = jnp.sqrt(jnp.square(log_diff).sum(-1) + LOG_EPS).mean()
    total += l1 + math.sqrt(window / 2) * l2
  return total


def interleave_real_fake(real, fake):
  """[B, ...] twice → [2B, ...] rows real₀, fake₀, real₁, fake₁, …: the discriminators' input. With the batch
  sharded, each device's rows stay on it (concatenating along the sharded batch moves half of them: XLA
  emitted 242 collective-permutes and 3 all-to-alls per SoundStream 16 kHz step for that)."""
  return jnp.stack([real, fake], axis=1).reshape(-1, *real.shape[1:])


def split_real_fake(outputs):
  """Outputs of the discriminators on `interleave_real_fake(real, fake)` → (real outputs, fake outputs)."""
  def half(x, i):
    return x.reshape(-1, 2, *x.shape[1:])[:, i]
  return tuple(jax.tree.map(lambda x, i=i: half(x, i), outputs) for i in (0, 1))


def discriminator_hinge(real, fake):
  """L_D of the discriminators' outputs on real and on decoded audio."""
  terms = [jax.nn.relu(1.0 - r).mean() + jax.nn.relu(1.0 + f).mean()
           for (r, _), (f, _) in zip(real, fake)]
  return sum(terms) / len(terms)


def generator_hinge(fake):
  """L_adv of the discriminators' outputs on decoded audio."""
  return sum(jax.nn.relu(1.0 - f).mean() for f, _ in fake) / len(fake)


def feature_matching(real, fake):
  """L_feat: mean L1 between the feature maps on real and on decoded audio."""
  pairs = [(r, f) for (_, rf), (_, ff) in zip(real, fake) for r, f in zip(rf, ff)]
  return sum(jnp.abs(r.astype(jnp.float32) - f.astype(jnp.float32)).mean() for r, f in pairs) / len(pairs)
