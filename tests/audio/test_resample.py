"""The polyphase Lanczos-3 resampler against the Lanczos-3 sum evaluated in float64, and jax.image.resize."""
import jax
import numpy as np
import pytest

from speechjax.audio import resample


def lanczos3_float64(audio: np.ndarray, num_samples: int) -> np.ndarray:
  """jax.image.resize's "lanczos3" formula (pixel centres, antialiased when shrinking, weights normalised over
  in-range inputs), evaluated densely in float64."""
  size = audio.shape[-1]
  spread = max(size / num_samples, 1.0)
  centres = (np.arange(num_samples) + 0.5) * size / num_samples - 0.5
  distance = (np.arange(size)[:, None] - centres[None, :]) / spread
  weights = np.sinc(distance) * np.sinc(distance / 3) * (np.abs(distance) < 3)
  return audio.astype(np.float64) @ weights / weights.sum(0)


@pytest.mark.parametrize("size,num_samples", [(3200, 4800), (3200, 1600), (3200, 2205), (1000, 1237),
                                              (3200, 3200), (3200, 37), (40, 3000)])
def test_resample_equals_the_lanczos3_sum(size, num_samples):
  audio = np.random.default_rng(size + num_samples).standard_normal((2, size)).astype(np.float32)
  ours = np.asarray(jax.jit(resample.resample, static_argnums=1)(audio, num_samples))
  assert ours.shape == (2, num_samples)
  np.testing.assert_allclose(ours, lanczos3_float64(audio, num_samples), atol=2e-6)
  # jax computes the sample positions in float32, which drifts by up to ~1e-3 of a sample at these lengths.
  reference = np.asarray(jax.image.resize(audio, (2, num_samples), "lanczos3"))
  np.testing.assert_allclose(ours, reference, atol=2e-3)
