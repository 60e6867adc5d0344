"""Attention core of the transformer encoders: softmax(q·kᵀ/√Dh + bias, key padding mask) · v.

Two implementations of the same math, chosen by `implementation`:
  "xla":   float32 logits [B, H, F, F], softmax, optional dropout on the weights, weights · v. For the
           backward pass XLA keeps the float32 weights, their copy in the compute dtype and the dropout
           mask: ≈ 7 B per (batch, head, query, key) and layer in bfloat16. The dropout mask comes from
           16-bit random draws (drop rate rounded to a multiple of 2⁻¹⁶): with the TPU's hardware
           generator (`train.rng_impl="rbg"`) XLA keeps those bits for the backward pass, 32-bit ones
           cost HuBERT Base 1.9 GiB more per v4 core (with threefry it recomputes them instead).
  "flash": the Pallas TPU flash-attention kernel (`jax.experimental.pallas.ops.tpu.flash_attention`):
           score blocks are recomputed in the backward pass, which keeps q, k, v, the output and two
           floats per query row; its kernels' inputs take transient float32 [B, H, T, 128] arrays. A
           `bias` is materialised as float32 [B, H, T, T] (and so is its gradient), so with one (WavLM)
           the saving is small. TPU only; on CPU it runs under Pallas TPU interpret mode
           (`pltpu.force_tpu_interpret_mode()`, for tests). No attention dropout. Frames are padded to
           T, a multiple of 128 (the kernel's block), as masked keys. Under a mesh (`jax.set_mesh`) the
           kernel runs in `jax.shard_map`: batch over ("data", "fsdp") (must divide), heads over
           "tensor" where the head count divides.

Key padding: padded keys get weight 0; a query row whose keys are all padded attends uniformly (to the
F keys with "xla", to the T with "flash"), so padded rows stay finite either way.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.experimental.pallas.ops.tpu import flash_attention as pallas_flash
from jax.sharding import PartitionSpec as P

IMPLEMENTATIONS = ("xla", "flash")
BLOCK = 128                  # the flash kernel's smallest block (key blocks of 128 lanes)
BLOCK_SIZES = (512, 256, BLOCK)
BATCH_AXES = ("data", "fsdp")
HEAD_AXIS = "tensor"


def dot_product_attention(q, k, v, mask, bias=None, *, implementation: str = "xla",
                          dropout_rate: float = 0.0, dropout_rng=None, deterministic: bool = True):
  """q, k, v [B, F, H, Dh], `mask` [B, F] bool (real key frames), `bias` (optional, broadcastable to
  [B, H, F, F]) added to the scaled logits → [B, F, H, Dh] in v's dtype.

  Dropout (rate `dropout_rate`, key `dropout_rng`) on the attention weights unless `deterministic`;
  "xla" only."""
  if implementation == "xla":
    return _xla_attention(q, k, v, mask, bias, dropout_rate, dropout_rng, deterministic)
  if implementation == "flash":
    if dropout_rate > 0 and not deterministic:
      raise ValueError(f"model.attention_dropout={dropout_rate}: the flash attention kernel has no "
                       "attention dropout; set it to 0 or use the 'xla' attention implementation")
    return _flash_attention(q, k, v, mask, bias)
  raise ValueError(f"attention implementation {implementation!r}: expected one of {IMPLEMENTATIONS}")


def _xla_attention(q, k, v, mask, bias, dropout_rate, dropout_rng, deterministic):
  logits = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32)
  logits = logits * q.shape[-1] ** -0.5
  if bias is not None:
    logits = logits + bias
  logits = jnp.where(mask[:, None, None, :], logits, jnp.finfo(jnp.float32).min)
  weights = jax.nn.softmax(logits, axis=-1)
  if dropout_rate > 0 and not deterministic:
    weights = dropout_weights(weights, dropout_rate, dropout_rng)
  return jnp.einsum("bhqk,bkhd->bqhd", weights.astype(v.dtype), v)


def dropout_weights(weights, rate: float, rng):
  """Inverted dropout of attention weights [B, H, Q, K], as flax's nn.Dropout but from 16-bit draws (the
  rate rounded to a multiple of 2⁻¹⁶): under `train.rng_impl="rbg"` XLA keeps the draws for the backward
  pass, and 32-bit ones cost twice the memory (module docstring)."""
  threshold = round(rate * 2**16)
  keep = jax.random.bits(rng, weights.shape, jnp.uint16) >= threshold
  return jax.lax.select(keep, weights / (1.0 - threshold / 2**16), jnp.zeros_like(weights))


def block_sizes(length: int) -> pallas_flash.BlockSizes:
  """Forward and backward blocks of the flash kernel for a padded length (a multiple of BLOCK): the
  largest of BLOCK_SIZES that divides it."""
  block = next(b for b in BLOCK_SIZES if length % b == 0)
  return pallas_flash.BlockSizes(
      block_q=block, block_k_major=block, block_k=block, block_b=1,
      block_q_major_dkv=block, block_k_major_dkv=block, block_k_dkv=block, block_q_dkv=block,
      block_k_major_dq=block, block_k_dq=block, block_q_dq=block)


def _flash_attention(q, k, v, mask, bias):
  """The flash kernel on frames padded to a multiple of BLOCK. Every query gets segment id 1 and every
  key its mask (0: padded), so padded keys are masked and real rows match "xla"."""
  batch, frames, heads, head_dim = q.shape
  length = -(-frames // BLOCK) * BLOCK
  scale = head_dim ** -0.5

  def pad(x, axes):
    return jnp.pad(x, [(0, length - frames) if i in axes else (0, 0) for i in range(x.ndim)])

  q, k, v = (pad(x, (1,)).transpose(0, 2, 1, 3) for x in (q, k, v))      # [B, H, T, Dh]
  args = [q, k, v, pad(mask, (1,)).astype(jnp.int32)]
  if bias is not None:   # the kernel adds its bias before scaling: (q·kᵀ + bias / scale) · scale
    args.append(pad(jnp.broadcast_to(bias, (batch, heads, frames, frames)) / scale, (2, 3)))

  def attend(q, k, v, kv_ids, bias=None):
    segment_ids = pallas_flash.SegmentIds(q=jnp.ones_like(kv_ids), kv=kv_ids)
    return pallas_flash.flash_attention(q, k, v, bias, segment_ids, sm_scale=scale,
                                        block_sizes=block_sizes(length))

  mesh = jax.sharding.get_abstract_mesh()
  if not mesh.empty:   # Mosaic kernels are not partitioned automatically
    batch_axes = tuple(a for a in BATCH_AXES if a in mesh.axis_names)
    head_axis = HEAD_AXIS if HEAD_AXIS in mesh.axis_names and heads % mesh.shape[HEAD_AXIS] == 0 else None
    spec = P(batch_axes, head_axis)
    attend = jax.shard_map(attend, mesh=mesh, in_specs=(spec, spec, spec, P(batch_axes), spec)[:len(args)],
                           out_specs=spec, check_vma=False)
  return attend(*args).transpose(0, 2, 1, 3)[:, :frames]
