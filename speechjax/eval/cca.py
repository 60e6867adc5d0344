"""Canonical correlation analysis and projection-weighted CCA (PWCCA) for layer-wise analysis.

CCA of two views x `[N, D1]` and y `[N, D2]` of the same N samples (frames, segments) finds pairs of
directions (a_i, b_i) such that the canonical variates h_i = x̃ a_i and g_i = ỹ b_i (x̃, ỹ centered)
have maximal correlation ρ_i = corr(h_i, g_i), each pair uncorrelated with the previous ones.

Computation (all in float64):
  1. Covariances C_xx, C_yy, C_xy of the centered views (divided by N - 1).
  2. Whitening by eigendecomposition C_xx = V diag(λ) Vᵀ: directions with λ <= ε·max(λ) are dropped
     (constant columns, duplicated or collinear columns, one-hot columns that sum to one) and the rest
     are scaled by (λ + ε·max(λ))^(-1/2), a ridge relative to the largest variance so the result does
     not depend on the units of the features. Same for y.
  3. SVD of the whitened cross-covariance W_xᵀ C_xy W_y = A diag(ρ) Bᵀ; the ρ (clipped to [0, 1],
     descending) are the canonical correlations, k = min(kept dims of x, kept dims of y) of them, and
     a = W_x A, b = W_y B.
With ε = 0 this is exact CCA; the ridge lowers correlations of directions whose variance is within a
few ε of the largest one's, and makes the result invariant to invertible linear maps of x or y only up
to O(ε · condition number). (Morcos et al.'s code adds an absolute ε to the covariance diagonal.)

PWCCA (Morcos, Raghu & Bengio 2018, "Insights on representational similarity in neural networks with
canonical correlation"), the similarity used layer-wise by Pasad et al. 2021: with h_i the i-th
canonical variate of x scaled to unit norm and x̃_j the j-th centered column of x,
    α_i = Σ_j |⟨h_i, x̃_j⟩|,        PWCCA(x, y) = Σ_i α_i ρ_i / Σ_i α_i     (i = 1..k).
It is asymmetric: the weights say how much of x's columns each canonical direction accounts for.
`layerwise_pwcca` puts the layer features as x and the one-hot labels as y, as Pasad et al.'s code
passes them (representation first). Unlike them it scores the same frames the CCA was fitted on (no
held-out split), which favours high-dimensional layers when N is not much larger than D.

CCA needs many more samples than dimensions: with N <= D the correlations are trivially 1, so that is
an error, and N of at least ~10·D is advisable.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple, Sequence

import numpy as np


class CCAResult(NamedTuple):
  """Canonical correlations and directions of `cca(x, y)`; k = number of canonical pairs."""
  rho: np.ndarray        # [k] canonical correlations, descending, in [0, 1]
  x_weights: np.ndarray  # [D1, k] a_i: x_variates = (x - x.mean(0)) @ x_weights
  y_weights: np.ndarray  # [D2, k] b_i
  x_variates: np.ndarray  # [N, k] h_i (unit norm when epsilon = 0)
  y_variates: np.ndarray  # [N, k] g_i


@dataclasses.dataclass
class _View:
  centered: np.ndarray  # [N, D]
  cov: np.ndarray       # [D, D]
  whiten: np.ndarray    # [D, kept]: centered @ whiten has unit-norm, uncorrelated columns (ε = 0)


def _view(a, epsilon: float, name: str, other_rows: int | None = None) -> _View:
  a = np.asarray(a, np.float64)
  if a.ndim != 2:
    raise ValueError(f"cca: {name} must be [samples, dims], got shape {a.shape}")
  n, d = a.shape
  if other_rows is not None and n != other_rows:
    raise ValueError(f"cca: x has {other_rows} samples but {name} has {n}")
  if n <= d:
    raise ValueError(f"cca: {name} has {n} samples for {d} dims; CCA needs N > D (the correlations "
                     "are trivially 1 otherwise) and ideally N >= 10 D: use more frames or fewer dims")
  if not np.isfinite(a).all():
    raise ValueError(f"cca: {name} has NaN or infinite values")
  if not epsilon >= 0:
    raise ValueError(f"cca: epsilon must be >= 0, got {epsilon}")
  centered = a - a.mean(axis=0)
  cov = centered.T @ centered / (n - 1)
  lam, vec = np.linalg.eigh(cov)
  top = lam[-1]
  if top <= 0:
    raise ValueError(f"cca: every column of {name} is constant")
  keep = lam > max(epsilon, 1e-12) * top  # also drop directions that are zero up to rounding
  lam, vec = lam[keep][::-1], vec[:, keep][:, ::-1]
  return _View(centered, cov, vec / np.sqrt((lam + epsilon * top) * (n - 1)))


def _cca(vx: _View, vy: _View) -> CCAResult:
  cross = vx.centered.T @ vy.centered  # [D1, D2], = (N - 1) C_xy
  a, rho, bt = np.linalg.svd(vx.whiten.T @ cross @ vy.whiten, full_matrices=False)
  x_weights, y_weights = vx.whiten @ a, vy.whiten @ bt.T
  return CCAResult(np.clip(rho, 0.0, 1.0), x_weights, y_weights, vx.centered @ x_weights,
                   vy.centered @ y_weights)


def cca(x, y, epsilon: float = 1e-6) -> CCAResult:
  """Canonical correlation analysis of `x [N, D1]` and `y [N, D2]` (see the module docstring).

  Args:
    x: first view, one row per sample.
    y: second view, the same samples in the same order.
    epsilon: relative threshold for dropping near-zero-variance directions and relative ridge.

  Returns:
    `CCAResult(rho [k], x_weights [D1, k], y_weights [D2, k], x_variates [N, k], y_variates [N, k])`.
  """
  vx = _view(x, epsilon, "x")
  return _cca(vx, _view(y, epsilon, "y", len(vx.centered)))


def _pwcca(vx: _View, vy: _View) -> float:
  res = _cca(vx, vy)
  # ⟨h_i, x̃_j⟩ for unit-norm h_i = x̃ a_i / ‖x̃ a_i‖, from the covariance: x̃ᵀ x̃ a_i = (N-1) C_xx a_i.
  gram = vx.cov @ res.x_weights  # [D1, k]
  norms = np.sqrt(np.maximum(np.einsum("dk,dk->k", res.x_weights, gram), 1e-300))
  alpha = np.abs(gram / norms).sum(axis=0)
  return float(np.sum(alpha * res.rho) / np.sum(alpha))


def pwcca(x, y, epsilon: float = 1e-6) -> float:
  """Projection-weighted CCA similarity of `x [N, D1]` to `y [N, D2]`, in [0, 1] (weights from x)."""
  vx = _view(x, epsilon, "x")
  return _pwcca(vx, _view(y, epsilon, "y", len(vx.centered)))


def layerwise_pwcca(layers: Sequence[np.ndarray], labels, num_classes: int,
                    epsilon: float = 1e-6) -> list[float]:
  """PWCCA of each layer's features against one-hot labels (phones, words), as in Pasad et al.

  Args:
    layers: per layer, features `[N, D]` of the same N frames or segments.
    labels: `[N]` int class of each frame/segment, in [0, num_classes).
    num_classes: number of classes (classes that never occur are dropped as constant columns).
    epsilon: see `cca`.

  Returns:
    One PWCCA value per layer, `pwcca(layer, one_hot(labels))`.
  """
  labels = np.asarray(labels)
  if labels.ndim != 1 or labels.dtype.kind not in "iu":
    raise ValueError(f"layerwise_pwcca: labels must be a 1-D int array, got {labels.dtype} "
                     f"{labels.shape}")
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(f"layerwise_pwcca: labels must be in [0, {num_classes}), got "
                     f"[{labels.min()}, {labels.max()}]")
  one_hot = np.zeros((len(labels), num_classes), np.float64)
  one_hot[np.arange(len(labels)), labels] = 1.0
  vy = _view(one_hot, epsilon, "one-hot labels")
  return [_pwcca(_view(layer, epsilon, f"layer {i}", len(labels)), vy) for i, layer in enumerate(layers)]
