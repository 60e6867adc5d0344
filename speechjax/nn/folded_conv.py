"""Convolutions on lane-folded signals: a TPU-friendly layout for few channels at a high rate.

A signal x [B, T, C] folded by r is stored as [B, T / r, r·C]: sample t = n·r + q, channel c sits at
position n, lane q·C + c (`fold` / `unfold` are reshapes). A convolution from a signal folded by r_in to
one folded by r_out is again a convolution, over the folded positions, with a block kernel
W' [K', r_in·C_in, r_out·C_out] whose blocks are the original taps (or zero) placed by a static 0/1 map:
output sample (m·r_out + p)·s + j·d − pad_lo reads folded position m·S' + ⌊δ / r_in⌋, lane block δ mod r_in,
with δ = p·s + j·d − pad_lo and folded stride S' = r_out·s / r_in (must be a whole number).

Why: XLA:TPU pads the minor (channel) dimension of an activation to 128 lanes and generates code per
tile, so SoundStream's 32-channel convs at 16 kHz compile for minutes and move 4× the bytes they need.
Folded to 128 lanes, its encoder compiled 2.1× faster and read 22 % fewer bytes, for 2.1× the (mostly
zero-block) FLOPs (benchmarks/folded_conv.py, docs/scaling.md). Results equal the unfolded conv up to float
summation order; the parameters are nn.Conv's own (`kernel` [*window, C_in / groups, C_out], `bias`
[C_out]), so checkpoints do not care whether a run folds.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from speechjax.nn.partitioning import gathered_kernel

Pads = Sequence[tuple[int, int]]


def fold(x, r: int):
  """[..., T, C] → [..., T / r, r·C]."""
  if x.shape[-2] % r:
    raise ValueError(f"cannot fold length {x.shape[-2]} by {r}")
  return x.reshape(*x.shape[:-2], x.shape[-2] // r, r * x.shape[-1])


def unfold(x, r: int):
  """[..., N, r·C] → [..., N·r, C]."""
  return x.reshape(*x.shape[:-2], x.shape[-2] * r, x.shape[-1] // r)


def lane_fold(cfg) -> int:
  """A config's `lane_fold` (lanes a folded stage fills; 0 = no folding). Configs saved before the field
  existed (checkpoints of older runs) have none: 0."""
  return cfg.get("lane_fold", 0)


def stage_folds(lanes: int, widths) -> tuple[int, ...]:
  """The fold of each stage of a conv stack whose stages have `widths` channels: lanes // width (a stage
  below `lanes` channels fills them), at least 1; all 1 when lanes = 0."""
  return tuple(max(1, lanes // w) if lanes else 1 for w in widths)


def folds_line_up(folds, strides) -> bool:
  """Whether each fold times the stride into the next stage is a multiple of the fold before (every
  folded stride a whole number)."""
  return all((after * stride) % before == 0 for before, after, stride in zip(folds, folds[1:], strides))


def folded_stride(stride: int, fold_in: int, fold_out: int) -> int:
  if (fold_out * stride) % fold_in:
    raise ValueError(f"fold {fold_in} → {fold_out} at stride {stride}: fold_out · stride must be a "
                     f"multiple of fold_in")
  return fold_out * stride // fold_in


@functools.lru_cache(maxsize=None)
def conv_map(kernel: int, stride: int, dilation: int, pad_lo: int, fold_in: int, fold_out: int):
  """Static map M [K', fold_in, fold_out, kernel] (W'[J, q, :, p, :] = Σ_j M[J, q, p, j] w[j]) and the
  folded stride and left padding (S', P')."""
  s = folded_stride(stride, fold_in, fold_out)
  p_lo = -(-pad_lo // fold_in)
  taps = ((fold_out - 1) * stride + (kernel - 1) * dilation - pad_lo) // fold_in + p_lo + 1
  m = np.zeros((taps, fold_in, fold_out, kernel), np.float32)
  for p in range(fold_out):
    for j in range(kernel):
      delta = p * stride + j * dilation - pad_lo
      m[delta // fold_in + p_lo, delta % fold_in, p, j] = 1.0
  return m, s, p_lo


@functools.lru_cache(maxsize=None)
def causal_transpose_map(stride: int, fold_in: int, fold_out: int):
  """Map M [K', fold_in, fold_out, 2·stride] of the causal transposed conv y[i] = Σ_j x[(i − j) / stride] ·
  w[2·stride − 1 − j] (flax's ConvTranspose, kernel 2·stride, VALID, first T·stride outputs), as a
  convolution of the input dilated by U = fold_in · stride / fold_out: Y[m] = Σ_J X_U[m − J] W'[J]."""
  up = folded_stride(stride, fold_out, fold_in)       # fold_in · stride / fold_out
  taps = ((fold_in + 1) * stride - 1) // fold_out + 1
  m = np.zeros((taps, fold_in, fold_out, 2 * stride), np.float32)
  for big_j in range(taps):
    for q in range(fold_in):
      for p in range(fold_out):
        j = big_j * fold_out + p - q * stride
        if 0 <= j < 2 * stride:
          m[big_j, q, p, 2 * stride - 1 - j] = 1.0
  return m, up


def dense_kernel(kernel, groups: int):
  """Grouped kernel [..., C_in / G, C_out] → the equivalent dense kernel [..., C_in, C_out]."""
  if groups == 1:
    return kernel
  c_out = kernel.shape[-1]
  owner = np.eye(groups, dtype=np.float32)[np.arange(c_out) // (c_out // groups)].T   # [G, C_out]
  dense = jnp.einsum("...co,go->...gco", kernel, owner.astype(kernel.dtype))
  return dense.reshape(*kernel.shape[:-2], groups * kernel.shape[-2], c_out)


def fold_kernel(kernel, m):
  """kernel [..., k, C_in, C_out], map [K', r_in, r_out, k] → W' [..., K', r_in·C_in, r_out·C_out]."""
  *window, _, c_in, c_out = kernel.shape
  w = jnp.einsum("JqPj,...jco->...JqcPo", m.astype(kernel.dtype), kernel)
  return w.reshape(*window, m.shape[0], m.shape[1] * c_in, m.shape[2] * c_out)


def _dimension_numbers(ndim: int):
  spatial = "HWD"[:ndim - 2] if ndim > 3 else "W"
  return (f"N{spatial}C", f"{spatial}IO", f"N{spatial}C")


def _params(module: nn.Module, x, window: Sequence[int], groups: int = 1):
  """nn.Conv's `kernel` [*window, C_in / groups, features] and `bias` [features], and x, in module.dtype."""
  c_in = x.shape[-1] // module.fold_in
  kernel = module.param("kernel", module.kernel_init, (*window, c_in // groups, module.features))
  bias = module.param("bias", module.bias_init, (module.features,))
  return nn.dtypes.promote_dtype(x, gathered_kernel(kernel), bias, dtype=module.dtype)


class FoldedConv(nn.Module):
  """nn.Conv (explicit or "SAME" padding, groups, dilation) from a signal folded by `fold_in` along its
  last spatial axis to one folded by `fold_out`. x [B, *other, N, fold_in·C_in] → [B, *other', M,
  fold_out·features]. Padding is given for the unfolded signal; the other spatial axes are unfolded."""
  features: int
  kernel_size: Sequence[int]
  strides: Sequence[int] | None = None
  padding: str | Pads = "SAME"           # "SAME", "VALID" or (low, high) per spatial axis
  kernel_dilation: Sequence[int] | None = None
  feature_group_count: int = 1
  fold_in: int = 1
  fold_out: int = 1
  dtype: Any = jnp.float32
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros

  @nn.compact
  def __call__(self, x):
    ndim = len(self.kernel_size)
    strides = tuple(self.strides or (1,) * ndim)
    dilation = tuple(self.kernel_dilation or (1,) * ndim)
    x, kernel, bias = _params(self, x, self.kernel_size, self.feature_group_count)
    lengths = (*x.shape[1:-2], x.shape[-2] * self.fold_in)
    pads = self._pads(lengths, strides, dilation)
    if self.fold_in == self.fold_out == 1:
      return jax.lax.conv_general_dilated(
          x, kernel, strides, pads, rhs_dilation=dilation, dimension_numbers=_dimension_numbers(x.ndim),
          feature_group_count=self.feature_group_count) + bias
    m, s, p_lo = conv_map(self.kernel_size[-1], strides[-1], dilation[-1], pads[-1][0],
                          self.fold_in, self.fold_out)
    out_len = (lengths[-1] + sum(pads[-1]) - (self.kernel_size[-1] - 1) * dilation[-1] - 1) // strides[-1] + 1
    if out_len % self.fold_out:
      raise ValueError(f"output length {out_len} is not a multiple of fold_out={self.fold_out}")
    n_out = out_len // self.fold_out
    p_hi = (n_out - 1) * s + m.shape[0] - p_lo - x.shape[-2]
    w = fold_kernel(dense_kernel(kernel, self.feature_group_count), m)
    y = jax.lax.conv_general_dilated(
        x, w, (*strides[:-1], s), (*pads[:-1], (p_lo, max(p_hi, 0))), rhs_dilation=(*dilation[:-1], 1),
        dimension_numbers=_dimension_numbers(x.ndim))
    return y[..., :n_out, :] + jnp.tile(bias, self.fold_out)

  def _pads(self, lengths, strides, dilation) -> list[tuple[int, int]]:
    if self.padding == "VALID":
      return [(0, 0)] * len(lengths)
    if self.padding != "SAME":
      return [tuple(p) for p in self.padding]
    window = [(k - 1) * d + 1 for k, d in zip(self.kernel_size, dilation)]
    return [(total // 2, total - total // 2) for total in
            (max((-(-n // s) - 1) * s + w - n, 0) for n, s, w in zip(lengths, strides, window))]


class FoldedCausalConvTranspose(nn.Module):
  """flax nn.ConvTranspose(features, (2·stride,), (stride,), "VALID") keeping its first N·stride outputs
  (causal upsampling), from a signal folded by `fold_in` to one folded by `fold_out`:
  x [B, N, fold_in·C_in] → [B, N·fold_in·stride / fold_out, fold_out·features]."""
  features: int
  stride: int
  fold_in: int = 1
  fold_out: int = 1
  dtype: Any = jnp.float32
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros

  @nn.compact
  def __call__(self, x):
    x, kernel, bias = _params(self, x, (2 * self.stride,))
    m, up = causal_transpose_map(self.stride, self.fold_in, self.fold_out)
    w = fold_kernel(kernel, m)[::-1]
    y = jax.lax.conv_general_dilated(x, w, (1,), [(m.shape[0] - 1, up - 1)], lhs_dilation=(up,),
                                     dimension_numbers=_dimension_numbers(x.ndim))
    return y + jnp.tile(bias, self.fold_out)
