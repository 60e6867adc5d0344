"""The main job's wall time against corpus size: the README's loop recipe (configs/hubert_loop.py:small)
on the tiny, small and medium (4 × small) synthetic corpora.

    python benchmarks/loop_corpus_size.py --sizes tiny,small,medium --out docs/figures/loop_corpus_size

Synthesises and prepares each corpus under data/ if it is missing (not timed), runs `speechjax loop` in a
fresh workdir under --scratch, and writes <out>.json (per size: training hours, loop wall seconds with
imports, the results table) and <out>.png. Run it with nothing else on the machine.
"""
import argparse
import json
import os
import shutil
import subprocess
import time

from speechjax.data import records


def ensure_corpus(size: str) -> str:
  source, prepared = f"data/synth-{size}", f"data/synth-{size}/records"
  if not os.path.exists(f"{prepared}/meta.json"):
    subprocess.run(["speechjax", "synth", "--size", size, "--out", source], check=True)
    subprocess.run(["speechjax", "prepare", "--source", source, "--out", prepared], check=True)
  return prepared


def train_hours(prepared: str) -> float:
  meta = records.read_meta(prepared)
  return meta.splits["train"].num_samples / meta.sample_rate / 3600


def results_table(workdir: str) -> list[dict]:
  """Rows of the loop's results.md as dicts keyed by its header."""
  with open(f"{workdir}/results.md") as f:
    lines = [line.strip().strip("|").split("|") for line in f if line.startswith("|")]
  header = [h.strip() for h in lines[0]]
  return [dict(zip(header, (c.strip() for c in row))) for row in lines[2:]]


def plot(rows: list[dict], path: str) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, ax = plt.subplots(figsize=(5, 3.4))
  hours = [r["train_hours"] for r in rows]
  ax.plot(hours, [r["loop_seconds"] / 60 for r in rows], "o-")
  for r in rows:
    ax.annotate(r["size"], (r["train_hours"], r["loop_seconds"] / 60), textcoords="offset points",
                xytext=(4, -12))
  ax.set_xlabel("training split (hours of audio)")
  ax.set_ylabel("loop wall time (min)")
  ax.set_title("HuBERT loop (configs/hubert_loop.py:small), 2-core CPU")
  ax.set_ylim(bottom=0)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=110)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sizes", default="tiny,small,medium")
  parser.add_argument("--config", default="configs/hubert_loop.py:small")
  parser.add_argument("--scratch", default="/tmp/loop_corpus_size")
  parser.add_argument("--out", default="docs/figures/loop_corpus_size")
  args = parser.parse_args()
  rows = []
  for size in args.sizes.split(","):
    prepared = ensure_corpus(size)
    workdir = f"{args.scratch}/{size}"
    shutil.rmtree(workdir, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run(["speechjax", "loop", "--workdir", workdir, "--config", args.config,
                    f"--config.data={prepared}"], check=True)
    rows.append({"size": size, "train_hours": round(train_hours(prepared), 3),
                 "loop_seconds": round(time.perf_counter() - start, 1), "results": results_table(workdir)})
    print(json.dumps(rows[-1]), flush=True)
  with open(f"{args.out}.json", "w") as f:
    json.dump({"config": args.config, "rows": rows}, f, indent=1)
  plot(rows, f"{args.out}.png")


if __name__ == "__main__":
  main()
