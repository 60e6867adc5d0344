"""`speechjax plan` against the TPU compiler: for every train step recorded in benchmarks/compiles/ (the JSON
report of `speechjax compile` and the command that made it), the plan of the same config on the same mesh
predicts the compiled per-device peak within 10 %."""
import json
import pathlib
import shlex

import pytest

from speechjax import config as config_lib
from speechjax.launch import plan

RECORDS = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "compiles"
TOLERANCE = 0.10


def _records():
  return sorted(p.stem for p in RECORDS.glob("*.json"))


def _plan_of(name: str):
  argv = shlex.split((RECORDS / f"{name}.cmd").read_text())[2:]   # after "speechjax compile"
  spec, topology = argv[argv.index("--config") + 1], argv[argv.index("--topology") + 1]
  overrides = [a for a in argv if a.startswith("--config.")]
  report = json.loads((RECORDS / f"{name}.json").read_text())
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
