"""Hyperparameter sweeps (big_vision style): a sweep file returns a list of config overrides.

    speechjax sweep run    --config configs/X.py:preset --sweep sweeps/Y.py[:arg] --workdir DIR \\
                           [--config.a.b=v ...]
    speechjax sweep run    ... --workdir gs://B/SWEEP --pod NAME --zone Z     (prints `speechjax tpu run` lines)
    speechjax sweep report --workdir DIR [--metric eval/loss] [--mode min]

A sweep file defines `get_sweep()` (or `get_sweep(arg)`) returning a list of dicts {"optim.lr": 1e-3, ...}
(a key may also be written "config.optim.lr", or `optim__lr` as a keyword argument), usually built with

    grid(**{"optim.lr": [1e-3, 3e-3], "model.embed_dim": [32, 64]})        # the product: 4 trials
    random(8, seed=0, **{"optim.lr": log_uniform(1e-4, 1e-2), "optim.warmup_steps": [10, 100]})

and lists can be concatenated. Trial i runs in `DIR/trial_<iii>_<short name>` (the short name shows the
values that vary across trials) with its overrides in `overrides.json`, through the trainer, one after
the other; `--config.*` flags apply to every trial. A finished trial leaves `DONE` (its final metrics) and
is skipped when the sweep runs again; a killed one resumes from its last checkpoint. With `--pod` the sweep
prints one `speechjax tpu run --attach` command per trial instead (pipe them into `bash` to run the trials
in turn on the pod; a finished trial restores its last checkpoint and exits at once).

`report` reads each trial's `metrics.jsonl` (written by speechjax.train.metrics: one JSON object per
logging step, keys "train/<name>" and "eval/<name>") and prints the final value of each metric, best trial
first. `--metric auto` (default) is eval/loss when the trials have evaluated, else train/loss.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import re
import shlex
import sys

import numpy as np

from speechjax import config as config_lib

TRIAL_PREFIX = "trial_"
DONE = "DONE"
OVERRIDES = "overrides.json"
METRICS = "metrics.jsonl"   # speechjax.train.metrics.Writer


class SweepError(ValueError):
  """A bad sweep file, sweep workdir or argument; the message says which."""


# ----------------------------------------------------------------------------------------------
# Building sweeps


def _key(name: str) -> str:
  """"config.optim.lr" / "optim__lr" / "optim.lr" → "optim.lr"."""
  name = name.replace("__", ".")
  return name[len("config."):] if name.startswith("config.") else name


def grid(**axes) -> list[dict]:
  """Every combination of the axes' values, the last axis varying fastest."""
  keys = [_key(k) for k in axes]
  values = [list(v) if isinstance(v, (list, tuple)) else [v] for v in axes.values()]
  return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


class Distribution:
  """A random-search axis: `sample(rng)` draws one value from a numpy Generator."""

  def sample(self, rng: np.random.Generator):
    raise NotImplementedError


class LogUniform(Distribution):

  def __init__(self, low: float, high: float):
    if not 0 < low <= high:
      raise SweepError(f"log_uniform({low}, {high}): needs 0 < low <= high")
    self.low, self.high = low, high

  def sample(self, rng):
    return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))


class Uniform(Distribution):

  def __init__(self, low: float, high: float):
    if low > high:
      raise SweepError(f"uniform({low}, {high}): needs low <= high")
    self.low, self.high = low, high

  def sample(self, rng):
    return float(rng.uniform(self.low, self.high))


class Choice(Distribution):

  def __init__(self, *values):
    if not values:
      raise SweepError("choice(): needs at least one value")
    self.values = values

  def sample(self, rng):
    value = self.values[int(rng.integers(len(self.values)))]
    return value.item() if isinstance(value, np.generic) else value


def log_uniform(low: float, high: float) -> LogUniform:
  return LogUniform(low, high)


def uniform(low: float, high: float) -> Uniform:
  return Uniform(low, high)


def choice(*values) -> Choice:
  return Choice(*values)


def random(n: int, seed: int = 0, **distributions) -> list[dict]:
  """`n` trials drawn independently: a Distribution is sampled, a list/tuple is a uniform choice, any
  other value is held fixed. The same (n, seed, axes) give the same trials."""
  rng = np.random.default_rng(seed)
  axes = {}
  for name, dist in distributions.items():
    if isinstance(dist, (list, tuple)):
      dist = Choice(*dist)
    axes[_key(name)] = dist
  return [{k: d.sample(rng) if isinstance(d, Distribution) else d for k, d in axes.items()}
          for _ in range(n)]


def load_sweep(spec: str) -> list[dict]:
  """Loads `path.py[:arg]` and returns its `get_sweep([arg])`, checked and with normalized keys."""
  path, _, arg = spec.partition(":")
  if not os.path.exists(path):
    raise SweepError(f"--sweep: {path!r} not found")
  module = config_lib.exec_file(path, "speechjax_sweep")
  if not hasattr(module, "get_sweep"):
    raise SweepError(f"--sweep: {path} has no get_sweep()")
  trials = module.get_sweep(arg) if arg else module.get_sweep()
  if not isinstance(trials, (list, tuple)) or not trials or not all(isinstance(t, dict) for t in trials):
    raise SweepError(f"--sweep: {spec}: get_sweep() must return a non-empty list of dicts")
  return [{_key(k): v for k, v in t.items()} for t in trials]


# ----------------------------------------------------------------------------------------------
# Trials


def override_args(overrides: dict) -> list[str]:
  """{"optim.lr": 0.001} → ["--config.optim.lr=0.001"] (values as Python literals)."""
  return [f"--config.{k}={v!r}" for k, v in overrides.items()]


def _format(value) -> str:
  if isinstance(value, float):
    return f"{value:.3g}"
  if isinstance(value, (list, tuple)):
    return "x".join(_format(v) for v in value)
  return str(value)


def trial_names(trials: list[dict]) -> list[str]:
  """`trial_<iii>_<leaf><value>-...` from the keys whose values differ between trials."""
  keys = list(dict.fromkeys(k for t in trials for k in t))
  varying = [k for k in keys if len({repr(t.get(k)) for t in trials}) > 1]
  names = []
  for i, t in enumerate(trials):
    short = "-".join(f"{k.rsplit('.', 1)[-1]}{_format(t[k])}" for k in varying if k in t)
    short = re.sub(r"[^A-Za-z0-9._-]+", "", short)[:60]
    names.append(f"{TRIAL_PREFIX}{i:03d}" + (f"_{short}" if short else ""))
  return names


def _fs(path: str):
  """(exists, isdir, listdir, open) for a path: os for local paths, tf.io.gfile for gs:// (so the report
  reads a pod sweep straight from its bucket)."""
  if str(path).startswith("gs://"):
    import tensorflow as tf
    g = tf.io.gfile
    return g.exists, g.isdir, lambda p: [n.rstrip("/") for n in g.listdir(p)], g.GFile
  return os.path.exists, os.path.isdir, os.listdir, open


def _read_json(path: str):
  with _fs(path)[3](path) as f:
    return json.load(f)


def _write_json(path: str, payload) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(payload, f, indent=1, sort_keys=True)
  os.replace(tmp, path)


def check_workdir(workdir: str, names: list[str], trials: list[dict]) -> None:
  """The workdir holds no trial of another sweep under the same index."""
  if not os.path.isdir(workdir):
    return
  wanted = dict(zip(names, trials))
  for entry in sorted(os.listdir(workdir)):
    if not entry.startswith(TRIAL_PREFIX):
      continue
    index = entry[len(TRIAL_PREFIX):len(TRIAL_PREFIX) + 3]
    mine = [n for n in names if n.startswith(TRIAL_PREFIX + index)]
    saved = os.path.join(workdir, entry, OVERRIDES)
    if (mine and mine[0] != entry) or (entry in wanted and os.path.exists(saved)
                                       and _read_json(saved) != json.loads(json.dumps(wanted[entry]))):
      raise SweepError(f"--workdir={workdir!r} holds {entry} from a different sweep; use a new --workdir")


def run_local(config: str, trials: list[dict], workdir: str, base_overrides=(), log=print) -> list[dict]:
  """Runs the trials one after the other through the trainer; returns one status dict per trial."""
  from speechjax import config as config_lib
  names = trial_names(trials)
  configs = []
  for name, trial in zip(names, trials):   # every trial's config is checked before any trial runs
    try:
      configs.append(config_lib.load(config, [*base_overrides, *override_args(trial)]))
    except ValueError as e:
      raise SweepError(f"{name} {trial}: {e}") from None
  check_workdir(workdir, names, trials)
  os.makedirs(workdir, exist_ok=True)
  _write_json(os.path.join(workdir, "sweep.json"), {"config": config, "base_overrides": list(base_overrides),
                                                    "trials": dict(zip(names, trials))})
  import jax
  from speechjax.train import trainer
  statuses = []
  for i, (name, trial, cfg) in enumerate(zip(names, trials, configs)):
    trial_dir = os.path.join(workdir, name)
    head = f"[{i + 1}/{len(trials)}] {name} {json.dumps(trial)}"
    if os.path.exists(os.path.join(trial_dir, DONE)):
      log(f"{head}: complete, skipped")
      statuses.append({"trial": name, "status": "skipped"})
      continue
    os.makedirs(trial_dir, exist_ok=True)
    _write_json(os.path.join(trial_dir, OVERRIDES), trial)
    log(f"{head}: training")
    run = trainer.Trainer(cfg, trial_dir)
    final = run.run()
    step = int(jax.device_get(run.state.step))
    if step < cfg.train.num_steps:   # preempted (SIGTERM): the checkpoint is saved; stop the sweep
      log(f"{head}: stopped at step {step}; run the sweep again to resume")
      statuses.append({"trial": name, "status": "stopped"})
      break
    _write_json(os.path.join(trial_dir, DONE), {"step": step, **final})
    statuses.append({"trial": name, "status": "done", **final})
  return statuses


def pod_commands(config: str, trials: list[dict], workdir: str, pod: str, zone: str, project: str = "",
                 base_overrides=()) -> list[list[str]]:
  """One `speechjax tpu run --attach` command per trial (they run in turn when piped into bash)."""
  from speechjax.launch import tpu
  tpu.check_gcs("--workdir", workdir)
  tpu.remote_config_path(config)
  where = ["--pod", pod, "--zone", zone] + (["--project", project] if project else [])
  return [["speechjax", "tpu", "run", *where, "--attach", "--config", config, "--workdir",
           f"{workdir.rstrip('/')}/{name}", *base_overrides, *override_args(trial)]
          for name, trial in zip(trial_names(trials), trials)]


# ----------------------------------------------------------------------------------------------
# Report


def final_metrics(trial_dir: str) -> dict:
  """The last value of every metric in the trial's metrics.jsonl, and the last step ("step")."""
  path = os.path.join(trial_dir, METRICS)
  exists, _, _, open_ = _fs(path)
  out = {}
  if not exists(path):
    return out
  with open_(path) as f:
    for line in f:
      line = line.strip()
      if not line:
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError:   # a line cut by a kill mid-write
        continue
      out.update(row)
  return out


def collect(workdir: str) -> list[dict]:
  """[{trial, status, overrides, metrics}] for every trial directory in the sweep workdir."""
  exists, isdir, listdir, _ = _fs(workdir)
  if not isdir(workdir):
    raise SweepError(f"--workdir={workdir!r}: no such sweep directory")
  rows = []
  for entry in sorted(listdir(workdir)):
    trial_dir = os.path.join(workdir, entry)
    if not entry.startswith(TRIAL_PREFIX) or not isdir(trial_dir):
      continue
    metrics = final_metrics(trial_dir)
    config_path = os.path.join(trial_dir, "config.json")   # written by the trainer
    num_steps = _read_json(config_path)["train"]["num_steps"] if exists(config_path) else None
    finished = exists(os.path.join(trial_dir, DONE)) or (   # a pod trial leaves no DONE marker
        num_steps is not None and metrics.get("step", -1) >= num_steps)
    status = "done" if finished else "partial" if metrics else "pending"
    overrides_path = os.path.join(trial_dir, OVERRIDES)
    overrides = _read_json(overrides_path) if exists(overrides_path) else {}
    rows.append({"trial": entry, "status": status, "overrides": overrides, "metrics": metrics})
  return rows


def rank(rows: list[dict], metric: str, mode: str = "min") -> list[dict]:
  """Best first by the final `metric`; trials without it (or non-finite) last, in name order."""
  def key(row):
    value = row["metrics"].get(metric)
    if value is None or not math.isfinite(value):
      return (1, 0.0)
    return (0, value if mode == "min" else -value)
  return sorted(rows, key=key)


def choose_metric(rows: list[dict], metric: str) -> str:
  if metric != "auto":
    return metric
  return "eval/loss" if any("eval/loss" in r["metrics"] for r in rows) else "train/loss"


def format_report(rows: list[dict], metric: str, mode: str) -> str:
  extra = [m for m in ("train/loss", "eval/loss", "eval/accuracy")
           if m != metric and any(m in r["metrics"] for r in rows)]
  head = ["rank", "trial", "overrides", "status", "step", f"{metric} ({mode})", *extra]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for i, r in enumerate(rank(rows, metric, mode), start=1):
    m = r["metrics"]
    cells = [str(i), r["trial"], " ".join(f"{k}={_format(v)}" for k, v in r["overrides"].items()),
             r["status"], str(m.get("step", "")), *(_value(m.get(k)) for k in (metric, *extra))]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def _value(v) -> str:
  return "" if v is None else f"{v:.6g}"


# ----------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser):
  sub = parser.add_subparsers(dest="action", required=True)
  p = sub.add_parser("run", help="run the sweep's trials (or print their `speechjax tpu run` commands)")
  p.add_argument("--config", required=True, help="configs/<family>.py[:preset]")
  p.add_argument("--sweep", required=True, help="sweeps/<name>.py[:arg] with get_sweep()")
  p.add_argument("--workdir", required=True, help="the sweep directory: one sub-directory per trial")
  p.add_argument("--pod", default="", help="print `speechjax tpu run` commands for this TPU pod instead")
  p.add_argument("--zone", default="", help="with --pod")
  p.add_argument("--project", default="", help="with --pod")
  p = sub.add_parser("report", help="final metrics per trial, best first")
  p.add_argument("--workdir", required=True)
  p.add_argument("--metric", default="auto", help="e.g. eval/loss, train/loss, eval/accuracy "
                 "(auto: eval/loss if evaluated, else train/loss)")
  p.add_argument("--mode", default="min", choices=("min", "max"))


def run(args) -> int:
  try:
    return _run(args)
  except ValueError as e:   # SweepError, or a ConfigError / LaunchError naming the field or flag
    print(f"speechjax sweep {args.action}: {e}", file=sys.stderr)
    return 2


def _run(args) -> int:
  overrides = list(getattr(args, "overrides", None) or [])
  if args.action == "report":
    if overrides:
      raise SweepError("`sweep report` takes no --config.* overrides")
    rows = collect(args.workdir)
    if not rows:
      raise SweepError(f"--workdir={args.workdir!r} has no {TRIAL_PREFIX}* directories")
    print(format_report(rows, choose_metric(rows, args.metric), args.mode))
    return 0
  from speechjax import config as config_lib
  config_lib.parse_overrides(overrides)   # well-formed --config.a.b=v flags
  trials = load_sweep(args.sweep)
  if args.pod:
    if not args.zone:
      raise SweepError("--pod needs --zone")
    for cmd in pod_commands(args.config, trials, args.workdir, args.pod, args.zone, args.project, overrides):
      print(shlex.join(cmd))
    return 0
  run_local(args.config, trials, args.workdir, overrides)
  return 0   # also when preempted: like the trainer, a SIGTERM'd sweep saves, stops and exits 0
