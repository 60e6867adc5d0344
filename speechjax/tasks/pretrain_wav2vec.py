"""wav2vec and vq-wav2vec pretraining (fairseq `wav2vec_criterion` without `infonce`): binary contrastive
prediction of future frames.

For every real row t and step k = 1..K, prediction k of c_t is scored by a dot product against its target
frame s = t + offset + k − 1 (the positive) and against `num_negatives` distractors: targets of other
frames of the same utterance, drawn uniformly once per target frame s (never s itself; shared by all steps
that target s; speechjax.nn.contrastive.sample_negatives over the real frames). The loss is binary
cross-entropy with logits, label 1 for the positive and 0 for each negative, averaged over all scored
pairs (fairseq: summed, then divided by the number of targets): ln 2 when every score is 0. Its best
constant score, log(1/N), already reaches the entropy of the 1:N label prior; with
`task.balanced_classes` the positive weighs 1 and each negative 1/N instead, so that a constant score can
do no better than ln 2 (see configs/wav2vec.py tiny for why that matters).

`model.model_type` picks the model: "wav2vec" (targets: encoder outputs) or "vq_wav2vec" (targets:
quantized frames). vq-wav2vec adds `vq_loss_weight` × the k-means codebook loss (fairseq `loss_weights`)
or `diversity_weight` × (G·V − prob_perplexity)/(G·V) for Gumbel (0 in the README command; normalised here,
fairseq's is not), and anneals the Gumbel temperature as max(start · decay^step, end).
Metrics: `binary` (the contrastive loss), `accuracy` = fraction of rows whose positive outscores all its
negatives (chance 1/(1 + num_negatives)), code perplexity, temperature.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from speechjax.config import require
from speechjax.models import registry, wav2vec
from speechjax.nn import contrastive
from speechjax.tasks import base
from speechjax.tasks.pretrain_w2v2 import gumbel_temperature

FAMILIES = {name: registry.FAMILIES[name] for name in ("wav2vec", "vq_wav2vec")}


def step_scores(predictions, targets, negatives, valid, offset: int):
  """Dot-product scores of every prediction against its target and its negatives.

  predictions: [B, F, K, C], row t step k predicting frame t + offset + k (k from 0 here).
  targets: [B, F, C]. negatives: [B, F, N] frame indices of the distractors of each target frame.
  valid: [B, F] bool, target frames that can be scored (real, with negatives).
  Returns (scores [B, F, K, 1 + N] float32 indexed by *target* frame, positive first;
  valid [B, F, K] bool: target frame valid and its predicting row inside the utterance).
  """
  targets = targets.astype(jnp.float32)
  candidates = jnp.concatenate([targets[:, :, None], jax.vmap(lambda t, n: t[n])(targets, negatives)], 2)
  frames = jnp.arange(targets.shape[1])
  scores, usable = [], []
  for k in range(predictions.shape[2]):
    shift = offset + k
    aligned = jnp.roll(predictions[:, :, k], shift, axis=1)   # row s holds the prediction made at s − shift
    scores.append(jnp.einsum("bfc,bfnc->bfn", aligned, candidates))
    usable.append(valid & (frames >= shift)[None, :])
  return jnp.stack(scores, 2), jnp.stack(usable, 2)


def binary_loss(scores, valid, balanced: bool = False):
  """(binary cross-entropy, accuracy) of `scores` [..., 1 + N] with the positive first, over the rows where
  `valid` [...] is True. The loss is the mean over the scored pairs, or with `balanced` the mean over rows
  of (BCE of the positive + mean BCE of the N negatives) / 2. Both are ln 2 at zero scores."""
  negatives = scores.shape[-1] - 1
  positive, negative = jax.nn.softplus(-scores[..., 0]), jax.nn.softplus(scores[..., 1:]).sum(-1)
  pairs, per_row = (positive + negative / negatives, 2) if balanced else (positive + negative, 1 + negatives)
  rows = jnp.maximum(valid.sum(), 1)
  loss = jnp.where(valid, pairs, 0.0).sum() / (rows * per_row)
  correct = valid & (scores[..., 0] > scores[..., 1:].max(-1))
  return loss, correct.sum() / rows


class Task(base.Task):

  def build_model(self):
    family = registry.get(self.config.model.model_type, FAMILIES)
    require(self.config.task.num_negatives >= 1, "task.num_negatives", self.config.task.num_negatives,
            "must be at least 1")
    return family.from_config(self.config.model)

  def loss(self, params, batch, rng, train, step):
    cfg, task = self.config.model, self.config.task
    neg_rng, gumbel_rng = jax.random.split(rng)
    kwargs, metrics = {}, {}
    if cfg.model_type == "vq_wav2vec":
      kwargs["temperature"] = metrics["gumbel_temperature"] = gumbel_temperature(task, step)
    out = self.model.apply({"params": params}, batch["audio"], batch["audio_mask"], train=train,
                           rngs={"gumbel": gumbel_rng}, **kwargs)
    negatives, valid = contrastive.sample_negatives(neg_rng, out["frame_mask"], task.num_negatives)
    scores, scored = step_scores(out["predictions"], out["targets"], negatives, valid,
                                 wav2vec.prediction_offset(cfg))
    binary, accuracy = binary_loss(scores, scored, task.balanced_classes)
    loss = binary
    if "vq_loss" in out:
      loss = loss + task.vq_loss_weight * out["vq_loss"]
      metrics["vq_loss"] = out["vq_loss"]
    if "prob_perplexity" in out:
      num_codes = cfg.vq_groups * cfg.vq_vars
      diversity = (num_codes - out["prob_perplexity"]) / num_codes
      loss = loss + task.diversity_weight * diversity
      metrics.update(diversity=diversity, prob_perplexity=out["prob_perplexity"])
    if "code_perplexity" in out:
      metrics["code_perplexity"] = out["code_perplexity"]
    return loss, {**metrics, "binary": binary, "accuracy": accuracy, "scored": scored.sum()}

  def forward_flops(self):
    cfg = self.config.model
    return FAMILIES[cfg.model_type].forward_flops(cfg, self.config.data.max_sample_size)
