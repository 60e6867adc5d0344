"""`speechjax convert`: HF transformers checkpoints ↔ speechjax params-only checkpoints.

    speechjax convert --from-hf DIR_OR_FILE --out CKPT_DIR [--scan-layers]
    speechjax convert --to-hf CKPT_DIR --out HF_DIR

--from-hf reads a local `save_pretrained` directory (config.json + model.safetensors or pytorch_model.bin,
sharded or not) or one weights file next to its config.json; nothing is ever downloaded. It writes a
params-only Orbax checkpoint in speechjax.train.checkpoint's layout, `CKPT_DIR/checkpoints/0/{params,meta}`,
with meta = {"step": 0, "config": {"model": <model config>}, "heads": bool, "source": path}. Load it with
`checkpoint.restore_params(CKPT_DIR + "/checkpoints", abstract_params)` (e.g. to initialise training).
--to-hf reads such a checkpoint, or a training workdir (latest step; the `model` section of its config),
and writes an HF `save_pretrained` directory: Wav2Vec2ForPreTraining when the params have the quantizer,
else Wav2Vec2Model / HubertModel / WavLMModel (and the conformer families: Wav2Vec2Conformer*,
Wav2Vec2BertModel). `LlamaForCausalLM` directories (TinyLlama, SmolLM, Llama 2/3) convert both ways too
(`speechjax.interop.hf_llama`). HF has no HuBERT or WavLM pretraining heads: final_proj and
label_embs are left out, and the command says so.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from speechjax.config import ConfigError
from speechjax.interop import hf, hf_conformer, hf_llama
from speechjax.parallel.mesh import strip_boxes

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument("--from-hf", metavar="DIR_OR_FILE",
                      help="local HF save_pretrained directory, or a weights file next to config.json")
  source.add_argument("--to-hf", metavar="CKPT_DIR", help="speechjax checkpoint or workdir to export")
  parser.add_argument("--out", required=True, help="output checkpoint directory (or HF directory)")
  parser.add_argument("--scan-layers", action="store_true",
                      help="--from-hf: store the layers stacked, for model.scan_layers=True")


def run(args: argparse.Namespace) -> int:
  try:
    if args.from_hf:
      print(import_hf(args.from_hf, args.out, args.scan_layers))
    else:
      print(export_hf(args.to_hf, args.out))
  except (FileNotFoundError, ValueError, ConfigError) as e:
    print(f"convert: error: {e}", file=sys.stderr)
    return 1
  return 0


# --- HF → speechjax -------------------------------------------------------------------------------------
def _weight_files(source: str) -> tuple[str, list[str]]:
  """(directory holding config.json, weights files) of a save_pretrained directory or a weights file."""
  if os.path.isfile(source):
    directory, name = os.path.dirname(os.path.abspath(source)), source
  elif os.path.isdir(source):
    found = [f for f in WEIGHT_FILES if os.path.exists(os.path.join(source, f))]
    if not found:
      raise FileNotFoundError(f"{source}: no weights file (expected one of {list(WEIGHT_FILES)})")
    directory, name = source, os.path.join(source, found[0])
  else:
    raise FileNotFoundError(f"{source}: no such file or directory")
  if not os.path.exists(os.path.join(directory, "config.json")):
    raise FileNotFoundError(f"{directory}: no config.json next to the weights")
  if name.endswith(".index.json"):
    with open(name) as f:
      shards = sorted(set(json.load(f)["weight_map"].values()))
    return directory, [os.path.join(directory, s) for s in shards]
  return directory, [name]


def _read_weights(path: str) -> dict:
  """One weights file → {key: array}."""
  if path.endswith(".safetensors"):
    from safetensors.numpy import load_file   # pylint: disable=import-outside-toplevel
    return load_file(path)
  import torch   # pylint: disable=import-outside-toplevel
  return torch.load(path, map_location="cpu", weights_only=True)


def load_hf(source: str) -> tuple[ml_collections.ConfigDict, dict]:
  """(our model config, HF state dict) from a local HF checkpoint."""
  import transformers   # pylint: disable=import-outside-toplevel
  directory, files = _weight_files(source)
  hf_cfg = transformers.AutoConfig.from_pretrained(directory, local_files_only=True)
  state_dict = {}
  for path in files:
    state_dict.update(_read_weights(path))
  if hf_cfg.model_type == "llama":
    return hf_llama.config_from_hf(hf_cfg), state_dict
  return hf.config_from_hf(hf_cfg), state_dict


def _from_hf(state_dict, cfg):
  return (hf_llama.from_hf if cfg.model_type == "llama" else hf.from_hf)(state_dict, cfg)


def _abstract_params(cfg, heads: bool):
  if cfg.model_type == "llama":
    from speechjax.models import llama   # pylint: disable=import-outside-toplevel
    shapes = jax.eval_shape(llama.from_config(cfg).init, jax.random.PRNGKey(0), np.zeros((1, 1), np.int32))
    return strip_boxes(shapes)["params"]
  return hf.abstract_params(cfg, heads)


def import_hf(source: str, out: str, scan_layers: bool = False) -> str:
  """Converts a local HF checkpoint into a params-only checkpoint under `out`; returns a summary."""
  from speechjax.train import checkpoint   # pylint: disable=import-outside-toplevel
  cfg, state_dict = load_hf(source)
  cfg.scan_layers = scan_layers
  params = _from_hf(state_dict, cfg)
  heads = cfg.model_type in hf.FAMILIES and hf.FAMILIES[cfg.model_type].scope in params
  meta = {"step": 0, "config": {"model": cfg.to_dict()}, "heads": heads, "source": os.path.abspath(source)}
  # The checkpointer's own manager, so that read_meta / restore_params read it back.
  manager = checkpoint.open_manager(
      os.path.join(out, "checkpoints"), None, async_save=False)
  manager.save(0, args=ocp.args.Composite(params=ocp.args.StandardSave(params),
                                          meta=ocp.args.JsonSave(meta)))
  manager.wait_until_finished()
  manager.close()
  count = sum(x.size for x in jax.tree.leaves(params))
  return (f"{cfg.model_type}: {len(state_dict)} tensors, {count / 1e6:.2f}M params "
          f"({'with' if heads else 'without'} pretraining heads) → {out}/checkpoints/0")


# --- speechjax → HF -------------------------------------------------------------------------------------
def _checkpoint_dir(path: str) -> str:
  inner = os.path.join(path, "checkpoints")
  return inner if os.path.isdir(inner) else path


def load_params(path: str) -> tuple[ml_collections.ConfigDict, dict, int]:
  """(model config, numpy params, step) of a speechjax checkpoint or workdir, on one device."""
  from speechjax.train import checkpoint   # pylint: disable=import-outside-toplevel
  directory = _checkpoint_dir(path)
  if not glob.glob(os.path.join(directory, "[0-9]*")):
    raise FileNotFoundError(f"{path}: no checkpoint steps found")
  step, meta = checkpoint.read_meta(directory)
  if "model" not in meta.get("config", {}):
    raise ValueError(f"{path}: checkpoint meta has no model config")
  cfg = ml_collections.ConfigDict(meta["config"]["model"])
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                          _abstract_params(cfg, meta.get("heads", True)))
  params = checkpoint.restore_params(directory, abstract, step)
  return cfg, jax.tree.map(np.asarray, params), step


def export_hf(path: str, out: str) -> str:
  """Writes the checkpoint at `path` as an HF save_pretrained directory `out`; returns a summary."""
  import torch   # pylint: disable=import-outside-toplevel
  import transformers   # pylint: disable=import-outside-toplevel
  cfg, params, step = load_params(path)
  if cfg.model_type == "llama":
    model = transformers.LlamaForCausalLM(hf_llama.hf_config(cfg))
    state_dict = {k: torch.from_numpy(v) for k, v in hf_llama.to_hf(params, cfg).items()}
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:   # tied: lm_head is the embedding
      raise ValueError(f"export does not fit LlamaForCausalLM: missing {missing}, unexpected {unexpected}")
    model.save_pretrained(out)
    return f"step {step} → LlamaForCausalLM in {out} ({len(state_dict)} tensors)"
  note, family = "", cfg.model_type
  if not hf.FAMILIES[family].hf.pretraining_heads and family in params:
    dropped = sorted(k for k in params if k != family)
    note = f"; left out (no HF counterpart): {', '.join(dropped)}"
    params = params[family]
  model_class = hf.FAMILIES[family].hf.model_class
  heads = family in params   # the pretraining tree (scope + heads) of a family HF has heads for
  cls = getattr(transformers, model_class.replace("Model", "ForPreTraining") if heads else model_class)
  model = cls(hf.hf_config(cfg))
  state_dict = {k: torch.from_numpy(v) for k, v in hf.to_hf(params, cfg).items()}
  missing, unexpected = model.load_state_dict(state_dict, strict=False)
  unused = [k for k in missing if not hf_conformer.IGNORED.search(k)]   # HF keys speechjax never uses
  if unused or unexpected:
    raise ValueError(f"export does not fit {cls.__name__}: missing {unused}, unexpected {unexpected}")
  model.save_pretrained(out)
  return f"step {step} → {cls.__name__} in {out} ({len(state_dict)} tensors){note}"
