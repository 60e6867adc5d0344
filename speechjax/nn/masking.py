"""Span masking for masked prediction (wav2vec 2.0 / HuBERT `compute_mask_indices`), jittable.

Static shapes throughout: every row draws its spans from its own real length with probabilistic rounding,
    num_spans = max(min_masks, floor(mask_prob * length / mask_length + u)),  u ~ U(0, 1) per row,
capped at the number of possible starts. Starts are drawn uniformly without replacement from
[0, length - mask_length]; spans may overlap (fairseq's default, HF's `_compute_mask_indices`).
`no_overlap=True` instead draws span placements uniformly among those that keep `min_space` unmasked
frames between spans (a uniform version of fairseq's recursive placer), capping the count to what fits.
Padding is never masked.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def _num_spans(u, lengths, mask_prob, mask_length, min_masks, capacity):
  """Spans per row [B] int32: mask_prob·length/mask_length rounded up with probability of its fraction
  (`u` [B] ~ U(0, 1)), ≥ min_masks, ≤ `capacity` [B]."""
  n = jnp.floor(mask_prob * lengths / mask_length + u).astype(jnp.int32)
  return jnp.clip(jnp.maximum(n, min_masks), 0, capacity)


def _choose(noise, valid, count):
  """A uniform random subset of `count` [B] slots among the `valid` [B, P] ones → [B, P] bool
  (`noise` [B, P] ~ U(0, 1))."""
  noise = jnp.where(valid, noise, 2.0)            # invalid slots sort last
  rank = jnp.argsort(jnp.argsort(noise, axis=-1), axis=-1)
  return (rank < count[:, None]) & valid


def _spans(starts, mask_length, num_frames):
  """Start indicators [B, P ≤ num_frames] bool → frames covered by a span [B, num_frames] bool."""
  starts = jnp.pad(starts.astype(jnp.int32), ((0, 0), (mask_length, num_frames - starts.shape[-1])))
  total = jnp.cumsum(starts, axis=-1)
  return total[:, mask_length:] - total[:, :-mask_length] > 0   # a start in (t - mask_length, t]


def compute_mask(rng, frame_mask, mask_prob: float, mask_length: int, min_masks: int = 0,
                 no_overlap: bool = False, min_space: int = 1):
  """Samples a span mask. `frame_mask` [B, F] bool (True = real frame, right-padded) → [B, F] bool.

  Args:
    rng: PRNG key.
    frame_mask: real frames of each row (the row's length is its number of True values).
    mask_prob: expected fraction of frames that start-and-cover spans (before overlaps are merged).
    mask_length: span length in frames.
    min_masks: minimum number of spans per row (when the row is long enough).
    no_overlap: place non-overlapping spans with at least `min_space` frames between them.
    min_space: gap between spans when `no_overlap`.
  """
  if mask_length < 1:
    raise ValueError(f"mask_length={mask_length}: must be at least 1")
  if not 0.0 <= mask_prob <= 1.0:
    raise ValueError(f"mask_prob={mask_prob}: must be in [0, 1]")
  num_frames = frame_mask.shape[-1]
  lengths = frame_mask.sum(-1).astype(jnp.int32)
  noise = jax.random.uniform(rng, (frame_mask.shape[0], num_frames + 1))   # one draw: rounding + places
  if no_overlap:
    starts = _place_apart(noise, lengths, mask_prob, mask_length, min_masks, min_space)
  else:
    slots = jnp.arange(max(num_frames - mask_length + 1, 0))
    capacity = jnp.maximum(lengths - mask_length + 1, 0)
    count = _num_spans(noise[:, -1], lengths, mask_prob, mask_length, min_masks, capacity)
    starts = _choose(noise[:, :slots.size], slots[None, :] < capacity[:, None], count)
  return _spans(starts, mask_length, num_frames) & frame_mask


def _place_apart(noise, lengths, mask_prob, mask_length, min_masks, min_space):
  """Start indicators [B, F] of non-overlapping spans (`noise` [B, F + 1] ~ U(0, 1)).

  A placement of n spans with gaps ≥ min_space in `length` frames is one choice of n slots among
  length - n·(mask_length - 1) - (n - 1)·min_space: span i (in order) starts at
  slot_i + i·(mask_length - 1 + min_space)."""
  num_frames = noise.shape[-1] - 1
  capacity = jnp.maximum((lengths + min_space) // (mask_length + min_space), 0)
  count = _num_spans(noise[:, -1], lengths, mask_prob, mask_length, min_masks, capacity)
  free = lengths - count * (mask_length - 1) - jnp.maximum(count - 1, 0) * min_space
  slots = jnp.arange(num_frames)
  chosen = _choose(noise[:, :num_frames], slots[None, :] < free[:, None], count)
  order = jnp.cumsum(chosen, axis=-1) - 1
  start = jnp.where(chosen, slots[None, :] + order * (mask_length - 1 + min_space), num_frames)
  rows = jnp.arange(lengths.shape[0])[:, None]
  return jnp.zeros((lengths.shape[0], num_frames), bool).at[rows, start].set(True, mode="drop")


def compute_channel_mask(rng, batch_size: int, num_channels: int, mask_prob: float, mask_length: int,
                         min_masks: int = 0):
  """Channel (feature-axis) spans for fine-tuning, one draw per row → [B, C] bool, True = zeroed."""
  return compute_mask(rng, jnp.ones((batch_size, num_channels), bool), mask_prob, mask_length, min_masks)
