"""Codebook interleaving patterns: layouts as specified, exact inverses."""
import jax
import numpy as np
import pytest

from speechjax.nn import codebook_patterns as patterns

pytestmark = pytest.mark.fast_compile


@pytest.mark.parametrize("pattern", patterns.PATTERNS)
@pytest.mark.parametrize("frames,levels", [(1, 1), (7, 4), (5, 8)])
def test_round_trip_is_exact(pattern, frames, levels):
  codes = np.asarray(jax.random.randint(jax.random.PRNGKey(frames), [3, frames, levels], 0, 1024))
  seq = patterns.to_sequence(codes, pattern, fill=-7)
  assert seq.shape[1] == patterns.num_steps(pattern, frames, levels)
  np.testing.assert_array_equal(patterns.from_sequence(seq, pattern, frames, levels), codes)
  valid = patterns.valid(pattern, frames, levels)
  assert (np.asarray(seq)[:, ~valid] == -7).all() and valid.sum() == frames * levels
  # every code appears exactly once
  np.testing.assert_array_equal(np.sort(np.asarray(seq)[:, valid], axis=1), np.sort(codes.reshape(3, -1), axis=1))


def test_layouts():
  codes = np.arange(6).reshape(1, 3, 2)        # codes[t, q] = 2t + q
  np.testing.assert_array_equal(patterns.to_sequence(codes, "flatten")[0, :, 0], [0, 1, 2, 3, 4, 5])
  np.testing.assert_array_equal(patterns.to_sequence(codes, "parallel")[0], codes[0])
  np.testing.assert_array_equal(patterns.to_sequence(codes, "delay", fill=-1)[0],
                                [[0, -1], [2, 1], [4, 3], [-1, 5]])   # level q lags q steps
  assert patterns.num_steps("delay", 50, 4) == 53 and patterns.num_steps("flatten", 50, 4) == 200


def test_unknown_pattern_names_the_choices():
  with pytest.raises(ValueError, match="flatten"):
    patterns.layout("coarse_first", 2, 2)
