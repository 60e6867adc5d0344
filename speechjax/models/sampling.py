"""Next-token sampling from logits: temperature, top-k and nucleus (top-p) filtering, one key per row.

All filters are static-shape masks over the vocabulary, so they run inside jitted decoding loops.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

NEG_INF = -1e30


def top_k_mask(logits, k: int):
  """bool [B, V]: the k highest logits of each row (exactly k, ties broken by index); all if k <= 0."""
  if k <= 0 or k >= logits.shape[-1]:
    return jnp.ones(logits.shape, bool)
  _, index = jax.lax.top_k(logits, k)
  return jnp.zeros(logits.shape, bool).at[jnp.arange(logits.shape[0])[:, None], index].set(True)


def top_p_mask(logits, p: float):
  """bool [B, V]: the smallest set of highest-probability tokens whose mass reaches p (the top token
  always kept); all if p >= 1 or p <= 0."""
  if p <= 0 or p >= 1:
    return jnp.ones(logits.shape, bool)
  order = jnp.argsort(-logits, axis=-1)
  probs = jax.nn.softmax(jnp.take_along_axis(logits, order, axis=-1), axis=-1)
  mass_before = jnp.cumsum(probs, axis=-1) - probs
  keep_sorted = mass_before < p
  return jnp.zeros(logits.shape, bool).at[jnp.arange(logits.shape[0])[:, None], order].set(keep_sorted)


def filter_logits(logits, temperature: float = 1.0, top_k: int = 0, top_p: float = 0.0):
  """logits [B, V] → float32 logits / temperature with the tokens outside top-k, then outside top-p of
  what is left, at −1e30."""
  logits = logits.astype(jnp.float32) / temperature
  logits = jnp.where(top_k_mask(logits, top_k), logits, NEG_INF)
  return jnp.where(top_p_mask(logits, top_p), logits, NEG_INF)


def sample(rngs, logits, temperature: float = 1.0, top_k: int = 0, top_p: float = 0.0):
  """One token per row: `rngs` [B] keys, logits [B, V] → int32 [B]. temperature 0 = greedy (argmax)."""
  if temperature == 0:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  filtered = filter_logits(logits, temperature, top_k, top_p)
  return jax.vmap(jax.random.categorical)(rngs, filtered).astype(jnp.int32)
