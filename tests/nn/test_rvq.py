"""Residual VQ: EMA math, k-means init, dead-code replacement, quantizer dropout, straight-through."""
import jax
import jax.numpy as jnp
import numpy as np

from speechjax.nn import rvq


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
