"""Exact resume after SIGKILL and SIGTERM; a checkpoint killed mid-write is never picked up."""
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from speechjax.train import checkpoint

from tests.helpers import harness

STEPS = 40
# A constant schedule makes the first (killed) run, started with a huge step budget, follow the same
# learning rates as the 40-step reference.
OVERRIDES = ["--config.optim.schedule=constant", "--config.checkpoint.save_every=5"]


def _command(data, workdir, num_steps):
  return [sys.executable, "-m", "speechjax.cli", "train", "--config", harness.CONFIG, "--workdir", workdir,
          *harness.BASE_OVERRIDES, f"--config.data.path={data}", *OVERRIDES,
          f"--config.train.num_steps={num_steps}"]


def _wait_for_step(workdir, step, proc, timeout=300):
  path = os.path.join(workdir, "metrics.jsonl")
  deadline = time.time() + timeout
  while time.time() < deadline:
    assert proc.poll() is None, proc.stderr.read()[-3000:]
    if os.path.exists(path):
      with open(path) as f:   # a last line without "\n" is still being written
        if any(json.loads(l)["step"] >= step for l in f if l.endswith("\n")):
          return
    time.sleep(0.01)
  raise TimeoutError(f"step {step} not reached")


def _params(workdir, like):
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), like)
  return jax.device_get(checkpoint.restore_params(os.path.join(workdir, "checkpoints"), abstract))


@pytest.fixture(scope="module")
def reference(tone_data, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("straight"))
  trainer = harness.make_trainer(tone_data, workdir, OVERRIDES + [f"--config.train.num_steps={STEPS}"])
  losses = harness.losses(trainer)
  return losses, _params(workdir, trainer.state.params), trainer.state.params


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_resume_after_kill_equals_uninterrupted(tone_data, tmp_path, reference, sig):
  ref_losses, ref_params, like = reference
  workdir = str(tmp_path)
  proc = subprocess.Popen(_command(tone_data, workdir, 10**6), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  _wait_for_step(workdir, 12, proc)
  proc.send_signal(sig)
  proc.wait(timeout=120)
  if sig == signal.SIGTERM:   # preemption: saves at the next step boundary and exits cleanly
    assert proc.returncode == 0, proc.stderr.read()[-3000:]
  killed_at = checkpoint.read_meta(os.path.join(workdir, "checkpoints"))[0]
  assert 5 <= killed_at < STEPS
  resumed = subprocess.run(_command(tone_data, workdir, STEPS), capture_output=True, text=True)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert f"resumed from step {killed_at}" in resumed.stderr + resumed.stdout
  losses = harness.read_losses(workdir)   # the resumed run's entry wins for re-run steps
  assert losses == ref_losses             # bitwise on CPU
  params = _params(workdir, like)
  jax.tree.map(np.testing.assert_array_equal, params, ref_params)


def test_checkpoint_killed_mid_write_is_never_restored(tmp_path):
  out = subprocess.run(harness.worker_command("tests.train.ckpt_kill_worker", str(tmp_path)),
                       cwd=harness.REPO, capture_output=True, text=True)
  assert out.returncode == -signal.SIGKILL, out.stderr[-3000:]
  ckpt_dir = tmp_path / "checkpoints"
  leftovers = [p.name for p in ckpt_dir.iterdir() if "tmp" in p.name]
  assert leftovers, "the second save finished before the kill: nothing was tested"
  step, meta = checkpoint.read_meta(str(ckpt_dir))
  assert step == 1 and meta["step"] == 1
  params = checkpoint.restore_params(str(ckpt_dir), {"w": jax.ShapeDtypeStruct(
      (2048, 2048), np.float32, sharding=jax.sharding.SingleDeviceSharding(jax.devices()[0]))})
  assert float(params["w"][0, 0]) == 1.0
