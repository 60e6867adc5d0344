"""Initialisers that carry logical axis names (docs/design.md, Contracts: Sharding)."""
from flax import linen as nn


def logical(init, *axes):
  """`init` whose parameter is annotated with logical `axes` (one name or None per dimension)."""
  return nn.with_logical_partitioning(init, axes)


def norm_inits(axis: str) -> dict:
  """scale/bias initialisers for LayerNorm / GroupNorm over a feature axis named `axis`."""
  return {"scale_init": logical(nn.initializers.ones, axis),
          "bias_init": logical(nn.initializers.zeros, axis)}


def dense_inits(in_axis, out_axis, stddev: float = 0.02) -> dict:
  """kernel N(0, stddev) (BERT init, as fairseq's init_bert_params) and zero bias."""
  return {"kernel_init": logical(nn.initializers.normal(stddev), in_axis, out_axis),
          "bias_init": logical(nn.initializers.zeros, out_axis)}
