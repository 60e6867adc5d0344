"""Cluster quality against frame-level phones (HuBERT paper; fairseq `measure_teacher_quality.py`).

From paired frame sequences of phone ids y and cluster ids z, the joint distribution p(y, z) over all
frames gives

    phone purity    Σ_z max_y p(y, z)   (fairseq's "ref pur": how well a cluster predicts the phone)
    cluster purity  Σ_y max_z p(y, z)   (fairseq's "hyp pur")
    PNMI            I(y; z) / H(y)      (phone-normalised mutual information)

Entropies and mutual information are in nats, computed exactly over the non-zero cells (fairseq adds
1e-8 inside its logs, which changes values by about that much).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class ClusterQuality:
  phone_purity: float
  cluster_purity: float
  pnmi: float
  mutual_info: float    # I(y; z), nats
  phone_entropy: float  # H(y), nats
  cluster_entropy: float  # H(z), nats
  num_frames: int       # frames counted (pairs truncated to the shorter sequence)
  frames_dropped: int   # frames cut off by that truncation, both sequences together


def _pairs(phones: Sequence[np.ndarray], clusters: Sequence[np.ndarray], upsample: int):
  """Flat aligned `[frames]` phone and cluster ids, and the number of frames cut off."""
  if len(phones) != len(clusters):
    raise ValueError(f"cluster quality: {len(phones)} phone sequences but {len(clusters)} cluster "
                     "sequences")
  if not isinstance(upsample, (int, np.integer)) or upsample < 1:
    raise ValueError(f"cluster quality: upsample must be a positive int, got {upsample!r}")
  ys, zs, dropped = [], [], 0
  for i, (y, z) in enumerate(zip(phones, clusters)):
    y, z = np.asarray(y), np.repeat(np.asarray(z), upsample)
    if y.ndim != 1 or z.ndim != 1 or y.dtype.kind not in "iu" or z.dtype.kind not in "iu":
      raise ValueError(f"cluster quality: utterance {i} needs 1-D int arrays, got {y.dtype} "
                       f"{y.shape} and {z.dtype} {z.shape}")
    n = min(len(y), len(z))
    ys.append(y[:n])
    zs.append(z[:n])
    dropped += len(y) + len(z) - 2 * n
  return np.concatenate(ys or [np.zeros(0, int)]), np.concatenate(zs or [np.zeros(0, int)]), dropped


def joint_counts(y: np.ndarray, z: np.ndarray) -> np.ndarray:
  """Frame counts `[num_phones, num_clusters]` of the id pairs `y [frames]`, `z [frames]`."""
  if y.size and min(y.min(), z.min()) < 0:
    raise ValueError("cluster quality: phone and cluster ids must be >= 0")
  shape = (int(y.max()) + 1 if y.size else 1, int(z.max()) + 1 if z.size else 1)
  flat = np.bincount(y.astype(np.int64) * shape[1] + z, minlength=shape[0] * shape[1])
  return flat.reshape(shape)


def _entropy(p: np.ndarray) -> float:
  p = p[p > 0]
  return float(-np.sum(p * np.log(p)))


def from_joint(counts: np.ndarray, frames_dropped: int = 0) -> ClusterQuality:
  """Metrics of a joint count matrix `[num_phones, num_clusters]`."""
  total = int(counts.sum())
  if total == 0:
    raise ValueError("cluster quality: no frames to measure")
  p = counts / total
  p_y, p_z = p.sum(axis=1), p.sum(axis=0)
  nonzero = p > 0
  mutual_info = float(np.sum(p[nonzero] * np.log(p[nonzero] / np.outer(p_y, p_z)[nonzero])))
  h_y = _entropy(p_y)
  return ClusterQuality(
      phone_purity=float(p.max(axis=0).sum()), cluster_purity=float(p.max(axis=1).sum()),
      pnmi=mutual_info / h_y if h_y > 0 else float("nan"), mutual_info=mutual_info,
      phone_entropy=h_y, cluster_entropy=_entropy(p_z), num_frames=total,
      frames_dropped=frames_dropped)


def cluster_quality(phones: Sequence[np.ndarray], clusters: Sequence[np.ndarray],
                    upsample: int = 1) -> ClusterQuality:
  """Quality of `clusters` (per-utterance `[frames]` int ids) against `phones` (per-utterance
  `[frames]` phone ids, e.g. 100 Hz alignments).

  Each cluster sequence is first repeated `upsample` times per frame (2 for 50 Hz clusters against
  100 Hz phones); each pair is then truncated to its shorter length (`frames_dropped` counts the cut).
  PNMI is NaN when there is only one phone (H(y) = 0)."""
  y, z, dropped = _pairs(phones, clusters, upsample)
  return from_joint(joint_counts(y, z), dropped)
