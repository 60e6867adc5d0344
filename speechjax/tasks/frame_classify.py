"""Supervised per-frame classification (e.g. phones from the synthetic corpus's 20 ms alignments).

Loss: cross-entropy averaged over real frames that have a label. Metrics: loss, frame accuracy.
Model frame i is paired with label frame i (both start at sample 0 with the model's 320-sample stride).
"""
from __future__ import annotations

import jax.numpy as jnp
import optax

from speechjax.models import frame_classifier
from speechjax.tasks import base, label_checks, pretrain_hubert


class Task(base.Task):

  def __init__(self, config):
    label_checks.check_label_set(config, label_checks.data_meta(config), "task.label", config.task.label,
                                 frame_rate=pretrain_hubert.model_frame_rate(config.model),
                                 whole_multiple=False, classes_field="model.num_classes",
                                 classes=config.model.num_classes)
    super().__init__(config)

  def build_model(self):
    return frame_classifier.from_config(self.config.model)

  def loss(self, params, batch, rng, train, step):
    out = self.model.apply({"params": params}, batch["audio"], batch["audio_mask"], train=train)
    logits = out["logits"]
    frames = logits.shape[1]
    labels = batch[f"labels/{self.config.task.label}"][:, :frames]
    mask = out["frame_mask"] & (labels >= 0)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(labels, 0))
    count = jnp.maximum(mask.sum(), 1)
    loss = jnp.where(mask, ce, 0.0).sum() / count
    correct = (logits.argmax(-1) == labels) & mask
    return loss, {"accuracy": correct.sum() / count, "frames": mask.sum()}

  def forward_flops(self):
    return frame_classifier.forward_flops(self.config.model, self.config.data.max_sample_size)
