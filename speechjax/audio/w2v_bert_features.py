"""w2v-BERT 2.0 input features in JAX (jit-able, batched, traced lengths allowed).

Computes what Hugging Face's `SeamlessM4TFeatureExtractor` (default arguments, transformers 4.57)
feeds `Wav2Vec2BertModel`:

  1. audio × 2**15 (Kaldi's int16 scale), then 80-bin Kaldi fbank (`features.log_mel` with
     `low_freq=20`, high edge at Nyquist = 8 kHz): 25 ms Povey window every 10 ms, snip edges
     (frames = 1 + (N − 400) // 160, none when N < 400), DC removal, pre-emphasis 0.97, 512-point
     power spectrum, triangles in Kaldi mel, no norm, natural log floored at float32 eps;
  2. per utterance and per mel bin: (x − mean) / sqrt(var + 1e-7) over the utterance's own frames,
     var with ddof=1 (HF mimics torch's default), before any padding;
  3. pad to an even frame count with 0.0 and stack frame pairs: `[frames, 80]` →
     `[frames // 2, 160]` = [frame 2j | frame 2j + 1], one vector per 20 ms (`HOP` = 320 samples).
     HF's attention mask keeps the frame mask at odd indices, so stacked frame j is real iff
     2j + 1 < n: an utterance of n frames has n // 2 real stacked frames. For odd n, HF's
     (masked-out) last row holds [frame n − 1 | 0]; here every row past n // 2 is all zeros.

Differences from HF, all outside its valid range or in rounding: HF works in float64 up to the
FFT (whose output it stores as complex64) and float32 afterwards, this module in float32 (measured
max |diff| in tests/audio/test_w2v_bert_features.py); an utterance with exactly one frame gets
zeros here where HF divides 0 by 0 (NaN); one shorter than 400 samples gets no frames here where
HF raises or returns garbage.

`w2v_bert_features(audio, lengths)` returns `[batch, num_frames(time) // 2, 160]` features with a
`[batch, num_frames(time) // 2]` bool mask of real stacked frames. It runs eagerly (checking its
inputs) or inside `jax.jit` with traced `audio` and `lengths` (unchecked; lengths clipped to
[0, time]). Each distinct padded length compiles once: pad batches to a few fixed lengths.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from speechjax.audio import features

N_MELS = 80
STRIDE = 2                       # fbank frames stacked into one feature vector
FEATURE_DIM = N_MELS * STRIDE    # 160
HOP = features.FRAME_SHIFT * STRIDE  # 320 samples = 20 ms per stacked frame
INPUT_SCALE = 2.0 ** 15          # HF: waveform * 2**15 ("Kaldi compliance")
NORM_EPS = 1e-7


def num_stacked_frames(num_samples):
  """Stacked frames (the feature rows) of a signal of `num_samples` samples: int or int array."""
  return features.num_frames(num_samples) // STRIDE


def frame_counts(lengths: jax.Array, time: int) -> jax.Array:
  """`features.num_frames` for (possibly traced) int `lengths [batch]`, clipped to [0, time]."""
  n = jnp.clip(jnp.asarray(lengths).astype(jnp.int32), 0, time)
  return jnp.where(n >= features.FRAME_LENGTH,
                   1 + (n - features.FRAME_LENGTH) // features.FRAME_SHIFT, 0).astype(jnp.int32)


def frame_mask(audio_mask: jax.Array) -> jax.Array:
  """Real stacked frames [batch, num_stacked_frames(time)] bool of a sample mask [batch, time] (traceable)."""
  counts = frame_counts(audio_mask.sum(-1), audio_mask.shape[1]) // STRIDE
  return jnp.arange(num_stacked_frames(audio_mask.shape[1]))[None, :] < counts[:, None]


def normalize_per_bin(feats: jax.Array, counts: jax.Array) -> jax.Array:
  """HF's per-utterance, per-bin standardisation of `feats [batch, frames, dim]` over each row's
  first `counts[b]` frames: (x − mean) / sqrt(var_ddof1 + 1e-7), padded frames set to 0.

  The ddof=1 denominator is max(count − 1, 1), so a one-frame row becomes 0 instead of NaN."""
  valid = (jnp.arange(feats.shape[1])[None, :] < counts[:, None])[..., None]  # [batch, frames, 1]
  counts = counts.astype(feats.dtype)[:, None, None]
  mean = jnp.sum(jnp.where(valid, feats, 0.0), axis=1, keepdims=True) / jnp.maximum(counts, 1.0)
  centred = jnp.where(valid, feats - mean, 0.0)
  var = jnp.sum(centred ** 2, axis=1, keepdims=True) / jnp.maximum(counts - 1.0, 1.0)
  return centred / jnp.sqrt(var + NORM_EPS)


def stack_frames(feats: jax.Array, counts: jax.Array) -> tuple[jax.Array, jax.Array]:
  """`[batch, frames, dim]` → (`[batch, frames // STRIDE, STRIDE · dim]` with rows past each
  row's `counts[b] // STRIDE` zeroed, `[batch, frames // STRIDE]` bool mask of the kept rows)."""
  batch, frames, dim = feats.shape
  stacked_frames = frames // STRIDE
  stacked = feats[:, :stacked_frames * STRIDE].reshape(batch, stacked_frames, STRIDE * dim)
  mask = jnp.arange(stacked_frames)[None, :] < (counts // STRIDE)[:, None]
  return jnp.where(mask[..., None], stacked, 0.0), mask


@jax.jit
def _w2v_bert_features(audio: jax.Array, counts: jax.Array) -> tuple[jax.Array, jax.Array]:
  log_mel = features._log_mel(audio, counts, INPUT_SCALE, n_mels=N_MELS, low_freq=20.0,
                              high_freq=0.0)
  return stack_frames(normalize_per_bin(log_mel, counts), counts)


def w2v_bert_features(audio, lengths=None) -> tuple[jax.Array, jax.Array]:
  """w2v-BERT 2.0 / SeamlessM4T input features (see the module doc for the exact definition).

  Args:
    audio: `[batch, time]` float 16 kHz audio in [-1, 1].
    lengths: `[batch]` int valid samples per row (may be traced under `jax.jit`), or None when no
      row is padded.
  Returns:
    (`[batch, num_stacked_frames(time), FEATURE_DIM]` float32 features, zero past each row's real
     frames; `[batch, num_stacked_frames(time)]` bool mask of real stacked frames).
  """
  traced = isinstance(audio, jax.core.Tracer) or isinstance(lengths, jax.core.Tracer)
  if not traced:
    audio = features._check_audio(audio)
    counts = jnp.asarray(features._frame_counts(lengths, *audio.shape))
    return _w2v_bert_features(audio, counts)
  if audio.ndim != 2 or not jnp.issubdtype(audio.dtype, jnp.floating):
    raise ValueError(f"audio must be floating [batch, time], got {audio.dtype} {audio.shape}")
  batch, time = audio.shape
  if lengths is None:
    counts = jnp.full((batch,), features.num_frames(time), jnp.int32)
  else:
    if jnp.shape(lengths) != (batch,) or not jnp.issubdtype(jnp.result_type(lengths), jnp.integer):
      raise ValueError(f"lengths must be an int array of shape ({batch},), got "
                       f"{jnp.result_type(lengths)} {jnp.shape(lengths)}")
    counts = frame_counts(lengths, time)
  return _w2v_bert_features(audio.astype(jnp.float32), counts)
