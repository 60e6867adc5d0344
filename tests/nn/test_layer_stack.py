"""Layer layouts: loop (`layers_<i>`) ↔ scan (`layers` [L, ...]) on real models, and clear errors."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from speechjax.models import hubert, token_lm
from speechjax.nn import layer_stack

pytestmark = pytest.mark.fast_compile

B, T = 2, 4000


def _layer(seed, width=3):
  rng = np.random.default_rng(seed)
  return {"attention": {"kernel": rng.standard_normal((2, width)).astype(np.float32)},
          "norm": {"scale": rng.standard_normal(width).astype(np.float32)}}


def _loop_tree(num_layers=3):
  return {"embed": np.ones(4, np.float32),
          "encoder": {"norm": np.zeros(3, np.float32),
                      **{f"layers_{i}": _layer(i) for i in range(num_layers)}}}


def _shapes(tree):
  return jax.tree.map(lambda x: (np.shape(x), x.dtype), tree)


def test_round_trips_keep_values_and_array_kinds():
  loop = _loop_tree()
  scan = layer_stack.loop_to_scan(loop)
  assert set(scan["encoder"]) == {"norm", "layers"}
  assert scan["encoder"]["layers"]["attention"]["kernel"].shape == (3, 2, 3)
  assert isinstance(scan["encoder"]["layers"]["norm"]["scale"], np.ndarray)
  np.testing.assert_array_equal(scan["encoder"]["layers"]["norm"]["scale"][1],
                                loop["encoder"]["layers_1"]["norm"]["scale"])
  chex.assert_trees_all_equal(layer_stack.scan_to_loop(scan), loop)
  chex.assert_trees_all_equal(layer_stack.scan_to_loop(loop), loop)    # no stacked layers: unchanged
  chex.assert_trees_all_equal(layer_stack.loop_to_scan(scan), scan)
  on_device = layer_stack.loop_to_scan(jax.tree.map(jnp.asarray, loop))
  assert isinstance(on_device["encoder"]["layers"]["attention"]["kernel"], jax.Array)
  chex.assert_trees_all_equal(layer_stack.scan_to_loop(on_device), jax.tree.map(jnp.asarray, loop))


def test_match_layout_converts_each_stack_to_the_target_layout():
  loop = _loop_tree()
  scan = layer_stack.loop_to_scan(loop)
  abstract_scan = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), scan)
  chex.assert_trees_all_equal(layer_stack.match_layout(loop, abstract_scan), scan)
  chex.assert_trees_all_equal(layer_stack.match_layout(scan, loop), loop)
  chex.assert_trees_all_equal(layer_stack.match_layout(scan, scan), scan)
  # Two stacks, one of each layout in the target; what the target lacks is left alone.
  mixed = {"a": loop["encoder"], "b": loop["encoder"], "extra": loop["encoder"]}
  like = {"a": scan["encoder"], "b": loop["encoder"]}
  out = layer_stack.match_layout(mixed, like)
  assert "layers" in out["a"] and "layers_0" in out["b"] and "layers_0" in out["extra"]


@pytest.mark.parametrize("break_it, message", [
    (lambda enc: enc.pop("layers_1"),
     r"^encoder: layers must be layers_0..layers_<L-1>: .*missing \['layers_1'\]"),
    (lambda enc: enc.pop("layers_0"), r"missing \['layers_0'\]"),
    (lambda enc: enc.update(layers_2=_layer(2, width=5)),
     r"encoder/layers_2/attention/kernel: shape \(2, 5\) float32, layers_0 has \(2, 3\)"),
    (lambda enc: enc["layers_1"].pop("norm"),
     r"encoder/layers_1: params differ from encoder/layers_0: \['norm/scale'\]"),
    (lambda enc: enc.update(layers_1={**_layer(1), "norm": {"scale": np.zeros(3, np.float16)}}),
     "encoder/layers_1/norm/scale: shape .3,. float16, layers_0 has .3,. float32"),
    (lambda enc: enc.update(layers={}), "mixed layouts"),
])
def test_broken_loop_layouts_are_named(break_it, message):
  tree = _loop_tree()
  break_it(tree["encoder"])
  with pytest.raises(ValueError, match=message):
    layer_stack.loop_to_scan(tree)


def test_broken_scan_layouts_are_named():
  scan = layer_stack.loop_to_scan(_loop_tree())
  scan["encoder"]["layers"]["norm"]["scale"] = np.zeros(3, np.float32)[:2]
  with pytest.raises(ValueError, match=r"encoder/layers: stacked params need one shared leading layer axis"):
    layer_stack.scan_to_loop(scan)
  scan = layer_stack.loop_to_scan(_loop_tree())
  scan["encoder"]["layers_0"] = _layer(0)
  with pytest.raises(ValueError, match="mixed layouts"):
    layer_stack.scan_to_loop(scan)


def _hubert(scan_layers):
  cfg = hubert.model_config("tiny")
  cfg.scan_layers = scan_layers
  return hubert.from_config(cfg)


@functools.lru_cache(maxsize=None)
def _hubert_run(scan_layers):
  model = _hubert(scan_layers)
  return jax.jit(lambda p, audio, mask: model.apply({"params": p}, audio, mask, output_hidden_states=True))


def _inputs():
  audio = jnp.asarray(0.3 * np.random.default_rng(0).standard_normal((B, T)), jnp.float32)
  return audio, jnp.arange(T)[None, :] < jnp.array([[T], [3000]])


def _random_params(model, *inputs):
  rng = np.random.default_rng(0)
  shapes = nn.unbox(jax.eval_shape(model.init, jax.random.PRNGKey(0), *inputs))["params"]
  return jax.tree.map(lambda s: jnp.asarray(0.1 * rng.standard_normal(s.shape), s.dtype), shapes), shapes


def test_hubert_gives_the_same_outputs_in_either_layout():
  scan, scan_shapes = _random_params(_hubert(True), *_inputs())
  _, loop_shapes = _random_params(_hubert(False), *_inputs())
  loop = layer_stack.scan_to_loop(scan)
  assert "layers_1" in loop["hubert"]["encoder"] and "layers" not in loop["hubert"]["encoder"]
  assert _shapes(loop) == _shapes(loop_shapes)
  chex.assert_trees_all_equal(layer_stack.loop_to_scan(loop), scan)
  chex.assert_trees_all_equal(layer_stack.match_layout(scan, loop_shapes), loop)
  chex.assert_trees_all_equal(layer_stack.match_layout(loop, scan_shapes), scan)
  want, got = _hubert_run(True)(scan, *_inputs()), _hubert_run(False)(loop, *_inputs())
  np.testing.assert_allclose(got["last_hidden_state"], want["last_hidden_state"], atol=1e-5)
  np.testing.assert_allclose(got["logits"][0], want["logits"][0], atol=1e-5)
  assert len(got["hidden_states"]) == len(want["hidden_states"])
  for g, w in zip(got["hidden_states"], want["hidden_states"]):
    np.testing.assert_allclose(g, w, atol=1e-5)


def test_token_lm_stack_shapes_convert_both_ways():
  tokens = jax.ShapeDtypeStruct((1, 8), jnp.int32)
  shapes = {}
  for scan in (True, False):
    cfg = token_lm.model_config("tiny")
    cfg.scan_layers = scan
    model = token_lm.from_config(cfg)
    shapes[scan] = nn.unbox(jax.eval_shape(model.init, jax.random.PRNGKey(0), tokens))["params"]
  zeros = {scan: jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes[scan]) for scan in shapes}
  assert _shapes(layer_stack.scan_to_loop(zeros[True])) == _shapes(shapes[False])
  assert _shapes(layer_stack.loop_to_scan(zeros[False])) == _shapes(shapes[True])
