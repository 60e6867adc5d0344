"""wav2vec model: output contract, causality of encoder and context network, offsets, FLOPs, sizes."""
import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from speechjax.config import ConfigError
from speechjax.models import wav2vec
from speechjax.nn import conv_encoder

from tests.models.model_testing import audio_batch, forward_matmul_flops, random_params

pytestmark = pytest.mark.fast_compile

B, T = 2, 4000


def _inputs():
  return audio_batch(T, 3000)


@functools.lru_cache(maxsize=None)
def _setup():
  cfg = wav2vec.model_config("tiny")
  model = wav2vec.from_config(cfg)
  return cfg, model, random_params(model, *_inputs())


@functools.lru_cache(maxsize=None)
def _forward():
  """The tiny model's jitted forward pass `(audio, audio_mask) -> outputs` (one compile for the file)."""
  _, model, params = _setup()
  return jax.jit(lambda a, m: model.apply({"params": params}, a, m))


def test_outputs_follow_the_contract():
  cfg = _setup()[0]
  out = _forward()(*_inputs())
  frames = conv_encoder.output_length(T, wav2vec.conv_layers(cfg))
  c, d, k = cfg.conv_layers[-1][0], cfg.context_layers[-1][0], cfg.prediction_steps
  chex.assert_shape([out["frame_mask"], out["features"], out["targets"], out["context"], out["predictions"]],
                    [(B, frames), (B, frames, c), (B, frames, c), (B, frames, d), (B, frames, k, c)])
  assert out["predictions"].dtype == jnp.float32
  np.testing.assert_array_equal(np.asarray(out["frame_mask"]).sum(-1),
                                conv_encoder.output_length(np.array([T, 3000]), wav2vec.conv_layers(cfg)))
  assert float(out["features"].min()) >= 0   # log(|z| + 1)


def test_encoder_and_context_are_causal():
  """Changing the audio from sample s on changes no encoder frame whose receptive field ends before s, and
  no context frame at or before those; later frames do change."""
  cfg = _setup()[0]
  audio, mask = _inputs()
  cut = 2000
  noisy = audio.at[:, cut:].add(jnp.asarray(np.random.default_rng(1).standard_normal((B, T - cut)), jnp.float32))
  before, after = _forward()(audio, mask), _forward()(noisy, mask)
  field, stride = wav2vec.receptive_field(wav2vec.conv_layers(cfg))
  untouched = (cut - field) // stride + 1          # frames 0..untouched-1 end before sample `cut`
  for name in ("features", "context", "predictions"):
    np.testing.assert_array_equal(before[name][:, :untouched], after[name][:, :untouched], err_msg=name)
    assert np.abs(np.asarray(before[name][:, untouched:] - after[name][:, untouched:])).max() > 1e-3, name


def test_padding_does_not_reach_real_frames():
  audio, mask = _inputs()
  out, junk = _forward()(audio, mask), _forward()(jnp.where(mask, audio, 5.0), mask)
  real = np.asarray(out["frame_mask"])
  np.testing.assert_array_equal(np.asarray(out["context"])[real], np.asarray(junk["context"])[real])


def test_receptive_field_and_auto_offset_of_the_paper_encoder():
  assert wav2vec.receptive_field(wav2vec.PAPER_CONV) == (465, 160)
  assert wav2vec.prediction_offset(wav2vec.model_config("base")) == 3
  assert wav2vec.prediction_offset(wav2vec.model_config("large")) == 3   # 1×1 layers widen nothing
  cfg = wav2vec.model_config("tiny")
  cfg.prediction_offset = "1"
  assert wav2vec.prediction_offset(cfg) == 1


def test_forward_flops_equal_the_matmuls_in_the_graph():
  cfg, model, params = _setup()
  assert wav2vec.forward_flops(cfg, T) == pytest.approx(forward_matmul_flops(model, params, T), rel=1e-9)


def num_params(model) -> int:
  """Parameters of `model` from `jax.eval_shape` (nothing is allocated)."""
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 1000)), jnp.ones((1, 1000), bool))
  return sum(math.prod(x.shape) for x in jax.tree.leaves(nn.unbox(shapes)))


def _expected_params(cfg) -> int:
  """conv kernels (no bias) + norm scale/bias per layer + residual projections + K affine maps."""
  total, channels_in = 0, 1
  for channels, kernel, _ in cfg.conv_layers:
    total += kernel * channels_in * channels + 2 * channels
    channels_in = channels
  width = channels_in
  for channels, kernel in cfg.context_layers:
    total += kernel * channels_in * channels + 2 * channels + (channels_in * channels if channels != channels_in else 0)
    channels_in = channels
  return total + cfg.prediction_steps * (channels_in * width + width)


@pytest.mark.parametrize("preset", ["base", "large"])
def test_parameter_counts(preset):
  cfg = wav2vec.model_config(preset)
  n = num_params(wav2vec.from_config(cfg))
  print(f"wav2vec {preset}: {n / 1e6:.2f}M parameters")
  assert n == _expected_params(cfg)
  assert len(cfg.context_layers) == (9 if preset == "base" else 12)


def test_bad_config_names_the_field():
  cfg = wav2vec.model_config("tiny")
  cfg.prediction_offset = "soon"
  with pytest.raises(ConfigError, match="prediction_offset"):
    wav2vec.from_config(cfg)
  cfg = wav2vec.model_config("tiny")
  cfg.context_layers = ((64, 0),)
  with pytest.raises(ConfigError, match="context_layers"):
    wav2vec.from_config(cfg)
  with pytest.raises(ConfigError, match="preset"):
    wav2vec.model_config("huge")
