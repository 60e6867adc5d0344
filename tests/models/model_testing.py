"""Helpers shared by the model tests: padded audio batches, tiny models, params without XLA compiles,
parameter counts, matmul FLOPs."""
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from speechjax.launch import hlo_stats
from speechjax.parallel.mesh import DEFAULT_RULES


def audio_batch(num_samples: int, real: int, zero_padding: bool = True):
  """(audio [2, num_samples] float32, audio_mask): 0.3 · N(0, 1) (numpy seed 0); the second utterance is `real`
  samples long, its padding zeroed unless `zero_padding=False`."""
  audio = jnp.asarray(0.3 * np.random.default_rng(0).standard_normal((2, num_samples)), jnp.float32)
  audio_mask = jnp.arange(num_samples)[None, :] < jnp.array([[num_samples], [real]])
  return (jnp.where(audio_mask, audio, 0.0) if zero_padding else audio), audio_mask


def tiny_model(family, **overrides):
  """(config, model) of `family`'s tiny preset with `overrides` (`family.from_config`, heads included)."""
  cfg = family.model_config("tiny")
  cfg.update(overrides)
  return cfg, family.from_config(cfg)


def random_params(model, *inputs, seed: int = 0):
  """Params with the shapes of `model.init(*inputs)`, filled from numpy: norm scales 1 + N(0, 0.1²), all
  else N(0, 0.1²) (U(0, 1) for the mask embedding). Jitting the real init costs far more compile time."""
  shapes = nn.unbox(jax.eval_shape(model.init, jax.random.PRNGKey(0), *inputs))["params"]
  rng = np.random.default_rng(seed)

  def fill(path, x):
    name = path[-1].key
    if name == "masked_spec_embed":
      return jnp.asarray(rng.uniform(size=x.shape), x.dtype)
    return jnp.asarray((name == "scale") + 0.1 * rng.standard_normal(x.shape), x.dtype)
  return jax.tree_util.tree_map_with_path(fill, shapes)


def assert_known_logical_axes(boxed) -> list:
  """Every leaf of a boxed params tree (`jax.eval_shape(model.init, ...)`) is `nn.LogicallyPartitioned`, one
  logical axis name per dimension, each known to the mesh rules: the leaves."""
  names = {name for name, _ in DEFAULT_RULES}
  leaves = jax.tree.leaves(boxed, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))
  for leaf in leaves:
    assert isinstance(leaf, nn.LogicallyPartitioned), leaf
    assert len(leaf.names) == leaf.value.ndim and set(leaf.names) - {None} <= names, leaf.names
  return leaves


def count_params(family, cfg, heads: bool = True) -> int:
  """Parameters of `family.from_config(cfg, heads)` from `jax.eval_shape` (nothing is allocated)."""
  cfg = cfg.copy_and_resolve_references()
  cfg.scan_layers = True   # same count, much faster to trace
  model = family.from_config(cfg, heads)
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 400)), jnp.ones((1, 400), bool))
  return sum(math.prod(x.shape) for x in jax.tree.leaves(nn.unbox(shapes)))


def param_counts(family, preset: str) -> tuple[int, int]:
  """Parameters of `family`'s `preset` with its pretraining heads and without (encoder only), printed."""
  cfg = family.model_config(preset)
  full, bare = count_params(family, cfg), count_params(family, cfg, heads=False)
  print(f"{family.__name__.rsplit('.', 1)[-1]} {preset}: {full / 1e6:.2f}M with pretraining heads, "
        f"{bare / 1e6:.2f}M encoder")
  return full, bare


def forward_matmul_flops(model, params, num_samples: int) -> float:
  """Matmul FLOPs of one eval forward pass over one utterance of `num_samples` samples."""
  jaxpr = jax.make_jaxpr(lambda p, a, m: model.apply({"params": p}, a, m))(
      params, jnp.zeros((1, num_samples)), jnp.ones((1, num_samples), bool))
  return hlo_stats.count_flops(jaxpr.jaxpr)   # scan bodies times their length
