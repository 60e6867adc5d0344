"""wav2vec 2.0 negatives and contrastive logits against direct loop implementations; HuBERT label rates."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from speechjax.nn import contrastive
from speechjax.tasks import pretrain_hubert


def test_negatives_exclude_the_positive_and_stay_in_masked_frames():
  rng = np.random.default_rng(0)
  mask = rng.random((4, 50)) < 0.5
  mask[3] = False
  mask[3, 7] = True    # one masked frame: no negatives possible
  idx, valid = contrastive.sample_negatives(jax.random.PRNGKey(1), jnp.asarray(mask), 30)
  idx, valid = np.asarray(idx), np.asarray(valid)
  assert not valid[3].any()
  for b in range(3):
    for t in np.flatnonzero(mask[b]):
      assert valid[b, t]
      assert t not in idx[b, t]
      assert mask[b, idx[b, t]].all()


def test_negatives_are_uniform_over_the_other_masked_frames():
  mask = np.zeros((1, 20), bool)
  mask[0, [2, 5, 6, 11, 17]] = True
  idx, _ = contrastive.sample_negatives(jax.random.PRNGKey(0), jnp.asarray(mask), 20000)
  drawn = np.asarray(idx)[0, 6]                       # positive = frame 6
  counts = np.array([(drawn == f).sum() for f in (2, 5, 11, 17)])
  assert counts.sum() == drawn.size                   # never 6, never an unmasked frame
  expected = drawn.size / 4
  chi2 = ((counts - expected) ** 2 / expected).sum()
  assert chi2 < 16.3                                  # p = 0.001 for 3 degrees of freedom


def test_contrastive_logits_match_a_direct_loop():
  rng = np.random.default_rng(0)
  b, f, d, k = 2, 6, 5, 3
  c, q = rng.standard_normal((b, f, d)), rng.standard_normal((b, f, d))
  q[0, 4] = q[0, 1]                                   # a duplicate of frame 1's target
  negatives = rng.integers(0, f, (b, f, k))
  negatives[0, 1, 0] = 4
  same = np.array([[[np.array_equal(q[i, s], q[i, t]) for t in range(f)] for s in range(f)]
                   for i in range(b)])
  got = np.asarray(contrastive.contrastive_logits(jnp.asarray(c), jnp.asarray(q), jnp.asarray(negatives),
                                                  jnp.asarray(same), 0.1))

  def cos(x, y):
    return x @ y / np.linalg.norm(x) / np.linalg.norm(y)
  for i in range(b):
    for t in range(f):
      assert got[i, t, 0] == pytest.approx(cos(c[i, t], q[i, t]) / 0.1, rel=1e-5)
      for j, s in enumerate(negatives[i, t]):
        want = -np.inf if same[i, t, s] else cos(c[i, t], q[i, s]) / 0.1
        assert got[i, t, 1 + j] == pytest.approx(want, rel=1e-5)
  assert got[0, 1, 1] == -np.inf


def test_hubert_labels_at_100hz_use_every_second_label():
  labels = jnp.arange(20)[None]
  np.testing.assert_array_equal(pretrain_hubert.frame_labels(labels, 9, 100)[0], np.arange(0, 18, 2))
  np.testing.assert_array_equal(pretrain_hubert.frame_labels(labels, 12, 50)[0], np.arange(12))
  short = pretrain_hubert.frame_labels(labels[:, :5], 8, 50)[0]
  np.testing.assert_array_equal(short, [0, 1, 2, 3, 4, -1, -1, -1])
