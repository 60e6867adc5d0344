"""CTC fine-tuning from a pretrained checkpoint: warm start, layer re-init, encoder freezing, eval CLI."""
import json
import os
import shutil

import numpy as np
import orbax.checkpoint as ocp
import pytest

import speechjax
from speechjax import cli, config
from speechjax.data import records
from speechjax.nn import layer_stack
from speechjax.train import checkpoint, trainer

from tests.helpers import harness

# A few steps of each run, and a greedy/beam eval: compile time dominates.
pytestmark = pytest.mark.fast_compile


def _ctc_config(data, pretrained, overrides=()):
  return config.load(f"{harness.REPO}/configs/ctc.py:tiny", harness.SMALL_FINETUNE + [
      f"--config.data.path={data}", f"--config.init_from={pretrained}", "--config.data.bucket_boundaries=()",
      "--config.data.train_subset_seconds=0", "--config.checkpoint.save_every=2", *overrides])


def test_warm_start_freeze_and_eval(synth_records, pretrained, tmp_path):
  _, _, pre = speechjax.load(pretrained)
  pre = harness.flat_params(pre["wav2vec2"])
  pretrained = shutil.copytree(pretrained, str(tmp_path / "pretrained"))   # deleted before the eval below
  workdir = str(tmp_path / "ctc")
  cfg = _ctc_config(synth_records, pretrained, ["--config.train.num_steps=2", "--config.reinit_top_layers=1",
                                                "--config.task.freeze_encoder_steps=2"])
  run = trainer.Trainer(cfg, workdir)
  start = harness.flat_params(run.state.params)
  top = "encoder/layers_1/attention/q_proj/kernel"
  for name, value in pre.items():
    if name.startswith("encoder/layers_1/"):
      assert not np.array_equal(start[f"wav2vec2/{name}"], value), name   # re-initialised
    else:
      np.testing.assert_array_equal(start[f"wav2vec2/{name}"], value, err_msg=name)
  assert f"wav2vec2/{top}" in start and "lm_head/kernel" in start
  run.run()
  _, _, after = speechjax.load(workdir)
  after = harness.flat_params(after)
  for name in start:   # steps 0, 1 < freeze_encoder_steps: only the head moved
    moved = not np.array_equal(after[name], start[name])
    assert moved == name.startswith("lm_head/"), name

  cfg = _ctc_config(synth_records, pretrained, ["--config.train.num_steps=4", "--config.reinit_top_layers=1",
                                                "--config.task.freeze_encoder_steps=2"])
  trainer.train(cfg, workdir)   # resumes at step 2: now the transformer trains, the conv encoder never
  _, _, final = speechjax.load(workdir)
  final = harness.flat_params(final)
  assert not np.array_equal(final[f"wav2vec2/{top}"], after[f"wav2vec2/{top}"])
  conv = "wav2vec2/feature_extractor/conv0/kernel"
  np.testing.assert_array_equal(final[conv], start[conv])
  saved = json.load(open(os.path.join(workdir, "config.json")))
  assert saved["data"]["target_vocab"] and saved["model"]["model_type"] == "wav2vec2"

  shutil.rmtree(pretrained)   # a fine-tuned checkpoint loads and evaluates without its init_from
  assert speechjax.load(workdir)[0].init_from == ""
  out = str(tmp_path / "eval")
  assert cli.main(["eval", "--ckpt", workdir, "--split", "train", "--beam", "4", "--lm-order", "2",
                   "--out", out]) == 0
  scores = json.load(open(os.path.join(out, "scores.json")))
  total = records.read_meta(synth_records).splits["train"].num_examples
  assert scores["utterances"] + scores["skipped_too_long"] + scores["skipped_unknown_symbol"] == total
  assert 0.0 <= scores["greedy_per"] and 0.0 <= scores["beam_per"]
  lines = open(os.path.join(out, "hyp_beam.tsv")).read().splitlines()
  assert len(lines) == scores["utterances"] and all(len(l.split("\t")) == 3 for l in lines)


def _save_relaid(source, directory, scan_layers):
  """`source`'s params re-saved params-only (with their meta) in the `scan_layers` layout."""
  cfg, _, params = speechjax.load(source, scan_layers=scan_layers)
  assert ("layers" in params["wav2vec2"]["encoder"]) == scan_layers == cfg.model.scan_layers
  manager = checkpoint.open_manager(os.path.join(directory, "checkpoints"), None, async_save=False)
  manager.save(0, args=ocp.args.Composite(params=ocp.args.StandardSave(params), meta=ocp.args.JsonSave(
      {"step": 0, "config": json.loads(config.to_json(cfg))})))
  manager.wait_until_finished()
  manager.close()


@pytest.mark.parametrize("scan_layers", [True, False])
def test_warm_start_from_the_other_layer_layout(synth_records, pretrained, tmp_path, scan_layers):
  """A scanned fine-tune from the (unscanned) pretraining run, an unscanned one from its scanned copy."""
  _, _, pre = speechjax.load(pretrained)
  pre = harness.flat_params(pre["wav2vec2"])
  source = pretrained
  if not scan_layers:
    source = str(tmp_path / "scanned")
    _save_relaid(pretrained, source, scan_layers=True)
  cfg = _ctc_config(synth_records, source, [f"--config.model.scan_layers={scan_layers}",
                                            "--config.reinit_top_layers=1"])
  start = trainer.Trainer(cfg, str(tmp_path / "ctc")).state.params["wav2vec2"]
  assert ("layers" in start["encoder"]) == scan_layers
  start = harness.flat_params(layer_stack.scan_to_loop(start))
  assert start.keys() == pre.keys()
  for name, value in pre.items():   # the top layer (of 2) keeps its random init
    assert np.array_equal(start[name], value) != name.startswith("encoder/layers_1/"), name


def test_architecture_mismatch_and_bad_fields_are_named(synth_records, pretrained):
  with pytest.raises(config.ConfigError, match="reinit_top_layers"):
    trainer.Trainer(_ctc_config(synth_records, pretrained, ["--config.reinit_top_layers=5"]), "/tmp/unused")
  with pytest.raises(config.ConfigError, match="data.targets"):
    trainer.Trainer(_ctc_config(synth_records, pretrained, ["--config.data.targets=language"]), "/tmp/unused")
