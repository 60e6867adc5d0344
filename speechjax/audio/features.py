"""Kaldi-compatible MFCC and log-mel filterbank features in JAX (jit-able, batched).

`mfcc` computes the features fairseq dumps for HuBERT iteration 1 (`dump_mfcc_feature.py`):

    torchaudio.compliance.kaldi.mfcc(wave, sample_frequency=16000, use_energy=False)
    + torchaudio.functional.compute_deltas twice (win_length 5, replicate padding)
    → [frames, 39] = [13 cepstra | 13 Δ | 13 ΔΔ]

with every other setting at its Kaldi default: 25 ms Povey window every 10 ms, `snip_edges=True`
(frames = 1 + (N − 400) // 160; none when N < 400, where torchaudio raises), DC offset removed and
pre-emphasis 0.97 per frame, 512-point FFT power spectrum, 23 triangular mel bins (triangles in mel,
20 Hz .. Nyquist), log floored at float32 epsilon, orthonormal DCT-II to 13 cepstra, cepstral
lifter 22, no dither, no CMVN.

Input scale. Kaldi's own tools read int16 samples (range ±32768). torchaudio's Kaldi functions use
whatever numbers they are given, and fairseq passes `soundfile.read` floats in [-1, 1], so HuBERT's
MFCCs are computed on float [-1, 1] audio. That is the default here (`input_scale=1.0`); pass
`input_scale=32768.0` for features on Kaldi's int16 scale. The scale only adds 2·ln(scale) to every
log-mel energy (20.79 for 32768; in MFCC only c0 moves, by √23 · 20.79 = 99.7) — except for bins
whose energy falls below the float32-epsilon floor, which on the [-1, 1] scale includes digital
silence and very quiet frames (int16 quantisation noise alone is about 3e-8 per FFT bin).

All functions take padded batches `audio [batch, time]` float with optional `lengths [batch]` and
return features `[batch, frames, dim]` with frames past each row's own count set to 0, plus the
frame counts. Each distinct padded length compiles once: pad batches to a few fixed lengths.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

SAMPLE_RATE = 16000
FRAME_LENGTH = 400   # samples, 25 ms
FRAME_SHIFT = 160    # samples, 10 ms
FFT_SIZE = 512       # FRAME_LENGTH rounded up to a power of two
PREEMPHASIS = 0.97
POVEY_POWER = 0.85
LOG_FLOOR = float(np.finfo(np.float32).eps)
DELTA_WIN_LENGTH = 5
_HIGHEST = jax.lax.Precision.HIGHEST  # keep f32 matmuls exact on TPU (default there is bf16)


def num_frames(num_samples):
  """Frames of a signal of `num_samples` samples (Kaldi `snip_edges=True`): int or int array."""
  n = np.asarray(num_samples, np.int64)
  frames = np.where(n >= FRAME_LENGTH, 1 + (n - FRAME_LENGTH) // FRAME_SHIFT, 0)
  return int(frames) if frames.ndim == 0 else frames


def _mel(freq):
  return 1127.0 * np.log1p(np.asarray(freq, np.float64) / 700.0)


@functools.lru_cache(maxsize=None)
def mel_banks(n_mels: int, low_freq: float = 20.0, high_freq: float = 0.0) -> np.ndarray:
  """Kaldi's triangular mel filters as a matrix `[FFT_SIZE // 2 + 1, n_mels]` float32.

  Triangles are linear on the mel scale 1127·ln(1 + f/700), their edges evenly spaced in mel from
  `low_freq` to `high_freq` (<= 0 means Nyquist + high_freq). The Nyquist bin has weight 0, as in
  Kaldi (its filters cover FFT bins 0 .. FFT_SIZE/2 − 1)."""
  nyquist = SAMPLE_RATE / 2
  high = high_freq + nyquist if high_freq <= 0 else high_freq
  if not 0 <= low_freq < high <= nyquist:
    raise ValueError(f"mel_banks: need 0 <= low_freq < high_freq <= {nyquist}, got "
                     f"low_freq={low_freq}, high_freq={high_freq}")
  edges = np.linspace(_mel(low_freq), _mel(high), n_mels + 2)
  left, center, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
  fft_mel = _mel(np.arange(FFT_SIZE // 2) * SAMPLE_RATE / FFT_SIZE)[None, :]
  up = (fft_mel - left) / (center - left)
  down = (right - fft_mel) / (right - center)
  weights = np.maximum(0.0, np.minimum(up, down))                  # [n_mels, FFT_SIZE // 2]
  return np.pad(weights, ((0, 0), (0, 1))).T.astype(np.float32)    # [FFT_SIZE // 2 + 1, n_mels]


@functools.lru_cache(maxsize=None)
def povey_window() -> np.ndarray:
  """Kaldi's "povey" window: a symmetric Hann window to the power 0.85, `[FRAME_LENGTH]` f32."""
  n = np.arange(FRAME_LENGTH)
  hann = 0.5 - 0.5 * np.cos(2 * np.pi * n / (FRAME_LENGTH - 1))
  return (hann ** POVEY_POWER).astype(np.float32)


@functools.lru_cache(maxsize=None)
def dct_lifter_matrix(n_mels: int, num_ceps: int, cepstral_lifter: float) -> np.ndarray:
  """Orthonormal DCT-II to the first `num_ceps` cepstra, times the lifter: `[n_mels, num_ceps]`."""
  if not 0 < num_ceps <= n_mels:
    raise ValueError(f"num_ceps={num_ceps} must be in 1..n_mels={n_mels}")
  m = np.arange(n_mels)[:, None] + 0.5
  k = np.arange(num_ceps)[None, :]
  dct = np.sqrt(2.0 / n_mels) * np.cos(np.pi * m * k / n_mels)
  dct[:, 0] = np.sqrt(1.0 / n_mels)
  if cepstral_lifter:
    dct *= 1.0 + 0.5 * cepstral_lifter * np.sin(np.pi * np.arange(num_ceps) / cepstral_lifter)
  return dct.astype(np.float32)


def frame_signal(audio: jax.Array) -> jax.Array:
  """`[batch, time]` → overlapping frames `[batch, num_frames(time), FRAME_LENGTH]`."""
  starts = np.arange(num_frames(audio.shape[-1])) * FRAME_SHIFT
  return audio[:, starts[:, None] + np.arange(FRAME_LENGTH)[None, :]]


def preprocess_frames(frames: jax.Array) -> jax.Array:
  """Kaldi's per-frame preparation of `[..., FRAME_LENGTH]` raw frames: remove the DC offset, then
  pre-emphasise (the first sample against itself)."""
  frames = frames - jnp.mean(frames, axis=-1, keepdims=True)
  previous = jnp.concatenate([frames[..., :1], frames[..., :-1]], axis=-1)
  return frames - PREEMPHASIS * previous


def power_spectrum(frames: jax.Array) -> jax.Array:
  """`[..., FRAME_LENGTH]` frames → Povey window, zero-pad to FFT_SIZE, |rfft|²: `[..., 257]`."""
  spectrum = jnp.fft.rfft(frames * povey_window(), n=FFT_SIZE, axis=-1)
  return jnp.real(spectrum) ** 2 + jnp.imag(spectrum) ** 2


def _frame_counts(lengths, batch: int, time: int) -> np.ndarray:
  """Validated `[batch]` frame counts for `lengths` (None = every row is `time` long)."""
  if lengths is None:
    return np.full(batch, num_frames(time), np.int32)
  lengths = np.asarray(lengths)
  if lengths.shape != (batch,) or lengths.dtype.kind not in "iu":
    raise ValueError(f"lengths must be an int array of shape ({batch},), got {lengths.dtype} "
                     f"{lengths.shape}")
  if np.any(lengths < 0) or np.any(lengths > time):
    raise ValueError(f"lengths must lie in [0, {time}], got {lengths.min()}..{lengths.max()}")
  return num_frames(lengths).astype(np.int32)


def _check_audio(audio) -> jax.Array:
  """`[batch, time]` floating audio as a float32 array, or a clear error."""
  audio = audio if hasattr(audio, "ndim") else np.asarray(audio)
  if audio.ndim != 2:
    raise ValueError(f"audio must be [batch, time], got shape {audio.shape}")
  if not jnp.issubdtype(audio.dtype, jnp.floating):
    raise ValueError(f"audio must be floating point (got {audio.dtype}); for int16 PCM divide by "
                     "32768 to get the [-1, 1] scale that fairseq's HuBERT features use")
  audio = jnp.asarray(audio, jnp.float32)
  if not bool(jnp.all(jnp.isfinite(audio))):
    raise ValueError("audio contains NaN or infinite samples")
  return audio


def _mask_frames(feats: jax.Array, counts: jax.Array) -> jax.Array:
  """Zeroes frames `t >= counts[b]` of `feats [batch, frames, dim]`."""
  valid = jnp.arange(feats.shape[1])[None, :] < counts[:, None]
  return jnp.where(valid[..., None], feats, 0.0)


@functools.partial(jax.jit, static_argnames=("n_mels", "low_freq", "high_freq"))
def _log_mel(audio, counts, input_scale, *, n_mels, low_freq, high_freq):
  power = power_spectrum(preprocess_frames(frame_signal(audio * input_scale)))
  mel = jnp.matmul(power, mel_banks(n_mels, low_freq, high_freq), precision=_HIGHEST)
  return _mask_frames(jnp.log(jnp.maximum(mel, LOG_FLOOR)), counts)


def log_mel(audio, lengths=None, *, n_mels: int = 80, low_freq: float = 20.0,
            high_freq: float = 0.0, input_scale: float = 1.0):
  """Kaldi fbank features (`torchaudio.compliance.kaldi.fbank` defaults, `n_mels` bins).

  Args:
    audio: `[batch, time]` float 16 kHz audio (see the module doc for its scale).
    lengths: `[batch]` int valid samples per row, or None when no row is padded.
    n_mels, low_freq, high_freq: mel filterbank (high_freq <= 0 is relative to Nyquist).
    input_scale: multiplies the audio first (32768.0 = Kaldi's int16 scale).
  Returns:
    (`[batch, num_frames(time), n_mels]` float32 log mel energies, `[batch]` int32 frame counts).
  """
  audio = _check_audio(audio)
  counts = _frame_counts(lengths, *audio.shape)
  feats = _log_mel(audio, counts, input_scale, n_mels=n_mels, low_freq=float(low_freq),
                   high_freq=float(high_freq))
  return feats, counts


def compute_deltas(feats: jax.Array, counts: jax.Array,
                   win_length: int = DELTA_WIN_LENGTH) -> jax.Array:
  """`torchaudio.functional.compute_deltas` along time, each row replicating its own edge frames.

  Δ_t = Σ_{n=1..N} n·(x_{t+n} − x_{t−n}) / (2·Σ n²), N = (win_length − 1) // 2, with x_{t±n} clamped
  to frames [0, counts[b] − 1]. `feats [batch, frames, dim]` → `[batch, frames, dim]`."""
  half = (win_length - 1) // 2
  if half < 1:
    raise ValueError(f"win_length must be >= 3, got {win_length}")
  last = jnp.maximum(jnp.asarray(counts) - 1, 0)[:, None]              # [batch, 1]
  t = jnp.arange(feats.shape[1])[None, :]                              # [1, frames]

  def shifted(offset):
    index = jnp.clip(t + offset, 0, last)[..., None]                   # [batch, frames, 1]
    return jnp.take_along_axis(feats, index, axis=1)

  total = sum(n * (shifted(n) - shifted(-n)) for n in range(1, half + 1))
  return total / (2.0 * sum(n * n for n in range(1, half + 1)))


@functools.partial(jax.jit, static_argnames=("num_ceps", "n_mels", "cepstral_lifter", "deltas"))
def _mfcc(audio, counts, input_scale, *, num_ceps, n_mels, cepstral_lifter, deltas):
  log_energies = _log_mel(audio, counts, input_scale, n_mels=n_mels, low_freq=20.0, high_freq=0.0)
  ceps = jnp.matmul(log_energies, dct_lifter_matrix(n_mels, num_ceps, cepstral_lifter),
                    precision=_HIGHEST)
  if not deltas:
    return ceps
  delta = compute_deltas(ceps, counts)
  delta2 = compute_deltas(delta, counts)
  return _mask_frames(jnp.concatenate([ceps, delta, delta2], axis=-1), counts)


def mfcc(audio, lengths=None, *, num_ceps: int = 13, n_mels: int = 23,
         cepstral_lifter: float = 22.0, deltas: bool = True, input_scale: float = 1.0):
  """HuBERT iteration-1 MFCC features (see the module doc for the exact definition).

  Args:
    audio: `[batch, time]` float 16 kHz audio, [-1, 1] for fairseq parity.
    lengths: `[batch]` int valid samples per row, or None when no row is padded.
    num_ceps, n_mels, cepstral_lifter: Kaldi MfccOptions.
    deltas: append Δ and ΔΔ (fairseq does).
    input_scale: multiplies the audio first (32768.0 = Kaldi's int16 scale).
  Returns:
    (`[batch, num_frames(time), 3·num_ceps]` float32 (`num_ceps` without deltas),
     `[batch]` int32 frame counts).
  """
  audio = _check_audio(audio)
  counts = _frame_counts(lengths, *audio.shape)
  feats = _mfcc(audio, counts, input_scale, num_ceps=num_ceps, n_mels=n_mels,
                cepstral_lifter=float(cepstral_lifter), deltas=deltas)
  return feats, counts


def mfcc_utterance(audio: np.ndarray, bucket: int = SAMPLE_RATE, **kwargs) -> np.ndarray:
  """MFCC of one utterance `[time]` → numpy `[num_frames(time), 39]`.

  The audio is zero-padded to a multiple of `bucket` samples, so utterances of similar length share
  one compiled function; padding does not change the result."""
  audio = np.asarray(audio)
  if audio.ndim != 1:
    raise ValueError(f"mfcc_utterance: audio must be [time], got shape {audio.shape}")
  padded = np.zeros(max(bucket, math.ceil(len(audio) / bucket) * bucket), audio.dtype)
  padded[:len(audio)] = audio
  feats, counts = mfcc(padded[None], np.array([len(audio)]), **kwargs)
  return np.asarray(feats[0, :counts[0]])
