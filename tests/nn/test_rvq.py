"""Residual VQ: EMA math, k-means init, dead-code replacement, quantizer dropout, straight-through."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from speechjax.nn import rvq

pytestmark = pytest.mark.fast_compile


def _apply(module, stats, x, num_active, train=True, seed=0):
  mask = jnp.ones(x.shape[:2], bool)
  return module.apply({rvq.STATS: stats}, x, mask, num_active, train=train,
                      rngs={"vq": jax.random.PRNGKey(seed)}, mutable=[rvq.STATS])


def _stats(codebook, cluster_size, initialized=True):
  codebook = jnp.asarray(codebook, jnp.float32)
  cluster_size = jnp.asarray(cluster_size, jnp.float32)
  return {"codebook": codebook, "cluster_size": cluster_size,
          "embed_sum": codebook * cluster_size[..., None], "initialized": jnp.asarray(initialized)}


def test_ema_update_on_a_toy_case():
  module = rvq.ResidualVQ(1, 2, 2, decay=0.5, dead_code_threshold=0.0, epsilon=1e-9)
  x = jnp.asarray([[[0.0, 0.0], [0.0, 0.2], [10.0, 10.0], [10.0, 10.2]]])
  stats = _stats([[[0.0, 0.0], [10.0, 10.0]]], [[1.0, 1.0]])
  out, new = _apply(module, stats, x, jnp.asarray([1]))
  new = new[rvq.STATS]
  np.testing.assert_array_equal(out["codes"][0, :, 0], [0, 0, 1, 1])
  # N = 0.5·1 + 0.5·2 = 1.5; m = 0.5·e + 0.5·Σx; e = m / N (smoothing negligible at ε = 1e-9)
  np.testing.assert_allclose(new["cluster_size"], [[1.5, 1.5]], rtol=1e-6)
  np.testing.assert_allclose(new["embed_sum"], [[[0.0, 0.1], [15.0, 15.1]]], rtol=1e-6)
  np.testing.assert_allclose(new["codebook"], [[[0.0, 0.1 / 1.5], [10.0, 15.1 / 1.5]]], rtol=1e-5)
  assert float(out["perplexity"][0]) == 2.0 and float(out["usage"][0]) == 1.0


def test_ema_update_function_matches_formula():
  size, sums, book = rvq.ema_update(jnp.asarray([4.0, 0.0]), jnp.asarray([[8.0], [0.0]]),
                                    jnp.asarray([0.0, 2.0]), jnp.asarray([[0.0], [6.0]]), 0.99, 0.0)
  np.testing.assert_allclose(size, [3.96, 0.02], rtol=1e-6)
  np.testing.assert_allclose(sums, [[7.92], [0.06]], rtol=1e-6)
  np.testing.assert_allclose(book, [[2.0], [3.0]], rtol=1e-5)


def test_kmeans_initialises_codebooks_from_the_first_batch():
  rng = np.random.default_rng(0)
  centers = np.asarray([[-5.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
  x = centers[rng.integers(0, 3, 96)] + 0.05 * rng.standard_normal((96, 2))
  module = rvq.ResidualVQ(2, 4, 2, kmeans_iters=10, dead_code_threshold=0.0)
  stats = module.init(jax.random.PRNGKey(0), jnp.zeros([1, 4, 2]), jnp.ones([1, 4], bool),
                      jnp.asarray([2]))[rvq.STATS]
  assert not bool(stats["initialized"])
  out, new = _apply(module, stats, jnp.asarray(x[None], jnp.float32), jnp.asarray([2]))
  assert bool(new[rvq.STATS]["initialized"])
  first = np.asarray(new[rvq.STATS]["codebook"][0])
  nearest = np.min(np.linalg.norm(centers[:, None] - first[None], axis=-1), axis=1)
  assert np.all(nearest < 0.5), (first, nearest)           # every cluster has a code at its centre
  error = np.mean((np.asarray(out["quantized"][0]) - x) ** 2)
  assert error < 0.01, error


def test_dead_codes_are_replaced_by_batch_frames():
  x = jnp.asarray(np.random.default_rng(1).standard_normal((1, 16, 3)), jnp.float32)
  codebook = [[[100.0, 100.0, 100.0], [-100.0, -100.0, -100.0], [0.0, 0.0, 0.0]]]
  module = rvq.ResidualVQ(1, 3, 3, decay=0.99, dead_code_threshold=2.0)
  stats = _stats(codebook, [[5.0, 1.0, 50.0]])
  out, new = _apply(module, stats, x, jnp.asarray([1]))
  new = new[rvq.STATS]
  book = np.asarray(new["codebook"][0])
  frames = np.asarray(x[0])
  # code 0 is unused but its EMA (4.95) stays above 2: kept; code 1 (0.99) is dead: now a frame
  np.testing.assert_allclose(book[0], [100.0] * 3, rtol=1e-4)
  assert np.min(np.abs(frames - book[1]).sum(-1)) < 1e-6
  np.testing.assert_allclose(new["cluster_size"][0, 1], 2.0)
  assert float(out["replaced"][0]) == 1.0


def test_quantizer_dropout_is_uniform_over_one_to_n_q():
  draws = np.asarray(rvq.dropout_num_quantizers(jax.random.PRNGKey(0), 40000, 8))
  counts = np.bincount(draws, minlength=9)
  assert counts[0] == 0 and draws.max() == 8
  np.testing.assert_allclose(counts[1:] / len(draws), 1 / 8, atol=0.01)


def test_inactive_layers_and_straight_through_gradient():
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.standard_normal((2, 8, 4)), jnp.float32)
  module = rvq.ResidualVQ(3, 8, 4)
  stats = _apply(module, module.init(jax.random.PRNGKey(0), x, jnp.ones([2, 8], bool),
                                     jnp.asarray([3, 3]))[rvq.STATS], x, jnp.asarray([3, 3]))[1][rvq.STATS]
  num_active = jnp.asarray([1, 3])
  out = module.apply({rvq.STATS: stats}, x, jnp.ones([2, 8], bool), num_active)
  for b, n in enumerate([1, 3]):   # the output is the sum of the first n_q layers' codewords
    decoded = module.apply({rvq.STATS: stats}, out["codes"][b:b + 1, :, :n], method="decode")
    np.testing.assert_allclose(out["quantized"][b], decoded[0], atol=1e-5)
  weights = jnp.asarray(rng.standard_normal(x.shape), jnp.float32)
  grad = jax.grad(lambda v: jnp.sum(module.apply({rvq.STATS: stats}, v, jnp.ones([2, 8], bool),
                                                 num_active)["quantized"] * weights))(x)
  np.testing.assert_allclose(grad, weights, atol=1e-6)
  errors = [float(jnp.mean((module.apply({rvq.STATS: stats}, x, jnp.ones([2, 8], bool),
                                         jnp.full([2], n))["quantized"] - x) ** 2)) for n in (1, 2, 3)]
  assert errors[0] > errors[1] > errors[2], errors


def test_squared_distances_matches_direct_computation():
  rng = np.random.default_rng(3)
  x, book = rng.standard_normal((5, 3)), rng.standard_normal((7, 3))
  direct = ((x[:, None] - book[None]) ** 2).sum(-1)
  np.testing.assert_allclose(rvq.squared_distances(jnp.asarray(x, jnp.float32), jnp.asarray(book, jnp.float32)),
                             direct, rtol=1e-4, atol=1e-4)


class _VqKey(nn.Module):
  """The key a top-level module's first `make_rng("vq")` gives (flax folds the path and a counter in)."""

  def __call__(self):
    return self.make_rng("vq")


def _reference(stats, x, mask, num_active, key, module, update):
  """ResidualVQ written out layer by layer in float64 numpy (jax.random only to draw the same frames).

  Returns (codes [B, F, N_q], quantized [B, F, D], commitment, perplexity, usage, replaced, new stats)."""
  q_max, dim = module.num_quantizers, x.shape[-1]
  flat = np.asarray(x, np.float64).reshape(-1, dim)
  active = np.repeat(np.arange(q_max)[None] < np.asarray(num_active)[:, None], x.shape[1], 0)   # [M, N_q]
  frames = np.asarray(mask).reshape(-1)
  book, size, embed = (np.array(stats[k], np.float64) for k in ("codebook", "cluster_size", "embed_sum"))

  def draw(rng, rows, num):
    p = jnp.asarray(rows, jnp.float32)
    return np.asarray(jax.random.choice(rng, len(rows), shape=(num,), p=p / jnp.maximum(p.sum(), 1.0)))

  def assign(r, codebook):
    return np.argmin(((r[:, None] - codebook[None]) ** 2).sum(-1), -1)

  def counts_and_sums(r, codes, w):
    onehot = np.eye(module.codebook_size)[codes] * w[:, None]
    return onehot.sum(0), onehot.T @ r

  init_key, layer_key = jax.random.split(_VqKey().apply({}, rngs={"vq": key}))
  if update and not bool(stats["initialized"]):
    residual = flat
    for q, rng in enumerate(jax.random.split(init_key, q_max)):
      centroids = residual[draw(rng, frames, module.codebook_size)]
      for _ in range(module.kmeans_iters):
        counts, sums = counts_and_sums(residual, assign(residual, centroids), frames)
        centroids = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1e-9)[:, None], centroids)
      book[q], (size[q], _) = centroids, counts_and_sums(residual, assign(residual, centroids), frames)
      embed[q] = centroids * size[q][:, None]
      residual = residual - centroids[assign(residual, centroids)]
  residual, quantized = flat, np.zeros_like(flat)
  codes, commitment, perplexity, usage, replaced = [], 0.0, [], [], []
  for q, rng in enumerate(jax.random.split(layer_key, q_max)):
    w = (active[:, q] & frames).astype(np.float64)
    c = assign(residual, book[q])
    e = book[q][c]
    counts, sums = counts_and_sums(residual, c, w)
    dead = np.zeros(module.codebook_size, bool)
    if update and w.sum() > 0:
      size[q] = module.decay * size[q] + (1 - module.decay) * counts
      embed[q] = module.decay * embed[q] + (1 - module.decay) * sums
      n = size[q].size
      smoothed = (size[q] + module.epsilon) / (size[q].sum() + n * module.epsilon) * size[q].sum()
      book[q] = embed[q] / np.maximum(smoothed, module.epsilon)[:, None]
      dead = size[q] < module.dead_code_threshold
      picked = residual[draw(rng, w > 0, module.codebook_size)]
      book[q] = np.where(dead[:, None], picked, book[q])
      embed[q] = np.where(dead[:, None], picked * module.dead_code_threshold, embed[q])
      size[q] = np.where(dead, module.dead_code_threshold, size[q])
    commitment += np.sum(np.mean((residual - e) ** 2, -1) * w) / max(w.sum(), 1.0)
    probs = counts / max(counts.sum(), 1e-9)
    perplexity.append(np.exp(-np.sum(probs[probs > 0] * np.log(probs[probs > 0]))))
    usage.append(np.mean(counts > 0))
    replaced.append(dead.sum())
    codes.append(c)
    quantized += active[:, q:q + 1] * e
    residual = residual - e
  new = {"codebook": book, "cluster_size": size, "embed_sum": embed}
  return (np.stack(codes, -1).reshape(*x.shape[:2], q_max), quantized.reshape(x.shape), commitment,
          perplexity, usage, replaced, new)


def test_layers_match_a_per_layer_reference():
  """Two training calls (k-means init, then EMA updates with dead codes) and an eval call, with padded
  frames and quantizer dropout (n_q < N_q; on the second call no example uses the last layer)."""
  rng = np.random.default_rng(4)
  module = rvq.ResidualVQ(4, 6, 3, decay=0.5, dead_code_threshold=1.3, kmeans_iters=3)
  x = jnp.asarray(rng.standard_normal((3, 10, 3)), jnp.float32)
  mask = jnp.arange(10)[None, :] < jnp.asarray([10, 7, 4])[:, None]
  stats = module.init(jax.random.PRNGKey(0), x, mask, jnp.asarray([4, 4, 4]))[rvq.STATS]
  calls = [(jnp.asarray([4, 2, 1]), True, 1), (jnp.asarray([3, 1, 2]), True, 2), (jnp.asarray([2, 4, 1]), False, 3)]
  for num_active, train, seed in calls:
    key = jax.random.PRNGKey(seed)
    out, new = module.apply({rvq.STATS: stats}, x, mask, num_active, train=train, rngs={"vq": key},
                            mutable=[rvq.STATS])
    codes, quantized, commitment, perplexity, usage, replaced, expected = _reference(
        stats, x, mask, num_active, key, module, train)
    np.testing.assert_array_equal(out["codes"], codes)
    np.testing.assert_allclose(out["quantized"], quantized, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["commitment"], commitment, rtol=1e-5)
    np.testing.assert_allclose(out["perplexity"], perplexity, rtol=1e-5)
    np.testing.assert_allclose(out["usage"], usage)
    np.testing.assert_array_equal(out["replaced"], replaced)
    for name, value in expected.items():
      np.testing.assert_allclose(new[rvq.STATS][name], value, rtol=1e-5, atol=1e-5, err_msg=name)
    stats = new[rvq.STATS]
  assert bool(stats["initialized"])


def test_assignment_stats_follow_the_mesh_platform(tpu_mesh):
  """Under a TPU slice's mesh (an ahead-of-time compile from this CPU host) the stats take the TPU form, a
  one-hot matmul; outside it, the host's scatter-add."""
  x, codes, weights = jnp.ones((6, 4)), jnp.array([0, 1, 1, 2, 0, 3]), jnp.ones(6)
  trace = lambda: str(jax.make_jaxpr(lambda *a: rvq.assignment_stats(*a, size=4))(x, codes, weights))
  assert "scatter-add" in trace() and "dot_general" not in trace()
  with jax.set_mesh(tpu_mesh):
    assert rvq.target_platform() == "tpu"
    assert "dot_general" in trace() and "scatter-add" not in trace()
