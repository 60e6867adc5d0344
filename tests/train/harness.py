"""Helpers shared by the trainer tests and their subprocess workers."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))   # tests/ for toy_data

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(REPO, "configs", "frame_classifier.py") + ":tiny"
BASE_OVERRIDES = ["--config.model.num_classes=8", "--config.train.log_every=1",
                  "--config.data.batch_size=8", "--config.data.max_sample_size=9600",
                  "--config.data.min_sample_size=0", "--config.optim.warmup_steps=2"]


def make_config(data: str, overrides=()):
  from speechjax import config
  return config.load(CONFIG, BASE_OVERRIDES + [f"--config.data.path={data}", *overrides])


def make_trainer(data: str, workdir: str, overrides=()):
  from speechjax.train import trainer
  return trainer.Trainer(make_config(data, overrides), workdir)


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
