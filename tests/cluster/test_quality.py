"""Cluster-quality metrics against hand-computed examples."""
import numpy as np
import pytest

from speechjax.cluster import quality


def test_perfect_clustering():
  phones = [np.array([0, 0, 1, 1, 2, 2, 2]), np.array([2, 1, 0])]
  clusters = [np.array([5, 5, 3, 3, 9, 9, 9]), np.array([9, 3, 5])]  # a relabelling of the phones
  q = quality.cluster_quality(phones, clusters)
  assert q.phone_purity == pytest.approx(1.0)
  assert q.cluster_purity == pytest.approx(1.0)
  assert q.pnmi == pytest.approx(1.0)
  assert q.phone_entropy == pytest.approx(q.cluster_entropy)
  assert q.num_frames == 10 and q.frames_dropped == 0


def test_independent_clusters_give_zero_pnmi():
  rng = np.random.default_rng(0)
  phones = [rng.integers(0, 5, 20000)]
  q = quality.cluster_quality(phones, [rng.integers(0, 7, 20000)])
  assert q.pnmi == pytest.approx(0.0, abs=2e-3)
  assert q.phone_entropy == pytest.approx(np.log(5), abs=1e-3)
  assert q.cluster_entropy == pytest.approx(np.log(7), abs=1e-3)


def test_hand_computed_example():
  # Frames (y, z): (0,0) (0,0) (0,1) (1,1). p(y,z) = [[1/2, 1/4], [0, 1/4]].
  q = quality.cluster_quality([np.array([0, 0, 0, 1])], [np.array([0, 0, 1, 1])])
  assert q.phone_purity == pytest.approx(0.5 + 0.25)     # Σ_z max_y p(y, z)
  assert q.cluster_purity == pytest.approx(0.5 + 0.25)   # Σ_y max_z p(y, z)
  h_y = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))
  mi = 0.5 * np.log(0.5 / (0.75 * 0.5)) + 0.25 * np.log(0.25 / (0.75 * 0.5)) \
      + 0.25 * np.log(0.25 / (0.25 * 0.5))
  assert q.phone_entropy == pytest.approx(h_y)
  assert q.cluster_entropy == pytest.approx(np.log(2))
  assert q.mutual_info == pytest.approx(mi)
  assert q.pnmi == pytest.approx(mi / h_y)


def test_purities_differ_when_clusters_split_phones():
  # Phone 0 split over clusters 0 and 1: each cluster predicts its phone (phone purity 1), but
  # phone 0's most frequent cluster holds only half of its frames (cluster purity 1/4 + 1/2).
  q = quality.cluster_quality([np.array([0, 0, 1, 1])], [np.array([0, 1, 2, 2])])
  assert q.phone_purity == pytest.approx(1.0)
  assert q.cluster_purity == pytest.approx(0.25 + 0.5)
  assert q.pnmi == pytest.approx(1.0)   # z determines y


def test_upsampling_and_truncation():
  phones = [np.array([0, 0, 1, 1, 2, 2, 2])]   # 100 Hz, 7 frames
  clusters = [np.array([4, 5, 6])]             # 50 Hz, 3 frames → 6 after upsampling
  q = quality.cluster_quality(phones, clusters, upsample=2)
  assert q.num_frames == 6 and q.frames_dropped == 1
  assert q.pnmi == pytest.approx(1.0)
  q = quality.cluster_quality(phones, clusters)  # without upsampling: 3 frames, (0,4) (0,5) (1,6)
  assert q.num_frames == 3 and q.frames_dropped == 4
  assert q.phone_purity == pytest.approx(1.0) and q.cluster_purity == pytest.approx(2 / 3)


def test_bad_input():
  with pytest.raises(ValueError, match="2 phone sequences but 1"):
    quality.cluster_quality([np.zeros(3, int)] * 2, [np.zeros(3, int)])
  with pytest.raises(ValueError, match="int"):
    quality.cluster_quality([np.zeros(3)], [np.zeros(3, int)])
  with pytest.raises(ValueError, match=">= 0"):
    quality.cluster_quality([np.array([0, -1])], [np.array([0, 1])])
  with pytest.raises(ValueError, match="no frames"):
    quality.cluster_quality([np.zeros(0, int)], [np.zeros(4, int)])
  with pytest.raises(ValueError, match="upsample"):
    quality.cluster_quality([np.zeros(3, int)], [np.zeros(3, int)], upsample=0)
