"""Helpers shared by the trainer, task and fine-tuning tests and their subprocess workers."""
import json
import os
import socket
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(REPO, "configs", "frame_classifier.py") + ":tiny"
BASE_OVERRIDES = ["--config.model.num_classes=8", "--config.train.log_every=1",
                  "--config.data.batch_size=8", "--config.data.max_sample_size=9600",
                  "--config.data.min_sample_size=0", "--config.optim.warmup_steps=2"]
# Fine-tuning and analysis tests (CTC, probes, `analyze`): small runs from a 2-step tiny wav2vec 2.0.
SMALL_FINETUNE = ["--config.data.batch_size=4", "--config.data.min_sample_size=0",
                  "--config.optim.warmup_steps=1", "--config.train.log_every=1",
                  "--config.checkpoint.async_save=False"]


def worker_command(module: str, *args: str) -> list[str]:
  """argv of a subprocess worker run as a module (`tests.train.mesh_worker`): start it with cwd=REPO, where
  the `tests` package imports from."""
  return [sys.executable, "-m", module, *args]


def free_port() -> int:
  """A TCP port on 127.0.0.1 that is free now (for a `jax.distributed` coordinator)."""
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def make_config(data: str, overrides=()):
  from speechjax import config
  return config.load(CONFIG, BASE_OVERRIDES + [f"--config.data.path={data}", *overrides])


def make_trainer(data: str, workdir: str, overrides=()):
  from speechjax.train import trainer
  return trainer.Trainer(make_config(data, overrides), workdir)


def pretrain_tiny_wav2vec2(data: str, workdir: str) -> str:
  """`workdir` after 2 steps of the tiny wav2vec 2.0 on `data` (checkpoint at step 2)."""
  from speechjax import config
  from speechjax.train import trainer
  cfg = config.load(f"{REPO}/configs/wav2vec2.py:tiny", SMALL_FINETUNE + [
      f"--config.data.path={data}", "--config.train.num_steps=2",
      "--config.data.max_sample_size=16000", "--config.checkpoint.save_every=2"])
  trainer.train(cfg, workdir)
  return workdir


def flat_params(tree) -> dict:
  """{"a/b/c": numpy array} of a params tree (on the host)."""
  import jax
  import numpy as np
  from flax import traverse_util
  return {k: np.asarray(v) for k, v in traverse_util.flatten_dict(jax.device_get(tree), sep="/").items()}


def losses(trainer) -> list[float]:
  trainer.run()
  return read_losses(trainer.workdir)


def read_metrics(workdir: str) -> dict:
  """{step: metrics row} of a run's metrics.jsonl; a re-run step keeps its last row."""
  rows = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
  return {r["step"]: r for r in rows if "train/loss" in r}


def read_losses(workdir: str) -> dict:
  return {step: r["train/loss"] for step, r in read_metrics(workdir).items()}


def step_argument_bytes(trainer) -> int:
  """Per-device bytes of the train step's arguments (state + batch), from XLA's memory analysis."""
  import jax
  from speechjax.parallel import mesh as mesh_lib
  from speechjax.train import checkpoint
  batch = checkpoint.example_batch(trainer.cfg, trainer.cfg.data.batch_size)
  batch["labels/phone_20ms"] = batch["audio"][:, ::320].astype("int32")
  batch = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                                      sharding=mesh_lib.batch_sharding(trainer.mesh)), batch)
  with trainer.context():
    compiled = trainer.train_step.lower(trainer.state, batch).compile()
  return int(compiled.memory_analysis().argument_size_in_bytes)
