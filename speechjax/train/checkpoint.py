"""Orbax checkpoints: atomic, async, max_to_keep, keep-best, reshard on restore, params-only loads.

Layout of `<workdir>/checkpoints/<step>/`:
    params/   model parameters (restorable alone, for inference and fine-tuning)
    train/    the rest of the TrainState: step, optimizer state, rng, param EMA
    meta/     JSON: resolved config, data-iterator position of every process, step
`<workdir>/checkpoints/best/<step>/` holds params + meta of the best eval metric when `keep_best` is set.
Orbax writes each step into a temporary directory and renames it when complete, so a save killed
mid-write is never picked up: restore takes the last complete one.
"""
from __future__ import annotations

import json
import os
import signal

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from jax.experimental import multihost_utils


def open_manager(directory: str, max_to_keep: int | None, async_save: bool = True, read_only=False):
  """An Orbax manager for the params / train / meta layout of this module (also used by `speechjax convert`)."""
  options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep, enable_async_checkpointing=async_save, read_only=read_only,
      cleanup_tmp_directories=not read_only, create=not read_only)
  handlers = {"params": ocp.StandardCheckpointHandler(), "train": ocp.StandardCheckpointHandler(),
              "meta": ocp.JsonCheckpointHandler()}
  directory = directory if "://" in directory else os.path.abspath(directory)   # gs:// stays as it is
  return ocp.CheckpointManager(directory, options=options, item_handlers=handlers)


def gather_positions(position: dict) -> list[dict]:
  """Every process's data-iterator position (a collective: all processes must call it)."""
  local = np.asarray([position["epoch"], position["batch"]], np.int64)
  if jax.process_count() == 1:
    rows = local[None]
  else:
    rows = np.asarray(multihost_utils.process_allgather(local)).reshape(jax.process_count(), 2)
  return [{"epoch": int(e), "batch": int(b)} for e, b in rows]


class Checkpointer:
  """Saves and restores TrainStates under `<workdir>/checkpoints`."""

  def __init__(self, workdir: str, cfg, config_json: str):
    self.cfg, self.config_json = cfg, config_json
    root = os.path.join(workdir, "checkpoints")
    self.manager = open_manager(root, cfg.max_to_keep, cfg.async_save)
    self.best = open_manager(os.path.join(root, "best"), 1, cfg.async_save) if cfg.keep_best else None
    self.best_value = None
    self.preempted = False
    if jax.process_count() == 1:   # multi-host: JAX's preemption service handles SIGTERM
      signal.signal(signal.SIGTERM, self._on_sigterm)

  def _on_sigterm(self, *_):
    self.preempted = True

  def should_stop(self, step: int) -> bool:
    """True at the step boundary after a SIGTERM (TPU preemption); every host agrees."""
    return self.preempted or self.manager.reached_preemption(step)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def _meta(self, step: int, position: dict) -> dict:
    return {"step": step, "config": json.loads(self.config_json),
            "data": gather_positions(position)}

  def save(self, step: int, state, position: dict, force: bool = False) -> bool:
    """Saves when `step` is a multiple of `save_every` (or `force`); returns whether it saved."""
    if (not force and step % self.cfg.save_every) or step == self.manager.latest_step():
      return False
    train = state.replace(params=None)
    args = ocp.args.Composite(params=ocp.args.StandardSave(state.params),
                              train=ocp.args.StandardSave(train),
                              meta=ocp.args.JsonSave(self._meta(step, position)))
    return self.manager.save(step, args=args, force=True)

  def maybe_save_best(self, step: int, state, position: dict, metrics: dict) -> bool:
    """Keeps the params of the best `keep_best` eval metric (`best_mode` "min" or "max")."""
    if self.best is None or self.cfg.keep_best not in metrics:
      return False
    value = float(metrics[self.cfg.keep_best])
    better = (self.best_value is None or
              (value < self.best_value if self.cfg.best_mode == "min" else value > self.best_value))
    if not better:
      return False
    self.best_value = value
    meta = {**self._meta(step, position), "metric": {self.cfg.keep_best: value}}
    return self.best.save(step, args=ocp.args.Composite(
        params=ocp.args.StandardSave(state.params), meta=ocp.args.JsonSave(meta)), force=True)

  def restore(self, abstract_state, step: int | None = None):
    """Restores onto the shardings of `abstract_state` (a TrainState of ShapeDtypeStructs with
    `sharding=`), whatever the mesh at save time. Returns (state, meta dict)."""
    step = self.latest_step() if step is None else step
    train = abstract_state.replace(params=None)
    out = self.manager.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(abstract_state.params),
        train=ocp.args.StandardRestore(train), meta=ocp.args.JsonRestore()))
    return out["train"].replace(params=out["params"]), out["meta"]

  def wait(self):
    self.manager.wait_until_finished()
    if self.best is not None:
      self.best.wait_until_finished()

  def close(self):
    self.wait()
    self.manager.close()
    if self.best is not None:
      self.best.close()


def read_meta(checkpoint_dir: str, step: int | None = None) -> tuple[int, dict]:
  """(step, meta) of a checkpoint directory (`<workdir>/checkpoints` or `.../best`)."""
  manager = open_manager(checkpoint_dir, None, read_only=True)
  step = manager.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"no complete checkpoint in {checkpoint_dir}")
  meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
  return step, meta


def restore_params(checkpoint_dir: str, abstract_params, step: int | None = None):
  """Params only, onto the shardings of `abstract_params` (ShapeDtypeStructs with `sharding=`)."""
  manager = open_manager(checkpoint_dir, None, read_only=True)
  step = manager.latest_step() if step is None else step
  return manager.restore(step, args=ocp.args.Composite(
      params=ocp.args.StandardRestore(abstract_params)))["params"]


def checkpoint_dir(path: str) -> str:
  """A workdir's `checkpoints/` directory, or `path` itself when it is a checkpoint directory."""
  inner = os.path.join(path, "checkpoints")
  return inner if epath.Path(inner).is_dir() else path


def example_batch(config, batch_size: int) -> dict:
  """A zero batch of the model inputs with the static shapes of `config.data` (for shape inference)."""
  t = config.data.max_sample_size
  batch = {"audio": np.zeros([batch_size, t], np.float32), "audio_mask": np.ones([batch_size, t], bool)}
  if config.data.get("targets"):   # token targets (CTC, Speech-LLaMA): their padded length is static too
    length = config.data.max_target_length
    batch.update(targets=np.ones([batch_size, length], np.int32),
                 targets_mask=np.ones([batch_size, length], bool))
  return batch
