"""Gradient scaling (fairseq `GradMultiply`): identity forward, gradient multiplied by a constant."""
from __future__ import annotations

from functools import partial

import jax


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def scale_gradient(x, scale: float):
  """Returns `x` unchanged; the gradient flowing back through it is multiplied by `scale`.

  wav2vec 2.0 Base uses scale 0.1 on the conv feature encoder (`feature_grad_mult`); 0 freezes it.
  """
  return x


def _forward(x, scale):
  return x, None


def _backward(scale, _, g):
  return (jax.tree.map(lambda t: t * scale, g),)


scale_gradient.defvjp(_forward, _backward)
