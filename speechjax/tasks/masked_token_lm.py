"""Masked-token prediction over discrete speech ids (vq-wav2vec's BERT stage).

Spans of `task.mask_length` tokens are masked with speechjax.nn.masking (about `task.mask_prob` of the
tokens; the paper: spans of 10 with start probability ≈ 0.05, unconfirmed) and replaced by the MASK id;
the loss is cross-entropy over the masked real tokens. Batches: {"tokens": [B, L] int32, "tokens_mask":
[B, L] bool}, e.g. from `km_batches` over a `speechjax tokenize` output.

Not wired to the trainer yet: `speechjax train` reads audio records (speechjax.data.pipeline), so this task
runs through its own loop (see tests/tasks/test_masked_token_lm.py) until a token-record pipeline exists.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from speechjax.data import labels
from speechjax.models import token_bert
from speechjax.nn import masking
from speechjax.tasks import base


def km_batches(path: str, batch_size: int, length: int, seed: int = 0):
  """Endless batches of random `length`-token crops of a `.km` file's lines (shorter lines padded)."""
  lines = [ids for ids in labels.read_km(path) if ids.size]
  if not lines:
    raise ValueError(f"{path}: no non-empty lines")
  rng = np.random.default_rng(seed)
  while True:
    tokens = np.zeros((batch_size, length), np.int32)
    mask = np.zeros((batch_size, length), bool)
    for row, i in enumerate(rng.integers(0, len(lines), batch_size)):
      ids = lines[i]
      start = int(rng.integers(0, max(ids.size - length, 0) + 1))
      crop = ids[start:start + length]
      tokens[row, :crop.size], mask[row, :crop.size] = crop, True
    yield {"tokens": tokens, "tokens_mask": mask}


class Task(base.Task):

  def build_model(self):
    return token_bert.from_config(self.config.model)

  def model_inputs(self, batch):
    return batch["tokens"], batch["tokens_mask"]

  def loss(self, params, batch, rng, train, step):
    del step
    mask_rng, dropout_rng = jax.random.split(rng)
    real = batch["tokens_mask"].astype(bool)
    masked = masking.compute_mask(mask_rng, real, self.config.task.mask_prob, self.config.task.mask_length,
                                  min_masks=1)
    inputs = jnp.where(masked, token_bert.mask_id(self.config.model), batch["tokens"])
    out = self.model.apply({"params": params}, inputs, real, train=train, rngs={"dropout": dropout_rng})
    ce = optax.softmax_cross_entropy_with_integer_labels(out["logits"], batch["tokens"])
    count = jnp.maximum(masked.sum(), 1)
    loss = jnp.where(masked, ce, 0.0).sum() / count
    correct = masked & (jnp.argmax(out["logits"], -1) == batch["tokens"])
    return loss, {"masked_accuracy": correct.sum() / count, "masked_tokens": masked.sum()}

  def forward_flops(self):
    return token_bert.forward_flops(self.config.model, self.config.data.max_tokens)
