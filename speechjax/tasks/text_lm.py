"""A LLaMA trained on the transcripts of prepared records (`data.targets`, e.g. `transcript` characters):
next-token cross-entropy on [t1 .. tn, EOS] after [BOS, t1 .. tn], with the symbol ↔ id mapping of
`speechjax.models.speech_llm` (0 padding, 1..V symbols, BOS V + 1, EOS V + 2), so a run here is the `llm` of
a Speech-LLaMA (`config.llm_init`). The records' audio is read by the pipeline and not used.
Logged: `loss` (nats per token; held-out perplexity = exp(eval/loss)), `token_accuracy`.
"""
from __future__ import annotations

import jax.numpy as jnp
import optax

from speechjax.data import vocab
from speechjax.models import llama, speech_llm
from speechjax.tasks import base


class Task(base.Task):

  def __init__(self, config):
    vocab.resolve(config.data)
    self.text = speech_llm.text_ids(config.data)
    config.model.vocab_size = self.text.vocab_size
    super().__init__(config)

  def build_model(self):
    return llama.from_config(self.config.model)

  def _teacher_forcing(self, batch):
    return speech_llm.teacher_forcing(batch["targets"], batch["targets_mask"], self.text)

  def model_inputs(self, batch):
    return (self._teacher_forcing(batch)[0],)

  def loss(self, params, batch, rng, train, step):
    del rng, train, step
    inputs, outputs, mask = self._teacher_forcing(batch)
    logits = self.model.apply({"params": params}, inputs, mask=inputs > 0)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, outputs)
    count = jnp.maximum(mask.sum(), 1)
    hits = (jnp.argmax(logits, -1) == outputs) & mask
    return jnp.where(mask, ce, 0.0).sum() / count, {"token_accuracy": hits.sum() / count, "tokens": mask.sum()}

  def forward_flops(self):
    return llama.forward_flops(self.config.model, self.config.data.max_target_length + 1)
