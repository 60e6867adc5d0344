"""WavLM pretraining: HuBERT's masked prediction (`pretrain_hubert`) on utterance-mixed audio.

Utterance mixing (WavLM's denoising objective): each utterance, with probability `task.mix_prob`, gets a
random crop of another utterance of the batch added at a random place inside its real samples:
    crop length = floor(U(0, mix_max_overlap) · primary length), at most the other utterance's length
    energy ratio r ~ U(mix_energy_ratio_db) dB: the crop is scaled so that
        10·log10(mean power of the primary's real samples / mean power of the scaled crop) = r
The labels stay the primary's, so the model must predict the primary speaker's content through the
interference. Padding and `audio_mask` are untouched. Static shapes and jax.random only, so the mixing
runs inside the jitted train step (eval steps do not mix). Values from the reference notes (p = 0.2,
overlap < 50%, ±5 dB) come from a third-party description of WavLM, not official code.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from speechjax.config import require
from speechjax.models import wavlm
from speechjax.tasks import pretrain_hubert


def mix_utterances(rng, audio, audio_mask, prob: float, energy_ratio_db=(-5.0, 5.0),
                   max_overlap: float = 0.5):
  """Adds a scaled random crop of another row to rows chosen with probability `prob`.

  Args:
    rng: PRNG key.
    audio: [B, T] float32 waveforms, zero-padded on the right.
    audio_mask: [B, T] bool, True = real sample.
    prob: probability that a row is mixed.
    energy_ratio_db: (low, high) range of the primary-to-crop energy ratio in dB.
    max_overlap: the crop covers at most this fraction of the primary's real samples.

  Returns:
    (mixed audio [B, T], info) with info = {"mixed" [B] bool, "partner" [B] int32 (row the crop comes
    from), "start" [B] int32 (where it is added), "length" [B] int32, "source_start" [B] int32,
    "ratio_db" [B] float32 (drawn for every row; meaningful where mixed)}.
  """
  audio, audio_mask = jnp.asarray(audio), jnp.asarray(audio_mask)
  batch, samples = audio.shape
  k_apply, k_partner, k_length, k_source, k_start, k_ratio = jax.random.split(rng, 6)
  rows = jnp.arange(batch)
  lengths = audio_mask.sum(-1).astype(jnp.int32)
  # Any other row (none when the batch has one row).
  partner = (rows + jax.random.randint(k_partner, (batch,), 1, max(batch, 2))) % batch
  length = jnp.floor(jax.random.uniform(k_length, (batch,), maxval=max_overlap) * lengths)
  length = jnp.minimum(length.astype(jnp.int32), lengths[partner])

  def place(key, room):   # uniform integer in [0, room]
    return jnp.floor(jax.random.uniform(key, (batch,)) * (room + 1)).astype(jnp.int32)
  source_start = place(k_source, lengths[partner] - length)
  start = place(k_start, lengths - length)

  t = jnp.arange(samples)[None, :]
  inside = (t >= start[:, None]) & (t < (start + length)[:, None])
  index = jnp.clip(t - start[:, None] + source_start[:, None], 0, samples - 1)
  crop = jnp.where(inside, jnp.take_along_axis(audio[partner], index, axis=1), 0.0)

  primary_power = jnp.sum(jnp.square(audio) * audio_mask, -1) / jnp.maximum(lengths, 1)
  crop_power = jnp.sum(jnp.square(crop), -1) / jnp.maximum(length, 1)
  low, high = energy_ratio_db
  ratio_db = jax.random.uniform(k_ratio, (batch,), minval=low, maxval=high)
  scale = jnp.sqrt(primary_power / jnp.maximum(crop_power, 1e-20) / 10.0 ** (ratio_db / 10.0))
  mixed = ((jax.random.uniform(k_apply, (batch,)) < prob) & (batch > 1) & (length > 0)
           & (crop_power > 0) & (primary_power > 0))
  out = audio + jnp.where(mixed, scale, 0.0)[:, None].astype(audio.dtype) * crop
  return out, {"mixed": mixed, "partner": partner, "start": start, "length": length,
               "source_start": source_start, "ratio_db": ratio_db}


def validate(task_cfg) -> None:
  """Raises ConfigError naming the bad mixing field."""
  require(0.0 <= task_cfg.mix_prob <= 1.0, "task.mix_prob", task_cfg.mix_prob, "must be in [0, 1]")
  ratio = tuple(task_cfg.mix_energy_ratio_db)
  require(len(ratio) == 2 and ratio[0] <= ratio[1], "task.mix_energy_ratio_db", ratio,
          "must be (low, high) in dB with low <= high")
  require(0.0 < task_cfg.mix_max_overlap <= 1.0, "task.mix_max_overlap", task_cfg.mix_max_overlap,
          "must be in (0, 1]")


class Task(pretrain_hubert.Task):
  """HuBERT's loss on utterance-mixed audio (training only); labels are the primary's."""

  def __init__(self, config):
    validate(config.task)
    super().__init__(config)

  def build_model(self):
    return wavlm.from_config(self.config.model)

  def augment(self, batch, rng):
    """The batch with utterance-mixed `audio` (all other fields unchanged) and the mixing info."""
    task = self.config.task
    audio, info = mix_utterances(rng, batch["audio"], batch["audio_mask"], task.mix_prob,
                                 tuple(task.mix_energy_ratio_db), task.mix_max_overlap)
    return {**batch, "audio": audio}, info

  def loss(self, params, batch, rng, train, step):
    if not train or self.config.task.mix_prob <= 0:
      return super().loss(params, batch, rng, train, step)
    mix_rng, rng = jax.random.split(rng)
    batch, info = self.augment(batch, mix_rng)
    loss, metrics = super().loss(params, batch, rng, train, step)
    return loss, {**metrics, "mixed_fraction": info["mixed"].mean()}

  def forward_flops(self):
    return wavlm.forward_flops(self.config.model, self.config.data.max_sample_size)
