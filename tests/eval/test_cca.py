"""CCA / PWCCA against sklearn and a direct eigenvalue computation, and their invariances."""
import numpy as np
import pytest

from speechjax.eval import cca


def _planted(rng, n=3000, d1=10, d2=8, shared=3, noise=1.0):
  """Two views sharing `shared` latent dimensions with decreasing strength."""
  z = rng.normal(size=(n, shared)) * np.linspace(2.0, 0.7, shared)
  x = z @ rng.normal(size=(shared, d1)) + noise * rng.normal(size=(n, d1))
  y = z @ rng.normal(size=(shared, d2)) + noise * rng.normal(size=(n, d2))
  return x, y


def _rho_by_eigenvalues(x, y):
  """Canonical correlations² are the eigenvalues of C_xx⁻¹ C_xy C_yy⁻¹ C_yx."""
  c = np.cov(np.concatenate([x, y], axis=1), rowvar=False)
  d1 = x.shape[1]
  cxx, cyy, cxy = c[:d1, :d1], c[d1:, d1:], c[:d1, d1:]
  m = np.linalg.solve(cxx, cxy) @ np.linalg.solve(cyy, cxy.T)
  eig = np.sort(np.linalg.eigvals(m).real)[::-1][:min(x.shape[1], y.shape[1])]
  return np.sqrt(np.clip(eig, 0, 1))


def test_top_correlation_matches_sklearn():
  sklearn_cca = pytest.importorskip("sklearn.cross_decomposition").CCA
  rng = np.random.default_rng(0)
  x, y = _planted(rng)
  rho = cca.cca(x, y).rho
  xs, ys = sklearn_cca(n_components=1, max_iter=2000, tol=1e-10).fit(x, y).transform(x, y)
  top = abs(np.corrcoef(xs[:, 0], ys[:, 0])[0, 1])
  assert rho[0] == pytest.approx(top, abs=1e-3)


def test_all_correlations_match_eigenvalues_and_variates():
  rng = np.random.default_rng(1)
  x, y = _planted(rng, n=2000, d1=7, d2=5)
  res = cca.cca(x, y, epsilon=0.0)
  np.testing.assert_allclose(res.rho, _rho_by_eigenvalues(x, y), atol=1e-8)
  assert res.rho.shape == (5,) and (np.diff(res.rho) <= 0).all()
  np.testing.assert_allclose(res.x_variates, (x - x.mean(0)) @ res.x_weights, atol=1e-10)
  # Unit-norm, mutually uncorrelated variates whose pairwise correlations are the rho.
  np.testing.assert_allclose(res.x_variates.T @ res.x_variates, np.eye(5), atol=1e-8)
  np.testing.assert_allclose(res.y_variates.T @ res.y_variates, np.eye(5), atol=1e-8)
  np.testing.assert_allclose(np.diag(res.x_variates.T @ res.y_variates), res.rho, atol=1e-8)
  # The default ridge barely moves well-conditioned problems.
  np.testing.assert_allclose(cca.cca(x, y).rho, res.rho, atol=1e-5)


def test_invariant_to_invertible_linear_maps():
  rng = np.random.default_rng(2)
  x, y = _planted(rng, n=2000)
  q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
  a = q * np.linspace(0.2, 5.0, 10)  # condition number 25
  mapped_x, mapped_y = x @ a + 3.0, 1e3 * y - 7.0
  np.testing.assert_allclose(cca.cca(mapped_x, mapped_y, epsilon=0.0).rho,
                             cca.cca(x, y, epsilon=0.0).rho, atol=1e-9)
  # The relative ridge breaks exact invariance by O(epsilon * condition number of the covariance).
  np.testing.assert_allclose(cca.cca(mapped_x, mapped_y).rho, cca.cca(x, y).rho, atol=1e-3)


def test_linear_function_and_independent_data():
  rng = np.random.default_rng(3)
  x = rng.normal(size=(4000, 6))
  y = x @ rng.normal(size=(6, 4))
  np.testing.assert_allclose(cca.cca(x, y).rho, 1.0, atol=1e-4)
  assert cca.pwcca(x, y) == pytest.approx(1.0, abs=1e-4)
  assert cca.pwcca(y, x) == pytest.approx(1.0, abs=1e-4)
  independent = rng.normal(size=(20000, 5))
  rho = cca.cca(x.repeat(5, axis=0)[:20000] + rng.normal(size=(20000, 6)), independent).rho
  assert rho.max() < 0.05  # ~sqrt(D/N) sampling noise


def test_constant_and_duplicate_columns_are_dropped():
  rng = np.random.default_rng(4)
  x, y = _planted(rng, n=2000)
  padded = np.concatenate([x, np.full((2000, 1), 5.0), x[:, :2] * 2.0], axis=1)
  np.testing.assert_allclose(cca.cca(padded, y, epsilon=0.0).rho, cca.cca(x, y, epsilon=0.0).rho,
                             atol=1e-9)
  np.testing.assert_allclose(cca.cca(padded, y).rho, cca.cca(x, y).rho, atol=1e-5)
  with pytest.raises(ValueError, match="every column of y is constant"):
    cca.cca(x, np.ones((2000, 3)))
  with pytest.raises(ValueError, match="10 samples for 12 dims"):
    cca.cca(rng.normal(size=(10, 12)), rng.normal(size=(10, 2)))
  with pytest.raises(ValueError, match="x has 2000 samples but y has 1999"):
    cca.cca(x, y[1:])


def test_pwcca_definition_by_hand():
  rng = np.random.default_rng(5)
  x, y = _planted(rng, n=1500, d1=6, d2=4)
  res = cca.cca(x, y, epsilon=0.0)
  h = res.x_variates / np.linalg.norm(res.x_variates, axis=0)
  alpha = np.abs(h.T @ (x - x.mean(0))).sum(axis=1)
  expected = np.sum(alpha * res.rho) / alpha.sum()
  assert cca.pwcca(x, y, epsilon=0.0) == pytest.approx(expected, abs=1e-10)
  assert res.rho.mean() != pytest.approx(expected, abs=1e-3)  # the weighting matters here


def test_layerwise_pwcca_with_one_hot_labels():
  rng = np.random.default_rng(6)
  n, classes, dim = 6000, 12, 16
  labels = rng.integers(0, classes - 1, n)  # the last class never occurs: a constant one-hot column
  centroids = rng.normal(size=(classes, dim))
  informative = centroids[labels] + 0.5 * rng.normal(size=(n, dim))
  weak = centroids[labels] + 3.0 * rng.normal(size=(n, dim))
  random = rng.normal(size=(n, dim))
  scores = cca.layerwise_pwcca([informative, weak, random], labels, classes)
  assert scores[0] > scores[1] > scores[2]
  assert scores[0] > 0.8 and scores[2] < 0.1
  with pytest.raises(ValueError, match=r"labels must be in \[0, 5\)"):
    cca.layerwise_pwcca([random], labels, 5)
