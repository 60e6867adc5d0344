"""fairseq label files for HuBERT: `{split}.km` and `dict.km.txt`.

`{split}.km` has one line per manifest line, in the same order: the utterance's frame labels as
space-separated integer ids (an empty line is an utterance with no frames). `dict.km.txt` lists the
label vocabulary for fairseq's Dictionary: one line `"<id> 1"` per id 0..K−1. Paths may be on GCS.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import tensorflow as tf


def _write_atomic(path: str, lines: Iterable[str]) -> None:
  """Writes the lines to `path` via a temporary file: a failed write leaves no file behind."""
  tmp = f"{path}.tmp"
  try:
    with tf.io.gfile.GFile(tmp, "w") as f:
      for line in lines:
        f.write(line + "\n")
  except BaseException:
    if tf.io.gfile.exists(tmp):   # GFile creates the file at its first write
      tf.io.gfile.remove(tmp)
    raise
  tf.io.gfile.rename(tmp, path, overwrite=True)


def read_km(path: str) -> list[np.ndarray]:
  """One `[frames]` int32 array per line of a `.km` file."""
  labels = []
  with tf.io.gfile.GFile(path) as f:
    for number, line in enumerate(f, 1):
      try:
        ids = np.array(line.split(), dtype=np.int64)
      except ValueError:
        raise ValueError(f"{path}:{number}: expected space-separated integer ids, got "
                         f"{line[:80]!r}") from None
      if ids.size and (ids.min() < 0 or ids.max() > np.iinfo(np.int32).max):
        raise ValueError(f"{path}:{number}: ids must lie in [0, 2**31), got {ids.min()}..{ids.max()}")
      labels.append(ids.astype(np.int32))
  return labels


def _line(index: int, ids) -> str:
  ids = np.asarray(ids)
  if ids.ndim != 1 or (ids.size and (ids.dtype.kind not in "iu" or ids.min() < 0)):
    raise ValueError(f"write_km: utterance {index} needs a 1-D array of ids >= 0, got {ids.dtype} "
                     f"{ids.shape}")
  return " ".join(map(str, ids.tolist()))


def write_km(path: str, labels: Iterable[np.ndarray]) -> None:
  """Writes one line of space-separated ids per utterance (atomically)."""
  _write_atomic(path, (_line(i, ids) for i, ids in enumerate(labels)))


def write_dict(path: str, k: int) -> None:
  """Writes fairseq's `dict.km.txt` for ids 0..k−1."""
  if not isinstance(k, (int, np.integer)) or k < 1:
    raise ValueError(f"write_dict: k must be a positive int, got {k!r}")
  _write_atomic(path, (f"{i} 1" for i in range(k)))
