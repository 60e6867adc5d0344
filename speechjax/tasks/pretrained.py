"""Starting a downstream task (CTC fine-tuning, probing) from a pretrained encoder checkpoint.

    config.init_from          a speechjax workdir/checkpoint of a wav2vec 2.0 / HuBERT / WavLM model
    config.reinit_top_layers  k: the top k transformer layers keep their random init

`resolve_architecture` copies the checkpoint's model config over `config.model` (keeping the downstream
run's FINETUNE_FIELDS); `warm_start` swaps the encoder subtree of freshly initialised params for the
checkpoint's, host-side before the first step, keeping each param's sharding. The checkpoint's layers may
be stored either way (`scan_layers`): they are converted to the model's layout.
"""
from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import traverse_util

from speechjax import config as config_lib
from speechjax.models import registry
from speechjax.nn import layer_stack
from speechjax.parallel import mesh as mesh_lib
from speechjax.train import checkpoint

FINETUNE_FIELDS = ("mask_prob", "mask_length", "min_masks", "mask_channel_prob", "mask_channel_length",
                   "mask_channel_min_masks", "layerdrop", "hidden_dropout", "attention_dropout",
                   "activation_dropout", "feat_proj_dropout", "final_dropout", "feature_grad_mult",
                   "dtype", "scan_layers", "remat_policy", "attention_impl")
# Checkpoints a fresh run warm-starts from (the encoder, a Speech-LLaMA's LLM); read at start-up only.
WARM_START_SOURCES = ("init_from", "llm_init")


def resolve_architecture(config) -> None:
  """`config.model` ← the architecture of `config.init_from` (in place; no-op without init_from)."""
  if config.get("init_from"):
    _, meta = checkpoint.read_meta(checkpoint.checkpoint_dir(config.init_from))
    finetune = {k: config.model[k] for k in FINETUNE_FIELDS if k in config.model}
    config.model = ml_collections.ConfigDict(meta["config"]["model"])
    config.model.update(finetune)


def warm_start(config, params):
  """Random-init `params` → the pretrained encoder from `init_from` (top `reinit_top_layers` layers
  stay random). Host-side, before the first step; returns params with the same shardings."""
  if not config.get("init_from"):
    return params
  _, _, pretrained = load_model(config.init_from)
  scope = registry.get(config.model.model_type, registry.ENCODERS).scope
  if scope not in pretrained:
    raise config_lib.ConfigError(f"config.init_from={config.init_from!r}: no {scope!r} encoder "
                                 f"in the checkpoint (has {sorted(pretrained)})")
  encoder = layer_stack.match_layout(jax.device_get(pretrained[scope]), params[scope])
  new = traverse_util.flatten_dict(encoder, sep="/")
  old = traverse_util.flatten_dict(params[scope], sep="/")
  if new.keys() != old.keys():
    raise ValueError(f"init_from: encoder parameters differ: {sorted(new.keys() ^ old.keys())[:5]}")
  keep_random = reinit_predicate(config)
  merged = {}
  for name, value in old.items():
    if new[name].shape != value.shape:
      raise ValueError(f"init_from: {scope}/{name} has shape {new[name].shape}, model {value.shape}")
    merged[name] = jax.device_put(keep_random(name, np.asarray(new[name]), value), value.sharding)
  return {**params, scope: traverse_util.unflatten_dict(merged, sep="/")}


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


def load_model(path: str, step: int | None = None, scan_layers: bool | None = None):
  """A checkpoint alone rebuilds its model: returns (config, model, params) on one device.

  `path` is a workdir, its `checkpoints/` directory, or `checkpoints/best`. The transformer layers come as
  saved (`scan_layers=None`) or in the layout `scan_layers` asks for (config and model to match). The
  config's warm-start sources (`init_from`, `llm_init`) come back empty: the run's own config.json names
  them, and they need not exist any more."""
  from speechjax.tasks import get_task   # tasks/__init__ imports the task modules, this one among them
  directory = checkpoint.checkpoint_dir(path)
  step, meta = checkpoint.read_meta(directory, step)
  config = config_lib.from_json(json.dumps(meta["config"]))
  for field in WARM_START_SOURCES:   # the checkpoint holds the params: its warm-start sources may be gone
    if field in config:
      config[field] = ""
  task = get_task(config)
  batch = checkpoint.example_batch(config, 1)
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                          mesh_lib.strip_boxes(task.abstract_variables(batch))["params"])
  params = checkpoint.restore_params(directory, abstract, step)
  saved = config.model.get("scan_layers")
  if scan_layers is None or scan_layers == saved:
    return config, task.model, params
  config_lib.require(saved is not None, "model.scan_layers", saved, "this model has no layer layouts")
  config.model.scan_layers = scan_layers
  convert = layer_stack.loop_to_scan if scan_layers else layer_stack.scan_to_loop
  return config, get_task(config).model, convert(params)
