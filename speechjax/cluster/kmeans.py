"""k-means in JAX for HuBERT targets: k-means++ on a sample, then full-batch Lloyd or mini-batch.

`fit(data, k)` takes `data` as an in-memory array `[N, D]` or as a re-iterable streaming source: a
callable that returns a fresh iterator of `[n_i, D]` chunks on every call, so data larger than memory
is read once per iteration. The data is cut into blocks of a fixed number of rows (the last one padded
and masked), placed on the devices of `mesh` split along the rows (batch over all mesh axes), and each
block adds its per-cluster sums and counts to accumulators that XLA reduces across devices. With
several processes each one passes its own share of the data and the mesh spans the devices of all
processes (by default the first device of each); blocks are global arrays, so the sums are global
without any host-side reduction.

  * Lloyd (`batch_size=None`): one pass per iteration, then centroids = mean of their points.
  * Mini-batch (`batch_size=int`): every block of `batch_size` rows moves the centroids it hits to
    the running mean of all points they have received (sklearn's `MiniBatchKMeans` update with
    `reassignment_ratio=0`); `iters` is the number of passes. An in-memory array is shuffled once
    (seeded); a streaming source or memmap is read in its own order, so it should be shuffled.

Distances are `‖x‖² − 2·x·Cᵀ + ‖C‖²` matmuls at full f32 precision (also on TPU, whose default is
bf16 passes). A cluster left empty by a pass is
re-seeded with one of the points farthest from their centroid in that pass (the farthest to the first
empty cluster, and so on). Inertia is the mean squared distance of a point to its nearest centroid.
Everything is deterministic given `seed`. The initialisation sample is the rows with the smallest
seeded hashes of their contents, so it depends neither on the row order nor on how the rows are split
into chunks or over processes; Lloyd's result then depends on them only through float summation order.
"""
from __future__ import annotations

import dataclasses
import functools
import io
import json
import logging
import math
from typing import Callable, Iterable, Iterator, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DEFAULT_CHUNK_ROWS = 65536
DEFAULT_INIT_SAMPLE = 30000   # sklearn MiniBatchKMeans' init_size for fairseq's batch_size 10000
_HIGHEST = jax.lax.Precision.HIGHEST
_MAX_KEY = np.iinfo(np.uint64).max

Source = Callable[[], Iterable[np.ndarray]]
log = logging.getLogger(__name__)


@dataclasses.dataclass
class KMeansResult:
  """A fitted clustering. `counts` and `inertia` are those of the returned centroids."""
  centroids: np.ndarray          # [K, D] float32
  counts: np.ndarray             # [K] int64, points nearest to each centroid
  inertia: float                 # mean squared distance of a point to its nearest centroid
  inertia_history: list[float]   # inertia during each pass (mini-batch: with the moving centroids)
  num_points: int
  iterations: int                # passes that updated or (last Lloyd pass) measured the centroids
  converged: bool
  seed: int

  @property
  def k(self) -> int:
    return self.centroids.shape[0]

  @property
  def dim(self) -> int:
    return self.centroids.shape[1]


# ----------------------------------------------------------------------------- device math


# Up to this many centroids, CPU rows find their nearest one by a running comparison (_row_min).
RUNNING_MIN_MAX_K = 256


def _row_min(d: jax.Array) -> tuple[jax.Array, jax.Array]:
  """`d [n, K]` → (first index of each row's minimum `[n]` int32, the minimum `[n]`): `jnp.argmin`'s labels.

  On CPU with K ≤ RUNNING_MIN_MAX_K, a running comparison over the K columns: one elementwise loop over the
  rows that XLA vectorises, where its argmin is a variadic reduction that it does not (65,536 × 100 distances
  with their matmul: 17 → 8 ms). At K = 500 the unrolled loop takes 1.7 s to compile and saves only 10 % of a
  block (its 768-dim matmul dominates); on TPU a column is a strided lane slice."""
  if jax.default_backend() != "cpu" or d.shape[1] > RUNNING_MIN_MAX_K:
    return jnp.argmin(d, axis=1).astype(jnp.int32), jnp.min(d, axis=1)
  best, labels = d[:, 0], jnp.zeros(d.shape[0], jnp.int32)
  for k in range(1, d.shape[1]):
    closer = d[:, k] < best          # strict: ties keep the first index, as argmin does
    best, labels = jnp.where(closer, d[:, k], best), jnp.where(closer, k, labels)
  return labels, best


def _nearest(x: jax.Array, centroids: jax.Array) -> tuple[jax.Array, jax.Array]:
  """`x [n, D]`, `centroids [K, D]` → (labels `[n]` int32, squared distances `[n]`)."""
  cross = jnp.matmul(x, centroids.T, precision=_HIGHEST)
  d2 = jnp.sum(centroids * centroids, axis=1)[None, :] - 2.0 * cross   # ‖x‖² added after the min
  labels, nearest = _row_min(d2)
  return labels, jnp.maximum(nearest + jnp.sum(x * x, axis=1), 0.0)


class _PassStats(NamedTuple):
  """What one pass over the data accumulates."""
  sums: jax.Array        # [K, D] sum of the points nearest to each centroid
  counts: jax.Array      # [K] int32
  distance: jax.Array    # [] sum of squared distances
  far_dist: jax.Array    # [K] the largest squared distances seen, descending (-1 = none yet)
  far_points: jax.Array  # [K, D] the points they belong to


def _empty_stats(k: int, dim: int) -> _PassStats:
  return _PassStats(jnp.zeros((k, dim)), jnp.zeros(k, jnp.int32), jnp.zeros(()),
                    jnp.full(k, -1.0, jnp.float32), jnp.zeros((k, dim)))


def _cluster_sums(x, valid, labels, k: int):
  """Sums `[K, D]` and counts `[K]` of the valid rows of `x [n, D]` per label. On TPU a one-hot
  matmul (runs on the MXU); elsewhere a scatter-add, which does half the work of the distances
  instead of as much again (2-3× faster Lloyd passes on CPU)."""
  if jax.default_backend() == "tpu":
    onehot = (labels[:, None] == jnp.arange(k)[None, :]) & valid[:, None]
    sums = jnp.matmul(onehot.astype(x.dtype).T, x, precision=_HIGHEST)
    return sums, jnp.sum(onehot, axis=0, dtype=jnp.int32)
  segments = jnp.where(valid, labels, k)   # padding rows go to an extra segment that is dropped
  sums = jax.ops.segment_sum(x, segments, num_segments=k + 1)[:k]
  counts = jax.ops.segment_sum(valid.astype(jnp.int32), segments, num_segments=k + 1)[:k]
  return sums, counts


def _assign_block(x, valid, centroids):
  """Block `x [n, D]` (rows where `valid [n]`) → per-cluster sums `[K, D]`, counts `[K]` and each
  row's squared distance to its nearest centroid `[n]` (-1 for padding rows)."""
  labels, dist = _nearest(x, centroids)
  sums, counts = _cluster_sums(x, valid, labels, centroids.shape[0])
  return sums, counts, jnp.where(valid, dist, -1.0)


def _add_block(stats: _PassStats, x, sums, counts, dist) -> _PassStats:
  """`stats` plus one block's sums, counts and distances; keeps the K farthest points."""
  k = stats.far_dist.shape[0]
  far_dist, index = jax.lax.top_k(jnp.concatenate([stats.far_dist, dist]), k)
  far_points = jnp.where((index < k)[:, None], stats.far_points[jnp.minimum(index, k - 1)],
                         x[jnp.maximum(index - k, 0)])
  return _PassStats(stats.sums + sums, stats.counts + counts,
                    stats.distance + jnp.sum(jnp.maximum(dist, 0.0)), far_dist, far_points)


def _accumulate(stats: _PassStats, x, valid, centroids) -> _PassStats:
  """Adds block `x [n, D]` (rows where `valid [n]`) assigned to `centroids [K, D]` to `stats`."""
  return _add_block(stats, x, *_assign_block(x, valid, centroids))


def _reseed_empty(centroids, counts, far_points):
  """Moves each centroid with count 0 to the next farthest point (in order of cluster id)."""
  empty = counts == 0
  rank = jnp.clip(jnp.cumsum(empty) - 1, 0, far_points.shape[0] - 1)
  return jnp.where(empty[:, None], far_points[rank], centroids)


def _lloyd_update(stats: _PassStats, centroids):
  """New centroids: the mean of their points; empty clusters re-seeded."""
  means = stats.sums / jnp.maximum(stats.counts, 1)[:, None].astype(stats.sums.dtype)
  return _reseed_empty(jnp.where(stats.counts[:, None] > 0, means, centroids), stats.counts,
                       stats.far_points)


def _minibatch_step(centroids, weights, stats: _PassStats, x, valid):
  """One mini-batch update: each centroid hit becomes the running mean of all its points so far.

  `weights [K]` counts the points each centroid has received since it was (re)seeded."""
  sums, counts, dist = _assign_block(x, valid, centroids)
  new_weights = weights + counts
  moved = (centroids * weights[:, None] + sums) / jnp.maximum(new_weights, 1)[:, None]
  new_centroids = jnp.where(counts[:, None] > 0, moved, centroids)
  return new_centroids, new_weights, _add_block(stats, x, sums, counts, dist)


def _minibatch_reseed(centroids, weights, stats: _PassStats):
  """After a pass: clusters no point reached are re-seeded and start a new running mean."""
  return (_reseed_empty(centroids, stats.counts, stats.far_points),
          jnp.where(stats.counts > 0, weights, 0))


def _kmeans_plus_plus(key, sample, k: int, trials: int):
  """Greedy k-means++ (as sklearn): each new centre is the best of `trials` candidates drawn with
  probability ∝ squared distance to the chosen centres. `sample [m, D]` → (`[K, D]`, inertia)."""
  m = sample.shape[0]
  sq_norms = jnp.sum(sample * sample, axis=1)

  def sq_dist_to(points):  # [c, D] → [c, m]
    cross = jnp.matmul(points, sample.T, precision=_HIGHEST)
    return jnp.maximum(jnp.sum(points * points, 1)[:, None] - 2 * cross + sq_norms[None, :], 0.0)

  key, first_key = jax.random.split(key)
  first = jax.random.randint(first_key, (), 0, m)
  centres = jnp.zeros((k, sample.shape[1]), sample.dtype).at[0].set(sample[first])
  closest = sq_dist_to(sample[first][None])[0]

  def add_centre(i, carry):
    centres, closest, key = carry
    key, draw_key = jax.random.split(key)
    cumulative = jnp.cumsum(closest)
    draws = jax.random.uniform(draw_key, (trials,)) * cumulative[-1]
    candidates = jnp.clip(jnp.searchsorted(cumulative, draws), 0, m - 1)
    new_closest = jnp.minimum(closest[None, :], sq_dist_to(sample[candidates]))
    best = jnp.argmin(jnp.sum(new_closest, axis=1))
    return centres.at[i].set(sample[candidates[best]]), new_closest[best], key

  centres, closest, _ = jax.lax.fori_loop(1, k, add_centre, (centres, closest, key))
  return centres, jnp.mean(closest)


class _Steps(NamedTuple):
  """The jitted device functions, with replicated outputs on one mesh. Passes start from `empty_stats`,
  placed like the other functions' outputs: arrays placed otherwise compiled each function a second time."""
  empty_stats: Callable
  accumulate: Callable
  lloyd_update: Callable
  minibatch_step: Callable
  minibatch_reseed: Callable


@functools.lru_cache(maxsize=None)
def _steps(mesh: Mesh) -> _Steps:
  replicated = NamedSharding(mesh, P())
  jit = functools.partial(jax.jit, out_shardings=replicated)
  return _Steps(jit(_empty_stats, static_argnums=(0, 1)), jit(_accumulate), jit(_lloyd_update),
                jit(_minibatch_step), jit(_minibatch_reseed))


_kmeans_plus_plus_jit = jax.jit(_kmeans_plus_plus, static_argnames=("k", "trials"))
_labels_jit = jax.jit(lambda x, centroids: _nearest(x, centroids)[0])


# ----------------------------------------------------------------------------- host side: data


def _all_processes(value: np.ndarray) -> np.ndarray:
  """`value [..., n]` of every process stacked `[processes, ..., n]` (no communication with one process).
  64-bit values travel as pairs of 32-bit words: JAX without x64 would truncate them."""
  value = np.ascontiguousarray(value)
  if jax.process_count() == 1:
    return value[None]
  if value.dtype.itemsize != 8:
    return np.asarray(multihost_utils.process_allgather(value))
  return np.asarray(multihost_utils.process_allgather(value.view(np.uint32))).view(value.dtype)


def _as_source(data) -> Source:
  """A re-iterable chunk source for an array or a callable source."""
  if callable(data):
    return data
  data = np.asarray(data)
  if data.ndim != 2:
    raise ValueError(f"k-means data must be [N, D], got shape {data.shape}")
  return lambda: (data[i:i + DEFAULT_CHUNK_ROWS] for i in range(0, len(data), DEFAULT_CHUNK_ROWS))


def _checked_chunks(source: Source, dim: int | None = None) -> Iterator[np.ndarray]:
  """The source's chunks as float32 `[n, D]`, with a clear error for anything unusable."""
  for i, chunk in enumerate(source()):
    chunk = np.asarray(chunk)
    if chunk.ndim != 2 or chunk.dtype.kind not in "fiu":
      raise ValueError(f"k-means data chunk {i}: expected a numeric [n, D] array, got "
                       f"{chunk.dtype} {chunk.shape}")
    if dim is not None and chunk.shape[1] != dim:
      raise ValueError(f"k-means data chunk {i}: {chunk.shape[1]} columns, earlier chunks had {dim}")
    dim = chunk.shape[1]
    chunk = chunk.astype(np.float32, copy=False)
    if not np.all(np.isfinite(chunk)):
      raise ValueError(f"k-means data chunk {i}: contains NaN or infinite values")
    yield chunk


_HASH_COLUMNS = 16   # 2.6× faster than one column at a time (65,536 × 64: 31 → 12 ms), 8 MiB per 64k rows


def _row_keys(chunk: np.ndarray, seed: int) -> np.ndarray:
  """Pseudo-random uint64 keys of the rows of float32 `chunk [n, D]` from their bits alone: a seeded
  multilinear hash of the 32-bit words, finished with splitmix64. Equal rows get equal keys."""
  words = np.ascontiguousarray(chunk).view(np.uint32)
  coefficients = np.random.SeedSequence(seed).generate_state(words.shape[1], np.uint64) | np.uint64(1)
  z = np.zeros(len(words), np.uint64)
  with np.errstate(over="ignore"):
    for start in range(0, words.shape[1], _HASH_COLUMNS):   # a few columns at a time: O(n) memory
      columns = slice(start, start + _HASH_COLUMNS)
      z += words[:, columns].astype(np.uint64) @ coefficients[columns]
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _smallest_keys(keys: np.ndarray, rows: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
  """The `m` entries with the smallest keys, sorted by key."""
  order = np.argsort(keys, kind="stable")[:m]
  return keys[order], rows[order]


@dataclasses.dataclass
class _Scan:
  """What one pass over this process's data finds."""
  num_points: int       # rows, all processes
  local_points: int     # rows of this process
  dim: int
  sample: np.ndarray    # [m, D] uniform sample without replacement, same in every process


def _local_sample(source: Source, sample_size: int, seed: int):
  """One pass over this process's chunks: (rows seen, D or None, the `sample_size` rows with the
  smallest keys and their keys, sorted by key)."""
  keys, rows, seen, dim = [], [], 0, None
  for chunk in _checked_chunks(source):
    dim = chunk.shape[1]
    keys.append(_row_keys(chunk, seed))
    rows.append(chunk)
    seen += len(chunk)
    if sum(len(k) for k in keys) >= 2 * sample_size:   # prune: amortised O(rows) copying
      kept = _smallest_keys(np.concatenate(keys), np.concatenate(rows), sample_size)
      keys, rows = [kept[0]], [kept[1]]
  if dim is None:
    return seen, None, np.zeros(0, np.uint64), None
  return (seen, dim, *_smallest_keys(np.concatenate(keys), np.concatenate(rows), sample_size))


def _scan(source: Source, sample_size: int, seed: int) -> _Scan:
  """Counts and checks the data and draws a uniform sample: the rows with the smallest keys over
  all processes."""
  seen, dim, keys, rows = _local_sample(source, sample_size, seed)
  dims = _all_processes(np.array([-1 if dim is None else dim]))
  if np.all(dims < 0):
    raise ValueError("k-means data is empty")
  dim = int(dims.max())
  padded_keys = np.full(sample_size, _MAX_KEY, np.uint64)
  padded_keys[:len(keys)] = keys
  padded_rows = np.zeros((sample_size, dim), np.float32)
  if rows is not None:
    padded_rows[:len(rows)] = rows
  _, sample = _smallest_keys(_all_processes(padded_keys).reshape(-1),
                             _all_processes(padded_rows).reshape(-1, dim), sample_size)
  total = int(_all_processes(np.array([seen])).sum())
  return _Scan(total, seen, dim, sample[:min(total, sample_size)])


def _regroup(chunks: Iterable[np.ndarray], rows: int) -> Iterator[np.ndarray]:
  """Re-cuts chunks `[n_i, D]` into blocks of exactly `rows` rows (the last one may be shorter)."""
  pending, have = [], 0
  for chunk in chunks:
    while len(chunk):
      take = min(rows - have, len(chunk))
      pending.append(chunk[:take])
      chunk, have = chunk[take:], have + take
      if have == rows:
        yield np.concatenate(pending)
        pending, have = [], 0
  if have:
    yield np.concatenate(pending)


def _host_blocks(chunks: Iterable[np.ndarray], rows: int,
                 padded: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """Blocks of `rows` data rows zero-padded to `padded` rows: (`[padded, D]`, valid `[padded]`)."""
  for block in _regroup(chunks, rows):
    yield np.pad(block, ((0, padded - len(block)), (0, 0))), np.arange(padded) < len(block)


def _device_blocks(source: Source, rows: int, padded: int, dim: int, mesh: Mesh, num_blocks: int,
                   num_points: int):
  """This process's blocks (`rows` data rows padded to `padded`, a multiple of its devices) as
  global arrays sharded over all mesh axes. Empty blocks pad the count to `num_blocks` so that
  every process runs the same steps. Checks that the source gave the `num_points` rows of its
  first pass."""
  sharding = NamedSharding(mesh, P(mesh.axis_names))
  blocks = _host_blocks(_checked_chunks(source, dim), rows, padded)
  empty = (np.zeros((padded, dim), np.float32), np.zeros(padded, bool))
  seen = 0
  for _ in range(num_blocks):
    x, valid = next(blocks, empty)
    seen += int(valid.sum())
    yield (jax.make_array_from_process_local_data(sharding, x),
           jax.make_array_from_process_local_data(sharding, valid))
  seen += sum(int(valid.sum()) for _, valid in blocks)
  if seen != num_points:
    raise ValueError(f"k-means data source gave {seen} rows in this pass but {num_points} in the "
                     "first one; it must yield the same rows on every call")


def _first_device_of_each_process() -> Mesh:
  firsts = {}
  for device in jax.devices():
    firsts.setdefault(device.process_index, device)
  return Mesh(np.array([firsts[p] for p in sorted(firsts)]), ("data",))


def _replicate(value: np.ndarray, mesh: Mesh) -> jax.Array:
  """A host array (the same in every process) as a replicated global array."""
  value = np.asarray(value)
  return jax.make_array_from_callback(value.shape, NamedSharding(mesh, P()), lambda i: value[i])


def _to_host(value: jax.Array) -> np.ndarray:
  """A replicated global array as numpy (works with several processes)."""
  return np.asarray(value.addressable_data(0))


# ----------------------------------------------------------------------------- fit


def _initial_centroids(init, sample: np.ndarray, k: int, n_init: int, seed: int,
                       block_rows: int) -> np.ndarray:
  """`[K, D]` start: the given array, the first k sampled rows ("random"), or the k-means++ run
  (of `n_init`) with the lowest inertia on the sample ("sample-lloyd": then Lloyd on the sample in
  blocks of `block_rows`)."""
  if not isinstance(init, str):
    init = np.asarray(init, np.float32)
    if init.shape != (k, sample.shape[1]) or not np.all(np.isfinite(init)):
      raise ValueError(f"init centroids must be finite [{k}, {sample.shape[1]}], got {init.shape}")
    return init
  if init == "random":
    return sample[:k].copy()
  if init == "sample-lloyd":
    return _lloyd_on_sample(sample, _initial_centroids("k-means++", sample, k, n_init, seed, block_rows),
                            block_rows)
  if init != "k-means++":
    raise ValueError(f"init must be 'k-means++', 'sample-lloyd', 'random' or a [K, D] array, got {init!r}")
  trials = 2 + int(math.log(k))
  runs = [_kmeans_plus_plus_jit(jax.random.fold_in(jax.random.key(seed), i), jnp.asarray(sample),
                                k=k, trials=trials) for i in range(n_init)]
  best = min(range(n_init), key=lambda i: float(runs[i][1]))
  return np.asarray(runs[best][0])


def _lloyd_on_sample(sample: np.ndarray, start: np.ndarray, rows: int, iters: int = 100,
                     tol: float = 1e-4) -> np.ndarray:
  """Lloyd iterations on the (in-memory, identical in every process) sample, on this process's first
  device, in blocks of `rows`: a start close to the optimum, so the full passes over all the data are
  few (faiss-style subsample training, then refined on everything)."""
  mesh = Mesh(np.array(jax.local_devices()[:1]), ("data",))
  passes = _passes(sample, rows, sample.shape[1], mesh, len(sample))
  centroids, *_ = _lloyd(_steps(mesh), passes, _replicate(start, mesh), iters, tol, len(sample))
  return _to_host(centroids)


def _check_arguments(k, iters, n_init, batch_size, chunk_size, tol, init_sample, restarts):
  for name, value in (("k", k), ("iters", iters), ("n_init", n_init), ("chunk_size", chunk_size),
                      ("restarts", restarts)):
    if not isinstance(value, (int, np.integer)) or value < 1:
      raise ValueError(f"k-means: {name} must be a positive int, got {value!r}")
  for name, value in (("batch_size", batch_size), ("init_sample", init_sample)):
    if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
      raise ValueError(f"k-means: {name} must be None or a positive int, got {value!r}")
  if tol < 0:
    raise ValueError(f"k-means: tol must be >= 0, got {tol}")


def _shuffled(data, seed: int):
  """An in-memory array in a seeded random row order (a callable source is left as it is)."""
  if callable(data):
    return data
  data = np.asarray(data)
  return data[np.random.default_rng((seed, jax.process_index())).permutation(len(data))]


def _passes(data, rows: int, dim: int, mesh: Mesh, num_points_local: int):
  """A function returning the device blocks of one pass. In-memory data is placed once.

  Blocks hold `rows` data rows whatever the mesh (padded to a multiple of this process's devices),
  so the mini-batches and the result do not depend on the number of devices."""
  local_devices = len(mesh.local_devices)
  padded = -(-rows // local_devices) * local_devices
  num_blocks = int(_all_processes(np.array([-(-num_points_local // rows)])).max())
  source = _as_source(data)
  make = functools.partial(_device_blocks, source, rows, padded, dim, mesh, num_blocks,
                           num_points_local)
  if callable(data):
    return make
  blocks = list(make())
  return lambda: blocks


def _one_pass(steps: _Steps, passes, centroids, k: int, dim: int) -> _PassStats:
  stats = steps.empty_stats(k, dim)
  for x, valid in passes():
    stats = steps.accumulate(stats, x, valid, centroids)
  return stats


def _improved(history: list[float], tol: float) -> bool:
  return len(history) < 2 or history[-2] - history[-1] > tol * history[-2]


def _log_pass(it: int, inertia: float, counts: np.ndarray) -> None:
  if jax.process_index() == 0:
    log.info("k-means pass %d: inertia %.6g, %d empty clusters", it, inertia,
             int(np.sum(counts == 0)))


def _lloyd(steps, passes, centroids, iters, tol, num_points):
  """Lloyd iterations; returns (centroids, their pass stats, history, converged)."""
  k, dim = centroids.shape
  history = []
  for it in range(iters):
    stats = _one_pass(steps, passes, centroids, k, dim)
    history.append(float(_to_host(stats.distance)) / num_points)
    counts = _to_host(stats.counts)
    _log_pass(it, history[-1], counts)
    converged = np.all(counts > 0) and not _improved(history, tol)
    if converged or it == iters - 1:
      return centroids, stats, history, bool(converged)
    centroids = steps.lloyd_update(stats, centroids)


def _minibatch(steps, passes, centroids, iters, tol, num_points):
  """Mini-batch passes, then one pass to measure the final centroids."""
  k, dim = centroids.shape
  weights = steps.empty_stats(k, dim).counts   # zeros [K] int32, placed like minibatch_step's outputs
  history, converged = [], False
  for it in range(iters):
    stats = steps.empty_stats(k, dim)
    for x, valid in passes():
      centroids, weights, stats = steps.minibatch_step(centroids, weights, stats, x, valid)
    history.append(float(_to_host(stats.distance)) / num_points)
    _log_pass(it, history[-1], _to_host(stats.counts))
    converged = not _improved(history, tol)
    centroids, weights = steps.minibatch_reseed(centroids, weights, stats)
    if converged:
      break
  return centroids, _one_pass(steps, passes, centroids, k, dim), history, converged


def fit(data, k: int, *, iters: int = 100, init="k-means++", init_sample: int | None = None,
        n_init: int = 1, batch_size: int | None = None, seed: int = 0, mesh: Mesh | None = None,
        tol: float = 1e-4, chunk_size: int = DEFAULT_CHUNK_ROWS, restarts: int = 1) -> KMeansResult:
  """Fits k centroids.

  Args:
    data: `[N, D]` array, or a callable returning an iterator of `[n_i, D]` chunks (called once per
      pass; must yield the same rows in the same order each time). An in-memory array is placed on
      the devices once; a callable, or a `np.memmap` (e.g. `np.load(path, mmap_mode="r")`), is
      streamed from the host on every pass. With several processes, each passes its own share.
    k: number of clusters (at most the number of points).
    iters: maximum passes (Lloyd iterations, or mini-batch epochs).
    init: "k-means++", "sample-lloyd" (k-means++, then Lloyd to tol 1e-4 on the init sample: far fewer
      passes over all the data; benchmarks/kmeans.py), "random" (k sampled points) or a `[K, D]` array.
    init_sample: rows sampled (uniformly, one scan) for the initialisation; default
      max(DEFAULT_INIT_SAMPLE, 3·k, 3·batch_size).
    n_init: k-means++ runs; the one with the lowest inertia on the sample is used.
    batch_size: None = full-batch Lloyd; int = mini-batch updates of this many rows (per process).
    seed: all randomness (sample, k-means++, mini-batch shuffle).
    mesh: devices to spread the blocks over (all axes), spanning every process; default: the first
      device of each process.
    tol: stop when a pass lowers the inertia by at most tol × its previous value (and, for Lloyd,
      no cluster is empty). tol=0 runs until the inertia stops falling.
    chunk_size: rows per block in Lloyd mode (per process); bounds device memory. With "sample-lloyd"
      the blocks are the init sample's size rounded up to a power of two, at most chunk_size.
    restarts: whole fits with seeds `seed`, `seed + 1`, …; the one with the lowest inertia over all points
      is returned (sklearn's `n_init` for whole fits; `n_init` here picks among k-means++ starts).
  Returns:
    KMeansResult with `[K, D]` float32 centroids; `seed` is the chosen fit's.
  """
  _check_arguments(k, iters, n_init, batch_size, chunk_size, tol, init_sample, restarts)
  if isinstance(data, np.memmap):
    data = _as_source(data)
  mesh = mesh or _first_device_of_each_process()
  fits = [_fit_once(data, k, iters, init, init_sample, n_init, batch_size, seed + r, mesh, tol, chunk_size)
          for r in range(restarts)]
  return min(fits, key=lambda result: result.inertia)


def _fit_once(data, k, iters, init, init_sample, n_init, batch_size, seed, mesh, tol, chunk_size):
  """One fit (see `fit`)."""
  sample_size = init_sample or max(DEFAULT_INIT_SAMPLE, 3 * k, 3 * (batch_size or 0))
  scan = _scan(_as_source(data), sample_size, seed)
  if scan.num_points < k:
    raise ValueError(f"k-means: k={k} clusters need at least k points, got {scan.num_points}")
  rows = batch_size or chunk_size
  if isinstance(init, str) and init == "sample-lloyd" and batch_size is None:
    # Blocks of the sample's size rounded up to a power of two for the sample and for all the data: one
    # compiled block program serves both (a 30k sample padded to a 65k block would waste half of each
    # sample pass; two block sizes cost a second compile, 0.3 s of a 3 s first fit on a 2-core CPU).
    rows = _assign_rows(len(scan.sample), chunk_size)
  init_centroids = _initial_centroids(init, scan.sample, k, n_init, seed, rows)
  if batch_size is not None:
    data = _shuffled(data, seed)
  passes = _passes(data, rows, scan.dim, mesh, scan.local_points)
  loop = _lloyd if batch_size is None else _minibatch
  centroids, stats, history, converged = loop(_steps(mesh), passes, _replicate(init_centroids, mesh),
                                              iters, tol, scan.num_points)
  return KMeansResult(
      centroids=_to_host(centroids).astype(np.float32),
      counts=_to_host(stats.counts).astype(np.int64),
      inertia=float(_to_host(stats.distance)) / scan.num_points, inertia_history=history,
      num_points=scan.num_points, iterations=len(history),
      converged=converged, seed=seed)


# ----------------------------------------------------------------------------- assign, save, load


def _assign_rows(n: int, chunk_size: int) -> int:
  """Block rows for assigning n points: a power of two (few compiles), at most chunk_size."""
  return min(chunk_size, 1 << max(8, (n - 1).bit_length()))


def assign(features, centroids, *, chunk_size: int = DEFAULT_CHUNK_ROWS) -> np.ndarray:
  """Nearest centroid of each row: `features [N, D]`, `centroids [K, D]` → labels `[N]` int32."""
  features, centroids = np.asarray(features), np.asarray(centroids, np.float32)
  if features.ndim != 2 or centroids.ndim != 2 or features.shape[1] != centroids.shape[1]:
    raise ValueError(f"assign: features [N, D] and centroids [K, D] must share D, got "
                     f"{features.shape} and {centroids.shape}")
  labels = np.empty(len(features), np.int32)
  if not len(features):
    return labels
  rows = _assign_rows(len(features), chunk_size)
  device_centroids = jnp.asarray(centroids)
  blocks = _host_blocks(_checked_chunks(lambda: [features]), rows, rows)
  for (x, valid), start in zip(blocks, range(0, len(features), rows)):
    labels[start:start + rows] = np.asarray(_labels_jit(x, device_centroids))[valid]
  return labels


_RESULT_FIELDS = ("k", "dim", "inertia", "num_points", "iterations", "converged", "seed")


def save(path: str, result: KMeansResult, metadata: dict | None = None) -> None:
  """Writes `path` (.npz: centroids, counts, inertia history, and the JSON metadata: K, dim, inertia,
  seed, ... plus `metadata`, e.g. the feature source). Atomic: a killed save leaves no file."""
  metadata = dict(metadata or {})
  clash = sorted(set(metadata) & set(_RESULT_FIELDS))
  if clash:
    raise ValueError(f"k-means save: metadata keys {clash} are filled in from the result")
  metadata.update({name: getattr(result, name) for name in _RESULT_FIELDS})
  text = json.dumps(metadata, sort_keys=True)
  buffer = io.BytesIO()
  np.savez(buffer, centroids=result.centroids, counts=result.counts,
           inertia_history=np.asarray(result.inertia_history, np.float64), metadata=np.array(text))
  from speechjax.data import records   # tf.io.gfile (gs:// paths); keeps tf out of `fit`
  records.write_atomic(path, buffer.getvalue())


def load(path: str) -> tuple[KMeansResult, dict]:
  """Reads what `save` wrote: (result, metadata)."""
  import tensorflow as tf
  with tf.io.gfile.GFile(path, "rb") as f:
    data = io.BytesIO(f.read())
  with np.load(data, allow_pickle=False) as f:
    metadata = json.loads(str(f["metadata"]))
    result = KMeansResult(
        centroids=f["centroids"], counts=f["counts"], inertia=metadata["inertia"],
        inertia_history=[float(v) for v in f["inertia_history"]],
        num_points=metadata["num_points"], iterations=metadata["iterations"],
        converged=metadata["converged"], seed=metadata["seed"])
  return result, metadata
