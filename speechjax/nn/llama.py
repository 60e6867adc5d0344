"""LLaMA decoder layers (HF `LlamaDecoderLayer`): RMSNorm, rotary positions with HF's scalings, grouped-query
attention with a KV cache, SwiGLU feed-forward.

    layer: y = x + o_proj(attn(rope(q_proj(n)), rope(k_proj(n)), v_proj(n))),  n = input_layernorm(x)
           y + down_proj(silu(gate_proj(m)) · up_proj(m)),                     m = post_attention_layernorm(y)

Parameter names are HF's (`self_attn.q_proj`, `mlp.gate_proj`, `input_layernorm`, ...). q kernels are
[D, H, Dh], k/v [D, Hkv, Dh] (`embed`, `heads`, `kv`): query head h reads kv head h // (H / Hkv), as HF's
`repeat_kv`, computed by grouping the queries (the kv heads are never copied).

RoPE: HF's half-split layout (`rotate_half`), angles position · inv_freq in float32; `rope_inv_freq` gives
inv_freq for the "default", "linear" and "llama3" scalings (HF `ROPE_INIT_FUNCTIONS`).
RMSNorm: x · rsqrt(mean(x²) + eps) in float32, cast to the compute dtype, times `scale` (HF `weight`).

KV cache as `speechjax.nn.lm_transformer`: with `decode=True` each attention keeps `cached_key` /
`cached_value` [B, S, Hkv, Dh] in the `cache` collection; a call writes its keys at `positions[0]`.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from speechjax.nn.lm_transformer import write_cache
from speechjax.nn.partitioning import logical
from speechjax.nn.transformer import ACTIVATION, HeadDense

ROPE_TYPES = ("default", "linear", "llama3")


@dataclasses.dataclass(frozen=True)
class LlamaStackConfig:
  """Everything the decoder layers need (hashable: a static module attribute)."""
  num_layers: int
  num_heads: int
  num_kv_heads: int
  head_dim: int
  intermediate_size: int
  inv_freq: tuple[float, ...]       # rope_inv_freq(...)
  eps: float = 1e-5
  attention_bias: bool = False
  mlp_bias: bool = False
  decode: bool = False
  scan_layers: bool = False
  remat_policy: str = "none"
  dtype: jnp.dtype = jnp.float32


def rope_inv_freq(head_dim: int, theta: float, rope_type: str = "default", factor: float = 1.0,
                  low_freq_factor: float = 1.0, high_freq_factor: float = 4.0,
                  original_max_position: int = 8192) -> tuple[float, ...]:
  """[head_dim / 2] inverse frequencies θ^(−2i/Dh), scaled: "linear" divides by `factor`; "llama3" divides
  the wavelengths above original/low_freq_factor by `factor`, keeps those below original/high_freq_factor,
  and blends in between."""
  inv_freq = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim)
  if rope_type == "linear":
    inv_freq = inv_freq / factor
  elif rope_type == "llama3":
    wavelength = 2 * math.pi / inv_freq
    smooth = (original_max_position / wavelength - low_freq_factor) / (high_freq_factor - low_freq_factor)
    blended = (1 - smooth) * inv_freq / factor + smooth * inv_freq
    inv_freq = np.where(wavelength > original_max_position / low_freq_factor, inv_freq / factor,
                        np.where(wavelength < original_max_position / high_freq_factor, inv_freq, blended))
  elif rope_type != "default":
    raise ValueError(f"rope type {rope_type!r}: expected one of {ROPE_TYPES}")
  return tuple(float(f) for f in np.asarray(inv_freq, np.float32))


def apply_rope(x, positions, inv_freq):
  """x [B, L, H, Dh] rotated at `positions` [L] (half-split layout, angles in float32)."""
  angles = positions.astype(jnp.float32)[:, None] * jnp.asarray(inv_freq, jnp.float32)[None, :]
  angles = jnp.concatenate([angles, angles], -1)                                   # [L, Dh]
  cos, sin = (f(angles)[None, :, None, :].astype(x.dtype) for f in (jnp.cos, jnp.sin))
  half = x.shape[-1] // 2
  return x * cos + jnp.concatenate([-x[..., half:], x[..., :half]], -1) * sin


class RMSNorm(nn.Module):
  eps: float = 1e-5
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    scale = self.param("scale", logical(nn.initializers.ones, "embed"), (x.shape[-1],))
    x32 = x.astype(jnp.float32)
    normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, -1, keepdims=True) + self.eps)
    return scale.astype(self.dtype) * normed.astype(self.dtype)


class LlamaAttention(nn.Module):
  """Causal grouped-query attention. `x` [B, L, D], `positions` [L], key padding `mask` [B, L] bool or
  None → [B, L, D]."""
  config: LlamaStackConfig

  @nn.compact
  def __call__(self, x, positions, mask):
    c = self.config
    dim, group = x.shape[-1], c.num_heads // c.num_kv_heads

    def proj(name, heads):
      return HeadDense((dim, heads, c.head_dim), ("embed", "heads", "kv"), "btd,dhk->bthk", c.dtype,
                       c.attention_bias, name=name)(x)

    q = apply_rope(proj("q_proj", c.num_heads), positions, c.inv_freq)
    k = apply_rope(proj("k_proj", c.num_kv_heads), positions, c.inv_freq)
    v = proj("v_proj", c.num_kv_heads)
    key_positions = positions
    if c.decode:
      k, v, key_positions = write_cache(self, k, v, positions)
    q = q.reshape(*q.shape[:2], c.num_kv_heads, group, c.head_dim)
    logits = jnp.einsum("bqgrd,bkgd->bgrqk", q, k, preferred_element_type=jnp.float32) * c.head_dim ** -0.5
    allowed = (key_positions[None, :] <= positions[:, None])[None, None, None]
    if mask is not None:
      allowed = allowed & mask[:, None, None, None, :]
    weights = jax.nn.softmax(jnp.where(allowed, logits, jnp.finfo(jnp.float32).min), axis=-1)
    y = jnp.einsum("bgrqk,bkgd->bqgrd", weights.astype(v.dtype), v).reshape(*x.shape[:2], c.num_heads,
                                                                           c.head_dim)
    return HeadDense((c.num_heads, c.head_dim, dim), ("heads", "kv", "embed"), "bthk,hkd->btd", c.dtype,
                     c.attention_bias, name="o_proj")(y)

class LlamaMLP(nn.Module):
  """SwiGLU: down_proj(silu(gate_proj(x)) · up_proj(x)). [B, L, D] → [B, L, D]."""
  config: LlamaStackConfig

  @nn.compact
  def __call__(self, x):
    c = self.config

    def dense(name, features, axes):
      return nn.Dense(features, use_bias=c.mlp_bias, dtype=c.dtype, name=name,
                      kernel_init=logical(nn.initializers.normal(0.02), *axes),
                      bias_init=logical(nn.initializers.zeros, axes[1]))

    h = nn.silu(dense("gate_proj", c.intermediate_size, ("embed", "mlp"))(x)) * dense(
        "up_proj", c.intermediate_size, ("embed", "mlp"))(x)
    return dense("down_proj", x.shape[-1], ("mlp", "embed"))(h)


class LlamaDecoderLayer(nn.Module):
  """Pre-RMSNorm block (module docstring). `x` [B, L, D], `positions` [L], `mask` [B, L] or None."""
  config: LlamaStackConfig

  @nn.compact
  def __call__(self, x, positions, mask):
    c = self.config
    y = x + LlamaAttention(c, name="self_attn")(RMSNorm(c.eps, c.dtype, name="input_layernorm")(x),
                                                positions, mask)
    y = y + LlamaMLP(c, name="mlp")(RMSNorm(c.eps, c.dtype, name="post_attention_layernorm")(y))
    return nn.with_logical_constraint(y.astype(x.dtype), ACTIVATION)
