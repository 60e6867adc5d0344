"""SoundStorm training: masked prediction of RVQ codes given semantic tokens (`speechjax.models.soundstorm`).

Batch fields: `acoustic_codes` [B, F, Q] (or `task.acoustic_labels`, see `speechjax.tasks.token_lm`) with
−1 = padding, and `labels/<task.semantic_labels>` [B, F_s] at 1/`task.semantic_repeat` of the acoustic frame
rate (repeated to align). Loss: CE over the masked tokens of each example's sampled level
(`soundstorm.training_mask`); metrics `ce`, `accuracy`, `masked_tokens`, `mask_ratio`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from speechjax.config import require
from speechjax.models import soundstorm
from speechjax.tasks import base, label_checks
from speechjax.tasks.token_lm import acoustic_codes, frames


class Task(base.Task):

  def __init__(self, config):
    task = config.task
    require(task.semantic_repeat >= 1, "task.semantic_repeat", task.semantic_repeat, "must be >= 1")
    require(len(task.acoustic_labels) in (0, config.model.levels), "task.acoustic_labels",
            task.acoustic_labels, f"must name 0 or model.levels={config.model.levels} label sets")
    require(task.acoustic_rate % task.semantic_repeat == 0, "task.semantic_repeat", task.semantic_repeat,
            f"must divide task.acoustic_rate={task.acoustic_rate}")
    meta = label_checks.data_meta(config)
    if meta is not None and task.semantic_labels in meta.labels:
      semantic_rate = meta.labels[task.semantic_labels].frame_rate
      require(semantic_rate * task.semantic_repeat == task.acoustic_rate, "task.semantic_repeat",
              task.semantic_repeat, f"label set {task.semantic_labels!r} is at {semantic_rate} Hz: × repeat "
              f"must give task.acoustic_rate={task.acoustic_rate}")
    label_checks.check_label_set(config, meta, "task.semantic_labels", task.semantic_labels,
                                 classes_field="model.semantic_vocab", classes=config.model.semantic_vocab)
    for name in task.acoustic_labels:
      label_checks.check_label_set(config, meta, "task.acoustic_labels", name, rate=task.acoustic_rate,
                                   rate_field="task.acoustic_rate",
                                   classes_field="model.codebook_size", classes=config.model.codebook_size)
    self.frames = frames(config, task.acoustic_rate)
    super().__init__(config)

  def build_model(self):
    return soundstorm.from_config(self.config.model)

  def model_inputs(self, batch):
    """Shape-only inputs for init: one crop of codes, semantic tokens and frame mask."""
    b, c = len(next(iter(batch.values()))), self.config.model
    return (jnp.zeros([b, self.frames, c.levels], jnp.int32), jnp.zeros([b, self.frames], jnp.int32),
            jnp.ones([b, self.frames], bool))

  def loss(self, params, batch, rng, train, step):
    task, c = self.config.task, self.config.model
    codes = acoustic_codes(batch, task.acoustic_labels)
    frame_mask = codes[..., 0] >= 0
    semantic = soundstorm.align_semantic(batch[f"labels/{task.semantic_labels}"], codes.shape[1],
                                         task.semantic_repeat)
    mask_rng, dropout_rng = jax.random.split(rng)
    m = soundstorm.training_mask(mask_rng, frame_mask, c.levels)
    inputs = jnp.where(m["masked"], c.codebook_size, jnp.maximum(codes, 0))
    logits = self.model.apply({"params": params}, inputs, jnp.maximum(semantic, 0), frame_mask,
                              train=train, rngs={"dropout": dropout_rng})
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(codes, 0))
    count = jnp.maximum(m["loss"].sum(), 1)
    loss = jnp.where(m["loss"], ce, 0.0).sum() / count
    correct = (logits.argmax(-1) == codes) & m["loss"]
    return loss, {"ce": loss, "accuracy": correct.sum() / count, "masked_tokens": m["loss"].sum(),
                  "mask_ratio": m["ratio"].mean()}

  def forward_flops(self):
    return soundstorm.forward_flops(self.config.model, self.frames)
