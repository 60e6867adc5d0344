"""MFCC / log-mel parity with kaldi-native-fbank (Kaldi's C++ arithmetic) and librosa."""
import kaldi_native_fbank as knf
import librosa
import numpy as np
import pytest
import soundfile

from speechjax.audio import features
from speechjax.data import synth

# Measured on eSpeak speech (2 utterances, one with 20 dB noise): MFCC max |diff| / max |ref| per
# coefficient <= 8e-6; log-mel max |diff| 1.4e-4 on the [-1, 1] scale and 1e-3 on the int16 scale
# (in near-silent low-frequency bins, where float32 rounding of the FFT is large relative to the bin).
MFCC_REL_TOL = 5e-5
LOG_MEL_ABS_TOL = 2e-3


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
  """Two eSpeak utterances as float32 [-1, 1] arrays: one clean (digital silence at both ends),
  one with 20 dB noise."""
  out = tmp_path_factory.mktemp("speech")
  (out / "train").mkdir()
  utterances = [synth.plan("micro", 0)[0], synth.plan("micro", 1, noise_snr_db=20.0)[1]]
  for utt in utterances:
    synth.render(str(out), utt)
  return [soundfile.read(str(out / "train" / f"{u.uid}.wav"), dtype="float32")[0]
          for u in utterances]


def _kaldi(audio: np.ndarray, mfcc: bool, num_bins: int) -> np.ndarray:
  """kaldi-native-fbank features `[frames, dim]` with the torchaudio/fairseq settings."""
  opts = knf.MfccOptions() if mfcc else knf.FbankOptions()
  opts.frame_opts.dither = 0.0
  opts.mel_opts.num_bins = num_bins
  opts.use_energy = False
  extractor = knf.OnlineMfcc(opts) if mfcc else knf.OnlineFbank(opts)
  extractor.accept_waveform(features.SAMPLE_RATE, audio)
  extractor.input_finished()
  return np.stack([extractor.get_frame(i) for i in range(extractor.num_frames_ready)])


def _torchaudio_deltas(x: np.ndarray, win_length: int = 5) -> np.ndarray:
  """torchaudio.functional.compute_deltas along axis 0, written as a plain loop."""
  half = (win_length - 1) // 2
  out = np.zeros_like(x, dtype=np.float64)
  last = len(x) - 1
  for t in range(len(x)):
    for n in range(1, half + 1):
      out[t] += n * (x[min(t + n, last)] - x[max(t - n, 0)])
  return out / (2 * sum(n * n for n in range(1, half + 1)))


def test_frame_count_formula():
  lengths = np.array([0, 399, 400, 559, 560, 16000])
  np.testing.assert_array_equal(features.num_frames(lengths), [0, 0, 1, 1, 2, 98])
  audio = np.zeros((len(lengths), 16000), np.float32)
  feats, counts = features.mfcc(audio, lengths)
  assert feats.shape == (6, 98, 39)
  np.testing.assert_array_equal(counts, [0, 0, 1, 1, 2, 98])
  assert features.mfcc(np.zeros((1, 399), np.float32))[0].shape == (1, 0, 39)


@pytest.mark.parametrize("input_scale", [1.0, 32768.0])
def test_mfcc_matches_kaldi(speech, input_scale):
  for audio in speech:
    ref = _kaldi(audio * input_scale, mfcc=True, num_bins=23)
    ours = np.asarray(features.mfcc(audio[None], input_scale=input_scale, deltas=False)[0][0])
    assert ours.shape == ref.shape == (features.num_frames(len(audio)), 13)
    rel = np.abs(ours - ref).max(axis=0) / np.abs(ref).max(axis=0)
    assert rel.max() < MFCC_REL_TOL, rel


@pytest.mark.parametrize("input_scale", [1.0, 32768.0])
def test_log_mel_matches_kaldi_fbank(speech, input_scale):
  for audio in speech:
    ref = _kaldi(audio * input_scale, mfcc=False, num_bins=80)
    ours = np.asarray(features.log_mel(audio[None], input_scale=input_scale)[0][0])
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() < LOG_MEL_ABS_TOL


def test_input_scale_shifts_log_energies(speech):
  noisy = speech[1][None]
  small = np.asarray(features.log_mel(noisy)[0])
  large = np.asarray(features.log_mel(noisy, input_scale=32768.0)[0])
  # Only bins above the float32-epsilon floor on the [-1, 1] scale shift by exactly 2·ln(32768);
  # with 20 dB noise a few quiet low-frequency bins (< 0.1 %) still sit on the floor.
  above = small > np.log(features.LOG_FLOOR) + 1e-3
  assert above.mean() > 0.99
  np.testing.assert_allclose((large - small)[above], 2 * np.log(32768.0), atol=2e-3)
  assert np.all((large - small)[~above] < 2 * np.log(32768.0))


def test_mel_banks_match_kaldi():
  opts = knf.MelBanksOptions()
  opts.num_bins = 23
  ref = np.asarray(knf.MelBanks(opts, knf.FrameExtractionOptions()).get_matrix())  # [23, 257]
  np.testing.assert_allclose(features.mel_banks(23).T, ref, atol=1e-5)


def test_power_spectrum_matches_librosa_stft():
  audio = np.random.default_rng(0).standard_normal(8000).astype(np.float32)
  ours = np.asarray(features.power_spectrum(features.frame_signal(audio[None]))[0])
  # librosa frames are FFT_SIZE long; a window that is zero past FRAME_LENGTH gives the same frames.
  window = np.pad(features.povey_window(), (0, features.FFT_SIZE - features.FRAME_LENGTH))
  ref = np.abs(librosa.stft(audio, n_fft=features.FFT_SIZE, hop_length=features.FRAME_SHIFT,
                            window=window, center=False)).T ** 2
  assert np.abs(ours[:len(ref)] - ref).max() / ref.max() < 1e-5


def test_deltas_match_independent_implementations(speech):
  audio = speech[1]
  feats = np.asarray(features.mfcc(audio[None])[0][0])
  ceps, delta, delta2 = feats[:, :13], feats[:, 13:26], feats[:, 26:]
  scale = np.abs(ceps).max()
  np.testing.assert_allclose(delta, _torchaudio_deltas(ceps), atol=1e-6 * scale)
  np.testing.assert_allclose(delta2, _torchaudio_deltas(_torchaudio_deltas(ceps)), atol=1e-6 * scale)
  # Kaldi's add-deltas clamps only at the input, so it agrees away from the edges (4 frames).
  kaldi = knf.compute_deltas(knf.DeltaOptions(order=2, window=2), ceps)
  np.testing.assert_allclose(feats[4:-4], kaldi[4:-4], atol=1e-6 * scale)


def test_padded_batch_equals_single_utterances(speech):
  lengths = np.array([len(a) for a in speech])
  batch = np.random.default_rng(1).standard_normal((2, lengths.max() + 1000)).astype(np.float32)
  for row, audio in zip(batch, speech):
    row[:len(audio)] = audio            # padding holds noise: it must not leak into the features
  feats, counts = features.mfcc(batch, lengths)
  np.testing.assert_array_equal(counts, features.num_frames(lengths))
  for row, audio, count in zip(np.asarray(feats), speech, counts):
    single = features.mfcc_utterance(audio)
    np.testing.assert_allclose(row[:count], single, rtol=1e-5, atol=1e-4)
    assert not np.any(row[count:])


def test_bad_input_is_rejected():
  with pytest.raises(ValueError, match="floating point"):
    features.mfcc(np.zeros((1, 1000), np.int16))
  with pytest.raises(ValueError, match=r"\[batch, time\]"):
    features.mfcc(np.zeros(1000, np.float32))
  with pytest.raises(ValueError, match="lengths"):
    features.mfcc(np.zeros((2, 1000), np.float32), np.array([1000, 1001]))
  with pytest.raises(ValueError, match="lengths"):
    features.log_mel(np.zeros((2, 1000), np.float32), np.array([1000]))
  with pytest.raises(ValueError, match="NaN"):
    features.mfcc(np.full((1, 1000), np.nan, np.float32))
