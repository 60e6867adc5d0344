"""docs/scaling.md's compile tables from `speechjax compile --json` records (<name>.json + <name>.cmd).

    python benchmarks/compile_table.py benchmarks/compiles_presets > /tmp/table.md
    python benchmarks/compile_table.py --plan benchmarks/compiles benchmarks/compiles_presets
        (the plan against each encoder record: `speechjax plan` calibration)
"""
import json
import pathlib
import sys

GiB = 2**30


def collectives(step) -> str:
  return ", ".join(f"{name} ×{c['count']} ({c['bytes'] / 2**20:,.0f} MiB)"
                   for name, c in sorted(step["collectives"].items())) or "none"


def row(name: str, report: dict) -> str:
  (step,) = [s for s in report["steps"] if s["step"] == "train"]
  mesh = "({data},{fsdp},{tensor})".format(**report["mesh"])
  per_device = report["batch"] / (report["mesh"]["data"] * report["mesh"]["fsdp"])
  crop = report["samples"] / 16000
  if step["fits"]:
    memory = f"{step['memory']['peak'] / GiB:.2f} of {step['hbm_bytes'] / GiB:.0f}: fits"
  else:
    memory = f"needs {step['overflow']['required'] / GiB:.2f} of {step['overflow']['available'] / GiB:.2f}: **does not fit**"
  return (f"| {name} | {report['num_params'] / 1e6:,.0f}M | {report['topology']} {mesh} | "
          f"{report['batch']} × {crop:g} s ({per_device:g}/device) | {memory} | {step['compile_seconds']:.0f} s | "
          f"{step['flops'] / 1e12:.2f} T | {collectives(step)} | {step['step_seconds'] * 1e3:.0f} ms ({step['bound']}) |")


def plan_rows(folders):
  from speechjax.launch import plan
  print("| record (train step) | slice | batch | compiled peak / device | plan | error |")
  print("|---|---|---|---|---|---|")
  for folder in folders:
    for path in sorted(pathlib.Path(folder).glob("*.cmd")):
      command = path.read_text()
      if not plan.plans_compile(command):
        continue
      report = json.loads(path.with_suffix(".json").read_text())
      p, compiled = plan.replan_compile(command, report)
      predicted = p.chosen.memory["total"]
      print(f"| {path.parent.name}/{path.stem} ({report['dtype']}) | {report['topology']} | {report['batch']} | "
            f"{compiled / GiB:.2f} GiB | {predicted / GiB:.2f} GiB | {(predicted - compiled) / compiled:+.1%} |")


def main(folder: str):
  print("| preset | params | slice, mesh | batch | GiB per device | compile here | FLOPs / device | collectives "
        "| step estimate |")
  print("|---|---|---|---|---|---|---|---|---|")
  for path in sorted(pathlib.Path(folder).glob("*.json")):
    print(row(path.stem, json.loads(path.read_text())))


if __name__ == "__main__":
  if sys.argv[1] == "--plan":
    plan_rows(sys.argv[2:])
  else:
    main(sys.argv[1])
