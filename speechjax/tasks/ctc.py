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
import ml_collections
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util

from speechjax import config as config_lib
from speechjax.data import vocab
from speechjax.models import ctc
from speechjax.tasks import base

FINETUNE_FIELDS = ("mask_prob", "mask_length", "min_masks", "mask_channel_prob", "mask_channel_length",
                   "mask_channel_min_masks", "layerdrop", "hidden_dropout", "attention_dropout",
                   "activation_dropout", "feat_proj_dropout", "final_dropout", "feature_grad_mult",
                   "dtype", "scan_layers", "remat_policy")


def resolve(config) -> None:
  """Fills what a run derives from its inputs (in place): the encoder architecture of `init_from` and
  the target vocabulary. A saved config has both, so reloading it scans nothing."""
  if config.get("init_from"):
    from speechjax.train import checkpoint
    _, meta = checkpoint.read_meta(checkpoint.checkpoint_dir(config.init_from))
    finetune = {k: config.model[k] for k in FINETUNE_FIELDS if k in config.model}
    config.model = ml_collections.ConfigDict(meta["config"]["model"])
    config.model.update(finetune)
  if config.data.targets not in vocab.FIELDS:
    raise config_lib.ConfigError(f"config.data.targets={config.data.targets!r}: expected one of "
                                 f"{vocab.FIELDS}")
  if not config.data.target_vocab:
    config.data.target_vocab = tuple(vocab.scan(config.data.path, config.data.train_split,
                                                config.data.targets))


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
    """Random-init `params` → the pretrained encoder from `init_from` (top `reinit_top_layers` layers
    stay random). Host-side, before the first step; returns params with the same shardings."""
    if not self.config.get("init_from"):
      return params
    from speechjax.train import checkpoint
    _, _, pretrained = checkpoint.load_model(self.config.init_from)
    scope = self.config.model.model_type
    if scope not in pretrained:
      raise config_lib.ConfigError(f"config.init_from={self.config.init_from!r}: no {scope!r} encoder "
                                   f"in the checkpoint (has {sorted(pretrained)})")
    new = traverse_util.flatten_dict(pretrained[scope], sep="/")
    old = traverse_util.flatten_dict(params[scope], sep="/")
    if new.keys() != old.keys():
      raise ValueError(f"init_from: encoder parameters differ: {sorted(new.keys() ^ old.keys())[:5]}")
    keep_random = reinit_predicate(self.config)
    merged = {}
    for name, value in old.items():
      if new[name].shape != value.shape:
        raise ValueError(f"init_from: {scope}/{name} has shape {new[name].shape}, model {value.shape}")
      merged[name] = jax.device_put(keep_random(name, np.asarray(new[name]), value), value.sharding)
    return {**params, scope: traverse_util.unflatten_dict(merged, sep="/")}

  def forward_flops(self):
    return ctc.forward_flops(self.config.model, self.config.data.max_sample_size,
                             len(self.config.data.target_vocab) + 1)


def reinit_predicate(config):
  """(param name, pretrained value, random value) → the value to start from (`reinit_top_layers`)."""
  k, layers = config.get("reinit_top_layers", 0), config.model.num_hidden_layers
  config_lib.require(0 <= k <= layers, "reinit_top_layers", k, f"must be in [0, {layers}]")
  top = {f"encoder/layers_{i}/" for i in range(layers - k, layers)}

  def choose(name, pretrained, random):
    if k and name.startswith("encoder/layers/"):     # scanned: leading axis = layer
      return jnp.concatenate([pretrained[:layers - k], np.asarray(random)[layers - k:]])
    return random if any(name.startswith(t) for t in top) else pretrained
  return choose
