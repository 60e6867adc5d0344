"""Sharding is a config change only: 1 device and 8-device meshes give the same losses; FSDP cuts memory."""
import json
import os
import subprocess

import pytest

from tests.helpers import harness

# 5 steps per mesh: compile time dominates, so both sides skip most XLA optimisations (tests/conftest.py).
pytestmark = pytest.mark.fast_compile

# A wider MLP than the tiny preset, so that parameters (not the batch) dominate the step's memory.
# Adam divides by sqrt(v) + eps: with eps=1e-6, coordinates whose gradient is ~1e-7 turn float32
# reduction-order noise into full-size updates. eps=1e-3 keeps this comparison about sharding.
OVERRIDES = ["--config.train.num_steps=5", "--config.model.embed_dim=256", "--config.model.mlp_dim=2048",
             "--config.optim.eps=1e-3"]


@pytest.fixture(scope="module")
def runs(tone_data, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("meshes")
  single = harness.make_trainer(tone_data, str(workdir / "single"), OVERRIDES)
  single_bytes = harness.step_argument_bytes(single)
  single_losses = harness.losses(single)
  shapes = [[8, 1, 1], [2, 2, 2], [1, 8, 1]]   # data, data+fsdp+tensor, fsdp
  out = subprocess.run(harness.worker_command("tests.train.mesh_worker", tone_data, str(workdir),
                                              json.dumps(shapes), *OVERRIDES),
                       cwd=harness.REPO, capture_output=True, text=True, timeout=900,
                       env={**os.environ, "JAX_DISABLE_MOST_OPTIMIZATIONS": "1"})
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  return single_losses, single_bytes, result


def test_meshes_give_the_same_losses(runs):
  single, _, result = runs
  assert len(single) == 5
  for shape, losses in result["losses"].items():
    for step, loss in single.items():
      assert losses[str(step)] == pytest.approx(loss, rel=1e-5), (shape, step)


def test_fsdp_cuts_per_device_state_memory(runs):
  _, single_bytes, result = runs
  fsdp = result["state_bytes"]["1,8,1"]
  assert fsdp <= single_bytes / 6, (fsdp, single_bytes)
