"""SoundStream's discriminators: the lane-folded layout (task.discriminator.lane_fold) gives the unfolded
logits, feature maps and gradients from the same parameters."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from speechjax.config import ConfigError
from speechjax.models import soundstream_disc
from speechjax.nn.folded_conv import unfold

pytestmark = pytest.mark.fast_compile


def unfolded_features(features, reference):
  """Folded feature maps back in the reference's shapes (a fold only regroups the last two dims)."""
  return [unfold(f, f.shape[-1] // r.shape[-1]) for f, r in zip(features, reference)]


def small_disc_config(**overrides):
  cfg = soundstream_disc.disc_config("tiny")
  cfg.update(dict(stft_window=128, stft_hop=32, **overrides))
  return cfg


@pytest.mark.parametrize("samples", [1024, 1004])     # 1004: the waveform scales cannot fold, nor need to
def test_lane_folded_discriminators_equal_unfolded(samples):
  plain_cfg, folded_cfg = small_disc_config(), small_disc_config(lane_fold=32)
  assert soundstream_disc._wave_folds(folded_cfg) == (8, 2, 1, 1, 1)
  assert soundstream_disc._stft_folds(folded_cfg) == (8, 8, 4, 2, 2, 1, 1)
  plain, folded = soundstream_disc.from_config(plain_cfg), soundstream_disc.from_config(folded_cfg)
  audio = jax.random.normal(jax.random.key(0), (2, samples))
  params = jax.jit(plain.init)(jax.random.key(1), audio)
  plain_out, folded_out = jax.jit(plain.apply)(params, audio), jax.jit(folded.apply)(params, audio)
  for (plain_logits, plain_features), (folded_logits, folded_features) in zip(plain_out, folded_out):
    np.testing.assert_allclose(folded_logits, plain_logits, rtol=1e-5, atol=1e-5)
    for a, b in zip(unfolded_features(folded_features, plain_features), plain_features):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)

  def loss(p, model):
    return sum(jnp.mean(jnp.square(logits)) + sum(jnp.mean(jnp.abs(f)) for f in features)
               for logits, features in model.apply(p, audio))

  grad = jax.jit(jax.grad(loss), static_argnums=1)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4 * np.abs(b).max()),
               grad(params, folded), grad(params, plain))


def test_lane_fold_that_does_not_line_up_is_refused():
  cfg = small_disc_config(lane_fold=96, wave_channels=32)   # waveform folds 3, 1, ...: fine; STFT 24, ...
  with pytest.raises(ConfigError, match="task.discriminator.lane_fold"):
    soundstream_disc.from_config(cfg)
