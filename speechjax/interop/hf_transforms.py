"""Transforms between our parameter layouts and torch's for `speechjax.interop.hf`: each is a pair
(to_hf(ours), from_hf(theirs, our_shape)); `dense` and `norm` give the entries of a whole module."""
from __future__ import annotations

import math


def flat():
  return (lambda a: a.reshape(-1), lambda w, shape: w.reshape(shape))


def linear(num_in: int):
  """Our kernel [*in_dims, *out_dims] (num_in input dims) ↔ torch weight [out, in]."""
  return (lambda a: a.reshape(math.prod(a.shape[:num_in]), -1).T, lambda w, shape: w.T.reshape(shape))


def conv():
  """Flax conv kernel [K, C_in, C_out] ↔ torch [C_out, C_in, K]."""
  return (lambda a: a.transpose(2, 1, 0), lambda w, shape: w.transpose(2, 1, 0))


def same():
  return (lambda a: a, lambda w, shape: w.reshape(shape))


def shaped(hf_shape):
  """A reshape to torch's shape given as a function of our array (weight_g [1,1,K], codevectors)."""
  return (lambda a: a.reshape(hf_shape(a)), lambda w, shape: w.reshape(shape))


def dense(ours: tuple, theirs: str, num_in: int = 1) -> list:
  return [(ours + ("kernel",), f"{theirs}.weight", linear(num_in)),
          (ours + ("bias",), f"{theirs}.bias", flat())]


def norm(ours: tuple, theirs: str) -> list:
  return [(ours + ("scale",), f"{theirs}.weight", flat()), (ours + ("bias",), f"{theirs}.bias", flat())]
