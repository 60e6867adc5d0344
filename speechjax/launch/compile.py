"""`speechjax compile`: the trainer's own steps compiled ahead of time for a TPU slice, on this machine.

    speechjax compile --config configs/hubert.py:base --topology v5e-256 [--step train|eval|both|generate]
                      [--json out.json] [--config.model.dtype=bfloat16 --config.mesh.shape="(1,-1,1)" ...]

The TPU compiler in libtpu (`pip install "speechjax[tpu]"`) runs here with no TPU: the slice's devices
come from `jax.experimental.topologies`, the state from `jax.eval_shape` of the task's init with the
trainer's shardings (`trainer.abstract_state`), the steps from `trainer.jit_steps`, the batch from the
shapes `speechjax.data.pipeline` emits. `--step generate` (token LMs and LLaMA text LMs) compiles their
KV-cache sampling loop instead: `data.batch_size` rows sharded like a training batch, prompts and output of
the model's full length (`max_length`, or `data.max_target_length` + 1 for a LLaMA). Nothing is
materialised. It reports, per device:

  memory      arguments, outputs, temporaries, aliases (donated state) and peak = args + outputs + temps
              − aliases, against the device's HBM (compiled.memory_analysis())
  FLOPs       matmul + conv FLOPs of the step's jaxpr with scan bodies multiplied out, and XLA's own
              cost_analysis() (which counts a loop body once), per device
  bytes       XLA's bytes accessed (loop bodies once: a lower bound under scan)
  collectives all-gather / reduce-scatter / all-reduce / ... in the optimised HLO, loop bodies × trips
  estimate    roofline step time max(FLOPs / peak, bytes / HBM bandwidth): an estimate, not a measurement

A program that does not fit fails in the compiler; the report then gives the required and available
bytes and the largest buffers XLA lists.

Devices: v4 slices show one device per TensorCore here (v4-64 = 64 devices of 16 GiB); v5e, v5p and v6e
one per chip. The smallest slice the topology API builds is 4 chips (2x2).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import tempfile
import time

from speechjax.launch import hlo_stats
from speechjax.launch import plan as plan_lib

GiB = 2**30


@dataclasses.dataclass(frozen=True)
class Device:
  """One JAX device of a slice as the ahead-of-time compiler sees it."""
  hbm_bytes: float
  peak_flops: float       # dense bf16 FLOP/s
  hbm_bandwidth: float    # bytes/s


# Per JAX device: a v4 TensorCore is half a chip (the topology API shows both); v5p chips are megacore.
DEVICES = {
    "v4": Device(16 * GiB, 275e12 / 2, 1.2e12 / 2),
    "v5e": Device(16 * GiB, 197e12, 0.819e12),
    "v5p": Device(95 * GiB, 459e12, 2.765e12),
    "v6e": Device(32 * GiB, 918e12, 1.64e12),
}
THREE_D = ("v4", "v5p")


class CompileError(ValueError):
  """A bad topology or a missing TPU compiler; the message says which and what to do."""


def physical_layout(generation: str, chips: int) -> str:
  """The topology API's name of a slice: `v5e` with 256 chips → "16x16", `v4` with 32 chips → "2x4x4"."""
  if chips < 4 or chips & (chips - 1):
    raise CompileError(f"--topology: {chips} chips; ahead-of-time compiles need a power of two ≥ 4 chips "
                       "(a 2x2 slice or larger)")
  k = chips.bit_length() - 1
  if generation not in THREE_D:
    return f"{2 ** (k // 2)}x{2 ** (k - k // 2)}"
  if k == 2:
    return "2x2x1"
  dims = [2 ** (k // 3 + (i >= 3 - k % 3)) for i in range(3)]
  return "x".join(str(d) for d in dims)


@contextlib.contextmanager
def _quiet_stderr():
  """libtpu prints warnings (no TPU_ACCELERATOR_TYPE, no worker hostnames) when it starts without a TPU:
  harmless here, so they are kept out of the report (and shown if the start fails)."""
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile(mode="w+") as sink:
    os.dup2(sink.fileno(), 2)
    try:
      yield sink
    finally:
      os.dup2(saved, 2)
      os.close(saved)


def tpu_devices(topology: plan_lib.Topology) -> list:
  """The abstract devices of `topology` (no TPU needed, libtpu is)."""
  from jax.experimental import topologies
  name = f"{topology.generation}:{physical_layout(topology.generation, topology.chips)}"
  try:
    import libtpu  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
  except ImportError:
    raise CompileError('the TPU compiler is not installed: pip install "speechjax[tpu]" (libtpu for this '
                       "jax version; it coexists with CPU jax)") from None
  # Several processes may load libtpu to compile (no TPU is opened); without this the second one stops at
  # libtpu's lockfile.
  os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
  with _quiet_stderr() as log:
    try:
      return list(topologies.get_topology_desc(topology_name=name, platform="tpu").devices)
    except Exception as e:  # pylint: disable=broad-except
      log.seek(0)
      raise CompileError(f"--topology={topology.name} ({name}): {e}\n{log.read()[-2000:]}") from None


# ----------------------------------------------------------------------------------------------
# What is compiled


def label_hops(cfg) -> dict[str, int]:
  """Samples per frame of every label set in `data.labels`: from the data's meta.json when it exists,
  else from the task's rates (`label_rates`, `semantic_rate`, `acoustic_rate`), else 320 (50 Hz)."""
  import tensorflow as tf
  from speechjax.data import records
  names = tuple(cfg.data.labels)
  if names and tf.io.gfile.exists(os.path.join(cfg.data.path, "meta.json")):
    meta = records.read_meta(cfg.data.path)
    if all(n in meta.labels for n in names):
      return {n: meta.labels[n].hop for n in names}
  task = cfg.task
  rates = dict(zip(task.get("labels", ()), task.get("label_rates", ())))
  if "semantic_labels" in task:
    rates[task.semantic_labels] = task.semantic_rate
  for name in task.get("acoustic_labels", ()):
    rates[name] = task.acoustic_rate
  return {n: records.SAMPLE_RATE // int(rates.get(n, 50)) for n in names}


def abstract_batch(cfg, mesh) -> dict:
  """The global batch as ShapeDtypeStructs sharded over the mesh's batch axes."""
  import jax
  import numpy as np
  from speechjax.data import pipeline
  from speechjax.parallel import mesh as mesh_lib
  sharding = mesh_lib.batch_sharding(mesh)
  return {k: jax.ShapeDtypeStruct(shape, np.dtype(dtype), sharding=sharding)
          for k, (shape, dtype) in pipeline.batch_shapes(cfg.data, cfg.data.batch_size,
                                                         label_hops(cfg)).items()}


@dataclasses.dataclass
class StepReport:
  step: str                      # "train" | "eval" | "generate"
  compile_seconds: float
  fits: bool
  memory: dict                   # per-device bytes: arguments, outputs, temporaries, aliases, peak
  hbm_bytes: float
  flops: float                   # per device, jaxpr count (scan bodies × length)
  xla_flops: float               # per device, XLA cost_analysis (loop bodies once)
  bytes_accessed: float          # per device, XLA (loop bodies once)
  collectives: dict
  step_seconds: float            # roofline estimate
  bound: str                     # "compute" | "memory"
  overflow: dict | None = None   # when it does not fit: required, available, largest buffers


@dataclasses.dataclass
class Report:
  spec: str
  topology: str
  devices: int
  device_kind: str
  mesh: dict
  dtype: str
  batch: int
  samples: int
  num_params: int
  steps: list
  subtile_shards: list = dataclasses.field(default_factory=list)   # see `subtile_shards`


# TPU arrays are laid out in (8, 128) tiles of their two minor dimensions (bf16 packs 16 rows).
TILE_ROWS = 8


def subtile_shards(params) -> list[str]:
  """The parameter arrays (ShapeDtypeStructs with shardings) whose per-device shard of a sharded dimension
  is not a multiple of 8 rows. The TPU compiler then gathers and scatters them as zero-padded all-reduces
  instead of all-gathers: HuBERT X-Large (D = 1280) with fsdp = 256 shards 5 rows per device and compiled to
  296 all-reduces and 10 all-gathers per step; with fsdp = 16 (80 rows) the weights are all-gathered."""
  import jax
  out = []
  for path, x in jax.tree_util.tree_leaves_with_path(params):
    local = x.sharding.shard_shape(x.shape)
    if any(n != full and n % TILE_ROWS for n, full in zip(local, x.shape)):
      out.append(f"{jax.tree_util.keystr(path)} {list(x.shape)} → {list(local)}")
  return out


def _memory(compiled) -> dict:
  m = compiled.memory_analysis()
  out = {"arguments": m.argument_size_in_bytes, "outputs": m.output_size_in_bytes,
         "temporaries": m.temp_size_in_bytes, "aliases": m.alias_size_in_bytes,
         "code": m.generated_code_size_in_bytes}
  out["peak"] = out["arguments"] + out["outputs"] + out["temporaries"] - out["aliases"]
  return out


def compile_step(name: str, jitted, args, device: Device, num_devices: int) -> StepReport:
  """Lowers and compiles `jitted(*args)` for the slice and reads what the compiler says."""
  import jax
  traced = jitted.trace(*args)   # traced once: its jaxpr gives the FLOPs, its lowering the program
  flops = hlo_stats.count_flops(traced.jaxpr.jaxpr) / num_devices
  lowered = traced.lower()
  start = time.perf_counter()
  try:
    with _quiet_stderr():
      compiled = lowered.compile()
  except jax.errors.JaxRuntimeError as e:
    overflow = hlo_stats.hbm_overflow(str(e))
    if overflow is None:
      raise
    return StepReport(name, time.perf_counter() - start, False, {}, device.hbm_bytes, flops, 0.0, 0.0, {},
                      flops / device.peak_flops, "compute", overflow)
  seconds = time.perf_counter() - start
  cost = compiled.cost_analysis() or {}
  cost = cost[0] if isinstance(cost, list) else cost
  memory = _memory(compiled)
  bytes_accessed = float(cost.get("bytes accessed", 0.0))
  compute_s, memory_s = flops / device.peak_flops, bytes_accessed / device.hbm_bandwidth
  return StepReport(name, seconds, memory["peak"] <= device.hbm_bytes, memory, device.hbm_bytes, flops,
                    float(cost.get("flops", 0.0)), bytes_accessed, hlo_stats.collectives(compiled.as_text()),
                    max(compute_s, memory_s), "compute" if compute_s >= memory_s else "memory")


def compile_config(cfg, spec: str, topology: str, steps=("train",),
                   budget_bytes: float | None = None) -> Report:
  """Compiles the config's steps for `topology` (e.g. "v5e-256") on the config's mesh; a step fits when its
  peak is within `budget_bytes` per device (default: the device's HBM)."""
  import jax
  import numpy as np
  from flax import linen as nn
  from speechjax.parallel import mesh as mesh_lib
  from speechjax.tasks import get_task
  from speechjax.train import checkpoint, trainer
  trainer.validate(cfg, need_data=False)
  top = plan_lib.parse_topology(topology)
  devices = tpu_devices(top)
  device = DEVICES[top.generation]
  if budget_bytes:
    device = dataclasses.replace(device, hbm_bytes=min(budget_bytes, device.hbm_bytes))
  mesh = mesh_lib.make_mesh(cfg.mesh, devices)
  shards = mesh.shape["data"] * mesh.shape["fsdp"]
  if cfg.data.batch_size % shards:
    raise CompileError(f"config.data.batch_size={cfg.data.batch_size}: must be divisible by the mesh's "
                       f"batch axes data×fsdp = {shards} on {topology} ({len(devices)} devices)")
  rules = mesh_lib.rules(cfg.mesh)
  task = get_task(cfg)
  rng = jax.ShapeDtypeStruct((2,), np.uint32)     # a concrete key would need a real device
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    state, shardings = trainer.abstract_state(task, mesh, rules, checkpoint.example_batch(cfg, 1), rng)
    batch = abstract_batch(cfg, mesh)
    train_step, eval_step = trainer.jit_steps(task, shardings, mesh, trainer.compiler_options(cfg.train))
    calls = {"train": lambda: (train_step, (state, batch)), "eval": lambda: (eval_step, (state, batch)),
             "generate": lambda: generate_call(cfg, mesh, state.params)}
    try:
      reports = [compile_step(name, *calls[name](), device, len(devices)) for name in steps]
    except KeyError as e:
      raise CompileError(f"the step reads batch field {e}, which the input pipeline does not emit for this "
                         f"config (it emits {sorted(batch)}; set data.labels / task.*_labels)") from None
  num_params = sum(math.prod(x.shape) for x in jax.tree.leaves(state.params))
  return Report(spec, topology, len(devices), devices[0].device_kind, dict(mesh.shape),
                _compute_dtypes(cfg.model), cfg.data.batch_size, cfg.data.max_sample_size,
                num_params, reports, subtile_shards(state.params))


# model_type → the module whose `generate(cfg, params, prompt, prompt_length, rngs, length)` samples it
GENERATORS = {"token_lm": "speechjax.models.token_lm", "llama": "speechjax.models.llama"}


def generate_call(cfg, mesh, params):
  """(jitted sampling loop, abstract args): `data.batch_size` prompts of the model's full length, rows
  sharded over the batch axes, params as the trainer shards them."""
  import importlib
  import jax
  import numpy as np
  from speechjax.parallel import mesh as mesh_lib
  model_type = cfg.model.get("model_type")
  if model_type not in GENERATORS:
    raise CompileError(f"--step generate: model.model_type={model_type!r} has no sampling loop here "
                       f"(token LMs: {sorted(GENERATORS)})")
  module = importlib.import_module(GENERATORS[model_type])
  length = cfg.model.max_length if model_type == "token_lm" else cfg.data.max_target_length + 1
  rows, batch = cfg.data.batch_size, mesh_lib.batch_sharding(mesh)
  args = (params, jax.ShapeDtypeStruct((rows, length), np.int32, sharding=batch),
          jax.ShapeDtypeStruct((rows,), np.int32, sharding=batch),
          jax.ShapeDtypeStruct((rows, 2), np.uint32, sharding=batch))
  model_cfg = cfg.model
  return jax.jit(lambda p, prompt, prompt_length, rngs: module.generate(model_cfg, p, prompt, prompt_length,
                                                                         rngs, length)), args


def _compute_dtypes(model_cfg) -> str:
  """The model's compute dtype, or its parts' ("encoder bfloat16, llm bfloat16") for composite models."""
  if "dtype" in model_cfg:
    return str(model_cfg.dtype)
  parts = [f"{k} {v.dtype}" for k, v in model_cfg.items() if hasattr(v, "get") and "dtype" in v]
  return ", ".join(parts) or "float32"


def _peak(step: StepReport) -> float:
  return step.memory["peak"] if step.memory else step.overflow["required"]


def search_batch(cfg, spec: str, topology: str, budget_bytes: float | None = None,
                 max_compiles: int = 12) -> tuple[int, list[Report]]:
  """The largest `data.batch_size` (whole examples per device on the config's mesh) whose train step fits,
  found by compiling, and the reports of every compile.

  Starting from the config's batch, it doubles until a step does not fit (or halves until one does), then
  narrows the bracket [fits, does not fit] by the secant of the two compiled peaks (bisecting after a step
  that did not halve it), until the bracket is one example wide or `max_compiles` is spent."""
  from speechjax.parallel import mesh as mesh_lib
  shape = mesh_lib.resolve_shape(cfg.mesh.shape, len(tpu_devices(plan_lib.parse_topology(topology))))
  shards = shape[0] * shape[1]
  reports: dict[int, Report] = {}

  def fits(per_device: int) -> bool:
    if per_device not in reports:
      trial = cfg.copy_and_resolve_references()
      trial.data.batch_size = per_device * shards
      reports[per_device] = compile_config(trial, spec, topology, ("train",), budget_bytes)
    return reports[per_device].steps[0].fits

  n = max(cfg.data.batch_size // shards, 1)
  if fits(n):
    while len(reports) < max_compiles and fits(2 * n):
      n *= 2
    low, high = n, 2 * n
  else:
    while n > 1 and not fits(n // 2):
      n //= 2
    if n == 1:
      raise CompileError(f"{spec}: one example per device does not fit {topology}")
    low, high = n // 2, n
  secant = True
  while high - low > 1 and len(reports) < max_compiles:
    width = high - low
    peak_low, peak_high = (_peak(reports[m].steps[0]) for m in (low, high))
    budget = reports[low].steps[0].hbm_bytes
    guess = low + int((budget - peak_low) * width // max(peak_high - peak_low, 1)) if secant else 0
    if not low < guess < high:
      guess = (low + high) // 2
    if fits(guess):
      low = guess
    else:
      high = guess
    secant = 2 * (high - low) <= width   # a secant step that did not halve the bracket: bisect next
  return low * shards, [reports[m] for m in sorted(reports)]


# ----------------------------------------------------------------------------------------------
# Report


def _gib(x: float) -> str:
  return f"{x / GiB:.2f}"


def format_report(r: Report) -> str:
  mesh = ", ".join(f"{k}={v}" for k, v in r.mesh.items())
  lines = [f"compile: {r.spec} for {r.topology} ({r.devices} × {r.device_kind}), mesh ({mesh})",
           f"  model {r.num_params / 1e6:.1f}M params, compute {r.dtype}; batch {r.batch} × {r.samples} "
           f"samples ({r.batch / (r.mesh['data'] * r.mesh['fsdp']):g} per device)"]
  if r.subtile_shards:
    lines.append(f"  {len(r.subtile_shards)} parameter arrays shard below {TILE_ROWS} rows per device, e.g. "
                 f"{r.subtile_shards[0]}: the TPU compiler gathers those with all-reduces; a smaller fsdp axis "
                 "(more data parallelism) keeps FSDP's all-gathers")
  for s in r.steps:
    lines += ["", f"{s.step} step: compiled in {s.compile_seconds:.1f} s"]
    if not s.fits and s.overflow:
      o = s.overflow
      lines.append(f"  DOES NOT FIT: needs {_gib(o['required'])} GiB of {_gib(o['available'])} GiB HBM per "
                   f"device (over by {_gib(o['required'] - o['available'])} GiB)")
      for b in o["largest"][:8]:
        lines.append(f"    {_gib(b['size']):>7} GiB  {b['shape']}  {b['what']}")
      continue
    m = s.memory
    lines += [
        f"  per-device memory (GiB)   arguments {_gib(m['arguments'])}, outputs {_gib(m['outputs'])}, "
        f"temporaries {_gib(m['temporaries'])}, aliased {_gib(m['aliases'])}",
        f"  peak                      {_gib(m['peak'])} of {_gib(s.hbm_bytes)} GiB "
        f"({m['peak'] / s.hbm_bytes:.0%}) → {'fits' if s.fits else 'DOES NOT FIT'}",
        f"  FLOPs per device          {plan_lib._flop(s.flops)} (matmul + conv, scan bodies × length); "
        f"XLA cost_analysis {plan_lib._flop(s.xla_flops)} (loop bodies once)",
        f"  bytes accessed            {s.bytes_accessed / GiB:.2f} GiB per device (XLA, loop bodies once)",
    ]
    if s.collectives:
      lines.append("  collectives per step      " + "; ".join(
          f"{op} ×{c['count']} ({c['bytes'] / 2**20:.1f} MiB)" for op, c in sorted(s.collectives.items())))
    else:
      lines.append("  collectives per step      none")
    lines.append(f"  step time (estimate)      {s.step_seconds * 1e3:.1f} ms, {s.bound}-bound roofline "
                 "(FLOPs / peak vs bytes / HBM bandwidth), not a measurement")
  return "\n".join(lines)


def to_json(r: Report) -> str:
  return json.dumps(dataclasses.asdict(r), indent=1)


# ----------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser):
  parser.add_argument("--config", required=True, help="configs/<family>.py[:preset]")
  parser.add_argument("--topology", required=True, help="v4-64, v5e-256, v5p-128, v6e-16, ...")
  parser.add_argument("--step", default="train", choices=("train", "eval", "both", "generate"),
                      help="generate: the KV-cache sampling loop of a token LM / LLaMA text LM")
  parser.add_argument("--json", default="", help="also write the report to this JSON file")
  parser.add_argument("--search", action="store_true",
                      help="find the largest data.batch_size whose train step fits, by compiling")
  parser.add_argument("--budget-gib", type=float, default=0.0,
                      help="per-device memory a step may use (default: the device's HBM)")


def run(args) -> int:
  from speechjax import config as config_lib
  steps = ("train", "eval") if args.step == "both" else (args.step,)
  try:
    cfg = config_lib.load(args.config, list(getattr(args, "overrides", None) or []))
    budget = args.budget_gib * GiB or None
    if args.search:
      return _report_search(*search_batch(cfg, args.config, args.topology, budget))
    report = compile_config(cfg, args.config, args.topology, steps, budget)
  except ValueError as e:   # PlanError, CompileError, ConfigError
    print(f"speechjax compile: {e}", file=sys.stderr)
    return 2
  print(format_report(report))
  if args.json:
    with open(args.json, "w", encoding="utf-8") as f:
      f.write(to_json(report))
  return 0 if all(s.fits for s in report.steps) else 1


def _report_search(batch: int, reports: list) -> int:
  for r in reports:
    s = r.steps[0]
    print(f"  batch {r.batch:>6} ({r.batch // (r.mesh['data'] * r.mesh['fsdp'])} per device): peak "
          f"{_gib(_peak(s))} of {_gib(s.hbm_bytes)} GiB → {'fits' if s.fits else 'does not fit'} "
          f"(compiled in {s.compile_seconds:.0f} s)")
  print(f"largest data.batch_size that fits: {batch}")
  return 0
