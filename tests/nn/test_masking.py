"""Span masking vs HF's numpy reference sampler `_compute_mask_indices`, plus padding/min_masks/no_overlap."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from speechjax.nn import masking

pytestmark = pytest.mark.fast_compile

PROB, LENGTH, MIN_MASKS = 0.65, 10, 2
ROWS, FRAMES, DRAWS = 32, 100, 40


@functools.lru_cache(maxsize=None)
def _sampler(**kwargs):
  """A jitted sampler over DRAWS keys: (keys [DRAWS], frame_mask [B, F]) → [DRAWS, B, F]."""
  def one(key, frame_mask):
    return masking.compute_mask(key, frame_mask, **kwargs)
  return jax.jit(jax.vmap(one, in_axes=(0, None)))


def _ours(frame_mask, seed=0, **kwargs):
  keys = jax.random.split(jax.random.PRNGKey(seed), DRAWS)
  kwargs = {"mask_prob": PROB, "mask_length": LENGTH, "min_masks": MIN_MASKS, **kwargs}
  return np.asarray(_sampler(**kwargs)(keys, jnp.asarray(frame_mask)))


def _hf(lengths):
  torch = pytest.importorskip("torch")
  modeling = pytest.importorskip("transformers.models.wav2vec2.modeling_wav2vec2")
  np.random.seed(0)
  attention = torch.as_tensor(np.arange(FRAMES)[None, :] < np.asarray(lengths)[:, None])
  return np.stack([modeling._compute_mask_indices((len(lengths), FRAMES), PROB, LENGTH, attention, MIN_MASKS)
                   for _ in range(DRAWS)])


def _run_lengths(masks):
  """Histogram (counts by length) of maximal runs of True along the last axis."""
  flat = masks.reshape(-1, masks.shape[-1]).astype(np.int8)
  edges = np.diff(np.pad(flat, ((0, 0), (1, 1))), axis=-1)
  starts, ends = np.nonzero(edges == 1), np.nonzero(edges == -1)
  return np.bincount(ends[1] - starts[1], minlength=FRAMES + 1)


def _frame_mask(lengths):
  return np.arange(FRAMES)[None, :] < np.asarray(lengths)[:, None]


def test_statistics_match_hf_reference_sampler():
  lengths = np.random.default_rng(0).integers(30, FRAMES + 1, ROWS)
  lengths[0] = FRAMES
  ours, ref = _ours(_frame_mask(lengths)), _hf(lengths)
  real = _frame_mask(lengths).sum() * DRAWS
  frac_ours, frac_ref = ours.sum() / real, ref.sum() / real
  print(f"masked fraction: ours {frac_ours:.4f}, HF {frac_ref:.4f}")
  assert abs(frac_ours - frac_ref) < 0.02
  hist_ours, hist_ref = _run_lengths(ours), _run_lengths(ref)
  p_ours, p_ref = hist_ours / hist_ours.sum(), hist_ref / hist_ref.sum()
  print("run lengths 10, 15, .., 40: ours", np.round(p_ours[10:41:5], 3), "HF", np.round(p_ref[10:41:5], 3))
  assert hist_ours[:LENGTH].sum() == 0 and hist_ref[:LENGTH].sum() == 0   # spans are never cut short
  assert 0.5 * np.abs(p_ours - p_ref).sum() < 0.05                        # total variation distance


def test_per_position_rate_matches_hf_on_full_rows():
  lengths = np.full(ROWS, FRAMES)
  ours, ref = _ours(_frame_mask(lengths)).mean((0, 1)), _hf(lengths).mean((0, 1))
  assert np.abs(ours - ref).max() < 0.08
  assert ours[0] < ours[FRAMES // 2]   # fewer spans cover the edges, as in the reference


def test_padding_never_masked_and_min_masks_respected():
  lengths = np.array([57, 23, 12, 10, 5, 0] + [40] * 10 + [FRAMES] * 16)
  frame_mask = _frame_mask(lengths)
  masks = _ours(frame_mask, mask_prob=0.0)      # only min_masks spans
  assert not (masks & ~frame_mask[None]).any()
  counts = masks.sum(-1)
  long_rows = lengths >= LENGTH
  assert (counts[:, long_rows] >= LENGTH).all()  # at least one whole span (min_masks may overlap)
  assert (counts[:, long_rows] <= MIN_MASKS * LENGTH).all()
  assert (counts[:, ~long_rows] == 0).all()      # too short for a span
  assert (counts[:, lengths > 2 * LENGTH] > LENGTH).all()   # starts drawn without replacement
  full = masks[:, lengths == FRAMES]
  assert full[..., 0].any() and full[..., -1].any()          # starts reach both ends of the range


def test_no_overlap_places_separate_spans():
  masks = _ours(_frame_mask(np.full(ROWS, FRAMES)), no_overlap=True, min_space=2)
  hist = _run_lengths(masks)
  assert hist.sum() == hist[LENGTH]                # only whole, separate spans
  spans = masks.sum(-1) // LENGTH
  assert set(np.unique(spans)) == {6, 7}           # floor/ceil of 0.65·100/10
  assert abs(masks.mean() - PROB) < 0.03           # coverage ≈ mask_prob
  edges = np.diff(np.pad(masks.reshape(-1, FRAMES).astype(np.int8), ((0, 0), (1, 1))), axis=-1)
  starts, ends = np.nonzero(edges == 1), np.nonzero(edges == -1)
  same_row = starts[0][1:] == ends[0][:-1]
  assert (starts[1][1:] - ends[1][:-1])[same_row].min() >= 2   # min_space frames between spans


def test_channel_mask_shape_and_rate():
  mask = masking.compute_channel_mask(jax.random.PRNGKey(0), 512, 64, 0.5, 8)
  assert mask.shape == (512, 64) and mask.dtype == jnp.bool_
  assert 0.2 < float(mask.mean()) < 0.5


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match="mask_length"):
    masking.compute_mask(jax.random.PRNGKey(0), jnp.ones((1, 5), bool), 0.5, 0)
  with pytest.raises(ValueError, match="mask_prob"):
    masking.compute_mask(jax.random.PRNGKey(0), jnp.ones((1, 5), bool), 1.5, 2)
