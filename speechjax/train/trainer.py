"""The training loop: one code path from a laptop CPU to a TPU pod.

    mesh → data (this host's shard) → task → abstract state → sharded init or restore
         → jitted, donated train_step with pinned shardings → loop (log, eval, checkpoint, preemption)
"""
from __future__ import annotations

import contextlib
import json
import os

import jax
import ml_collections
import numpy as np
import tensorflow as tf
from flax import linen as nn
from tqdm import tqdm

from speechjax import config as config_lib
from speechjax.data import pipeline as pipeline_lib
from speechjax.parallel import mesh as mesh_lib
from speechjax.tasks import get_task
from speechjax.train import checkpoint as ckpt_lib
from speechjax.train import cpu_threefry
from speechjax.train import metrics as metrics_lib


RNG_IMPLS = ("threefry2x32", "rbg")


def default_train_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({
      "num_steps": 1000, "seed": 0,
      # the step's random bits (dropout, masks): "threefry2x32" (the same bits on every backend and mesh) or
      # "rbg" (the TPU's hardware generator: HuBERT Base's train step compiles for TPU in half the time,
      # docs/scaling.md; the bits depend on backend and sharding)
      "rng_impl": "threefry2x32",
      "log_every": 50, "eval_every": 0, "eval_steps": 10,
      "peak_flops": 0.0,            # per device; 0 = from the device table, or measured on CPU
      "profile_steps": (),          # (first, last): jax.profiler trace of those steps
      # ("name=value", ...): XLA / libtpu options of the train and eval steps only (what LIBTPU_INIT_ARGS or
      # XLA_FLAGS set for the whole process), e.g. "xla_tpu_scoped_vmem_limit_kib=16384", "xla_dump_to=DIR"
      "compiler_options": (),
      # resuming with another process count than the checkpoint's: False = refuse (the data order cannot
      # continue exactly); True = every process starts the epoch after the furthest saved one
      "resume_data_on_new_hosts": False,
  })


def default_checkpoint_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({"save_every": 1000, "max_to_keep": 3, "keep_best": "",
                                    "best_mode": "min", "async_save": True})


def validate(cfg: ml_collections.ConfigDict, need_data: bool = True) -> None:
  """Start-up checks of the trainer's sections; each error names its field. `need_data=False` (ahead-of-time
  compiles) skips the check that `data.path` holds prepared records."""
  config_lib.check_sections(cfg)
  r = config_lib.require
  r(cfg.train.num_steps > 0, "train.num_steps", cfg.train.num_steps, "must be > 0")
  r(cfg.train.rng_impl in RNG_IMPLS, "train.rng_impl", cfg.train.rng_impl, f"expected one of {RNG_IMPLS}")
  r(cfg.train.log_every > 0, "train.log_every", cfg.train.log_every, "must be > 0")
  r(cfg.train.eval_every >= 0, "train.eval_every", cfg.train.eval_every, "must be >= 0")
  r(cfg.checkpoint.save_every > 0, "checkpoint.save_every", cfg.checkpoint.save_every, "must be > 0")
  r(cfg.checkpoint.best_mode in ("min", "max"), "checkpoint.best_mode", cfg.checkpoint.best_mode,
    "must be 'min' or 'max'")
  r(cfg.data.batch_size > 0, "data.batch_size", cfg.data.batch_size, "must be > 0")
  r(cfg.data.max_sample_size > 0, "data.max_sample_size", cfg.data.max_sample_size, "must be > 0")
  r(0 <= cfg.data.min_sample_size <= cfg.data.max_sample_size, "data.min_sample_size",
    cfg.data.min_sample_size, "must be in [0, data.max_sample_size]")
  r(len(cfg.train.profile_steps) in (0, 2), "train.profile_steps", cfg.train.profile_steps,
    "must be () or (first, last)")
  r(all(isinstance(o, str) and o.split("=", 1)[0].strip() and "=" in o for o in cfg.train.compiler_options),
    "train.compiler_options", cfg.train.compiler_options, "expected a tuple of 'name=value' strings")
  r(not need_data or tf.io.gfile.exists(os.path.join(cfg.data.path, "meta.json")), "data.path", cfg.data.path,
    "is not a prepared data set (no meta.json; run `speechjax prepare`)")


def data_position(saved: list[dict], process_index: int, process_count: int, new_hosts_ok: bool) -> dict:
  """This process's input-pipeline position from the positions a checkpoint saved, one per process.

  Each process reads its own shard of files, so with another process count the saved order cannot be
  continued: ConfigError naming both counts, unless `train.resume_data_on_new_hosts`, where every process
  starts the epoch after the furthest saved one (the rest of the interrupted epochs is skipped)."""
  if len(saved) == process_count:
    return saved[process_index]
  config_lib.require(new_hosts_ok, "train.resume_data_on_new_hosts", new_hosts_ok,
                     f"the checkpoint's data positions were saved by {len(saved)} processes and this run has "
                     f"{process_count}; resume with {len(saved)} processes, or set it to True to start every "
                     "process at the next epoch")
  return {"epoch": max(int(p["epoch"]) for p in saved) + 1, "batch": 0}


def check_resume_rng_impl(saved_config: dict, cfg) -> None:
  """ConfigError naming `train.rng_impl` unless it is the checkpoint's: the base key's shape depends on it
  (runs saved before the field existed used threefry)."""
  saved = saved_config.get("train", {}).get("rng_impl", "threefry2x32")
  config_lib.require(saved == cfg.train.rng_impl, "train.rng_impl", cfg.train.rng_impl,
                     f"the checkpoint was saved with {saved!r}; resume with --config.train.rng_impl={saved}")


def _check_batch_divides_mesh(cfg, mesh) -> None:
  shards = mesh.shape["data"] * mesh.shape["fsdp"]
  config_lib.require(cfg.data.batch_size % shards == 0, "data.batch_size", cfg.data.batch_size,
                     f"must be divisible by the mesh's batch axes data×fsdp = {shards}")


def abstract_state(task, mesh, axis_rules, batch: dict, rng):
  """(TrainState of ShapeDtypeStructs carrying their shardings, the shardings) of `task` on `mesh`.

  Nothing is allocated: the trainer restores into it or initialises onto its shardings, and
  `speechjax compile` lowers the steps for a TPU slice from it. Call under the mesh and axis rules."""
  shapes = jax.eval_shape(task.init_state, rng, batch)
  shardings = task.state_shardings(shapes, mesh, axis_rules, batch)
  abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), shapes, shardings)
  return abstract, shardings


def compiler_options(train_cfg) -> dict[str, str] | None:
  """`train.compiler_options` ("name=value", ...) as jax.jit's `compiler_options` (None when empty)."""
  pairs = [option.split("=", 1) for option in train_cfg.compiler_options]
  return {name.strip(): value.strip() for name, value in pairs} or None


def check_compiler_options(train_cfg) -> None:
  """Compiles an empty program with `train.compiler_options` for the default backend: a name it does not
  know fails here, naming the field, not at the first step."""
  options = compiler_options(train_cfg)
  if options is None:
    return
  try:
    jax.jit(lambda: None, compiler_options=options).lower().compile()
  except jax.errors.JaxRuntimeError as e:
    raise config_lib.ConfigError(f"config.train.compiler_options={tuple(train_cfg.compiler_options)!r}: "
                                 f"{jax.default_backend()}: {e}") from None


def jit_steps(task, state_shardings, mesh, options: dict[str, str] | None = None):
  """The jitted (train_step, eval_step): state donated and pinned to `state_shardings`, batch sharded
  over the mesh's batch axes, metrics replicated; `options`: the compiler's (`compiler_options`)."""
  batch_sharding = mesh_lib.batch_sharding(mesh)
  replicated = mesh_lib.replicated(mesh)
  train_step = jax.jit(task.train_step, in_shardings=(state_shardings, batch_sharding),
                       out_shardings=(state_shardings, replicated), donate_argnums=0, compiler_options=options)
  eval_step = jax.jit(task.eval_step, in_shardings=(state_shardings, batch_sharding), out_shardings=replicated,
                      compiler_options=options)
  return train_step, eval_step


class Trainer:
  """Builds everything for `config` in `workdir`; `run()` trains to `train.num_steps`."""

  def __init__(self, cfg: ml_collections.ConfigDict, workdir: str):
    validate(cfg)
    check_compiler_options(cfg.train)
    cpu_threefry.unroll()
    self.cfg, self.workdir = cfg, workdir
    self.is_main = jax.process_index() == 0
    tf.io.gfile.makedirs(workdir)
    self.mesh = mesh_lib.make_mesh(cfg.mesh)
    _check_batch_divides_mesh(cfg, self.mesh)
    self.rules = mesh_lib.rules(cfg.mesh)
    self.task = get_task(cfg)
    self.data = pipeline_lib.from_config(cfg.data, True, jax.process_index(), jax.process_count())
    self.config_json = config_lib.to_json(cfg)
    if self.is_main:
      with tf.io.gfile.GFile(os.path.join(workdir, "config.json"), "w") as f:
        f.write(self.config_json)
    self.checkpointer = ckpt_lib.Checkpointer(workdir, cfg.checkpoint, self.config_json)
    self.writer = metrics_lib.Writer(workdir)
    self._build_state()
    self._build_steps()

  @contextlib.contextmanager
  def context(self):
    """The mesh and logical-axis rules under which the task's functions are traced."""
    with jax.set_mesh(self.mesh), nn.logical_axis_rules(self.rules):
      yield

  # --- state --------------------------------------------------------------------------------
  def _build_state(self):
    batch = ckpt_lib.example_batch(self.cfg, 1)
    rng = jax.random.PRNGKey(self.cfg.train.seed)
    with self.context():
      abstract, self.state_shardings = abstract_state(self.task, self.mesh, self.rules, batch, rng)
      if self.checkpointer.latest_step() is not None:
        _, saved = ckpt_lib.read_meta(os.path.join(self.workdir, "checkpoints"))
        check_resume_rng_impl(saved["config"], self.cfg)
        self.state, meta = self.checkpointer.restore(abstract)
        self.data.restore(data_position(meta["data"], jax.process_index(), jax.process_count(),
                                        self.cfg.train.resume_data_on_new_hosts))
        self._log(f"resumed from step {meta['step']} (data position {self.data.position})")
      else:
        init = jax.jit(self.task.init_state, out_shardings=self.state_shardings)
        self.state = init(rng, batch)
        params = self.task.warm_start(self.state.params)
        if params is not self.state.params:
          ema = None if self.state.ema_params is None else params
          self.state = self.state.replace(params=params, ema_params=ema)

  def _build_steps(self):
    self.train_step, self.eval_step = jit_steps(self.task, self.state_shardings, self.mesh,
                                                compiler_options(self.cfg.train))

  def _log(self, message: str):
    if self.is_main:
      tqdm.write(message)

  # --- loop ---------------------------------------------------------------------------------
  def run(self) -> dict:
    cfg = self.cfg
    step = int(jax.device_get(self.state.step))
    audio_seconds = cfg.data.batch_size * cfg.data.max_sample_size / 16000
    throughput = metrics_lib.Throughput(
        audio_seconds, cfg.data.batch_size * self.task.flops_per_example(),
        metrics_lib.peak_flops_per_device(cfg.train.peak_flops) * jax.device_count())
    bar = tqdm(total=cfg.train.num_steps, initial=step, disable=not self.is_main, dynamic_ncols=True)
    window, last = [], {}
    with self.context():
      while step < cfg.train.num_steps:
        self._maybe_profile(step)
        batch = mesh_lib.host_to_global(next(self.data), self.mesh)
        with jax.profiler.StepTraceAnnotation("train", step_num=step):
          self.state, metrics = self.train_step(self.state, batch)
        window.append(metrics)
        step += 1
        throughput.tick()
        bar.update(1)
        if step % cfg.train.log_every == 0 or step == cfg.train.num_steps:
          last = self._write_window(step, window, throughput, bar)
          window = []
        if cfg.train.eval_every and step % cfg.train.eval_every == 0:
          last.update(self.evaluate(step))
        self.checkpointer.save(step, self.state, self.data.position)
        if self.checkpointer.should_stop(step):
          self._log(f"preemption notice: saving step {step} and stopping")
          self.checkpointer.save(step, self.state, self.data.position, force=True)
          break
    bar.close()
    if step == cfg.train.num_steps:
      self.checkpointer.save(step, self.state, self.data.position, force=True)
    self.checkpointer.close()
    self.writer.close()
    return last

  def _write_window(self, step, window, throughput, bar) -> dict:
    values = jax.device_get(window)   # the only host sync: once per logging window
    scalars = {k: float(np.mean([v[k] for v in values])) for k in values[0]}
    scalars["skipped_updates"] = float(values[-1]["skipped_updates"])
    scalars.update(throughput.report())
    self.writer.write(step, scalars)
    bar.set_postfix(loss=f"{scalars['loss']:.4f}", audio_s_per_s=f"{scalars['audio_seconds_per_s']:.0f}",
                    mfu=f"{scalars['mfu']:.2%}")
    return scalars

  def _maybe_profile(self, step: int):
    steps = tuple(self.cfg.train.profile_steps)
    if steps and step == steps[0]:
      jax.profiler.start_trace(os.path.join(self.workdir, "profile"))
    if steps and step == steps[1] + 1:
      jax.profiler.stop_trace()

  def evaluate(self, step: int) -> dict:
    """Mean eval metrics over `train.eval_steps` batches of the eval split (one pass at most)."""
    data = pipeline_lib.from_config(self.cfg.data, False, jax.process_index(), jax.process_count())
    results = []
    for _, batch in zip(range(self.cfg.train.eval_steps), data):
      results.append(self.eval_step(self.state, mesh_lib.host_to_global(batch, self.mesh)))
    results = jax.device_get(results)
    scalars = {k: float(np.mean([r[k] for r in results])) for k in results[0]} if results else {}
    self.writer.write(step, scalars, prefix="eval")
    self.checkpointer.maybe_save_best(step, self.state, self.data.position, scalars)
    self._log(f"step {step} eval: " + json.dumps({k: round(v, 4) for k, v in scalars.items()}))
    return {f"eval_{k}": v for k, v in scalars.items()}


def train(cfg: ml_collections.ConfigDict, workdir: str) -> dict:
  return Trainer(cfg, workdir).run()
