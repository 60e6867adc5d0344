"""`speechjax.audio.spectral` (the codec losses' and discriminators' STFT) against librosa."""
import jax
import librosa
import numpy as np
import pytest

from speechjax.audio import spectral


@pytest.mark.parametrize("window,hop,n_fft", [(64, 16, 512), (1024, 256, 1024), (100, 30, 128)])
def test_stft_matches_librosa(window, hop, n_fft):
  """Hops that divide the window (framed by reshapes) and one that does not (framed by a gather)."""
  audio = np.random.default_rng(window).standard_normal((2, 4000)).astype(np.float32)
  ours = np.asarray(jax.jit(spectral.stft, static_argnums=(1, 2, 3))(audio, window, hop, n_fft))
  # librosa's frames are n_fft long: a window that is zero past `window` samples, and as many zeros after
  # the signal, give ours.
  padded = np.pad(spectral.hann(window), (0, n_fft - window))
  ref = np.stack([librosa.stft(np.pad(a, (0, n_fft - window)), n_fft=n_fft, hop_length=hop, window=padded,
                               center=False).T for a in audio])
  assert ours.shape == ref.shape
  assert np.abs(ours - ref).max() / np.abs(ref).max() < 1e-5
