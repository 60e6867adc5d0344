"""`speechjax sweep`: grid/random helpers, 4 tiny trials run locally, skip on re-run, report, pod commands."""
import json
import os
import shlex

import pytest

from speechjax.launch import sweep
from speechjax import cli

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(REPO, "configs", "frame_classifier.py") + ":tiny"
SWEEP = os.path.join(REPO, "sweeps", "frame_classifier_lr.py")
TINY = ["--config.model.num_classes=8", "--config.data.batch_size=4", "--config.data.max_sample_size=4800",
        "--config.data.min_sample_size=0", "--config.optim.warmup_steps=1", "--config.train.num_steps=3",
        "--config.train.log_every=1", "--config.checkpoint.async_save=False"]


def test_grid_is_the_product_with_normalized_keys():
  trials = sweep.grid(**{"config.optim.lr": [1e-3, 2e-3], "model__embed_dim": (32, 64, 128)},
                      **{"train.seed": 1})
  assert len(trials) == 6 and trials[0] == {"optim.lr": 1e-3, "model.embed_dim": 32, "train.seed": 1}
  assert trials[-1] == {"optim.lr": 2e-3, "model.embed_dim": 128, "train.seed": 1}
  assert sweep.trial_names(trials)[:2] == ["trial_000_lr0.001-embed_dim32", "trial_001_lr0.001-embed_dim64"]


def test_random_search_is_reproducible_and_in_range():
  axes = {"optim.lr": sweep.log_uniform(1e-4, 1e-2), "optim.warmup_steps": [10, 100],
          "optim.b2": sweep.uniform(0.95, 0.99), "train.seed": 3}
  trials = sweep.random(200, seed=5, **axes)
  assert trials == sweep.random(200, seed=5, **axes) and trials != sweep.random(200, seed=6, **axes)
  lrs = [t["optim.lr"] for t in trials]
  assert all(1e-4 <= lr <= 1e-2 for lr in lrs) and all(isinstance(lr, float) for lr in lrs)
  below = sum(lr < 1e-3 for lr in lrs)   # log-uniform: half the mass below the geometric midpoint
  assert 70 < below < 130
  assert {t["optim.warmup_steps"] for t in trials} == {10, 100} and {t["train.seed"] for t in trials} == {3}
  assert all(0.95 <= t["optim.b2"] <= 0.99 for t in trials)
  json.dumps(trials)   # plain Python values


def test_example_sweep_file():
  assert sweep.load_sweep(SWEEP) == [{"optim.lr": v} for v in (5e-4, 1e-3, 2e-3, 4e-3)]
  assert len(sweep.load_sweep(SWEEP + ":random")) == 8


@pytest.fixture(scope="module")
def fast_compiles(tmp_path_factory):
  """The trials differ only in their data order (`data.seed`), so their jitted programs are identical:
  a persistent compilation cache compiles them once, and skipping most XLA optimisations makes that one
  compile cheap. Together they keep 4 trials within seconds on a CPU."""
  import jax
  from jax.experimental.compilation_cache import compilation_cache
  names = ("jax_disable_most_optimizations", "jax_compilation_cache_dir",
           "jax_persistent_cache_min_compile_time_secs", "jax_persistent_cache_min_entry_size_bytes")
  previous = {n: jax.config.values[n] for n in names}
  for name, value in zip(names, (True, str(tmp_path_factory.mktemp("jax_cache")), 0, -1)):
    jax.config.update(name, value)
  compilation_cache.reset_cache()
  yield
  for name, value in previous.items():
    jax.config.update(name, value)
  compilation_cache.reset_cache()


@pytest.fixture(scope="module")
def swept(tone_data, tmp_path_factory, fast_compiles):
  root = tmp_path_factory.mktemp("sweep")
  seeds = root / "seeds.py"
  seeds.write_text("from speechjax.launch.sweep import grid\n\n"
                   "def get_sweep():\n  return grid(**{'data.seed': [0, 1, 2, 3]})\n")
  workdir = str(root / "work")
  argv = ["sweep", "run", "--config", CONFIG, "--sweep", str(seeds), "--workdir", workdir,
          f"--config.data.path={tone_data}", *TINY]
  assert cli.main(argv) == 0
  return workdir, argv


def report_rows(capsys, *argv):
  assert cli.main(["sweep", "report", *argv]) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  return lines[0], [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]


def test_four_trials_run_locally_and_report_best_first(swept, capsys):
  workdir, _ = swept
  names = sorted(n for n in os.listdir(workdir) if n.startswith("trial_"))
  assert names == ["trial_000_seed0", "trial_001_seed1", "trial_002_seed2", "trial_003_seed3"]
  for seed, name in enumerate(names):
    assert json.load(open(os.path.join(workdir, name, "overrides.json"))) == {"data.seed": seed}
    assert json.load(open(os.path.join(workdir, name, "config.json")))["data"]["seed"] == seed
    assert json.load(open(os.path.join(workdir, name, "DONE")))["step"] == 3
  head, rows = report_rows(capsys, "--workdir", workdir)   # auto: no eval ran → train/loss
  assert "train/loss (min)" in head and len(rows) == 4
  assert [r[0] for r in rows] == ["1", "2", "3", "4"] and {r[1] for r in rows} == set(names)
  assert all(r[3] == "done" and r[4] == "3" for r in rows)
  losses = [float(r[5]) for r in rows]
  assert losses == sorted(losses) and len(set(losses)) == 4
  _, rows_max = report_rows(capsys, "--workdir", workdir, "--metric", "train/loss", "--mode", "max")
  assert [r[1] for r in rows_max] == [r[1] for r in rows][::-1]


def test_rerun_skips_complete_trials(swept, capsys):
  workdir, argv = swept
  stamps = {n: os.path.getmtime(os.path.join(workdir, n, "DONE")) for n in os.listdir(workdir)
            if n.startswith("trial_")}
  capsys.readouterr()
  assert cli.main(argv) == 0
  assert capsys.readouterr().out.count("complete, skipped") == 4
  assert stamps == {n: os.path.getmtime(os.path.join(workdir, n, "DONE")) for n in stamps}


def test_a_different_sweep_in_the_same_workdir_is_refused(swept, tmp_path, capsys):
  workdir, argv = swept
  other = tmp_path / "other.py"
  other.write_text("def get_sweep():\n  return [{'data.seed': 7}, {'data.seed': 8}]\n")
  argv[argv.index("--sweep") + 1] = str(other)
  assert cli.main(argv) == 2 and "different sweep" in capsys.readouterr().err


def test_bad_trial_override_fails_before_any_trial(tmp_path, capsys):
  bad = tmp_path / "bad.py"
  bad.write_text("def get_sweep():\n  return [{'optim.lr': 0.1}, {'optim.nope': 1}]\n")
  code = cli.main(["sweep", "run", "--config", CONFIG, "--sweep", str(bad), "--workdir", str(tmp_path / "w")])
  assert code == 2 and "trial_001" in capsys.readouterr().err and not (tmp_path / "w").exists()


def test_pod_mode_prints_one_tpu_run_per_trial(tmp_path, capsys):
  code = cli.main(["sweep", "run", "--config", "configs/frame_classifier.py:small", "--sweep", SWEEP,
                   "--workdir", "gs://bucket/sweep", "--pod", "sj-pod", "--zone", "us-west4-a",
                   "--config.data.path=gs://bucket/records"])
  cmds = [shlex.split(line) for line in capsys.readouterr().out.splitlines()]
  assert code == 0 and len(cmds) == 4
  assert cmds[1] == ["speechjax", "tpu", "run", "--pod", "sj-pod", "--zone", "us-west4-a", "--attach",
                     "--config", "configs/frame_classifier.py:small", "--workdir",
                     "gs://bucket/sweep/trial_001_lr0.001", "--config.data.path=gs://bucket/records",
                     "--config.optim.lr=0.001"]
  code = cli.main(["sweep", "run", "--config", CONFIG, "--sweep", SWEEP, "--workdir", str(tmp_path),
                   "--pod", "sj-pod", "--zone", "z"])
  assert code == 2 and "--workdir" in capsys.readouterr().err


def test_report_of_trials_without_done_markers(tmp_path, capsys):
  """Pod trials leave no DONE: a trial is done when its metrics reach its config's num_steps; a line cut
  by a kill is ignored; a trial without the metric ranks last."""
  def trial(name, rows, num_steps=10, cut=False):
    d = tmp_path / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"train": {"num_steps": num_steps}}))
    text = "".join(json.dumps(r) + "\n" for r in rows) + ('{"step": 11, "train/lo' if cut else "")
    (d / "metrics.jsonl").write_text(text)
  trial("trial_000_a", [{"step": 5, "train/loss": 1.0}, {"step": 10, "train/loss": 0.5}], cut=True)
  trial("trial_001_b", [{"step": 5, "train/loss": 0.7}])
  trial("trial_002_c", [{"step": 10, "train/loss": 0.9}, {"step": 10, "eval/loss": 0.8}])
  trial("trial_003_d", [])
  head, rows = report_rows(capsys, "--workdir", str(tmp_path))
  assert "eval/loss (min)" in head
  assert [(r[1], r[3]) for r in rows] == [("trial_002_c", "done"), ("trial_000_a", "done"),
                                          ("trial_001_b", "partial"), ("trial_003_d", "pending")]
  _, rows = report_rows(capsys, "--workdir", str(tmp_path), "--metric", "train/loss")
  assert [r[1] for r in rows] == ["trial_000_a", "trial_001_b", "trial_002_c", "trial_003_d"]
