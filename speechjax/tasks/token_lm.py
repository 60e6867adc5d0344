"""AudioLM stage training: next-token cross-entropy on a stage's stream (`speechjax.models.audiolm`).

    speechjax train --config configs/token_lm.py:semantic_tiny --workdir W --config.data.path=LABELED \
        --config.task.semantic_labels=km --config.data.labels="('km',)" --config.task.semantic_rate=100

Batch fields read:
    labels/<task.semantic_labels>   [B, F_s] semantic tokens (k-means or phone labels; −1 = padding)
    acoustic_codes                  [B, F_a, Q] RVQ codes (−1 = padding), or, when `task.acoustic_labels`
                                    names Q label sets (one per level, as `speechjax label` style records
                                    would store codec codes), those stacked
Crops: the pipeline's `data.max_sample_size` samples give F_s = T·semantic_rate/16000 and
F_a = T·acoustic_rate/16000 frames; the static sequence length follows (`audiolm.sequence_length`) and must
fit `model.max_length`. Metrics per predicted token: `ce` (= loss), `accuracy` (argmax next token), `tokens`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from speechjax.config import require
from speechjax.data import records
from speechjax.models import audiolm, token_lm
from speechjax.tasks import base, label_checks


def vocab_of(task_cfg) -> audiolm.Vocab:
  return audiolm.Vocab(task_cfg.semantic_vocab, task_cfg.codebook_size, task_cfg.levels,
                       task_cfg.coarse_levels)


def frames(config, rate: int) -> int:
  return config.data.max_sample_size * rate // records.SAMPLE_RATE


def validate(config) -> None:
  task, r = config.task, require
  r(task.stage in audiolm.STAGES, "task.stage", task.stage, f"expected one of {audiolm.STAGES}")
  r(task.semantic_vocab > 0, "task.semantic_vocab", task.semantic_vocab, "must be > 0")
  r(0 < task.coarse_levels <= task.levels, "task.coarse_levels", task.coarse_levels,
    f"must be in [1, task.levels={task.levels}]")
  r(len(task.acoustic_labels) in (0, task.levels), "task.acoustic_labels", task.acoustic_labels,
    f"must name 0 or task.levels={task.levels} label sets")
  for field in ("semantic_rate", "acoustic_rate"):
    r(records.SAMPLE_RATE % task[field] == 0, f"task.{field}", task[field], "must divide 16000")
  size = vocab_of(task).size(task.stage)
  r(config.model.vocab_size == size, "model.vocab_size", config.model.vocab_size,
    f"must be {size} for stage {task.stage!r} (1 + semantic_vocab + levels × codebook_size)")
  meta = label_checks.data_meta(config)
  if task.stage != "fine":
    label_checks.check_label_set(config, meta, "task.semantic_labels", task.semantic_labels,
                                 rate=task.semantic_rate, rate_field="task.semantic_rate",
                                 classes_field="task.semantic_vocab", classes=task.semantic_vocab)
  if task.stage != "semantic":
    for name in task.acoustic_labels:
      label_checks.check_label_set(config, meta, "task.acoustic_labels", name, rate=task.acoustic_rate,
                                   rate_field="task.acoustic_rate",
                                   classes_field="task.codebook_size", classes=task.codebook_size)


def acoustic_codes(batch: dict, label_names) -> jax.Array:
  """[B, F, Q] codes: the batch's `acoustic_codes`, or its per-level label sets stacked."""
  if label_names:
    return jnp.stack([batch[f"labels/{name}"] for name in label_names], axis=-1)
  return batch["acoustic_codes"]


def next_token_metrics(logits, tokens, weight) -> tuple[jax.Array, dict]:
  """Mean CE of tokens[:, 1:] given logits [B, S−1, V] over positions with `weight` [B, S−1]."""
  labels = tokens[:, 1:]
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  count = jnp.maximum(weight.sum(), 1)
  loss = jnp.where(weight, ce, 0.0).sum() / count
  correct = (logits.argmax(-1) == labels) & weight
  return loss, {"ce": loss, "accuracy": correct.sum() / count, "tokens": weight.sum()}


class SequenceTask(base.Task):
  """A TokenLM trained by next-token CE on static-length sequences `self.sequences(batch, rng)` builds;
  subclasses set `self.seq_len` before `super().__init__` and implement `sequences`."""
  seq_len: int

  def build_model(self):
    return token_lm.from_config(self.config.model)

  def model_inputs(self, batch):
    """Shape-only inputs for init: token sequences of the configured length (the batch gives B)."""
    return (jnp.zeros([len(next(iter(batch.values()))), self.seq_len - 1], jnp.int32),)

  def sequences(self, batch, rng) -> tuple[jax.Array, jax.Array, dict]:
    """(tokens [B, S], target [B, S] predicted tokens, {name: [B] bool rows} for per-subset accuracy)."""
    raise NotImplementedError

  def loss(self, params, batch, rng, train, step):
    sequence_rng, dropout_rng = jax.random.split(rng)
    tokens, target, subsets = self.sequences(batch, sequence_rng)
    pad = [(0, 0), (0, self.seq_len - tokens.shape[1])]    # shorter crops pad to the static length
    tokens, target = jnp.pad(tokens, pad), jnp.pad(target, pad)
    logits = self.model.apply({"params": params}, tokens[:, :-1], train=train, rngs={"dropout": dropout_rng})
    weight = target[:, 1:]
    loss, metrics = next_token_metrics(logits, tokens, weight)
    correct = logits.argmax(-1) == tokens[:, 1:]
    for name, rows in subsets.items():
      w = weight & rows[:, None]
      metrics[f"{name}_accuracy"] = (correct & w).sum() / jnp.maximum(w.sum(), 1)
    return loss, metrics

  def forward_flops(self):
    return token_lm.forward_flops(self.config.model, self.seq_len - 1)


class Task(SequenceTask):

  def __init__(self, config):
    validate(config)
    self.vocab = vocab_of(config.task)
    self.seq_len = audiolm.sequence_length(config.task.stage, self.vocab,
                                           frames(config, config.task.semantic_rate),
                                           frames(config, config.task.acoustic_rate))
    require(self.seq_len <= config.model.max_length, "model.max_length", config.model.max_length,
            f"must be >= the stage's sequence length {self.seq_len} (data.max_sample_size)")
    super().__init__(config)

  def sequences(self, batch, rng=None):
    task = self.config.task
    semantic = None if task.stage == "fine" else batch[f"labels/{task.semantic_labels}"]
    codes = None if task.stage == "semantic" else acoustic_codes(batch, task.acoustic_labels)
    tokens, _, target = audiolm.stage_sequence(task.stage, self.vocab, semantic, codes,
                                               task.remove_duplicates)
    return tokens, target, {}
