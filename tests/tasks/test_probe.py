"""SUPERB-style probes: only the probe trains; frame (phones) and utterance (speaker) levels."""
import numpy as np
import pytest

import speechjax
from speechjax import config
from speechjax.train import trainer

from tests.helpers import harness

# A few steps of each run: compile time dominates.
pytestmark = pytest.mark.fast_compile


@pytest.mark.parametrize("preset", ["phones", "speaker"])
def test_probe_trains_only_the_probe(synth_records, pretrained, tmp_path, preset):
  extra = (["--config.data.train_subset_seconds=30", "--config.data.eval_skip_seconds=30"]
           if preset == "speaker" else ["--config.data.eval_split=train"])
  cfg = config.load(f"{harness.REPO}/configs/probe.py:{preset}", harness.SMALL_FINETUNE + extra + [
      f"--config.data.path={synth_records}", f"--config.init_from={pretrained}",
      "--config.train.num_steps=3", "--config.train.eval_every=3", "--config.train.eval_steps=2",
      "--config.checkpoint.save_every=3"])
  workdir = str(tmp_path / preset)
  final = trainer.train(cfg, workdir)
  _, _, before = speechjax.load(pretrained)
  _, _, after = speechjax.load(workdir)
  before, after = harness.flat_params(before["wav2vec2"]), harness.flat_params(after)
  for name, value in before.items():
    np.testing.assert_array_equal(after[f"wav2vec2/{name}"], value, err_msg=name)
  weights = [final[f"layer_weight/{i}"] for i in range(3)]   # tiny: 2 layers → 3 hidden states
  assert abs(sum(weights) - 1) < 1e-5 and not np.allclose(weights, 1 / 3)   # learned, a distribution
  assert 0.0 <= final["eval_accuracy"] <= 1.0 and final["eval_count"] > 0


def test_probe_needs_a_checkpoint(synth_records):
  cfg = config.load(f"{harness.REPO}/configs/probe.py:phones", [f"--config.data.path={synth_records}"])
  with pytest.raises(config.ConfigError, match="init_from"):
    trainer.Trainer(cfg, "/tmp/unused_probe")
