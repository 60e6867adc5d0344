"""Conformer encoder (Gulati et al. 2020) as in fairseq `wav2vec2_conformer`, HF `Wav2Vec2ConformerEncoder`
and HF `Wav2Vec2BertEncoder` (w2v-BERT 2.0).

One block, every sub-module pre-LN with a residual:

    x = x + ½·FFN1(LN(x))                    feed-forward (swish, or GELU) (`ffn1`, `ffn1_layer_norm`)
    x = x + MHSA(LN(x), positions)            (`self_attn`, `self_attn_layer_norm`)
    x = x + Conv(x)                           (`conv_module`: LN → pointwise D→2D → GLU → depthwise
                                               conv → norm → activation → pointwise D→D → dropout)
    x = LN(x + ½·FFN2(LN(x)))                 (`ffn2`, `ffn2_layer_norm`, `final_layer_norm`)

then an optional LayerNorm after the stack (`layer_norm`: Wav2Vec2Conformer yes, w2v-BERT 2.0 no).
Parameter names are HF's so that `speechjax.interop.hf` is a renaming.

Positions (`ConformerConfig.position`), one table per forward pass shared by all layers:
  "relative"      Transformer-XL: logits += ((q + u)·k − q·k + (q + v)·W_pos·pe(i − j)) / √d_h, with
                  sinusoids pe of the relative distance i − j (`linear_pos`, `pos_bias_u`, `pos_bias_v`).
  "rotary"        RoPE (half-split layout, base `rotary_base`) applied to the layer input split per head,
                  before `linear_q` / `linear_k` (as fairseq and HF do; not to the projected q, k).
  "relative_key"  Shaw et al.: logits += q·E[clip(j − i, −left, right)]/√d_h (`distance_embedding`).
  "none"          no positions in the stack (the caller adds them, e.g. wav2vec 2.0's positional conv).
The relative terms go to `speechjax.nn.attention` as an additive logit bias [B, H, F, F].

Padding. Padded frames are zeroed at the stack input and at every conv module's input (after its LN), so
the depthwise conv sees zeros past the end of each utterance: exactly the zero "same" (or causal) padding
of that utterance alone. Real frames therefore match a run on the unpadded utterance (tested), unlike
HF Wav2Vec2Conformer / fairseq, whose conv module takes no mask (padded frames leak into real ones from the
second layer on). Attention masks padded keys.

Conv-module norm (`conv_norm`):
  "layer_norm"    (`depthwise_layer_norm`, w2v-BERT 2.0): per frame, so no batch or padding dependence.
  "batch_norm"    (`batch_norm`, fairseq / HF Wav2Vec2Conformer): here always with its stored statistics
                  (`mean`, `var` in params, gradient stopped, never decayed): the layout of imported
                  checkpoints, which then train with frozen BN statistics. From scratch it is an affine
                  (mean 0, var 1); batch statistics (padding- and batch-dependent) are not implemented.
The depthwise conv is K shifted multiply-adds over [B, F, D] (one fusion): no grouped-conv op, whose SPMD
partitioning XLA got wrong for the positional conv (`speechjax.nn.pos_conv`).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from speechjax.nn.attention import dot_product_attention
from speechjax.nn.layer_stack import run_layers
from speechjax.nn.partitioning import logical
from speechjax.nn.transformer import ACTIVATION, ACTIVATIONS, FeedForward, HeadDense, layer_norm

POSITIONS = ("relative", "rotary", "relative_key", "none")
CONV_NORMS = ("batch_norm", "layer_norm")


@dataclasses.dataclass(frozen=True)
class ConformerConfig:
  """Everything a `ConformerEncoder` and its layers need (hashable: a static module attribute)."""
  num_layers: int
  num_heads: int
  intermediate_size: int
  position: str = "relative"
  rotary_base: float = 10000.0
  left_max_distance: int = 64        # relative_key: clip of j − i
  right_max_distance: int = 8
  activation: str = "swish"          # FFNs and conv module ("gelu": HF Wav2Vec2ConformerConfig's default)
  conv_kernel: int = 31
  conv_norm: str = "batch_norm"
  causal_conv: bool = False          # left pad K − 1 (w2v-BERT 2.0) instead of (K − 1)/2 each side
  final_layer_norm: bool = True      # LayerNorm after the stack
  dropout: float = 0.0
  attention_dropout: float = 0.0
  activation_dropout: float = 0.0
  conv_dropout: float = 0.0
  layerdrop: float = 0.0
  eps: float = 1e-5
  scan_layers: bool = False
  remat_policy: str = "none"
  dtype: jnp.dtype = jnp.float32
  attention_impl: str = "xla"


def relative_sinusoids(frames: int, dim: int) -> np.ndarray:
  """[2F − 1, dim] float32 sinusoids of the relative distances F−1, F−2, ..., −(F−1) (row p: distance
  F − 1 − p); even dims sin, odd dims cos, frequencies 10000^(−2i/dim) (Transformer-XL)."""
  distance = np.arange(frames - 1, -frames, -1, dtype=np.float32)[:, None]
  freq = np.exp(np.arange(0, dim, 2, dtype=np.float32) * -(np.log(10000.0) / dim))
  table = np.zeros((2 * frames - 1, dim), np.float32)
  table[:, 0::2] = np.sin(distance * freq)
  table[:, 1::2] = np.cos(distance * freq)
  return table


def rotary_tables(frames: int, head_dim: int, base: float) -> np.ndarray:
  """[2, F, head_dim] float32 (cos, sin) of RoPE angles t·base^(−2i/head_dim), half-split layout."""
  inv_freq = 1.0 / base ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim)
  angles = np.arange(frames, dtype=np.float32)[:, None] * inv_freq
  angles = np.concatenate([angles, angles], -1)
  return np.stack([np.cos(angles), np.sin(angles)])


def rotate(x, tables):
  """RoPE on x [B, F, H, Dh] with `rotary_tables` [2, F, Dh]."""
  cos, sin = (t[None, :, None, :].astype(x.dtype) for t in tables)
  half = x.shape[-1] // 2
  return x * cos + jnp.concatenate([-x[..., half:], x[..., :half]], -1) * sin


def rel_shift(scores):
  """[B, H, F, 2F − 1] scores against distances F−1..−(F−1) → [B, H, F, F], entry (i, j) the score
  against distance i − j (Transformer-XL's shift: pad, reshape, drop a row, reshape, crop)."""
  b, h, f, p = scores.shape
  padded = jnp.pad(scores, ((0, 0), (0, 0), (0, 0), (1, 0))).reshape(b, h, p + 1, f)
  return padded[:, :, 1:].reshape(b, h, f, p)[..., :f]


class ConformerSelfAttention(nn.Module):
  """Multi-head self-attention with the config's positions. `x` [B, F, D], `mask` [B, F] bool, `table`
  (`relative_sinusoids` or `rotary_tables`, else None) → [B, F, D]."""
  config: ConformerConfig

  @nn.compact
  def __call__(self, x, mask, table, train: bool = False):
    c = self.config
    features, heads = x.shape[-1], c.num_heads
    head_dim = features // heads

    def proj(name, inputs):
      return HeadDense((features, heads, head_dim), ("embed", "heads", "kv"), "btd,dhk->bthk", c.dtype,
                       name=name)(inputs)

    qk_input = x
    if c.position == "rotary":
      qk_input = rotate(x.reshape(*x.shape[:2], heads, head_dim), table).reshape(x.shape)
    q, k, v = proj("linear_q", qk_input), proj("linear_k", qk_input), proj("linear_v", x)
    bias = None
    if c.position == "relative":
      bias = self._relative_bias(q, k, table, head_dim)
    elif c.position == "relative_key":
      bias = self._relative_key_bias(q, head_dim)
    rng = nn.Dropout(c.attention_dropout).make_rng("dropout") if train and c.attention_dropout > 0 else None
    y = dot_product_attention(q, k, v, mask, bias, implementation=c.attention_impl,
                              dropout_rate=c.attention_dropout, dropout_rng=rng, deterministic=not train)
    return HeadDense((heads, head_dim, features), ("heads", "kv", "embed"), "bthk,hkd->btd", c.dtype,
                     name="linear_out")(y)

  def _relative_bias(self, q, k, table, head_dim):
    """(u·k + rel_shift((q + v)·W_pos·pe)) / √d_h: [B, H, F, F] float32."""
    heads, features = q.shape[2], table.shape[-1]
    init = logical(nn.initializers.xavier_uniform(), "heads", "kv")
    u = self.param("pos_bias_u", init, (heads, head_dim)).astype(q.dtype)
    v = self.param("pos_bias_v", init, (heads, head_dim)).astype(q.dtype)
    w_pos = self.param("linear_pos", logical(nn.initializers.normal(0.02), "embed", "heads", "kv"),
                       (features, heads, head_dim))
    pos = jnp.einsum("pd,dhk->phk", table.astype(q.dtype), w_pos.astype(q.dtype))
    content = jnp.einsum("hk,bthk->bht", u, k, preferred_element_type=jnp.float32)[:, :, None, :]
    position = jnp.einsum("bqhk,phk->bhqp", q + v, pos, preferred_element_type=jnp.float32)
    return (content + rel_shift(position)) * head_dim ** -0.5

  def _relative_key_bias(self, q, head_dim):
    """q·E[clip(j − i)] / √d_h: [B, H, F, F] float32."""
    c, frames = self.config, q.shape[1]
    table = self.param("distance_embedding", logical(nn.initializers.normal(1.0), None, "kv"),
                       (c.left_max_distance + c.right_max_distance + 1, head_dim))
    scores = jnp.einsum("bqhk,nk->bhqn", q, table.astype(q.dtype), preferred_element_type=jnp.float32)
    positions = np.arange(frames)
    index = np.clip(positions[None, :] - positions[:, None], -c.left_max_distance, c.right_max_distance)
    index = jnp.asarray(index + c.left_max_distance)[None, None]
    return jnp.take_along_axis(scores, jnp.broadcast_to(index, scores.shape[:2] + index.shape[2:]), -1) * (
        head_dim ** -0.5)


class FrozenBatchNorm(nn.Module):
  """BatchNorm with its stored statistics: (x − mean)/√(var + eps)·scale + bias over the last axis.
  `mean` and `var` are params whose gradient is stopped (see the module docstring)."""
  eps: float = 1e-5
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    dim = x.shape[-1]
    param = lambda name, init: self.param(name, logical(init, "embed"), (dim,))
    scale, bias = param("scale", nn.initializers.ones), param("bias", nn.initializers.zeros)
    mean = jax.lax.stop_gradient(param("mean", nn.initializers.zeros))
    var = jax.lax.stop_gradient(param("var", nn.initializers.ones))
    factor = scale * jax.lax.rsqrt(var + self.eps)
    return x * factor.astype(self.dtype) + (bias - mean * factor).astype(self.dtype)


class ConvolutionModule(nn.Module):
  """LN → zero padded frames → pointwise D→2D → GLU → depthwise conv → norm → activation → pointwise
  D→D → dropout. `x` [B, F, D], `mask` [B, F] bool → [B, F, D]."""
  config: ConformerConfig

  @nn.compact
  def __call__(self, x, mask, train: bool = False):
    c, dim = self.config, x.shape[-1]
    h = layer_norm(c.eps, c.dtype, "layer_norm")(x)
    h = jnp.where(mask[..., None], h, 0)
    h = nn.Dense(2 * dim, use_bias=False, dtype=c.dtype, name="pointwise_conv1",
                 kernel_init=logical(nn.initializers.lecun_normal(), "embed", "mlp"))(h)
    h = h[..., :dim] * nn.sigmoid(h[..., dim:])
    h = self._depthwise(h)
    if c.conv_norm == "layer_norm":
      h = layer_norm(c.eps, c.dtype, "depthwise_layer_norm")(h)
    else:
      h = FrozenBatchNorm(c.eps, c.dtype, name="batch_norm")(h)
    h = nn.Dense(dim, use_bias=False, dtype=c.dtype, name="pointwise_conv2",
                 kernel_init=logical(nn.initializers.lecun_normal(), "mlp", "embed"))(
                     ACTIVATIONS[c.activation](h))
    return nn.Dropout(c.conv_dropout, deterministic=not train)(h)

  def _depthwise(self, h):
    """Per-channel conv over time, zero padding ("same" for odd K, or causal): [B, F, D] → [B, F, D]."""
    c, (_, frames, dim) = self.config, h.shape
    kernel = self.param("depthwise_conv", logical(nn.initializers.lecun_normal(), None, "embed"),
                        (c.conv_kernel, dim)).astype(h.dtype)
    left = c.conv_kernel - 1 if c.causal_conv else (c.conv_kernel - 1) // 2
    padded = jnp.pad(h, ((0, 0), (left, c.conv_kernel - 1 - left), (0, 0)))
    return sum(padded[:, k:k + frames] * kernel[k] for k in range(c.conv_kernel))


class ConformerLayer(nn.Module):
  """One conformer block (module docstring) with LayerDrop in training. `x` [B, F, D], `mask` [B, F]
  bool, `table` (positions or None) → [B, F, D]."""
  config: ConformerConfig

  @nn.compact
  def __call__(self, x, mask, table, train: bool = False):
    c = self.config

    def ffn(name, inputs):
      h = layer_norm(c.eps, c.dtype, f"{name}_layer_norm")(inputs)
      return FeedForward(c.intermediate_size, c.activation_dropout, c.dropout, c.dtype, c.activation,
                         name=name)(h, train)

    y = x + 0.5 * ffn("ffn1", x)
    attention = ConformerSelfAttention(c, name="self_attn")(
        layer_norm(c.eps, c.dtype, "self_attn_layer_norm")(y), mask, table, train)
    y = y + nn.Dropout(c.dropout, deterministic=not train)(attention)
    y = y + ConvolutionModule(c, name="conv_module")(y, mask, train)
    y = layer_norm(c.eps, c.dtype, "final_layer_norm")(y + 0.5 * ffn("ffn2", y))
    if train and c.layerdrop > 0:
      keep = jax.random.uniform(self.make_rng("dropout")) >= c.layerdrop
      y = jnp.where(keep, y, x)
    return nn.with_logical_constraint(y.astype(x.dtype), ACTIVATION)


class ConformerEncoder(nn.Module):
  """The conformer stack: `x` [B, F, D], `mask` [B, F] bool → (last_hidden_state [B, F, D],
  hidden_states: None, or a tuple of L+1 [B, F, D] (HF's convention: every layer's input, then the
  output after the final LN when there is one))."""
  config: ConformerConfig

  @nn.compact
  def __call__(self, x, mask, train: bool = False, output_hidden_states: bool = False):
    c = self.config
    x = jnp.where(mask[..., None], x, 0).astype(c.dtype)
    x = nn.with_logical_constraint(nn.Dropout(c.dropout, deterministic=not train)(x), ACTIVATION)
    table = None
    if c.position == "relative":
      table = jnp.asarray(relative_sinusoids(x.shape[1], x.shape[2]))
    elif c.position == "rotary":
      table = jnp.asarray(rotary_tables(x.shape[1], x.shape[2] // c.num_heads, c.rotary_base))
    first = x
    x, outputs = run_layers(ConformerLayer, c, x, mask, table, train_argnum=4,
                            collect=output_hidden_states)
    if c.final_layer_norm:
      x = layer_norm(c.eps, c.dtype, "layer_norm")(x)
    if not output_hidden_states:
      return x, None
    return x, (first,) + tuple(outputs[:-1]) + (x,)
