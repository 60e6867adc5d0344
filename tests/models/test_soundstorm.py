"""SoundStorm: the MaskGIT training mask (cosine ratio, level structure) and jitted parallel decoding."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from speechjax.models import soundstorm

pytestmark = pytest.mark.fast_compile

Q = 3


def test_training_mask_follows_cosine_schedule_and_level_structure():
  batch, frames = 512, 600
  lengths = jax.random.randint(jax.random.PRNGKey(0), [batch], 300, frames + 1)
  frame_mask = jnp.arange(frames)[None] < lengths[:, None]
  out = jax.tree.map(np.asarray, soundstorm.training_mask(jax.random.PRNGKey(1), frame_mask, Q))
  masked, loss, level, ratio, start = out["masked"], out["loss"], out["level"], out["ratio"], out["start"]
  t = np.arange(frames)
  for b in range(batch):
    after = (t >= start[b]) & np.asarray(frame_mask[b])
    assert not masked[b][~after].any()                                   # prompt and padding visible
    assert not masked[b][:, :level[b]].any()                             # lower levels visible
    assert masked[b][after][:, level[b] + 1:].all()                      # higher levels fully masked
    np.testing.assert_array_equal(loss[b][:, level[b]], masked[b][:, level[b]])
    assert loss[b].sum() == loss[b][:, level[b]].sum()                  # loss on level q only
  n_after = np.maximum(((t[None] >= start[:, None]) & np.asarray(frame_mask)).sum(-1), 1)
  fraction = loss.sum((1, 2)) / n_after
  enough = n_after >= 100
  assert np.abs(fraction - ratio)[enough].mean() < 0.03                  # Bernoulli(cos u) per example
  # ratio = cos(u), u ~ U[0, π/2]  ⇒  P(ratio ≤ x) = 1 − (2/π)·arccos(x)
  xs = np.linspace(0.05, 0.95, 19)
  empirical = (ratio[None] <= xs[:, None]).mean(-1)
  np.testing.assert_allclose(empirical, 1 - 2 / math.pi * np.arccos(xs), atol=0.07)
  assert abs(np.bincount(level, minlength=Q) / batch - 1 / Q).max() < 0.07
  assert np.all(start < lengths)


def test_remaining_masked_schedule():
  n = jnp.array([[100]])
  counts = [int(soundstorm.remaining_masked(n, s, 8)[0, 0]) for s in range(8)]
  assert counts == sorted(counts, reverse=True) and counts[-1] == 0 and counts[0] < 100
  np.testing.assert_allclose(counts, np.floor(100 * np.cos(math.pi / 2 * np.arange(1, 9) / 8)))


def test_parallel_decoding_fills_every_frame_and_keeps_the_prompt():
  cfg = soundstorm.model_config("tiny")
  cfg.update(dict(levels=Q, codebook_size=16, semantic_vocab=10, hidden_size=32, num_layers=1,
                  num_heads=2, intermediate_size=64))
  batch, frames = 2, 20
  codes = jnp.zeros([batch, frames, Q], jnp.int32)
  semantic = jax.random.randint(jax.random.PRNGKey(2), [batch, frames], 0, 10)
  frame_mask = jnp.arange(frames)[None] < jnp.array([[20], [14]])
  boxed = soundstorm.from_config(cfg).init(jax.random.PRNGKey(3), codes, semantic, frame_mask)["params"]
  assert nn.get_partition_spec(boxed)["heads"]["kernel"] == jax.sharding.PartitionSpec("embed", None, "vocab")
  params = nn.unbox(boxed)
  logits = soundstorm.from_config(cfg).apply({"params": params}, codes, semantic, frame_mask)
  assert logits.shape == (batch, frames, Q, 16)
  prompt = jax.random.randint(jax.random.PRNGKey(4), [batch, frames, Q], 0, 16)
  prompt_frames = jnp.array([5, 0])
  gen = jax.jit(lambda rng: soundstorm.generate(cfg, params, semantic, frame_mask, rng, prompt,
                                                prompt_frames, steps=4))
  out = np.asarray(gen(jax.random.PRNGKey(5)))
  assert out.shape == (batch, frames, Q) and out.min() >= 0 and out.max() < 16
  np.testing.assert_array_equal(out[0, :5], prompt[0, :5])
  assert (out[1, 14:] == 0).all()
  np.testing.assert_array_equal(out, gen(jax.random.PRNGKey(5)))        # deterministic given the key
