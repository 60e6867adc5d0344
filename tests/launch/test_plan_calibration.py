"""`speechjax plan` against the TPU compiler: for every encoder train step recorded in benchmarks/compiles/ and
benchmarks/compiles_presets/ (the JSON report of `speechjax compile` and the command that made it), the plan of
the same config on the same mesh predicts the compiled per-device peak within 10 %."""
import json
import pathlib
import shlex

import pytest

from speechjax import config as config_lib
from speechjax.launch import plan

BENCHMARKS = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"
TOLERANCE = 0.10
PLANNED = ("configs/wav2vec2.py:", "configs/hubert.py:", "configs/wavlm.py:")   # what `plan` models


def _records():
  paths = sorted([*BENCHMARKS.glob("compiles/*.cmd"), *BENCHMARKS.glob("compiles_presets/*.cmd")])
  return [str(p.relative_to(BENCHMARKS).with_suffix("")) for p in paths if any(
      f"--config {spec}" in p.read_text() for spec in PLANNED)]


def _plan_of(name: str):
  argv = shlex.split((BENCHMARKS / f"{name}.cmd").read_text())[2:]   # after "speechjax compile"
  spec, topology = argv[argv.index("--config") + 1], argv[argv.index("--topology") + 1]
  overrides = [a for a in argv if a.startswith("--config.")]
  report = json.loads((BENCHMARKS / f"{name}.json").read_text())
  mesh = report["mesh"]
  cfg = config_lib.load(spec, overrides)
  return plan.make_plan(cfg, spec, topology, mesh=f"({mesh['data']},{mesh['fsdp']},{mesh['tensor']})"), report


@pytest.mark.parametrize("name", _records())
def test_plan_predicts_the_compiled_peak(name):
  p, report = _plan_of(name)
  (step,) = [s for s in report["steps"] if s["step"] == "train"]
  compiled = step["memory"]["peak"] if step["fits"] else step["overflow"]["required"]
  predicted = p.chosen.memory["total"]
  assert abs(predicted - compiled) <= TOLERANCE * compiled, (
      f"{name}: plan {predicted / plan.GiB:.2f} GiB vs compiled {compiled / plan.GiB:.2f} GiB per device")
