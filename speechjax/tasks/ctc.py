"""CTC fine-tuning of a pretrained encoder (fairseq `audio_finetuning` + `ctc` criterion).

    speechjax train --config configs/ctc.py:tiny --workdir W --config.init_from=PRETRAINED_WORKDIR

Config (beyond the usual sections):
    init_from            a speechjax workdir/checkpoint of a wav2vec 2.0 / HuBERT / WavLM model ("" = random
                         init); its encoder architecture replaces `model`'s architecture fields, the
                         fine-tuning fields (FINETUNE_FIELDS) stay as configured
    reinit_top_layers    k: the top k transformer layers keep their random init instead of the pretrained
    task.freeze_encoder_steps  N: only the CTC head is updated for the first N steps (fairseq
                         `freeze_finetune_updates`); the conv feature encoder is frozen through `optim.frozen`
    data.targets         "phones" | "transcript" (characters, "|" between words); `data.target_vocab` is
                         scanned from the train split when empty and saved with the config

Loss: optax CTC per utterance, averaged over utterances (fairseq `sentence_avg`); logged also per target
token. Blank = id 0.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from speechjax.data import vocab
from speechjax.models import ctc
from speechjax.tasks import base, pretrained


def resolve(config) -> None:
  """Fills what a run derives from its inputs (in place): the encoder architecture of `init_from` and
  the target vocabulary. A saved config has both, so reloading it scans nothing."""
  pretrained.resolve_architecture(config)
  if "conv_layers" not in config.model:   # w2v-BERT (fbank front end): no conv feature encoder to freeze
    config.optim.frozen = tuple(p for p in config.optim.frozen if "feature_extractor" not in p)
  vocab.resolve(config.data)


class Task(base.Task):

  def __init__(self, config):
    resolve(config)
    super().__init__(config)

  def build_model(self):
    return ctc.from_config(self.config.model, len(self.config.data.target_vocab) + 1)

  def loss(self, params, batch, rng, train, step):
    mask_rng, dropout_rng = jax.random.split(rng)
    out = self.model.apply({"params": params}, batch["audio"], batch["audio_mask"], train=train,
                           rngs={"mask": mask_rng, "dropout": dropout_rng})
    logits, frame_mask = out["logits"], out["frame_mask"]
    per_utt = optax.ctc_loss(logits, (~frame_mask).astype(jnp.float32), batch["targets"],
                             (~batch["targets_mask"]).astype(jnp.float32), blank_id=0)
    rows = batch["targets_mask"].any(-1)            # evaluation pads partial batches with empty rows
    per_utt = jnp.where(rows, per_utt, 0.0)
    num_rows = jnp.maximum(rows.sum(), 1)
    loss = per_utt.sum() / num_rows
    blank = (jnp.argmax(logits, -1) == 0) & frame_mask
    return loss, {"ctc_loss": loss,
                  "ctc_loss_per_token": per_utt.sum() / jnp.maximum(batch["targets_mask"].sum(), 1),
                  "blank_fraction": blank.sum() / jnp.maximum(frame_mask.sum(), 1)}

  def filter_updates(self, tree, step):
    """Zeroes the encoder's gradients/updates for the first `task.freeze_encoder_steps` steps."""
    steps = self.config.task.freeze_encoder_steps
    if not steps:
      return tree
    frozen = step < steps
    return {k: v if k == "lm_head" else jax.tree.map(lambda x: jnp.where(frozen, 0, x), v)
            for k, v in tree.items()}

  def warm_start(self, params):
    return pretrained.warm_start(self.config, params)

  def forward_flops(self):
    return ctc.forward_flops(self.config.model, self.config.data.max_sample_size,
                             len(self.config.data.target_vocab) + 1)
