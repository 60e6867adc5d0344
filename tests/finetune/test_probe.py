"""SUPERB-style probes: only the probe trains; frame (phones) and utterance (speaker) levels."""
import jax
import numpy as np
import pytest
from flax import traverse_util

import harness
from speechjax import config
from speechjax.train import checkpoint, trainer

from test_ctc import SMALL, pretrained  # noqa: F401  (module fixture: a 2-step tiny wav2vec 2.0)


def _flat(tree):
  return {k: np.asarray(v) for k, v in traverse_util.flatten_dict(jax.device_get(tree), sep="/").items()}


@pytest.mark.parametrize("preset", ["phones", "speaker"])
def test_probe_trains_only_the_probe(synth_records, pretrained, tmp_path, preset):  # noqa: F811
  extra = (["--config.data.train_subset_seconds=30", "--config.data.eval_skip_seconds=30"]
           if preset == "speaker" else ["--config.data.eval_split=train"])
  cfg = config.load(f"{harness.REPO}/configs/probe.py:{preset}", SMALL + extra + [
      f"--config.data.path={synth_records}", f"--config.init_from={pretrained}",
      "--config.train.num_steps=3", "--config.train.eval_every=3", "--config.train.eval_steps=2",
      "--config.checkpoint.save_every=3"])
  workdir = str(tmp_path / preset)
  final = trainer.train(cfg, workdir)
  _, _, before = checkpoint.load_model(pretrained)
  _, _, after = checkpoint.load_model(workdir)
  before, after = _flat(before["wav2vec2"]), _flat(after)
  for name, value in before.items():
    np.testing.assert_array_equal(after[f"wav2vec2/{name}"], value, err_msg=name)
  weights = [final[f"layer_weight/{i}"] for i in range(3)]   # tiny: 2 layers → 3 hidden states
  assert abs(sum(weights) - 1) < 1e-5 and not np.allclose(weights, 1 / 3)   # learned, a distribution
  assert 0.0 <= final["eval_accuracy"] <= 1.0 and final["eval_count"] > 0


def test_probe_needs_a_checkpoint(synth_records):
  cfg = config.load(f"{harness.REPO}/configs/probe.py:phones", [f"--config.data.path={synth_records}"])
  with pytest.raises(config.ConfigError, match="init_from"):
    trainer.Trainer(cfg, "/tmp/unused_probe")
