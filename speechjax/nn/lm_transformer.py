"""Pre-LN transformer stack for token models: causal (token LMs, with a KV cache) or bidirectional
(SoundStorm), with optional rotary position embeddings.

    layer: y = x + attn(LN(x)); y + ffn(LN(y));   stack: layers → LN

Positions are passed in explicitly (`positions` [L] int32, shared by the batch), so a decoding step at
position i and a full pass agree on the rotary phases and the causal mask.

KV cache (flax lm1b/wmt pattern): with `decode=True` every attention layer keeps `cached_key` and
`cached_value` [B, S, H, D/H] in the `cache` collection. `model.init` with a full-length input [B, S]
allocates them (S slots); each later call writes its L ≥ 1 new keys/values at `positions[0]` and attends to all
cached slots at positions ≤ its own (empty slots lie in the future, so the causal mask hides them).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import linen as nn

from speechjax.nn.attention import dropout_weights
from speechjax.nn.layer_stack import run_layers
from speechjax.nn.transformer import ACTIVATION, FeedForward, HeadDense, layer_norm


@dataclasses.dataclass(frozen=True)
class StackConfig:
  """Everything a `Stack` and its layers need (hashable: a static module attribute)."""
  num_layers: int
  num_heads: int
  intermediate_size: int
  causal: bool = True
  rope: bool = True
  decode: bool = False              # keep a KV cache (see the module docstring)
  dropout: float = 0.0
  attention_dropout: float = 0.0
  eps: float = 1e-5
  scan_layers: bool = False
  remat_policy: str = "none"
  dtype: jnp.dtype = jnp.float32


def rotary(x, positions, base: float = 10000.0):
  """Rotary position embedding (rotate-half form) of x [B, L, H, Dh] at `positions` [L]."""
  half = x.shape[-1] // 2
  freqs = base ** (-jnp.arange(half, dtype=jnp.float32) / half)
  angles = positions.astype(jnp.float32)[:, None] * freqs[None, :]          # [L, Dh/2]
  cos, sin = jnp.cos(angles)[None, :, None, :], jnp.sin(angles)[None, :, None, :]
  x1, x2 = x[..., :half].astype(jnp.float32), x[..., half:].astype(jnp.float32)
  return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)


class Attention(nn.Module):
  """Multi-head self-attention. `x` [B, L, D], `positions` [L], key padding `mask` [B, L] bool or None
  → [B, L, D]. Causal when `causal`; cached (see module docstring) when `decode`."""
  num_heads: int
  causal: bool = True
  rope: bool = True
  decode: bool = False
  dropout: float = 0.0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, positions, mask=None, train: bool = False):
    features = x.shape[-1]
    if features % self.num_heads:
      raise ValueError(f"hidden size {features} is not divisible by num_heads={self.num_heads}")
    head_dim = features // self.num_heads

    def proj(name):
      return HeadDense((features, self.num_heads, head_dim), ("embed", "heads", "kv"), "btd,dhk->bthk",
                       self.dtype, name=name)(x)

    q, k, v = proj("q_proj"), proj("k_proj"), proj("v_proj")
    if self.rope:
      q, k = rotary(q, positions), rotary(k, positions)
    key_positions = positions
    if self.decode:
      k, v, key_positions = self._cached(k, v, positions)
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32) * head_dim ** -0.5
    allowed = jnp.ones([1, 1, 1, k.shape[1]], bool)
    if self.causal:
      allowed = allowed & (key_positions[None, :] <= positions[:, None])[None, None]
    if mask is not None:
      allowed = allowed & mask[:, None, None, :]
    weights = jax.nn.softmax(jnp.where(allowed, logits, jnp.finfo(jnp.float32).min), axis=-1)
    if train and self.dropout > 0:
      weights = dropout_weights(weights, self.dropout, self.make_rng("dropout"))
    y = jnp.einsum("bhqk,bkhd->bqhd", weights.astype(self.dtype), v)
    return HeadDense((self.num_heads, head_dim, features), ("heads", "kv", "embed"), "bthk,hkd->btd",
                     self.dtype, name="out_proj")(y)

  def _cached(self, k, v, positions):
    if not self.causal:
      raise ValueError("a KV cache needs causal attention")
    return write_cache(self, k, v, positions)


def write_cache(module: nn.Module, k, v, positions):
  """Writes k, v [B, L, H, Dh] into `module`'s `cache` collection at positions[0]; returns all slots and
  their positions. The allocating call (init) sizes the cache by its own length and attends to its own
  keys only. Shared by every cached attention (token LMs, LLaMA)."""
  initialized = module.has_variable("cache", "cached_key")
  cached_key = module.variable("cache", "cached_key", jnp.zeros, k.shape, k.dtype)
  cached_value = module.variable("cache", "cached_value", jnp.zeros, v.shape, v.dtype)
  if not initialized:
    return k, v, positions
  start = (0, positions[0], 0, 0)
  cached_key.value = jax.lax.dynamic_update_slice(cached_key.value, k, start)
  cached_value.value = jax.lax.dynamic_update_slice(cached_value.value, v, start)
  return cached_key.value, cached_value.value, jnp.arange(cached_key.value.shape[1])


def decode_positions(module: nn.Module, length: int, decode: bool):
  """[L] positions of a call: 0..L−1, or (decode) the next L after those already cached (`cache/index`)."""
  if not decode:
    return jnp.arange(length)
  initialized = module.has_variable("cache", "index")
  index = module.variable("cache", "index", lambda: jnp.zeros([], jnp.int32))
  if not initialized:
    return jnp.arange(length)
  start = index.value
  index.value = start + length
  return start + jnp.arange(length)


class Layer(nn.Module):
  """Pre-LN block: `x` [B, L, D], `positions` [L], `mask` [B, L] or None → [B, L, D]."""
  config: StackConfig

  @nn.compact
  def __call__(self, x, positions, mask, train: bool = False):
    c = self.config
    attention = Attention(c.num_heads, c.causal, c.rope, c.decode, c.attention_dropout, c.dtype,
                          name="attention")
    drop = nn.Dropout(c.dropout, deterministic=not train)
    y = x + drop(attention(layer_norm(c.eps, c.dtype, "layer_norm")(x), positions, mask, train))
    y = y + FeedForward(c.intermediate_size, 0.0, c.dropout, c.dtype, name="feed_forward")(
        layer_norm(c.eps, c.dtype, "final_layer_norm")(y), train)
    return nn.with_logical_constraint(y.astype(x.dtype), ACTIVATION)


class Stack(nn.Module):
  """`config.num_layers` Layers (optionally `nn.scan`ned over a `layers` axis and rematerialised) + final
  LN. `x` [B, L, D], `positions` [L], `mask` [B, L] or None → [B, L, D]."""
  config: StackConfig

  @nn.compact
  def __call__(self, x, positions, mask=None, train: bool = False):
    c = self.config
    x = nn.with_logical_constraint(x.astype(c.dtype), ACTIVATION)
    x, _ = run_layers(Layer, c, x, positions, mask, train, train_argnum=4)
    return layer_norm(c.eps, c.dtype, "layer_norm")(x)
