"""Transformer encoder of wav2vec 2.0 / HuBERT (fairseq `TransformerEncoder`, HF `Wav2Vec2Encoder` and
`Wav2Vec2EncoderStableLayerNorm`), plus the feature projection in front of it.

Module and parameter names follow HF transformers (`attention.q_proj`, `feed_forward.intermediate_dense`,
`final_layer_norm`, `pos_conv_embed`, ...) so that `speechjax.interop.hf` is a plain renaming.

Two layer-norm placements:
  post-LN (Base, `stable=False`): x + pos_conv(x) → LN → layers;
                                  layer: y = LN(x + attn(x)); LN(y + ffn(y)).
  pre-LN (Large, `stable=True`):  x + pos_conv(x) → layers → LN;
                                  layer: y = x + attn(LN(x)); y + ffn(LN(y)).
The stack takes one frozen `EncoderConfig` (flax lm1b's `TransformerConfig`); it can be `nn.scan`ned (params
stacked on a leading `layers` axis, named "layers") and rematerialised (`speechjax.nn.layer_stack`).
WavLM: with `num_buckets > 0` the encoder computes a relative position bias once (`rel_attn_embed`) and
every layer's attention adds it to its logits, gated per head and query (`speechjax.nn.rel_pos_bias`).
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import linen as nn

from speechjax.nn.activations import gelu
from speechjax.nn.attention import dot_product_attention
from speechjax.nn.layer_stack import run_layers
from speechjax.nn.partitioning import dense_inits, logical, norm_inits
from speechjax.nn.pos_conv import PositionalConvEmbedding
from speechjax.nn.rel_pos_bias import BiasGate, RelativePositionBias

ACTIVATION = ("batch", "length", "embed")
# Presets scan stacks of at least this many layers: compile time then stays flat in depth (HuBERT tiny for
# TPU: 6.9 / 21.7 / 45.5 / 96.7 s unrolled at 2 / 12 / 24 / 48 layers, docs/scaling.md), while the
# 2–3-layer CPU presets stay unrolled (a loop buys nothing there).
SCAN_MIN_LAYERS = 6


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
  """Everything a `TransformerEncoder` and its layers need (hashable: a static module attribute)."""
  num_layers: int
  num_heads: int
  intermediate_size: int
  stable: bool = False              # pre-LN (Large) instead of post-LN (Base)
  pos_conv_kernel: int = 128
  pos_conv_groups: int = 16
  dropout: float = 0.0
  attention_dropout: float = 0.0
  activation_dropout: float = 0.0
  layerdrop: float = 0.0
  eps: float = 1e-5
  scan_layers: bool = False
  remat_policy: str = "none"
  dtype: jnp.dtype = jnp.float32
  num_buckets: int = 0              # > 0: WavLM's gated relative position bias
  max_distance: int = 800
  attention_impl: str = "xla"       # "xla" | "flash" (`speechjax.nn.attention`)


def linear_inits(in_axis, out_axis, fan_in: int) -> dict:
  """torch `nn.Linear` default init (kernel and bias U(±1/sqrt(fan_in))), used by fairseq for the
  feature projection and the pretraining heads."""
  bound = 1.0 / math.sqrt(fan_in)
  uniform = lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)
  return {"kernel_init": logical(nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform"),
                                 in_axis, out_axis),
          "bias_init": logical(uniform, out_axis)}


def layer_norm(eps: float, dtype, name: str, axis: str = "embed") -> nn.LayerNorm:
  return nn.LayerNorm(epsilon=eps, dtype=dtype, name=name, **norm_inits(axis))


class FeatureProjection(nn.Module):
  """Conv features [B, F, C] → (projected [B, F, D], normed features [B, F, C]).

  `use_layer_norm=False` (HuBERT `feat_proj_layer_norm`) skips the LayerNorm; the "normed" output is then
  the conv features themselves."""
  hidden_size: int
  use_layer_norm: bool = True
  dropout: float = 0.0
  eps: float = 1e-5
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, features, train: bool = False):
    if self.use_layer_norm:
      features = layer_norm(self.eps, self.dtype, "layer_norm", "conv_out")(features)
    x = nn.Dense(self.hidden_size, dtype=self.dtype, name="projection",
                 **linear_inits("conv_out", "embed", features.shape[-1]))(features)
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.with_logical_constraint(x, ACTIVATION), features


class HeadDense(nn.Module):
  """A projection to or from attention heads: `einsum(equation, x, kernel) + bias`.

  `kernel_shape` e.g. [D, H, D/H] with logical `axes` (`embed`, `heads`, `kv`); the bias (`use_bias`) has
  the output dims. (flax's DenseGeneral initialises a flattened 2-D kernel, which breaks 3-D logical
  annotations.)"""
  kernel_shape: tuple[int, ...]
  axes: tuple[str, ...]
  equation: str
  dtype: jnp.dtype = jnp.float32
  use_bias: bool = True

  @nn.compact
  def __call__(self, x):
    out_dims = len(self.equation.split("->")[1]) - 2   # output dims beyond [batch, time]
    kernel = self.param("kernel", logical(nn.initializers.normal(0.02), *self.axes), self.kernel_shape)
    y = jnp.einsum(self.equation, x.astype(self.dtype), kernel.astype(self.dtype))
    if not self.use_bias:
      return y
    bias = self.param("bias", logical(nn.initializers.zeros, *self.axes[-out_dims:]),
                      self.kernel_shape[-out_dims:])
    return y + bias.astype(self.dtype)


class SelfAttention(nn.Module):
  """Multi-head self-attention with a key padding mask. `x` [B, F, D], `mask` [B, F] bool → [B, F, D].

  q/k/v kernels are [D, H, D/H] (`embed`, `heads`, `kv`), the output kernel [H, D/H, D]. Logits and
  softmax are float32. `bias` (optional, broadcastable to [B, H, F, F]) is added to the scaled logits;
  with `gate_bias` (WavLM) it is first scaled by `BiasGate(x)` ([B, H, F, 1], parameters `gru_rel_pos`).
  `attention_impl`: "xla" or "flash" (`speechjax.nn.attention`; "flash" has no attention dropout)."""
  num_heads: int
  dropout: float = 0.0
  dtype: jnp.dtype = jnp.float32
  gate_bias: bool = False
  attention_impl: str = "xla"

  @nn.compact
  def __call__(self, x, mask, train: bool = False, bias=None):
    features = x.shape[-1]
    if features % self.num_heads:
      raise ValueError(f"hidden size {features} is not divisible by num_attention_heads={self.num_heads}")
    head_dim = features // self.num_heads

    def proj(name):
      return HeadDense((features, self.num_heads, head_dim), ("embed", "heads", "kv"), "btd,dhk->bthk",
                       self.dtype, name=name)(x)

    q, k, v = proj("q_proj"), proj("k_proj"), proj("v_proj")
    if bias is not None and self.gate_bias:
      bias = BiasGate(self.num_heads, self.dtype, name="gru_rel_pos")(x) * bias
    rng = None
    if train and self.dropout > 0:   # the key of an nn.Dropout submodule: the masks of the inline form
      rng = nn.Dropout(self.dropout).make_rng("dropout")
    y = dot_product_attention(q, k, v, mask, bias, implementation=self.attention_impl,
                              dropout_rate=self.dropout, dropout_rng=rng, deterministic=not train)
    return HeadDense((self.num_heads, head_dim, features), ("heads", "kv", "embed"), "bthk,hkd->btd",
                     self.dtype, name="out_proj")(y)


ACTIVATIONS = {"gelu": gelu, "swish": nn.swish}


class FeedForward(nn.Module):
  """Dense D→F, activation (exact GELU, or swish for conformers), activation dropout, Dense F→D, dropout.
  [B, F, D] → [B, F, D]."""
  intermediate_size: int
  activation_dropout: float = 0.0
  dropout: float = 0.0
  dtype: jnp.dtype = jnp.float32
  activation: str = "gelu"

  @nn.compact
  def __call__(self, x, train: bool = False):
    h = nn.Dense(self.intermediate_size, dtype=self.dtype, name="intermediate_dense",
                 **dense_inits("embed", "mlp"))(x)
    h = nn.Dropout(self.activation_dropout, deterministic=not train)(ACTIVATIONS[self.activation](h))
    y = nn.Dense(x.shape[-1], dtype=self.dtype, name="output_dense", **dense_inits("mlp", "embed"))(h)
    return nn.Dropout(self.dropout, deterministic=not train)(y)


class EncoderLayer(nn.Module):
  """One transformer block, post-LN or pre-LN (`config.stable`), with LayerDrop in training.

  `x` [B, F, D], `mask` [B, F] bool (real frames), optional attention logit `bias` (see SelfAttention;
  gated when `config.num_buckets > 0`) → [B, F, D]."""
  config: EncoderConfig

  @nn.compact
  def __call__(self, x, mask, train: bool = False, bias=None):
    c = self.config
    attention = SelfAttention(c.num_heads, c.attention_dropout, c.dtype, c.num_buckets > 0,
                              c.attention_impl, name="attention")
    feed_forward = FeedForward(c.intermediate_size, c.activation_dropout, c.dropout, c.dtype,
                               name="feed_forward")
    drop = nn.Dropout(c.dropout, deterministic=not train)
    attn_norm = layer_norm(c.eps, c.dtype, "layer_norm")
    ffn_norm = layer_norm(c.eps, c.dtype, "final_layer_norm")
    if c.stable:
      y = x + drop(attention(attn_norm(x), mask, train, bias))
      y = y + feed_forward(ffn_norm(y), train)
    else:
      y = attn_norm(x + drop(attention(x, mask, train, bias)))
      y = ffn_norm(y + feed_forward(y, train))
    if train and c.layerdrop > 0:
      keep = jax.random.uniform(self.make_rng("dropout")) >= c.layerdrop
      y = jnp.where(keep, y, x)
    return nn.with_logical_constraint(y.astype(x.dtype), ACTIVATION)


class TransformerEncoder(nn.Module):
  """Positional conv + layer stack (+ LN before (post-LN) or after (pre-LN) the stack).

  `x` [B, F, D], `mask` [B, F] bool → (last_hidden_state [B, F, D], hidden_states). `hidden_states` is
  None unless requested, else a tuple of L+1 arrays [B, F, D] in HF's convention: the input of every
  layer, then the final output (after the final LN for pre-LN).

  `config.num_buckets > 0` (WavLM) adds the gated relative position bias: table `rel_attn_embed`
  [num_buckets, H], buckets up to `max_distance` frames, a gate (`attention/gru_rel_pos`) in every layer."""
  config: EncoderConfig

  @nn.compact
  def __call__(self, x, mask, train: bool = False, output_hidden_states: bool = False):
    c = self.config
    x = jnp.where(mask[..., None], x, 0).astype(c.dtype)   # padded frames must not leak via the conv
    x = x + PositionalConvEmbedding(c.pos_conv_kernel, c.pos_conv_groups, c.dtype, name="pos_conv_embed")(x)
    final_norm = layer_norm(c.eps, c.dtype, "layer_norm")
    if not c.stable:
      x = final_norm(x)
    x = nn.Dropout(c.dropout, deterministic=not train)(x)
    x = nn.with_logical_constraint(x, ACTIVATION)
    first = x
    bias = None
    if c.num_buckets:
      bias = RelativePositionBias(c.num_heads, c.num_buckets, c.max_distance, name="rel_attn_embed")(x.shape[1])
    x, outputs = run_layers(EncoderLayer, c, x, mask, train, bias, train_argnum=3,
                            collect=output_hidden_states)
    if c.stable:
      x = final_norm(x)
    if not output_hidden_states:
      return x, None
    return x, (first,) + tuple(outputs[:-1]) + (x,)
