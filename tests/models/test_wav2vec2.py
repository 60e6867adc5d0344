"""wav2vec 2.0 model: output contract, masking, feature_grad_mult, dtype, FLOPs, parameter counts."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from speechjax.config import ConfigError
from speechjax.models import wav2vec2
from speechjax.nn import conv_encoder

from tests.models.model_testing import (assert_known_logical_axes, audio_batch, forward_matmul_flops, param_counts,
                                        random_params)

pytestmark = pytest.mark.fast_compile

B, T = 2, 8000
RNGS = {"dropout": jax.random.PRNGKey(1), "mask": jax.random.PRNGKey(2), "gumbel": jax.random.PRNGKey(3)}


def _inputs():
  return audio_batch(T, 5000)


def _config(**overrides):
  cfg = wav2vec2.model_config("tiny")
  cfg.update(overrides)
  return cfg


@functools.lru_cache(maxsize=None)
def _setup():
  """(config, model, params) of the tiny model; other configs of the same shapes reuse the params."""
  cfg = _config()
  model = wav2vec2.from_config(cfg)
  return cfg, model, random_params(model, *_inputs())


@functools.lru_cache(maxsize=None)
def _eval_outputs():
  """Eval outputs of the tiny model without and with a given time mask (one compile)."""
  _, model, params = _setup()
  mask_time = jnp.zeros((B, 24), bool).at[:, 3:8].set(True).at[1, 20:].set(True)
  run = jax.jit(lambda p, m: (_apply(model, p, output_hidden_states=True),
                              _apply(model, p, mask_time=m, output_hidden_states=True)))
  return mask_time, *run(params, mask_time)


def _apply(model, params, **kwargs):
  return model.apply({"params": params}, *_inputs(), rngs=RNGS, **kwargs)


def test_pretraining_outputs_follow_the_contract():
  cfg, model, params = _setup()
  out = jax.jit(lambda p: _apply(model, p, train=True, output_hidden_states=True,
                                 gumbel_temperature=0.5))(params)
  frames = conv_encoder.output_length(T, wav2vec2.conv_layers(cfg))
  d, p, g = cfg.hidden_size, cfg.proj_codevector_dim, cfg.num_codevector_groups
  chex.assert_shape([out["frame_mask"], out["mask"], out["features"], out["last_hidden_state"],
                     out["projected_states"], out["projected_quantized"], out["codes"]],
                    [(B, frames), (B, frames), (B, frames, cfg.conv_layers[-1][0]), (B, frames, d),
                     (B, frames, p), (B, frames, p), (B, frames, g)])
  chex.assert_shape(list(out["hidden_states"]), [(B, frames, d)] * (cfg.num_hidden_layers + 1))
  chex.assert_rank([out["feature_penalty"], out["prob_perplexity"], out["code_perplexity"]], 0)
  assert out["codes"].dtype == jnp.int32 and out["projected_quantized"].dtype == jnp.float32
  frame_mask, mask = np.asarray(out["frame_mask"]), np.asarray(out["mask"])
  np.testing.assert_array_equal(frame_mask.sum(-1), conv_encoder.output_length(np.array([T, 5000]),
                                                                              wav2vec2.conv_layers(cfg)))
  assert mask.any(axis=-1).all() and not (mask & ~frame_mask).any()   # sampled, never on padding
  assert 1.0 <= float(out["code_perplexity"]) <= g * cfg.num_codevectors_per_group
  np.testing.assert_array_equal(out["hidden_states"][-1], out["last_hidden_state"])


def test_given_time_mask_replaces_frames_with_the_mask_embedding():
  mask_time, plain, masked = _eval_outputs()
  np.testing.assert_array_equal(masked["mask"], mask_time & plain["frame_mask"])   # not on padding
  assert not np.asarray(plain["mask"]).any()                                        # eval: no mask
  np.testing.assert_array_equal(masked["features"], plain["features"])             # unmasked copy
  changed = np.abs(np.asarray(masked["hidden_states"][0] - plain["hidden_states"][0])).max(-1) > 1e-6
  assert changed[np.asarray(masked["mask"])].all()
  assert not changed[0, 8 + 8:].any()   # beyond the reach of the positional conv (kernel 16)


def test_feature_grad_mult_scales_only_conv_encoder_gradients():
  params = _setup()[2]["wav2vec2"]
  weights = np.random.default_rng(1).standard_normal((B, 24, 32)).astype(np.float32)
  grads = {}
  for mult in (1.0, 0.1):   # gradients through the conv features only: a small program to compile
    model = wav2vec2.from_config(_config(feature_grad_mult=mult), heads=False)
    loss = lambda p, model=model: jnp.sum(_apply(model, p)["features"] * weights)
    grads[mult] = jax.jit(jax.grad(loss))(params)
  conv = lambda g: g["feature_extractor"]
  chex.assert_trees_all_close(conv(grads[0.1]), jax.tree.map(lambda x: 0.1 * x, conv(grads[1.0])),
                              rtol=1e-4, atol=1e-5)   # values up to ~5: float32 sums
  norm = lambda g: g["feature_projection"]["layer_norm"]   # after the scaling point: unchanged
  chex.assert_trees_all_close(norm(grads[0.1]), norm(grads[1.0]), atol=1e-6)
  assert float(jnp.abs(conv(grads[0.1])["conv0"]["kernel"]).max()) > 0
  assert float(jnp.abs(norm(grads[0.1])["scale"]).max()) > 0


def test_every_parameter_has_known_logical_axes():
  boxed = jax.eval_shape(_setup()[1].init, jax.random.PRNGKey(0), *_inputs())
  for leaf in assert_known_logical_axes(boxed):
    assert leaf.value.dtype == jnp.float32


def test_bfloat16_compute_keeps_float32_params_and_outputs():
  _, _, params = _setup()
  half = wav2vec2.from_config(_config(dtype="bfloat16"))
  out, ref = jax.jit(lambda p: _apply(half, p))(params), _eval_outputs()[1]
  assert out["last_hidden_state"].dtype == jnp.bfloat16
  assert out["projected_states"].dtype == jnp.float32
  err = np.abs(np.asarray(out["projected_states"]) - np.asarray(ref["projected_states"])).max()
  assert np.isfinite(err) and err < 0.2 * np.abs(np.asarray(ref["projected_states"])).max()


def test_forward_flops_equal_the_matmuls_in_the_graph():
  cfg, model, params = _setup()
  assert wav2vec2.forward_flops(cfg, T) == pytest.approx(forward_matmul_flops(model, params, T), rel=1e-9)


@pytest.mark.parametrize("preset,total,encoder", [("base", 95.04e6, 94.37e6), ("large", 317.39e6, 315.44e6)])
def test_parameter_counts(preset, total, encoder):
  full, bare = param_counts(wav2vec2, preset)
  assert full == pytest.approx(total, abs=0.005e6) and bare == pytest.approx(encoder, abs=0.005e6)


def test_bad_config_names_the_field():
  cfg = wav2vec2.model_config("tiny")
  cfg.codevector_dim = 33
  with pytest.raises(ConfigError, match="codevector_dim"):
    wav2vec2.from_config(cfg)
  with pytest.raises(ConfigError, match="preset"):
    wav2vec2.model_config("huge")
