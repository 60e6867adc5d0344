"""Lanczos-3 resampling of `[B, T]` signals by a rational factor, as a polyphase filter.

`resample(audio, n)` equals `jax.image.resize(audio, (B, n), "lanczos3")` (antialiased when shrinking;
tests/audio/test_resample.py). jax builds that as a dense `[T, n]` weight matrix computed inside the
program: 1.5 G entries and 104 GFLOP for 4 × 2 s from 16 to 24 kHz, and 90 s to compile for a TPU. Here
n / T = p / q in lowest terms; output block b (samples p·b … p·b + p − 1) is a fixed `[L, p]` matrix times
input samples q·b + lo … q·b + lo + L − 1, so the whole resampling is one framing (slices and reshapes)
and one `[B, T / q, L] × [L, p]` matmul, divided by each output's sum of in-range weights (which is
how jax normalises at the edges).
"""
from __future__ import annotations

import functools
import math

import jax.numpy as jnp
import numpy as np

from speechjax.audio.spectral import frames

RADIUS = 3


def _lanczos(x: np.ndarray) -> np.ndarray:
  """The Lanczos-3 kernel at distances |x| (float64)."""
  x = np.abs(x)
  return np.where(x < RADIUS, np.sinc(x) * np.sinc(x / RADIUS), 0.0)


@functools.lru_cache(maxsize=None)
def polyphase_filter(in_size: int, out_size: int) -> tuple[int, int, int, np.ndarray, np.ndarray]:
  """(q, left padding, padded length, taps [L, p] float32, 1 / weight sums [out_size] float32) for
  `in_size → out_size`: output block b reads samples q·b … q·b + L − 1 of the padded signal."""
  g = math.gcd(in_size, out_size)
  p, q = out_size // g, in_size // g
  spread = max(q / p, 1.0)                      # the kernel widens when shrinking (antialiasing)
  centres = (np.arange(p) + 0.5) * q / p - 0.5  # input position of output p·b + r, relative to q·b
  lo = math.floor(centres.min() - RADIUS * spread)
  hi = math.ceil(centres.max() + RADIUS * spread)
  length = -(-(hi - lo + 1) // q) * q            # a whole number of q-sample chunks
  offsets = lo + np.arange(length)
  taps = _lanczos((offsets[:, None] - centres[None, :]) / spread)          # [L, p]
  inputs = q * np.arange(g)[:, None] + offsets[None, :]                     # [blocks, L] input indices
  in_range = (inputs >= 0) & (inputs < in_size)
  sums = np.einsum("bl,lp->bp", in_range.astype(np.float64), taps).reshape(-1)
  # lo < 0: the first output's kernel reaches before the signal, which is zero-padded on both sides.
  return q, -lo, q * (g - 1) + length, taps.astype(np.float32), (1.0 / sums).astype(np.float32)


def resample(audio, num_samples: int):
  """`audio` [B, T] float → [B, num_samples]: Lanczos-3 interpolation, `jax.image.resize`'s result."""
  if audio.shape[1] == num_samples:
    return audio
  q, left, padded_length, taps, inverse_sums = polyphase_filter(audio.shape[1], num_samples)
  right = max(padded_length - left - audio.shape[1], 0)
  padded = jnp.pad(audio, ((0, 0), (left, right)))[:, :padded_length]
  blocks = jnp.matmul(frames(padded, taps.shape[0], q), taps, precision="highest")   # [B, blocks, p]
  return blocks.reshape(audio.shape[0], num_samples) * inverse_sums
