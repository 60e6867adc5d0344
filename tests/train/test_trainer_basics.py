"""Config validation, NaN batches, checkpoint → model reload, and learning on the tone data."""
import os

import jax
import numpy as np
import pytest

import speechjax
from speechjax import config
from speechjax.parallel import mesh as mesh_lib

from tests.helpers import harness


@pytest.mark.parametrize("override, field", [
    ("--config.optim.lrr=1", "optim.lrr"),
    ("--config.nosection.x=1", "nosection"),
    ("--config.train.num_steps=abc", "train.num_steps"),
    ("--config.train.num_steps=0", "train.num_steps"),
    ("--config.data.min_sample_size=-1", "data.min_sample_size"),
    ("--config.mesh.shape=(3,1,1)", "mesh.shape"),
    ("--config.data.path=/nonexistent", "data.path"),
    ("--config.optim.warmup_steps=100000", "optim.warmup_steps"),
    ("--config.task.name=nope", "task.name"),
    ("--config.checkpoint.best_mode=median", "checkpoint.best_mode"),
    ("--config.train.rng_impl=threefry", "train.rng_impl"),
    ("--config.train.compiler_options=('xla_dump_to',)", "train.compiler_options"),
    ("--config.train.compiler_options=('xla_no_such_option=1',)", "train.compiler_options"),
])
def test_bad_config_fails_fast_naming_the_field(tone_data, tmp_path, override, field):
  with pytest.raises(ValueError, match=field.replace(".", r"\.")):
    harness.make_trainer(tone_data, str(tmp_path), [override])


def test_compiler_options_reach_the_steps_only(tone_data, tmp_path):
  """`train.compiler_options` are the train / eval steps' own: XLA dumps those programs, not the init."""
  dump = tmp_path / "hlo"
  trainer = harness.make_trainer(tone_data, str(tmp_path / "run"), [
      "--config.train.num_steps=2", f"--config.train.compiler_options=('xla_dump_to = {dump}',)"])
  trainer.run()
  names = os.listdir(dump)
  assert any("jit_train_step" in n for n in names), names
  assert not any("init_state" in n for n in names), names


def test_nan_batch_is_skipped_and_counted(tone_data, tmp_path):
  trainer = harness.make_trainer(tone_data, str(tmp_path), ["--config.train.num_steps=3"])
  batch = next(trainer.data)
  batch["audio"][0, :100] = np.nan
  with trainer.context():
    before = jax.device_get(trainer.state.params)
    trainer.state, metrics = trainer.train_step(trainer.state, mesh_lib.host_to_global(batch, trainer.mesh))
    after = jax.device_get(trainer.state.params)
  assert int(metrics["skipped_updates"]) == 1 and not np.isfinite(float(metrics["loss"]))
  jax.tree.map(np.testing.assert_array_equal, before, after)
  final = trainer.run()   # training goes on from the untouched params
  assert np.isfinite(final["loss"]) and final["skipped_updates"] == 1


@pytest.mark.parametrize("rng_impl", ["threefry2x32", "rbg"])
def test_training_learns_and_checkpoint_rebuilds_the_model(tone_data, tmp_path, rng_impl):
  trainer = harness.make_trainer(tone_data, str(tmp_path), [
      f"--config.train.rng_impl={rng_impl}", "--config.train.num_steps=150", "--config.train.log_every=25", "--config.optim.lr=3e-3",
      "--config.train.eval_every=150", "--config.checkpoint.keep_best=accuracy",
      "--config.checkpoint.best_mode=max"])
  final = trainer.run()
  losses = harness.read_losses(str(tmp_path))
  assert losses[150] < 0.7 * losses[25], losses
  assert final["eval_accuracy"] > 0.5   # 8 tones: chance is 0.125
  assert trainer.state.rng.shape == {"threefry2x32": (2,), "rbg": (4,)}[rng_impl]
  cfg, model, params = speechjax.load(str(tmp_path))
  assert cfg.train.num_steps == 150 and cfg.model.num_classes == 8
  batch = next(trainer.data)
  out = model.apply({"params": params}, batch["audio"], batch["audio_mask"])
  labels = batch["labels/phone_20ms"][:, :out["logits"].shape[1]]
  mask = out["frame_mask"] & (labels >= 0)
  accuracy = float(((out["logits"].argmax(-1) == labels) & mask).sum() / mask.sum())
  assert accuracy > 0.5
  best_cfg, _, best_params = speechjax.load(str(tmp_path / "checkpoints" / "best"))
  jax.tree.map(np.testing.assert_array_equal, best_params, params)   # the only eval was the last step


def test_override_parsing():
  cfg = config.load(harness.CONFIG, ["--config.optim.lr", "0.5", "--config.data.labels=('a','b')",
                                     "--config.task.name=frame_classify"])
  assert cfg.optim.lr == 0.5 and tuple(cfg.data.labels) == ("a", "b")
  with pytest.raises(config.ConfigError, match="missing value"):
    config.load(harness.CONFIG, ["--config.optim.lr"])


def test_data_position_with_another_process_count():
  from speechjax.config import ConfigError
  from speechjax.train import trainer
  saved = [{"epoch": 3, "batch": 7}, {"epoch": 4, "batch": 1}]
  assert trainer.data_position(saved, 1, 2, False) == {"epoch": 4, "batch": 1}
  with pytest.raises(ConfigError, match="saved by 2 processes and this run has 4"):
    trainer.data_position(saved, 0, 4, False)
  assert trainer.data_position(saved, 3, 4, True) == {"epoch": 5, "batch": 0}


def test_resume_with_another_rng_impl_is_refused_naming_the_field():
  from speechjax.config import ConfigError
  from speechjax.train import trainer
  cfg = config.load(harness.CONFIG, ["--config.train.rng_impl=rbg"])
  trainer.check_resume_rng_impl({"train": {"rng_impl": "rbg"}}, cfg)
  with pytest.raises(ConfigError, match=r"train\.rng_impl.*saved with 'threefry2x32'"):
    trainer.check_resume_rng_impl({"train": {}}, cfg)   # saved before the field existed
