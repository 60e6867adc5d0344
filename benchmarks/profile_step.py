"""Where a train step's time goes: the trainer's step run under `jax.profiler`, op times by model part.

    python benchmarks/profile_step.py --config configs/wav2vec2.py:base --batch 2 --seconds 4 [--steps 3]
        [--override=--config.model.scan_layers=False] [--top 15]

The profiler records every executed XLA op (thunk) with its HLO instruction name; the compiled HLO gives
each instruction's JAX source path (`metadata={op_name=...}`), which names the Flax module that emitted it.
Op time is summed per part (first match in `PARTS`, in order) over the timed steps and printed as seconds
per step and a share of all op time. Ops run on up to `--xla_cpu_multi_thread_eigen` threads at once, so
the op-time total can exceed the wall time; the shares are what matters.
"""
import argparse
import collections
import glob
import gzip
import json
import os
import re
import tempfile

import jax

import train_throughput  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from speechjax.train import allocator  # noqa: E402

# (part, pattern on the op's JAX source path); the first match wins. Backward ops carry the forward's
# module path under `transpose(jvp(...))`, so each part includes its backward pass.
PARTS = (
    ("optimizer update", r"optax|cond/branch|apply_updates|global_norm|clip"),   # apply_if_finite's cond
    ("conv feature encoder", r"feature_extractor|feature_encoder"),
    ("positional conv", r"pos_conv"),
    ("quantizer (Gumbel / VQ)", r"quantizer"),
    ("attention (incl. its dropout)", r"attention|self_attn"),
    ("feed-forward", r"feed_forward"),
    ("layer norms", r"layer_norm"),
    ("other layer ops (dropout, residuals, scan)", r"layers"),
    ("feature projection", r"feature_projection"),
    ("loss (contrastive / cross-entropy, negatives)", r"contrastive|negatives|cosine|logits|loss|label|_head"),
    ("XLA-inserted, no source (broadcasts, copies)", r"^$"),
)
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+) = .*?metadata=\{[^}]*op_name=\"([^\"]*)\"")


def source_paths(hlo_text: str) -> dict[str, str]:
  """HLO instruction name → the JAX source path of its metadata (fusions: their root's)."""
  return {m.group(1): m.group(2) for m in map(_INSTRUCTION.match, hlo_text.splitlines()) if m}


def part_of(path: str) -> str:
  for part, pattern in PARTS:
    if re.search(pattern, path):
      return part
  return "other"


def op_times(trace_dir: str) -> dict[str, float]:
  """Summed microseconds per HLO op of every op event in the newest trace under `trace_dir`."""
  path = sorted(glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True))[-1]
  with gzip.open(path) as f:
    events = json.load(f)["traceEvents"]
  times = collections.Counter()
  for e in events:
    op = e.get("args", {}).get("hlo_op")
    if e.get("ph") == "X" and op and not e["name"].startswith("end:"):
      times[op] += e["dur"]
  return times


def profile(spec: str, overrides: list[str], batch: int, seconds: float, steps: int) -> dict:
  compiled, state, batch_arrays, _, _ = train_throughput.build_step(spec, overrides, batch, seconds)
  step_time, state = train_throughput.time_steps(compiled, state, batch_arrays, steps)
  paths = source_paths(compiled.as_text())
  with tempfile.TemporaryDirectory() as trace_dir:
    jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
    traced_step_time, _ = train_throughput.time_steps(compiled, state, batch_arrays, steps)
    jax.profiler.stop_trace()
    times = op_times(trace_dir)
  per_part, per_op = collections.Counter(), collections.Counter()
  for op, us in times.items():
    path = paths.get(op, "")
    per_part[part_of(path)] += us
    per_op[(op, path)] += us
  total = sum(per_part.values())
  return {"config": spec, "overrides": overrides, "batch": batch, "seconds": seconds,
          "step_time_s": step_time, "traced_step_time_s": traced_step_time, "op_time_s_per_step": total / 1e6 / (steps + 1),
          "parts": {p: (us / 1e6 / (steps + 1), us / total) for p, us in per_part.most_common()},
          "top_ops": [(op, path, us / 1e6 / (steps + 1)) for (op, path), us in per_op.most_common()]}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--config", required=True)
  parser.add_argument("--override", action="append", default=[])
  parser.add_argument("--batch", type=int, default=2)
  parser.add_argument("--seconds", type=float, default=4.0)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--top", type=int, default=15)
  parser.add_argument("--json", help="also write the full result here")
  args = parser.parse_args()
  allocator.reuse_freed_memory()   # as every `speechjax` command does
  r = profile(args.config, args.override, args.batch, args.seconds, args.steps)
  print(f"{r['config']} {' '.join(r['overrides'])}: batch {r['batch']} × {r['seconds']} s, "
        f"step {r['step_time_s']:.3f} s wall ({r['traced_step_time_s']:.3f} s while traced), op time {r['op_time_s_per_step']:.3f} s per step")
  print("| part | op time per step | share |\n|---|---|---|")
  for part, (sec, share) in r["parts"].items():
    print(f"| {part} | {sec:.3f} s | {100 * share:.1f} % |")
  print(f"\ntop {args.top} ops:")
  for op, path, sec in r["top_ops"][:args.top]:
    print(f"  {sec:7.3f} s  {op:28s} {path[-110:]}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(r, f, indent=1)


if __name__ == "__main__":
  main()
