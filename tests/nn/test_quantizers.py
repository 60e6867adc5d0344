"""Gumbel product quantizer: eval = argmax, straight-through gradients, perplexities."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from speechjax.nn import quantizers

pytestmark = pytest.mark.fast_compile

G, V, DIM, C = 2, 8, 12, 6


MODULE = quantizers.GumbelVectorQuantizer(G, V, DIM)
_eval = jax.jit(lambda params, x, mask: MODULE.apply({"params": params}, x, mask))


@functools.lru_cache(maxsize=None)
def _setup():
  x = jnp.asarray(np.random.default_rng(0).standard_normal((3, 5, C)), jnp.float32)
  mask = jnp.ones((3, 5), bool)
  params = nn.unbox(jax.jit(MODULE.init)(jax.random.PRNGKey(1), x, mask))["params"]
  return MODULE, params, x, mask


def _logits(params, x):
  proj = params["weight_proj"]
  return (x @ proj["kernel"] + proj["bias"]).reshape(*x.shape[:-1], G, V)


def test_eval_takes_the_argmax_codeword():
  _, params, x, mask = _setup()
  out = _eval(params, x, mask)
  codes = np.asarray(jnp.argmax(_logits(params, x), -1))
  np.testing.assert_array_equal(out["codes"], codes)
  expected = np.concatenate([np.asarray(params["codevectors"])[g][codes[..., g]] for g in range(G)], -1)
  np.testing.assert_allclose(out["quantized"], expected, rtol=1e-6)
  chex.assert_shape([out["quantized"], out["codes"]], [(3, 5, DIM), (3, 5, G)])
  assert out["codes"].dtype == jnp.int32
  book = np.asarray(params["codevectors"])
  assert 0 <= book.min() and book.max() <= 1 and book.std() > 0.2   # U(0, 1) init


def test_training_samples_hard_codes_with_straight_through_gradient():
  module, params, x, mask = _setup()
  weights = np.random.default_rng(2).standard_normal((3, 5, DIM)).astype(np.float32)

  def loss(p, key):
    out = module.apply({"params": p}, x, mask, 1.0, True, rngs={"gumbel": key})
    return jnp.sum(out["quantized"] * weights), out

  grad_fn = jax.jit(jax.grad(loss, has_aux=True))
  grads, out = grad_fn(params, jax.random.PRNGKey(3))
  codebook = np.asarray(params["codevectors"])
  picked = np.concatenate([codebook[g][np.asarray(out["codes"])[..., g]] for g in range(G)], -1)
  np.testing.assert_allclose(out["quantized"], picked, rtol=1e-6)   # forward: exact codewords
  assert float(jnp.abs(grads["weight_proj"]["kernel"]).max()) > 1e-4  # gradient reaches the logits
  _, other = grad_fn(params, jax.random.PRNGKey(4))
  assert (np.asarray(other["codes"]) != np.asarray(out["codes"])).any()   # sampled, not argmax


def test_perplexities_range_and_selected_frames():
  _, params, x, mask = _setup()
  out = _eval(params, x, mask)
  for name in ("prob_perplexity", "code_perplexity"):
    assert 1.0 - 1e-5 <= float(out[name]) <= G * V + 1e-5, name
  flat = {**params, "weight_proj": jax.tree.map(jnp.zeros_like, params["weight_proj"])}
  uniform = _eval(flat, x, mask)
  np.testing.assert_allclose(uniform["prob_perplexity"], G * V, rtol=1e-5)   # softmax uniform
  np.testing.assert_allclose(uniform["code_perplexity"], G, rtol=1e-5)       # one code per group
  single = _eval(params, x, jnp.zeros_like(mask).at[0, 0].set(True))
  np.testing.assert_allclose(single["code_perplexity"], G, rtol=1e-5)        # only one frame counted
  assert float(out["code_perplexity"]) > G + 0.5
