"""w2v-BERT pretraining (Chung et al. 2021): contrastive module and MLM module trained together.

    loss = contrastive + diversity_weight × diversity          wav2vec 2.0's, on the output of the first
                                                              `model.contrastive_layers` layers
         + mlm_weight × MLM                                    cross-entropy of `mlm_logits` (last layer)
                                                              against the quantizer's code ids, per group,
                                                              over masked real frames
The code ids are targets (no gradient through them); the quantizer learns from the contrastive loss, as
in the paper. Time masks are sampled over the 50 Hz feature frames (`speechjax.models.w2v_bert`). Logged
terms are per masked frame, in nats; `mlm_accuracy` is the fraction of masked (frame, group) ids hit.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from speechjax.audio import w2v_bert_features
from speechjax.models import w2v_bert
from speechjax.nn import masking
from speechjax.tasks import base
from speechjax.tasks.pretrain_w2v2 import contrastive_terms, gumbel_temperature


class Task(base.Task):

  def build_model(self):
    return w2v_bert.from_config(self.config.model)

  def loss(self, params, batch, rng, train, step):
    cfg, task = self.config.model, self.config.task
    mask_rng, neg_rng, gumbel_rng, dropout_rng = jax.random.split(rng, 4)
    frames = w2v_bert_features.frame_mask(batch["audio_mask"])
    mask = masking.compute_mask(mask_rng, frames, cfg.mask_prob, cfg.mask_length, cfg.min_masks)
    temperature = gumbel_temperature(task, step)
    out = self.model.apply({"params": params}, batch["audio"], batch["audio_mask"], train=train,
                           mask_time=mask, gumbel_temperature=temperature,
                           rngs={"gumbel": gumbel_rng, "dropout": dropout_rng})
    loss, metrics = contrastive_terms(neg_rng, out, mask, task,
                                      cfg.num_codevector_groups * cfg.num_codevectors_per_group)
    masked = mask & out["frame_mask"]
    ce = optax.softmax_cross_entropy_with_integer_labels(out["mlm_logits"], out["codes"])   # [B, F, G]
    hits = jnp.argmax(out["mlm_logits"], -1) == out["codes"]
    count = jnp.maximum(masked.sum() * cfg.num_codevector_groups, 1)
    mlm = jnp.where(masked[..., None], ce, 0.0).sum() / count
    mlm_accuracy = jnp.where(masked[..., None], hits, False).sum() / count
    return loss + task.mlm_weight * mlm, {**metrics, "mlm": mlm, "mlm_accuracy": mlm_accuracy,
                                          "gumbel_temperature": temperature}

  def forward_flops(self):
    return w2v_bert.forward_flops(self.config.model, self.config.data.max_sample_size)
