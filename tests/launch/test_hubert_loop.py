"""The HuBERT loop end to end on the micro corpus: stages, skip on re-run, resume after a kill."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOOP_CONFIG = os.path.join(REPO, "configs", "hubert_loop.py") + ":tiny"
# 20-step trainings and one dump of 20 utterances per stage: compile time dominates, so the loop runs with
# most XLA optimisations off (every run of this module alike; their tables are compared).
LOOP_ENV = {**os.environ, "JAX_DISABLE_MOST_OPTIMIZATIONS": "1"}


def _command(data, workdir):
  return [sys.executable, "-m", "speechjax.cli", "loop", "--workdir", workdir, "--config", LOOP_CONFIG,
          f"--config.data={data}", "--config.train_overrides=('--config.data.batch_size=4',"
          "'--config.data.min_sample_size=0','--config.checkpoint.save_every=5','--config.train.log_every=5',"
          "'--config.optim.warmup_steps=2')"]


def _run(data, workdir) -> subprocess.CompletedProcess:
  return subprocess.run(_command(data, workdir), capture_output=True, text=True, timeout=900, env=LOOP_ENV)


def _table(workdir):
  """The results table without the wall-time column."""
  lines = open(os.path.join(workdir, "results.md")).read().strip().splitlines()
  return ["|".join(line.split("|")[:-2]) for line in lines]


@pytest.fixture(scope="module")
def straight(synth_records, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("loop_straight"))
  out = _run(synth_records, workdir)
  assert out.returncode == 0, out.stderr[-3000:]
  return workdir


def test_loop_runs_every_stage_and_reports(straight):
  table = _table(straight)
  assert len(table) == 5 and "| 1 | mfcc | 20 |" in table[2] and "| 2 | layer" in table[3]
  assert "| 3 (clusters only) | layer" in table[4]   # the final model's clusters, not trained on
  for n in (1, 2, 3):
    for part in ("features/DONE", "kmeans.npz", "quality.json", "records/meta.json"):
      assert os.path.exists(os.path.join(straight, f"iter{n}", part)), (n, part)
  for n in (2, 3):
    assert os.path.exists(os.path.join(straight, f"iter{n}", "layer_choice.json"))
  assert [os.path.exists(os.path.join(straight, f"iter{n}", "train", "DONE")) for n in (1, 2, 3)] == [
      True, True, False]


def test_rerun_skips_finished_stages(straight, synth_records):
  stamps = {p: os.path.getmtime(os.path.join(straight, p)) for p in ("iter1/kmeans.npz", "iter2/train/DONE")}
  before = _table(straight)
  out = _run(synth_records, straight)
  assert out.returncode == 0, out.stderr[-3000:]
  assert _table(straight) == before
  assert stamps == {p: os.path.getmtime(os.path.join(straight, p)) for p in stamps}


def test_killed_in_iteration_two_resumes_to_the_same_table(straight, synth_records, tmp_path):
  workdir = str(tmp_path / "loop")
  shutil.copytree(os.path.join(straight, "iter1"), os.path.join(workdir, "iter1"))   # finished: skipped
  proc = subprocess.Popen(_command(synth_records, workdir), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=LOOP_ENV)
  ckpt = os.path.join(workdir, "iter2", "train", "checkpoints")
  deadline = time.time() + 600
  while not (os.path.isdir(ckpt) and any(n.isdigit() for n in os.listdir(ckpt))):
    assert proc.poll() is None and time.time() < deadline, proc.stderr.read()[-3000:]
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  iter1 = os.path.getmtime(os.path.join(workdir, "iter1", "train", "DONE"))
  out = _run(synth_records, workdir)
  assert out.returncode == 0, out.stderr[-3000:]
  assert os.path.getmtime(os.path.join(workdir, "iter1", "train", "DONE")) == iter1
  assert "resumed from step" in out.stderr + out.stdout
  assert _table(workdir) == _table(straight)


def test_rerun_with_another_recipe_is_refused(straight, synth_records):
  from speechjax.launch import hubert_loop
  from speechjax import config as config_lib
  cfg = config_lib.load(LOOP_CONFIG, [f"--config.data={synth_records}", "--config.cluster_last_model=False"])
  cfg.iterations[1].steps = 7
  with pytest.raises(config_lib.ConfigError, match=r"changed: train_overrides, iterations\[1\]\. Finished"):
    hubert_loop.Loop(cfg, straight)
  assert os.path.exists(os.path.join(straight, "loop_config.json"))


_CACHE_PROBE = """
import jax
from speechjax.launch import hubert_loop
seen = []
for workdir in ("gs://b/w", "/tmp/w", "/tmp/other"):
  hubert_loop.cache_compiled_programs(workdir)
  seen.append(str(jax.config.jax_compilation_cache_dir))
print(" ".join(seen))
"""


def test_loop_caches_compiled_programs_in_a_local_workdir():
  """Remote workdir: no cache; local: `<workdir>/xla_cache`; a cache already set (by the user, or
  JAX_COMPILATION_CACHE_DIR) is kept."""
  env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
  out = subprocess.run([sys.executable, "-c", _CACHE_PROBE], env=env, capture_output=True, text=True,
                       check=True).stdout.split()
  assert out[-3:] == ["None", "/tmp/w/xla_cache", "/tmp/w/xla_cache"]
