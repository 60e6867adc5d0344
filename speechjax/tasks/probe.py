"""SUPERB-style probing: a frozen pretrained encoder, a learned softmax-weighted sum of all its layers, and a
small head (Yang et al. 2021).

    speechjax train --config configs/probe.py:phones  --workdir W --config.init_from=PRETRAINED
    speechjax train --config configs/probe.py:speaker --workdir W --config.init_from=PRETRAINED

`task.level`:
    frame       per-frame classification of `task.label` (a frame-label set, e.g. phone_20ms: 50 Hz, the
                encoder's frame rate) over real frames
    utterance   classification of the utterance from the mean of its frames; the class is `data.targets`
                ("speaker"), one symbol per utterance
Metrics: loss, accuracy, and `layer_weight/<i>` (softmax weights of hidden state i: 0 = the transformer
input, L = the last layer). Only the probe is trained: the encoder's outputs are stop-gradient'ed and its
params frozen (`optim.frozen`), so they get neither gradients nor optimizer state.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import linen as nn

from speechjax import config as config_lib
from speechjax.data import vocab
from speechjax.models import registry
from speechjax.tasks import base, label_checks, pretrained, pretrain_hubert


class WeightedLayerProbe(nn.Module):
  """hidden [L+1, B, F, D], frame_mask [B, F] → logits [B, F, K] (frame) or [B, K] (utterance)."""
  num_classes: int
  hidden_dim: int
  utterance: bool

  @nn.compact
  def __call__(self, hidden, frame_mask):
    weights = jax.nn.softmax(self.param("layer_weights", nn.initializers.zeros, (hidden.shape[0],)))
    x = jnp.einsum("l,lbfd->bfd", weights, hidden)
    if self.utterance:
      m = frame_mask[..., None].astype(x.dtype)
      x = (x * m).sum(1) / jnp.maximum(m.sum(1), 1.0)
    if self.hidden_dim:
      x = nn.relu(nn.Dense(self.hidden_dim, name="hidden")(x))
    return nn.Dense(self.num_classes, name="out")(x), weights


class ProbedEncoder(nn.Module):
  config: ml_collections.FrozenConfigDict
  num_classes: int
  hidden_dim: int
  utterance: bool

  @nn.compact
  def __call__(self, audio, audio_mask, *, train: bool = False):
    c = self.config
    family = registry.get(c.model_type, registry.ENCODERS)
    out = family.encoder(c, name=family.scope)(audio, audio_mask, train=False, output_hidden_states=True)
    hidden = jax.lax.stop_gradient(jnp.stack(out["hidden_states"]).astype(jnp.float32))
    logits, weights = WeightedLayerProbe(self.num_classes, self.hidden_dim, self.utterance,
                                         name="probe")(hidden, out["frame_mask"])
    return {"logits": logits, "layer_weights": weights, "frame_mask": out["frame_mask"]}


class Task(base.Task):

  def __init__(self, config):
    config_lib.require(config.task.level in ("frame", "utterance"), "task.level", config.task.level,
                       "expected 'frame' or 'utterance'")
    pretrained.resolve_architecture(config)
    if config.task.level == "utterance":
      vocab.resolve(config.data)
    else:
      label_checks.check_label_set(config, label_checks.data_meta(config), "task.label", config.task.label,
                                   frame_rate=pretrain_hubert.model_frame_rate(config.model),
                                   whole_multiple=False)
    super().__init__(config)

  def num_classes(self) -> int:
    if self.config.task.level == "utterance":
      return len(self.config.data.target_vocab)
    from speechjax.data import records
    return records.read_meta(self.config.data.path).labels[self.config.task.label].num_classes

  def build_model(self):
    registry.get(self.config.model.model_type, registry.ENCODERS).validate(self.config.model)
    return ProbedEncoder(ml_collections.FrozenConfigDict(self.config.model), self.num_classes(),
                         self.config.task.hidden_dim, self.config.task.level == "utterance")

  def loss(self, params, batch, rng, train, step):
    out = self.model.apply({"params": params}, batch["audio"], batch["audio_mask"], train=train)
    if self.config.task.level == "utterance":
      labels, valid = batch["targets"][:, 0] - 1, batch["targets_mask"][:, 0]
    else:
      name = self.config.task.label
      labels, valid = batch[f"labels/{name}"], batch[f"labels_mask/{name}"]
      frames = out["logits"].shape[1]
      labels, valid = labels[:, :frames], valid[:, :frames] & out["frame_mask"][:, :labels.shape[1]]
      out["logits"] = out["logits"][:, :labels.shape[1]]
    ce = optax.softmax_cross_entropy_with_integer_labels(out["logits"], jnp.maximum(labels, 0))
    count = jnp.maximum(valid.sum(), 1)
    loss = jnp.where(valid, ce, 0.0).sum() / count
    correct = (jnp.argmax(out["logits"], -1) == labels) & valid
    metrics = {"accuracy": correct.sum() / count, "count": valid.sum()}
    metrics.update({f"layer_weight/{i}": w for i, w in enumerate(out["layer_weights"])})
    return loss, metrics

  def warm_start(self, params):
    """A fresh probe run needs its encoder (a loaded probe checkpoint holds it, and `init_from` comes back
    empty: `pretrained.load_model`)."""
    config_lib.require(bool(self.config.get("init_from")), "init_from", self.config.get("init_from"),
                       "probing needs a pretrained encoder checkpoint")
    return pretrained.warm_start(self.config, params)

  def forward_flops(self):
    family = registry.get(self.config.model.model_type, registry.ENCODERS)
    flops, frames = family.encoder_flops(self.config.model, self.config.data.max_sample_size)
    return flops + 2.0 * frames * self.config.model.hidden_size * max(self.config.task.hidden_dim, 1)
