"""Train-step time against crop length and batch size, as JSON and a plot (docs/performance.md).

    python benchmarks/scaling_curves.py --config configs/hubert.py:tiny --crops 2,4,8,16 --batches 2,4,8,16,32 \
        --base-batch 8 --base-crop 2 --out docs/figures/scaling_hubert_tiny

For every crop (seconds) at `--base-batch`, and every batch at `--base-crop`, the trainer's compiled train
step on random audio (`train_throughput.build_step`) is timed over `--steps` steps after a warm-up; the
figure shows seconds per step and audio-seconds per second. Attention is quadratic in the crop, the rest
linear, so step time per audio-second grows with the crop once attention dominates.
"""
import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import train_throughput  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from speechjax.train import allocator  # noqa: E402


def step_seconds(spec: str, overrides: list[str], batch: int, crop: float, steps: int) -> float:
  compiled, state, arrays, _, _ = train_throughput.build_step(spec, overrides, batch, crop)
  seconds, _ = train_throughput.time_steps(compiled, state, arrays, steps)
  return seconds


def _plot(rows: list[dict], key: str, ax_time, ax_rate, label: str):
  xs = [r[key] for r in rows]
  ax_time.plot(xs, [r["step_s"] for r in rows], "o-")
  ax_rate.plot(xs, [r["batch"] * r["crop_s"] / r["step_s"] for r in rows], "o-")
  for ax in (ax_time, ax_rate):
    ax.set_xscale("log", base=2)
    ax.set_xlabel(label)
    ax.grid(True, alpha=0.3)
  ax_time.set_ylabel("seconds per step")
  ax_rate.set_ylabel("audio-seconds per second")


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--config", required=True)
  parser.add_argument("--override", action="append", default=[])
  parser.add_argument("--crops", default="2,4,8,16")
  parser.add_argument("--batches", default="2,4,8,16")
  parser.add_argument("--base-batch", type=int, default=8)
  parser.add_argument("--base-crop", type=float, default=2.0)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--out", required=True, help="path prefix: writes <out>.json and <out>.png")
  args = parser.parse_args()
  allocator.reuse_freed_memory()   # as every `speechjax` command does
  by_crop = [{"batch": args.base_batch, "crop_s": c,
              "step_s": step_seconds(args.config, args.override, args.base_batch, c, args.steps)}
             for c in map(float, args.crops.split(","))]
  by_batch = [{"batch": b, "crop_s": args.base_crop,
               "step_s": step_seconds(args.config, args.override, b, args.base_crop, args.steps)}
              for b in map(int, args.batches.split(","))]
  result = {"config": args.config, "overrides": args.override, "by_crop": by_crop, "by_batch": by_batch}
  print(json.dumps(result))
  with open(args.out + ".json", "w") as f:
    json.dump(result, f, indent=1)
  fig, axes = plt.subplots(2, 2, figsize=(9, 6.5))
  _plot(by_crop, "crop_s", axes[0, 0], axes[1, 0], f"crop seconds (batch {args.base_batch})")
  _plot(by_batch, "batch", axes[0, 1], axes[1, 1], f"batch size ({args.base_crop:g} s crops)")
  fig.suptitle(f"{args.config} {' '.join(args.override)}: train step on this CPU")
  fig.tight_layout()
  fig.savefig(args.out + ".png", dpi=90)


if __name__ == "__main__":
  main()
