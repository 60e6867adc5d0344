"""HuBERT pretraining (fairseq `hubert_criterion`): masked prediction of offline cluster labels.

For each label set i (`task.labels`, read from `labels/<name>` of the batch): logits = cos(final_proj_i(o_t),
label embeddings of set i) / logit_temp over all K_i classes. Loss per masked frame =
pred_masked_weight · CE(masked) + pred_nomask_weight · CE(unmasked, per unmasked frame)
+ feature_penalty_weight · mean(conv features²). Labels at 100 Hz (MFCC iteration) are read at every second
frame (frame t ↔ label 2t, as fairseq's feat2tar_ratio = 2); at 50 Hz frame t ↔ label t. Label −1 = none.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from speechjax.audio import w2v_bert_features
from speechjax.config import require
from speechjax.data import records
from speechjax.models import hubert
from speechjax.nn import conv_encoder
from speechjax.tasks import base, label_checks, pretrain_w2v2


def model_frame_rate(model_cfg) -> float:
  """Frames per second of the encoder (50 for the wav2vec 2.0 conv stack and for w2v-BERT's stacked fbank)."""
  if "conv_layers" not in model_cfg:   # w2v-BERT: 10 ms fbank frames stacked by 2
    return records.SAMPLE_RATE / w2v_bert_features.HOP
  return records.SAMPLE_RATE / conv_encoder.hop(tuple(map(tuple, model_cfg.conv_layers)))


def validate(config) -> None:
  """One rate and one class count per label set, each set in the data at that rate, each rate a whole
  multiple of the model's frame rate (100 Hz labels are read at every second frame); ConfigError names
  the field."""
  require(len(config.task.labels) >= 1, "task.labels", config.task.labels, "must name at least one label set")
  label_checks.same_lengths(config, "task.labels", "task.label_rates", "model.num_classes")
  meta, frame_rate = label_checks.data_meta(config), model_frame_rate(config.model)
  for i, name in enumerate(config.task.labels):
    label_checks.check_label_set(config, meta, "task.labels", name, rate=config.task.label_rates[i],
                                 rate_field="task.label_rates",
                                 frame_rate=frame_rate, classes_field="model.num_classes",
                                 classes=config.model.num_classes[i])


def frame_labels(labels, frames: int, label_rate: int, frame_rate: float = 50):
  """[B, F_label] labels at `label_rate` Hz → [B, frames] aligned with the model frames at `frame_rate` Hz
  (−1 = none); `validate` makes the label rate a whole multiple of the frame rate."""
  stride = int(label_rate // frame_rate)
  aligned = labels[:, ::stride][:, :frames]
  return jnp.pad(aligned, [(0, 0), (0, frames - aligned.shape[1])], constant_values=-1)


def masked_ce(logits, labels, where):
  """Sum of CE and of correct predictions over frames `where` (and with a label)."""
  ok = where & (labels >= 0)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(labels, 0))
  correct = (logits.argmax(-1) == labels) & ok
  return jnp.where(ok, ce, 0.0).sum(), correct.sum(), ok.sum()


class Task(base.Task):

  def __init__(self, config):
    validate(config)
    super().__init__(config)

  def build_model(self):
    return hubert.from_config(self.config.model)

  def loss(self, params, batch, rng, train, step):
    cfg, task = self.config.model, self.config.task
    mask_rng, dropout_rng = jax.random.split(rng)
    frame_mask, mask = pretrain_w2v2.time_mask(mask_rng, batch["audio_mask"], cfg)
    out = self.model.apply({"params": params}, batch["audio"], batch["audio_mask"], train=train,
                           mask_time=mask, rngs={"dropout": dropout_rng})
    metrics, loss = {}, task.feature_penalty_weight * out["feature_penalty"]
    for name, rate, logits in zip(task.labels, task.label_rates, out["logits"]):
      labels = frame_labels(batch[f"labels/{name}"], logits.shape[1], rate, model_frame_rate(cfg))
      ce_m, acc_m, n_m = masked_ce(logits, labels, mask & frame_mask)
      ce_u, acc_u, n_u = masked_ce(logits, labels, ~mask & frame_mask)
      n_m, n_u = jnp.maximum(n_m, 1), jnp.maximum(n_u, 1)
      loss += task.pred_masked_weight * ce_m / n_m + task.pred_nomask_weight * ce_u / n_u
      metrics.update({f"{name}/masked_loss": ce_m / n_m, f"{name}/unmasked_loss": ce_u / n_u,
                      f"{name}/masked_accuracy": acc_m / n_m, f"{name}/unmasked_accuracy": acc_u / n_u})
    metrics["feature_penalty"] = out["feature_penalty"]
    metrics["masked_frames"] = (mask & frame_mask).sum()
    return loss, metrics

  def forward_flops(self):
    return hubert.forward_flops(self.config.model, self.config.data.max_sample_size)
