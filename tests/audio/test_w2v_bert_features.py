"""w2v-BERT 2.0 features: parity with transformers' SeamlessM4TFeatureExtractor, masks, jit."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from transformers import SeamlessM4TFeatureExtractor

from speechjax.audio import features
from speechjax.audio import w2v_bert_features as w2v

# Max |ours − HF| after per-bin normalisation, measured over rng seeds 0..7 (transformers 4.57,
# jax 0.10 CPU). HF runs the fbank in float64, we run it in float32, so a bin's log energy is off
# by roughly (float32 FFT rounding, ~1e-7 × the frame's peak) / (the bin's own energy), then divided
# by the bin's std over frames. White noise: every bin is loud, max 3e-5..1.2e-4. Chirp + sine
# with 30 dB SNR noise: the narrow low bins sit ~100 dB below the tone peak, max 4e-4..2.2e-3.
# (A noiseless synthetic tone reaches 0.09: its far sidelobes drop below float32's dynamic range,
# which real recordings, with their noise floor, never do.)
NOISE_TOL = 5e-4
TONE_TOL = 5e-3
SR = features.SAMPLE_RATE


@pytest.fixture(scope="module")
def extractor():
  # Default constructor = the w2v-bert-2.0 preprocessor config: 80 bins, 16 kHz, stride 2, pad 0.0.
  fe = SeamlessM4TFeatureExtractor()
  assert (fe.num_mel_bins, fe.sampling_rate, fe.stride, fe.padding_value) == (80, SR, 2, 0.0)
  return fe


def _noise(n, seed=0):
  return (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def _tone(n, seed=0):
  """Chirp 100 Hz → 100 + 2600·t Hz plus a 440 Hz sine, with white noise at 30 dB SNR."""
  t = np.arange(n) / SR
  tone = 0.4 * np.sin(2 * np.pi * (100 * t + 1300 * t ** 2)) + 0.2 * np.sin(2 * np.pi * 440 * t)
  noise = np.std(tone) * 10 ** (-30 / 20) * np.random.default_rng(seed).standard_normal(n)
  return (tone + noise).astype(np.float32)


def _compare(hf, feats, mask, tol):
  """HF output vs ours for a batch: masks equal, our padded rows zero, real rows within tol."""
  feats, mask = np.asarray(feats), np.asarray(mask)
  hf_feats, hf_mask = hf["input_features"], hf["attention_mask"].astype(bool)
  rows = mask.shape[1]
  # HF pads frames to an even count, so for an odd frame count it has one more (masked) row.
  assert hf_feats.shape[1] in (rows, rows + 1) and not hf_mask[:, rows:].any()
  np.testing.assert_array_equal(mask, hf_mask[:, :rows])
  assert feats.shape == (*mask.shape, w2v.FEATURE_DIM) and feats.dtype == np.float32
  assert np.all(feats[~mask] == 0.0)
  err = np.abs(feats[mask] - hf_feats[:, :rows][mask]).max()
  assert err < tol, err


@pytest.mark.parametrize("signal,num_samples,tol", [(_noise, 16000, NOISE_TOL),
                                                     (_tone, 24000, TONE_TOL),
                                                     (_tone, 12345, TONE_TOL)])
def test_single_utterance_matches_hf(extractor, signal, num_samples, tol):
  audio = signal(num_samples)
  hf = extractor(audio, sampling_rate=SR, return_tensors="np")
  feats, mask = w2v.w2v_bert_features(audio[None])
  assert mask.shape == (1, w2v.num_stacked_frames(num_samples))  # 12345 samples: 75 frames → 37
  assert bool(mask.all())
  _compare(hf, feats, mask, tol)


def test_padded_batch_matches_hf(extractor):
  lengths = np.array([16000, 11111, 7777])   # 98, 67, 47 frames → 49, 33, 23 stacked
  utterances = [_noise(n, seed) for seed, n in enumerate(lengths)]
  hf = extractor(utterances, padding=True, sampling_rate=SR, return_tensors="np")
  audio = np.zeros((len(lengths), lengths.max()), np.float32)
  for row, utt in zip(audio, utterances):
    row[:len(utt)] = utt
  feats, mask = w2v.w2v_bert_features(audio, lengths)
  np.testing.assert_array_equal(np.asarray(mask).sum(1), [49, 33, 23])
  _compare(hf, feats, mask, NOISE_TOL)
  # Padding samples do not leak into the normalisation statistics.
  audio[1, lengths[1]:] = 0.5
  np.testing.assert_array_equal(w2v.w2v_bert_features(audio, lengths)[0], feats)


def test_lengths_none_equals_full_lengths():
  audio = np.stack([_tone(9600), _noise(9600)])
  feats, mask = w2v.w2v_bert_features(audio)
  feats_full, mask_full = w2v.w2v_bert_features(audio, np.array([9600, 9600]))
  np.testing.assert_array_equal(feats, feats_full)
  np.testing.assert_array_equal(mask, mask_full)
  assert feats.shape == (2, 29, 160) and bool(mask.all())   # 58 frames
  assert w2v.HOP == 320 and w2v.FEATURE_DIM == 160


def test_traced_lengths_under_jit():
  audio = np.stack([_tone(8000), _noise(8000)])
  lengths = np.array([8000, 5000])
  eager = w2v.w2v_bert_features(audio, lengths)
  jitted = jax.jit(w2v.w2v_bert_features)(jnp.asarray(audio), jnp.asarray(lengths))
  for a, b in zip(eager, jitted):
    np.testing.assert_array_equal(a, b)
  # lengths=None inside jit: the frame counts become compile-time constants, which lets XLA fuse
  # differently (1-ulp differences), hence allclose.
  feats, mask = jax.jit(lambda a: w2v.w2v_bert_features(a))(jnp.asarray(audio))
  np.testing.assert_allclose(feats, w2v.w2v_bert_features(audio)[0], rtol=0, atol=1e-5)
  assert bool(mask.all())


def test_short_utterances_give_zeros_not_nan():
  # < 400 samples: no frames; 1 frame: HF would divide 0 by 0 (ddof=1), here zeros; 2 frames: 1 row.
  lengths = np.array([0, 399, 400, 560])
  feats, mask = w2v.w2v_bert_features(np.stack([_noise(4000)] * 4), lengths)
  np.testing.assert_array_equal(np.asarray(mask).sum(1), [0, 0, 0, 1])
  assert np.all(np.isfinite(feats)) and np.all(np.asarray(feats)[:3] == 0.0)


def test_bad_input_is_rejected():
  with pytest.raises(ValueError):
    w2v.w2v_bert_features(np.zeros(1600, np.float32))
  with pytest.raises(ValueError):
    w2v.w2v_bert_features(np.zeros((2, 1600), np.float32), np.array([1600, 1601]))
