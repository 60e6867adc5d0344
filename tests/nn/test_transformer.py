"""Transformer encoder: scan/remat equal the plain stack, padding isolation, LayerDrop, positional conv."""
import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from speechjax.nn import grad, layer_stack, pos_conv, transformer

pytestmark = pytest.mark.fast_compile

B, F, D, LAYERS = 2, 12, 32, 2


def _encoder(**overrides):
  kwargs = dict(num_layers=LAYERS, num_heads=4, intermediate_size=64, stable=False, pos_conv_kernel=8,
                pos_conv_groups=4)
  return transformer.TransformerEncoder(transformer.EncoderConfig(**{**kwargs, **overrides}))


def _inputs():
  x = jnp.asarray(np.random.default_rng(1).standard_normal((B, F, D)), jnp.float32)
  mask = jnp.arange(F)[None, :] < jnp.array([[F], [7]])
  return x, mask


@functools.lru_cache(maxsize=None)
def _loss_and_grad(**overrides):
  """jitted (params, x, mask) → ((loss, (last, hidden_states)), grads) in eval mode."""
  model = _encoder(**overrides)
  weights = np.random.default_rng(2).standard_normal((B, F, D)).astype(np.float32)

  def loss(params, x, mask):
    last, hidden = model.apply({"params": params}, x, mask, output_hidden_states=True)
    return jnp.sum(last * weights * mask[..., None]), (last, hidden)
  return jax.jit(jax.value_and_grad(loss, has_aux=True))


@functools.lru_cache(maxsize=None)
def _plain_params():
  """Unscanned params of the init's shapes, N(0, 0.2²) from numpy (cheaper than compiling the init)."""
  shapes = jax.eval_shape(_encoder().init, jax.random.PRNGKey(0), *_inputs())
  rng = np.random.default_rng(0)
  return jax.tree.map(lambda x: jnp.asarray(0.2 * rng.standard_normal(x.shape), x.dtype),
                      nn.unbox(shapes)["params"])


@pytest.mark.parametrize("variant", [dict(scan_layers=True, remat_policy="full"), dict(remat_policy="dots")])
def test_scan_and_remat_equal_the_plain_stack(variant):
  params = _plain_params()
  x, mask = _inputs()
  (ref_loss, (ref_last, ref_hidden)), ref_grads = _loss_and_grad()(params, x, mask)
  scan = variant.get("scan_layers", False)
  (loss, (last, hidden)), grads = _loss_and_grad(**variant)(layer_stack.loop_to_scan(params) if scan else params,
                                                            x, mask)
  np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
  np.testing.assert_allclose(last, ref_last, atol=1e-5)
  assert len(hidden) == len(ref_hidden) == LAYERS + 1
  for h, r in zip(hidden, ref_hidden):
    np.testing.assert_allclose(h, r, atol=1e-5)
  grads = layer_stack.scan_to_loop(grads) if scan else grads
  chex.assert_trees_all_close(grads, ref_grads, atol=1e-5)
  assert float(jnp.abs(grads["layers_0"]["attention"]["q_proj"]["kernel"]).max()) > 0


def test_padded_frames_do_not_change_real_frames():
  params = _plain_params()
  x, mask = _inputs()
  (_, (last, hidden)), _ = _loss_and_grad()(params, x, mask)
  noisy = jnp.where(mask[..., None], x, 100.0 * np.random.default_rng(5).standard_normal(x.shape))
  (_, (last2, _)), _ = _loss_and_grad()(params, noisy, mask)
  np.testing.assert_allclose(last2[1, :7], last[1, :7], atol=1e-6)
  np.testing.assert_array_equal(last2[0], last[0])
  np.testing.assert_array_equal(hidden[-1], last)
  chex.assert_shape(hidden, (B, F, D))


def test_layerdrop_one_skips_every_layer_in_training_only():
  x, mask = _inputs()
  model = _encoder(layerdrop=1.0)
  params = _plain_params()
  last, hidden = jax.jit(lambda p: model.apply({"params": p}, x, mask, True, True,
                                               rngs={"dropout": jax.random.PRNGKey(3)}))(params)
  np.testing.assert_array_equal(last, hidden[0])   # post-LN: nothing after the input LN
  (_, (last_eval, hidden_eval)), _ = _loss_and_grad()(params, x, mask)   # eval: layerdrop off
  np.testing.assert_allclose(hidden_eval[0], hidden[0], atol=1e-6)
  assert float(jnp.abs(last_eval - hidden_eval[0]).max()) > 0.1


def _reference_pos_conv(x, v, g, bias, groups):
  """Direct numpy: torch weight_norm(dim=2) on a grouped conv with padding K//2, last frame trimmed."""
  v, g = np.asarray(v, np.float64), np.asarray(g, np.float64)
  weight = v * g[:, None, None] / np.sqrt((v ** 2).sum(axis=(1, 2), keepdims=True))   # [K, D/G, D]
  k, per_group, d = weight.shape
  pad = np.pad(np.asarray(x, np.float64), ((0, 0), (k // 2, k // 2), (0, 0)))
  out = np.zeros((x.shape[0], x.shape[1], d))
  for o in range(d):
    group = o // (d // groups)
    inputs = pad[:, :, group * per_group:(group + 1) * per_group]
    for t in range(x.shape[1]):
      out[:, t, o] = np.einsum("bki,ki->b", inputs[:, t:t + k], weight[:, :, o]) + bias[o]
  return 0.5 * out * (1 + np.vectorize(math.erf)(out / np.sqrt(2)))


def test_positional_conv_weight_norm_and_same_padding():
  x = np.random.default_rng(0).standard_normal((2, 9, 8)).astype(np.float32)
  module = pos_conv.PositionalConvEmbedding(kernel_size=4, groups=2)
  params = nn.unbox(jax.jit(module.init)(jax.random.PRNGKey(1), x))["params"]
  chex.assert_shape([params["weight_v"], params["weight_g"]], [(4, 4, 8), (4,)])
  np.testing.assert_allclose(pos_conv.weight_norm(params["weight_v"], params["weight_g"]),
                             params["weight_v"], rtol=1e-6)   # g starts at |v|: weight = v
  params = {**params, "weight_g": params["weight_g"] * jnp.array([0.5, 1.0, 2.0, 3.0]),
            "bias": jnp.arange(8.0) / 8}
  expected = _reference_pos_conv(x, params["weight_v"], params["weight_g"], params["bias"], 2)
  np.testing.assert_allclose(jax.jit(module.apply)({"params": params}, x), expected, atol=1e-5)


@pytest.mark.parametrize("kernel, taps", [(20, None), (20, 3), (16, None), (5, 1)])
def test_grouped_conv_blocks_equal_xla_grouped_conv(kernel, taps):
  """Scan over tap blocks (kernel > ONE_BLOCK_MAX_TAPS, or given; 3 leaves a zero-padded last block)
  and one block give XLA's grouped conv, values and gradients."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((2, 11, 8)), jnp.float32)
  w = jnp.asarray(rng.standard_normal((kernel, 2, 8)), jnp.float32)

  def xla(x, w):
    pad = (kernel // 2, (kernel - 1) // 2)
    return jax.lax.conv_general_dilated(x, w, (1,), [pad], dimension_numbers=("NWC", "WIO", "NWC"),
                                        feature_group_count=4, precision="highest")

  def ours(x, w):
    return pos_conv.grouped_conv(x, w, 4, taps)
  np.testing.assert_allclose(ours(x, w), xla(x, w), rtol=1e-5, atol=1e-5)
  probe = jnp.asarray(rng.standard_normal((2, 11, 8)), jnp.float32)
  for a, b in zip(jax.grad(lambda *a: jnp.sum(ours(*a) * probe), (0, 1))(x, w),
                  jax.grad(lambda *a: jnp.sum(xla(*a) * probe), (0, 1))(x, w)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_scale_gradient_scales_only_the_gradient():
  x = jnp.arange(3.0)
  np.testing.assert_array_equal(grad.scale_gradient(x, 0.1), x)
  np.testing.assert_allclose(jax.grad(lambda v: jnp.sum(grad.scale_gradient(v, 0.1) ** 2))(x), 0.2 * x)


def test_bad_remat_policy_is_named():
  x, mask = _inputs()
  with pytest.raises(ValueError, match="remat_policy"):
    jax.eval_shape(_encoder(remat_policy="most").init, jax.random.PRNGKey(0), x, mask)
