"""`speechjax analyze`: layer-wise PWCCA JSON and plot for a checkpoint and its random-init twin."""
import json
import os

import pytest

from speechjax import cli

pytestmark = pytest.mark.fast_compile   # a 2-step pretraining fixture and one dump per model

def test_analyze_writes_scores_and_plot(synth_records, pretrained, tmp_path):
  out = str(tmp_path / "cca")
  assert cli.main(["analyze", "--ckpt", pretrained, "--name", "w2v2", "--random-init", "--data",
                   synth_records, "--split", "train", "--max-frames", "600", "--out", out]) == 0
  result = json.load(open(os.path.join(out, "layerwise_pwcca.json")))
  assert result["frames"] == 600 and set(result["pwcca"]) == {"w2v2", "w2v2 (random init)"}
  for scores in result["pwcca"].values():
    assert len(scores) == 3 and all(0.0 < s <= 1.0 for s in scores)   # tiny: input + 2 layers
  with open(os.path.join(out, "layerwise_pwcca.png"), "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
