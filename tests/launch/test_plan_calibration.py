"""`speechjax plan` against the TPU compiler: for every encoder train step recorded in benchmarks/compiles/ and
benchmarks/compiles_presets/ (the JSON report of `speechjax compile` and the command that made it), the plan of
the same config on the same mesh predicts the compiled per-device peak within 10 %."""
import json
import pathlib

import pytest

from speechjax.launch import plan

BENCHMARKS = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"
TOLERANCE = 0.10


def _records():
  paths = sorted([*BENCHMARKS.glob("compiles/*.cmd"), *BENCHMARKS.glob("compiles_presets/*.cmd")])
  return [str(p.relative_to(BENCHMARKS).with_suffix("")) for p in paths
          if plan.plans_compile(p.read_text())]


@pytest.mark.parametrize("name", _records())
def test_plan_predicts_the_compiled_peak(name):
  p, compiled = plan.replan_compile((BENCHMARKS / f"{name}.cmd").read_text(),
                                    json.loads((BENCHMARKS / f"{name}.json").read_text()))
  predicted = p.chosen.memory["total"]
  assert abs(predicted - compiled) <= TOLERANCE * compiled, (
      f"{name}: plan {predicted / plan.GiB:.2f} GiB vs compiled {compiled / plan.GiB:.2f} GiB per device")
