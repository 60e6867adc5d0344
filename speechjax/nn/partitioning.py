"""Initialisers that carry logical axis names, and the gathered conv kernel (docs/design.md, Contracts:
Sharding)."""
import jax
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


def gathered_kernel(kernel):
  """A conv kernel [*window, C_in, C_out] as the conv uses it: stored with C_in over `fsdp` (`conv_in`),
  all-gathered here (its gradient goes back to the shard), only C_out (`conv_out`) left sharded. Left
  sharded over its input channels, XLA's SPMD partitioner (jaxlib 0.10.2, CPU) computed wrong input
  gradients for such convs on a (2, 2, 2) mesh; gathered, the conv is partitioned over the batch only
  (tests/nn/test_sharding.py)."""
  return nn.with_logical_constraint(kernel, (None,) * (kernel.ndim - 1) + ("conv_out",))


def gathered_conv(lhs, rhs, *args, **kwargs):
  """`jax.lax.conv_general_dilated` on the gathered kernel: nn.Conv's `conv_general_dilated` (kernels in
  flax's [*window, C_in, C_out] layout)."""
  return jax.lax.conv_general_dilated(lhs, gathered_kernel(rhs), *args, **kwargs)
