"""Masked-token prediction over discrete speech ids (vq-wav2vec's BERT stage), trained by `speechjax train`.

Spans of `task.mask_length` tokens are masked with speechjax.nn.masking (about `task.mask_prob` of the
tokens; the paper: spans of 10 with start probability ≈ 0.05, unconfirmed) and replaced by the MASK id;
the loss is cross-entropy over the masked real tokens.

Data: the token records `speechjax tokenize` writes (`data.path`), read by the standard input pipeline,
which crops the ids with the audio: batch field `labels/<task.labels>` [B, L] (−1 = padding), L =
`data.max_sample_size` · `task.token_rate` / 16000. The audio rides along unused. Features for downstream
use: `model.apply(...)["last_hidden_state"]` [B, L, D] of a checkpoint (`speechjax.load`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from speechjax.data import records
from speechjax.models import token_bert
from speechjax.nn import masking
from speechjax.tasks import base, label_checks


def num_tokens(config) -> int:
  return config.data.max_sample_size * config.task.token_rate // records.SAMPLE_RATE


class Task(base.Task):

  def __init__(self, config):
    label_checks.check_label_set(config, label_checks.data_meta(config), "task.labels", config.task.labels,
                                 rate=config.task.token_rate, rate_field="task.token_rate",
                                 classes_field="model.vocab_size", classes=config.model.vocab_size)
    super().__init__(config)

  def build_model(self):
    return token_bert.from_config(self.config.model)

  def model_inputs(self, batch):
    """Shape-only inputs for init: [B, L] ids and mask (the batch gives B)."""
    shape = [len(next(iter(batch.values()))), num_tokens(self.config)]
    return jnp.zeros(shape, jnp.int32), jnp.ones(shape, bool)

  def loss(self, params, batch, rng, train, step):
    del step
    mask_rng, dropout_rng = jax.random.split(rng)
    ids = batch[f"labels/{self.config.task.labels}"]
    real, tokens = ids >= 0, jnp.maximum(ids, 0)
    masked = masking.compute_mask(mask_rng, real, self.config.task.mask_prob, self.config.task.mask_length,
                                  min_masks=1)
    inputs = jnp.where(masked, token_bert.mask_id(self.config.model), tokens)
    out = self.model.apply({"params": params}, inputs, real, train=train, rngs={"dropout": dropout_rng})
    ce = optax.softmax_cross_entropy_with_integer_labels(out["logits"], tokens)
    count = jnp.maximum(masked.sum(), 1)
    loss = jnp.where(masked, ce, 0.0).sum() / count
    correct = masked & (jnp.argmax(out["logits"], -1) == tokens)
    return loss, {"masked_accuracy": correct.sum() / count, "masked_tokens": masked.sum()}

  def forward_flops(self):
    return token_bert.forward_flops(self.config.model, num_tokens(self.config))
