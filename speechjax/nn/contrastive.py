"""Negative sampling and contrastive logits of wav2vec 2.0 (fairseq `sample_negatives`, `compute_preds`).

Negatives for a masked frame are drawn uniformly from the *other* masked frames of the same utterance:
draw j in [0, n−2] and add 1 when j ≥ the positive's own rank, so the positive is never drawn and the rest
stay uniform. Everything has static shapes: ranks come from a cumulative sum over the mask.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def sample_negatives(rng, mask, num_negatives: int):
  """Frame indices of negatives for every frame.

  mask: [B, F] bool, the masked frames (positives and the pool of negatives).
  Returns (indices [B, F, K] int32 into the frame axis, valid [B, F] bool): valid rows are masked frames whose
  utterance has at least two masked frames. Rows of unmasked frames hold arbitrary indices.
  """
  count = mask.sum(-1, keepdims=True)                                   # [B, 1]
  rank = jnp.cumsum(mask, -1) - 1                                       # [B, F] rank among masked frames
  order = jnp.argsort(~mask, axis=-1, stable=True)                      # masked frames first, in order
  u = jax.random.uniform(rng, mask.shape + (num_negatives,))
  draw = jnp.floor(u * jnp.maximum(count - 1, 1)[..., None]).astype(jnp.int32)   # [0, n-2]
  draw = draw + (draw >= rank[..., None])                               # skip the positive
  draw = jnp.minimum(draw, jnp.maximum(count - 1, 0)[..., None])
  indices = jnp.take_along_axis(order[:, None, :], draw, axis=-1)       # [B, F, K]
  return indices.astype(jnp.int32), mask & (count >= 2)


def contrastive_logits(context, targets, negatives, same_as_positive, temperature: float):
  """Cosine-similarity logits [positive, negatives] / temperature.

  context, targets: [B, F, D] (c_t and q_t); negatives: [B, F, K] frame indices into `targets`;
  same_as_positive: [B, F, F] bool, True where two frames' targets are identical (those negatives get −inf,
  as in fairseq). Returns logits [B, F, 1 + K] float32; the positive is class 0.
  """
  c = context.astype(jnp.float32)
  q = targets.astype(jnp.float32)
  c = c / jnp.maximum(jnp.linalg.norm(c, axis=-1, keepdims=True), 1e-8)
  q = q / jnp.maximum(jnp.linalg.norm(q, axis=-1, keepdims=True), 1e-8)
  sim = jnp.einsum("btd,bsd->bts", c, q)                                # [B, F, F]: every pair, cheap
  positive = jnp.einsum("btd,btd->bt", c, q)[..., None]
  negative = jnp.take_along_axis(sim, negatives, axis=-1)
  duplicate = jnp.take_along_axis(same_as_positive, negatives, axis=-1)
  negative = jnp.where(duplicate, -jnp.inf, negative)
  return jnp.concatenate([positive, negative], -1) / temperature
