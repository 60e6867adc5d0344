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


def decode_loop(next_logits, cache, prompt, prompt_length, rngs, length: int, temperature: float = 1.0,
                top_k: int = 0, top_p: float = 0.0, token_range=None):
  """The autoregressive loop of every decoder, one `lax.fori_loop` under jit (lm1b style).

  `next_logits(i, tokens [B, length], cache) → (logits [B, V] after position i, cache)`. prompt [B, P]
  int32 (row r's first prompt_length[r] ≥ 1 tokens are forced), rngs [B] keys (row r's draws depend only
  on rngs[r]) → tokens [B, length]. `token_range` = (low, high), each [B, length] int32, restricts the token
  at position j of row b to [low[b, j], high[b, j])."""
  batch = prompt.shape[0]
  tokens = jnp.zeros([batch, length], jnp.int32).at[:, :prompt.shape[1]].set(prompt[:, :length])

  def body(i, carry):
    tokens, cache = carry
    logits, cache = next_logits(i, tokens, cache)
    if token_range is not None:
      ids = jnp.arange(logits.shape[-1])[None]
      low, high = (jax.lax.dynamic_index_in_dim(r, i + 1, axis=1) for r in token_range)
      logits = jnp.where((ids >= low) & (ids < high), logits, NEG_INF)
    keys = jax.vmap(lambda key: jax.random.fold_in(key, i))(rngs)
    sampled = sample(keys, logits, temperature, top_k, top_p)
    forced = jax.lax.dynamic_index_in_dim(tokens, i + 1, axis=1, keepdims=False)
    chosen = jnp.where(i + 1 < prompt_length, forced, sampled)
    return jax.lax.dynamic_update_index_in_dim(tokens, chosen, i + 1, axis=1), cache

  tokens, _ = jax.lax.fori_loop(0, length - 1, body, (tokens, cache))
  return tokens
