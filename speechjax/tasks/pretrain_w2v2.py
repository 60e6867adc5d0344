"""wav2vec 2.0 pretraining (fairseq `wav2vec_criterion` with `infonce`).

Per masked frame t: cross-entropy of cos(project_hid(c_t), [q_t, K distractors]) / logit_temp with the
positive as class 0; distractors are quantized frames drawn from the other masked frames of the same
utterance. Plus `diversity_weight` × (G·V − prob_perplexity)/(G·V) and `feature_penalty_weight` × mean(conv
features²), both on the per-masked-frame scale (fairseq multiplies them by sample_size and then normalises
by it). The Gumbel temperature follows max(start · decay^step, end). Feature-encoder gradients are scaled by
`model.feature_grad_mult` inside the model. Logged loss terms are per masked frame, in nats.
The model is the family of `model.model_type`: wav2vec 2.0 or wav2vec2-conformer.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from speechjax.models import registry, wav2vec2
from speechjax.nn import contrastive, conv_encoder, masking
from speechjax.tasks import base


def gumbel_temperature(task_cfg, step):
  start, end, decay = task_cfg.gumbel_temperature
  return jnp.maximum(start * decay ** step.astype(jnp.float32), end)


def time_mask(rng, audio_mask, model_cfg):
  """(real frames [B, F] bool, span mask over them [B, F] bool; fairseq compute_mask_indices semantics)."""
  frame_mask = conv_encoder.frame_mask(audio_mask, wav2vec2.conv_layers(model_cfg))
  return frame_mask, masking.compute_mask(rng, frame_mask, model_cfg.mask_prob, model_cfg.mask_length,
                                          model_cfg.min_masks)


def contrastive_terms(rng, out, mask, task_cfg, num_codes: int) -> tuple[jax.Array, dict]:
  """wav2vec 2.0's contrastive loss + diversity_weight × diversity, from the pretraining model's outputs
  (`projected_states`, `projected_quantized`, `codes`, `prob_perplexity`, `code_perplexity`) and the time
  `mask` [B, F]: (loss, metrics). Shared with w2v-BERT (`speechjax.tasks.pretrain_w2v_bert`)."""
  negatives, valid = contrastive.sample_negatives(rng, mask, task_cfg.num_negatives)
  codes = out["codes"]
  same = jnp.all(codes[:, :, None, :] == codes[:, None, :, :], axis=-1)
  logits = contrastive.contrastive_logits(out["projected_states"], out["projected_quantized"], negatives,
                                          same, task_cfg.logit_temp)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.zeros(logits.shape[:2], jnp.int32))
  num_masked = jnp.maximum(valid.sum(), 1)
  contrastive_loss = jnp.where(valid, ce, 0.0).sum() / num_masked
  diversity = (num_codes - out["prob_perplexity"]) / num_codes
  top = jnp.argmax(logits, -1)
  distinct = ~jnp.all(logits == logits[..., :1], axis=-1)   # fairseq skips rows with all-equal logits
  correct = (top == 0) & valid & distinct
  return contrastive_loss + task_cfg.diversity_weight * diversity, {
      "contrastive": contrastive_loss, "diversity": diversity, "accuracy": correct.sum() / num_masked,
      "prob_perplexity": out["prob_perplexity"], "code_perplexity": out["code_perplexity"],
      "masked_frames": valid.sum()}


class Task(base.Task):

  def build_model(self):   # wav2vec 2.0, or with conformer layers (model.model_type)
    return registry.get(self.config.model.model_type).from_config(self.config.model)

  def loss(self, params, batch, rng, train, step):
    cfg, task = self.config.model, self.config.task
    mask_rng, neg_rng, gumbel_rng, dropout_rng = jax.random.split(rng, 4)
    _, mask = time_mask(mask_rng, batch["audio_mask"], cfg)
    temperature = gumbel_temperature(task, step)
    out = self.model.apply({"params": params}, batch["audio"], batch["audio_mask"], train=train,
                           mask_time=mask, gumbel_temperature=temperature,
                           rngs={"gumbel": gumbel_rng, "dropout": dropout_rng})
    loss, metrics = contrastive_terms(neg_rng, out, mask, task,
                                      cfg.num_codevector_groups * cfg.num_codevectors_per_group)
    loss = loss + task.feature_penalty_weight * out["feature_penalty"]
    return loss, {**metrics, "feature_penalty": out["feature_penalty"], "gumbel_temperature": temperature}

  def forward_flops(self):
    family = registry.get(self.config.model.model_type)
    return family.forward_flops(self.config.model, self.config.data.max_sample_size)
