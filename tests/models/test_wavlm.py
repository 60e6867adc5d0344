"""WavLM: relative position buckets, the bias gate, bias sharing through (scanned) layers, the pretraining
model's tree, FLOPs, logical axes and parameter counts."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from speechjax.config import ConfigError
from speechjax.models import wavlm
from speechjax.nn import layer_stack, rel_pos_bias, transformer

from tests.models.model_testing import (assert_known_logical_axes, audio_batch, forward_matmul_flops, param_counts,
                                        random_params, tiny_model)

pytestmark = pytest.mark.fast_compile

B, T, CLASSES = 2, 8000, (5, 3)


def test_buckets_are_exact_near_log_spaced_far_and_split_by_direction():
  after = rel_pos_bias.relative_position_buckets(1, 3000, 320, 800)[0]      # key − query = 0..2999
  before = rel_pos_bias.relative_position_buckets(3000, 1, 320, 800)[:, 0]  # key − query = 0..−2999
  np.testing.assert_array_equal(before[:80], np.arange(80))                 # |offset| < 80: exact
  np.testing.assert_array_equal(after[:80], np.r_[0, 160 + np.arange(1, 80)])
  for side, base in ((before, 0), (after, 160)):
    assert np.all(np.diff(side[1:]) >= 0)                                   # monotone in distance
    np.testing.assert_array_equal(np.unique(side[80:800]), base + np.arange(80, 160))   # log-spaced
    assert np.all(side[800:] == base + 159)                                 # saturates at max_distance
  full = rel_pos_bias.relative_position_buckets(50, 50, 320, 800)
  for d in range(-49, 50):                                                  # Toeplitz: key − query only
    assert len(np.unique(np.diagonal(full, d))) == 1


def test_bias_gate_matches_the_formula():
  x = np.random.default_rng(0).standard_normal((2, 5, 12)).astype(np.float32)
  gate = rel_pos_bias.BiasGate(num_heads=3)
  params = {"linear": {"kernel": np.random.default_rng(1).standard_normal((4, 8)).astype(np.float32),
                       "bias": np.linspace(-1, 1, 8).astype(np.float32)},
            "const": np.array([0.5, 1.0, 2.0], np.float32)}
  got = np.asarray(gate.apply({"params": params}, x))
  assert got.shape == (2, 3, 5, 1)
  proj = x.reshape(2, 5, 3, 4) @ params["linear"]["kernel"] + params["linear"]["bias"]   # [B, F, H, 8]
  sig = 1 / (1 + np.exp(-np.stack([proj[..., :4].sum(-1), proj[..., 4:].sum(-1)], -1)))
  want = sig[..., 0] * (sig[..., 1] * params["const"] - 1) + 2                          # [B, F, H]
  np.testing.assert_allclose(got[..., 0], want.transpose(0, 2, 1), rtol=1e-5)


def test_attention_bias_is_added_to_the_scaled_logits():
  """An additive bias of −1e9 on every key but k makes each query copy v_k."""
  x = jnp.asarray(np.random.default_rng(0).standard_normal((1, 6, 8)), jnp.float32)
  mask = jnp.ones((1, 6), bool)
  attention = transformer.SelfAttention(num_heads=2)
  params = nn.unbox(attention.init(jax.random.PRNGKey(0), x, mask))["params"]
  bias = jnp.full((1, 2, 6, 6), -1e9).at[..., 4].set(0.0)
  out = attention.apply({"params": params}, x, mask, bias=bias)
  v = x @ params["v_proj"]["kernel"].reshape(8, 8) + params["v_proj"]["bias"].reshape(8)
  want = v[:, 4] @ params["out_proj"]["kernel"].reshape(8, 8) + params["out_proj"]["bias"]
  np.testing.assert_allclose(out, jnp.broadcast_to(want[:, None], out.shape), atol=1e-5)
  assert "gru_rel_pos" not in params


def _encoder(**overrides):
  kwargs = dict(num_layers=3, num_heads=4, intermediate_size=64, pos_conv_kernel=8, pos_conv_groups=4,
                num_buckets=32, max_distance=40)
  return transformer.TransformerEncoder(transformer.EncoderConfig(**{**kwargs, **overrides}))


@functools.lru_cache(maxsize=None)
def _encoder_run(**overrides):
  model = _encoder(**overrides)
  return jax.jit(jax.value_and_grad(
      lambda p, x, m: jnp.sum(model.apply({"params": p}, x, m)[0] ** 2 * m[..., None])))


def test_scanned_stack_shares_the_bias_like_the_plain_stack():
  x = jnp.asarray(np.random.default_rng(1).standard_normal((B, 30, 32)), jnp.float32)
  mask = jnp.arange(30)[None, :] < jnp.array([[30], [21]])
  shapes = nn.unbox(jax.eval_shape(_encoder().init, jax.random.PRNGKey(0), x, mask))["params"]
  assert set(shapes["rel_attn_embed"]) == {"embedding"} and shapes["rel_attn_embed"]["embedding"].shape == (
      32, 4)
  assert "rel_attn_embed" not in shapes["layers_0"]["attention"]
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda s: jnp.asarray(0.3 * rng.standard_normal(s.shape), s.dtype), shapes)
  loss, grads = _encoder_run()(params, x, mask)
  stacked = layer_stack.loop_to_scan(params)
  scan_loss, scan_grads = _encoder_run(scan_layers=True, remat_policy="full")(stacked, x, mask)
  np.testing.assert_allclose(scan_loss, loss, rtol=1e-5)
  chex.assert_trees_all_close(scan_grads["rel_attn_embed"], grads["rel_attn_embed"], atol=1e-5)
  chex.assert_trees_all_close(jax.tree.map(lambda g: g[2], scan_grads["layers"]["attention"]["gru_rel_pos"]),
                              grads["layers_2"]["attention"]["gru_rel_pos"], atol=1e-5)
  # The shared bias reaches the last layer: its gate constant has a gradient.
  assert float(jnp.abs(grads["layers_2"]["attention"]["gru_rel_pos"]["const"]).max()) > 0


def _setup(**overrides):
  cfg, model = tiny_model(wavlm, num_classes=CLASSES, **overrides)
  return cfg, model, *audio_batch(T, 5000)


def test_pretraining_tree_and_outputs():
  cfg, model, audio, audio_mask = _setup()
  params = random_params(model, audio, audio_mask)
  assert set(params) == {"wavlm", "final_proj", "label_embs"}
  assert params["wavlm"]["encoder"]["rel_attn_embed"]["embedding"].shape == (320, cfg.num_attention_heads)
  out = jax.jit(lambda p: model.apply({"params": p}, audio, audio_mask, output_hidden_states=True))(params)
  frames = out["frame_mask"].shape[1]
  chex.assert_shape(list(out["logits"]), [(B, frames, k) for k in CLASSES])
  assert len(out["hidden_states"]) == cfg.num_hidden_layers + 1
  # The bias matters: without the table the output changes.
  zeroed = jax.tree_util.tree_map_with_path(
      lambda path, x: jnp.zeros_like(x) if "rel_attn_embed" in str(path) else x, params)
  other = jax.jit(lambda p: model.apply({"params": p}, audio, audio_mask))(zeroed)
  assert float(jnp.abs(other["last_hidden_state"] - out["last_hidden_state"]).max()) > 1e-3


def test_every_parameter_has_known_logical_axes():
  _, model, audio, audio_mask = _setup()
  assert_known_logical_axes(jax.eval_shape(model.init, jax.random.PRNGKey(0), audio, audio_mask))


def test_forward_flops_equal_the_matmuls_in_the_graph():
  cfg, model, audio, audio_mask = _setup()
  params = random_params(model, audio, audio_mask)
  assert wavlm.forward_flops(cfg, T) == pytest.approx(forward_matmul_flops(model, params, T), rel=1e-9)


@pytest.mark.parametrize("preset,total", [("base", 94.70e6), ("base_plus", 94.70e6), ("large", 316.62e6)])
def test_parameter_counts(preset, total):
  """The WavLM paper's counts (94.70M Base/Base+, 316.62M Large) include the km500 prediction heads."""
  full, _ = param_counts(wavlm, preset)
  assert full == pytest.approx(total, rel=0.001)


def test_bad_configs_name_the_field():
  for field, value in (("num_buckets", 2), ("max_bucket_distance", 10), ("feat_proj_layer_norm", False)):
    cfg = wavlm.model_config("tiny")
    cfg[field] = value
    with pytest.raises(ConfigError, match=field):
      wavlm.from_config(cfg)
  with pytest.raises(ConfigError, match="preset"):
    wavlm.model_config("huge")
