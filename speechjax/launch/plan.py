"""`speechjax plan`: will a config fit a TPU slice, on which mesh, and how long will a step take?

    speechjax plan --config configs/wav2vec2.py:large --topology v4-64 [--mesh auto|config|"(d,f,t)"]
                   [--mfu 0.5] [--config.model.dtype=bfloat16 --config.model.remat_policy=full ...]

Everything is computed on the host from the config, with no accelerator and no real allocation:

  parameters, optimizer state   exact shapes from `jax.eval_shape` of the task's model init and TrainState
                                init (AdamW: first moment in optim.mu_dtype, second in float32; EMA copy and
                                gradient-accumulation buffers when configured)
  per-device share              each array's dims divided by the mesh axes its logical names map to under
                                `mesh.rules` (a dim the axes do not divide stays whole, as in the trainer)
  gradients                     float32 like the params, same sharding
  activations                   what the backward pass keeps per example, from the model config (see
                                `activation_terms`), for remat none / dots / full, times examples per device
  step time                     3 × forward FLOPs (the model's `forward_flops`) × batch
                                / (chips × bf16 peak per chip × MFU)

Devices are JAX devices as the TPU compiler sees a slice ahead of time (`speechjax compile`): one per chip,
except v4, shown as one 16 GiB device per TensorCore (v4-8 = 4 chips = 8 devices). On a v4 host JAX merges
a chip's two cores into one 32 GiB device (megacore) holding twice the examples: memory per example and
step time are the same either way.

Candidate meshes (data, fsdp, tensor) are those whose batch axes data × fsdp divide `data.batch_size`
(tensor ∈ {1, 2, 4, 8} dividing the attention heads); `--mesh auto` takes the least-sharded one (smallest
tensor, then smallest fsdp) whose total stays within `HEADROOM` of the chip's HBM, leaving the rest for
XLA's temporaries. The activation model is an estimate (±30% is typical); the parameter, optimizer and
gradient numbers are exact up to XLA's padding.
"""
from __future__ import annotations

import dataclasses
import math
import re
import sys

GiB = 2**30
# Share of HBM a plan may fill. The rest is for what the estimate leaves out: XLA's temporaries (the
# optimizer update, fusion buffers), fragmentation, and the activation model's error (its transformer-layer
# term came out ~14% below XLA's own count on CPU; see docs/scaling.md).
HEADROOM = 0.8
# Bytes per head and frame pair a scanned encoder layer keeps for the backward pass beyond its compute-dtype
# attention weights (float32 logits and softmax). Calibrated on the TPU compiler: every encoder train step
# recorded in benchmarks/compiles/ and benchmarks/compiles_presets/ (tests/launch/test_plan_calibration.py;
# recompiled 2026-12-06 after the GELU and non-finite-skip changes) is within 7 % of this model.
ATTENTION_PAIR_BYTES = 8


@dataclasses.dataclass(frozen=True)
class Chip:
  name: str
  hbm_bytes: float         # per chip
  peak_flops: float        # dense bf16 FLOP/s per chip
  cores_per_chip: int      # TensorCores per chip counted in the slice name (v4-64 = 64 cores = 32 chips)
  source: str
  devices_per_chip: int = 1   # JAX devices per chip in the ahead-of-time topology (v4: one per TensorCore)


# Public per-chip spec numbers (Google Cloud TPU system architecture pages). HBM sizes are binary
# (the pages write "GB"); a JAX device on the chip sees all of them as one device (megacore on v4/v5p).
CHIPS = {
    # cloud.google.com/tpu/docs/v4: 275 TFLOP/s bf16, 32 GiB HBM2 (1200 GB/s), 2 TensorCores per chip
    "v4": Chip("TPU v4", 32 * GiB, 275e12, 2, "cloud.google.com/tpu/docs/v4", devices_per_chip=2),
    # cloud.google.com/tpu/docs/v5e: 197 TFLOP/s bf16, 16 GiB HBM2 (819 GB/s), 1 TensorCore per chip
    "v5e": Chip("TPU v5e", 16 * GiB, 197e12, 1, "cloud.google.com/tpu/docs/v5e"),
    # cloud.google.com/tpu/docs/v5p: 459 TFLOP/s bf16, 95 GiB HBM2e (2765 GB/s), 2 TensorCores per chip
    "v5p": Chip("TPU v5p", 95 * GiB, 459e12, 2, "cloud.google.com/tpu/docs/v5p"),
    # cloud.google.com/tpu/docs/v6e: 918 TFLOP/s bf16, 32 GiB HBM (1640 GB/s), 1 TensorCore per chip
    "v6e": Chip("TPU v6e", 32 * GiB, 918e12, 1, "cloud.google.com/tpu/docs/v6e"),
}
CHIPS_PER_HOST = 4            # multi-host slices: 4 chips per TPU VM host
SINGLE_HOST_MAX = {"v4": 4, "v5e": 8, "v5p": 4, "v6e": 8}   # chips of the largest one-host slice
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


class PlanError(ValueError):
  """A bad topology, mesh or batch for the plan; the message names the flag or field."""


@dataclasses.dataclass(frozen=True)
class Topology:
  name: str
  generation: str
  chip: Chip
  chips: int
  hosts: int

  @property
  def devices(self) -> int:
    return self.chips * self.chip.devices_per_chip

  @property
  def device_hbm(self) -> float:
    return self.chip.hbm_bytes / self.chip.devices_per_chip

  @property
  def device_peak(self) -> float:
    return self.chip.peak_flops / self.chip.devices_per_chip


def parse_topology(name: str) -> Topology:
  """`v4-64` (64 TensorCores = 32 chips), `v5e-256` or `v5litepod-256` (256 chips), `v5p-128`, `v6e-8`."""
  m = re.fullmatch(r"(v4|v5e|v5litepod|v5p|v6e)-(\d+)", name.strip())
  if not m:
    raise PlanError(f"--topology={name!r}: expected <generation>-<size>, generation one of "
                    f"{sorted(CHIPS)} (e.g. v4-64, v5e-256)")
  generation = "v5e" if m.group(1) == "v5litepod" else m.group(1)
  chip, size = CHIPS[generation], int(m.group(2))
  if size < chip.cores_per_chip or size % chip.cores_per_chip:
    raise PlanError(f"--topology={name!r}: {generation} slices count {chip.cores_per_chip} TensorCores "
                    "per chip; the size must be a multiple of that")
  chips = size // chip.cores_per_chip
  hosts = 1 if chips <= SINGLE_HOST_MAX[generation] else math.ceil(chips / CHIPS_PER_HOST)
  return Topology(name, generation, chip, chips, hosts)


def parse_mesh(text: str, devices: int) -> tuple[int, int, int]:
  from speechjax.parallel import mesh as mesh_lib
  try:
    shape = tuple(int(v) for v in re.findall(r"-?\d+", text))
    return mesh_lib.resolve_shape(shape, devices)
  except ValueError as e:
    raise PlanError(f"--mesh={text!r}: {e}") from None


# ----------------------------------------------------------------------------------------------
# What the config builds (abstract shapes only)


@dataclasses.dataclass
class ModelFacts:
  family: str
  num_params: int
  params: list            # [(shape, bytes, logical names or None)] for every param array
  state: list             # [(bytes, index into params or None)] for every optimizer-state array
  ema: bool
  forward_flops: float    # one example of data.max_sample_size samples
  flops_per_example: float


def model_facts(cfg) -> ModelFacts:
  """Parameter and optimizer-state shapes from jax.eval_shape (nothing is allocated) and the FLOPs."""
  import jax
  from flax import linen as nn
  from speechjax.tasks import get_task
  from speechjax.train import checkpoint, optim
  task = get_task(cfg)
  batch = checkpoint.example_batch(cfg, 1)
  boxed = task.abstract_variables(batch)["params"]   # eval_shape of the model init
  state = jax.eval_shape(task.init_state, jax.random.PRNGKey(0), batch)
  is_box = lambda x: isinstance(x, nn.Partitioned)
  params = []
  for leaf in jax.tree_util.tree_leaves(boxed, is_leaf=is_box):
    value, names = (leaf.value, tuple(leaf.names)) if is_box(leaf) else (leaf, None)
    params.append((tuple(value.shape), value.size * value.dtype.itemsize, names))
  index_tree = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(boxed, is_leaf=is_box),
                                            list(range(len(params))))
  owners = optim.map_param_states(state.opt_state, index_tree, lambda _: None)
  owner_leaves = jax.tree_util.tree_leaves(owners, is_leaf=lambda x: x is None)
  state_leaves = jax.tree_util.tree_leaves(state.opt_state)
  if len(owner_leaves) != len(state_leaves):
    raise RuntimeError("optimizer state and its param map disagree")
  opt = [(leaf.size * leaf.dtype.itemsize, owner) for leaf, owner in zip(state_leaves, owner_leaves)]
  return ModelFacts(family=cfg.model.get("model_type", cfg.task.name),
                    num_params=sum(math.prod(s) for s, _, _ in params), params=params, state=opt,
                    ema=state.ema_params is not None, forward_flops=float(task.forward_flops()),
                    flops_per_example=float(task.flops_per_example()))


def shard_fraction(shape, names, rules, mesh: dict) -> float:
  """The share of an array one chip holds: dims divided by their mesh axes where they divide evenly."""
  if names is None:
    return 1.0
  from flax import linen as nn
  spec = tuple(nn.logical_to_mesh_axes(names, rules))
  fraction = 1.0
  for dim, axes in zip(shape, spec + (None,) * (len(shape) - len(spec))):
    axes = (axes,) if isinstance(axes, str) else (axes or ())
    n = math.prod(mesh[a] for a in axes)
    if n > 1 and dim % n == 0:
      fraction /= n
  return fraction


def state_bytes(facts: ModelFacts, rules, mesh: dict) -> dict:
  """Per-chip bytes of params, optimizer state, EMA and gradients on `mesh` ({axis: size})."""
  fractions = [shard_fraction(shape, names, rules, mesh) for shape, _, names in facts.params]
  params = sum(nbytes * f for (_, nbytes, _), f in zip(facts.params, fractions))
  opt = sum(nbytes * (1.0 if owner is None else fractions[owner]) for nbytes, owner in facts.state)
  return {"params": params, "optimizer": opt, "ema": params if facts.ema else 0.0, "gradients": params,
          "replicated_params": sum(nbytes for _, nbytes, _ in facts.params)}


# ----------------------------------------------------------------------------------------------
# Activations


def _has(model_cfg, *fields) -> bool:
  return all(f in model_cfg for f in fields)


def activation_terms(model_cfg, num_samples: int, tensor: int = 1, rng_impl: str = "threefry2x32") -> dict:
  """Bytes the backward pass keeps for one example, by part (tensor-parallel shares divided by `tensor`).

  conv feature encoder   per conv layer: output, norm output (where it has a norm), GELU output, C × T_l
                         elements each; channels shard over tensor; never rematerialised
  transformer layer      remat none: per frame 5·D (layer input, the two LN outputs, attention output,
                         residual) + (4·D + 2·I)/t (q, k, v, attention context; FFN pre/post GELU), in the
                         compute dtype, + dropout masks (1 B: 2·D, I/t with activation dropout); per head
                         and frame pair 8 B + b: float32 logits and softmax and the compute-dtype weights
                         for the value matmul, + 2 B of kept 16-bit random draws of attention dropout when
                         they come from the hardware generator (`rng_impl="rbg"`; kept under every remat
                         policy). The dropout mask and dropped copy are not kept: the compiler recomputes
                         them in the backward pass (from the kept draws, or threefry's from the key).
                         Calibrated against the TPU compiler: `ATTENTION_PAIR_BYTES`
                         remat dots (weight-matmul outputs saved): 3·D + (3·D + I)/t per frame
                         remat full: the layer input, D per frame; a rematerialised stack also holds one
                         layer's full activations while it recomputes it
  front end, head        feature LN/projection/positional conv: 2·C/t + 6·D per frame; loss head: F ×
                         max(F, ΣK) float32 × 3 (logits, softmax, gradient)
  frame classifier       per frame C + E + 2·M + K (LN, projection, MLP pre/post GELU, logits)
  """
  from speechjax.nn import conv_encoder
  b = DTYPE_BYTES.get(str(model_cfg.get("dtype", "float32")), 4)
  layers = tuple(tuple(int(v) for v in layer) for layer in model_cfg.conv_layers)
  mode = model_cfg.get("extractor_mode", "group_norm")
  conv, length = 0.0, num_samples
  for i, (channels, kernel, stride) in enumerate(layers):
    length = (length - kernel) // stride + 1
    tensors = 3 if (mode == "layer_norm" or i == 0) else 2
    conv += tensors * channels * length * b / tensor
  frames = conv_encoder.output_length(num_samples, layers)
  c, f = layers[-1][0], frames
  out = {"frames": frames, "dtype_bytes": b, "input": num_samples * 5.0, "conv": conv}
  if _has(model_cfg, "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
    d, i, h = model_cfg.hidden_size, model_cfg.intermediate_size, model_cfg.num_attention_heads
    masks = ((2 * d if model_cfg.get("hidden_dropout", 0) > 0 else 0)
             + (i / tensor if model_cfg.get("activation_dropout", 0) > 0 else 0))
    attn_dropout = model_cfg.get("attention_dropout", 0) > 0
    kept_draws = h * f * f / tensor * (2 if attn_dropout and rng_impl == "rbg" else 0)   # under any remat
    # Attention dropout's mask and dropped copy used to cost b + 1 B per pair: since GELU through erf and
    # the select-based non-finite skip (2026-12-06), HuBERT / wav2vec 2.0 / WavLM Base compile 10-14 %
    # lighter than that model with dropout on and within 5 % without the term; hidden dropout under remat
    # dots no longer costs anything (HuBERT Base v4-8: 7.31 vs 7.30 GiB).
    per_pair = ATTENTION_PAIR_BYTES + b
    none = f * ((5 * d + (4 * d + 2 * i) / tensor) * b + masks) + h * f * f / tensor * per_pair + kept_draws
    classes = sum(int(k) for k in model_cfg.get("num_classes", ()) or ()) or 0
    out.update({
        "layers": model_cfg.num_hidden_layers,
        "layer": {"none": none, "dots": f * (3 * d + (3 * d + i) / tensor) * b + kept_draws,
                  "full": f * d * b + kept_draws},
        "front": f * (2 * c / tensor + 6 * d) * b,
        "head": f * max(f, classes) * 4 * 3,
        "attention_pair_bytes": per_pair,
    })
  elif _has(model_cfg, "embed_dim", "mlp_dim", "num_classes"):
    e, m, k = model_cfg.embed_dim, model_cfg.mlp_dim, model_cfg.num_classes
    out["front"] = f * (c + e + (2 * m + k) / tensor) * b
    out["head"] = f * k * 4 * 2
  return out


def activation_bytes(terms: dict, remat: str) -> float:
  """One example's activations under a remat policy ("none", "dots", "full")."""
  total = terms["input"] + terms["conv"] + terms.get("front", 0.0) + terms.get("head", 0.0)
  if "layers" in terms:
    saved = terms["layers"] * terms["layer"][remat]
    if remat != "none":
      saved += terms["layer"]["none"]   # the layer being recomputed in the backward pass
    total += saved
  return total


# ----------------------------------------------------------------------------------------------
# The plan


@dataclasses.dataclass
class MeshPlan:
  mesh: tuple[int, int, int]
  examples_per_device: float
  memory: dict       # per-device bytes: params, optimizer, ema, gradients, activations, input, total
  terms: dict


def candidate_meshes(devices: int, batch: int, model_cfg) -> list[tuple[int, int, int]]:
  """(data, fsdp, tensor) with data × fsdp dividing the batch; tensor ∈ {1,2,4,8} dividing the heads."""
  heads = model_cfg.get("num_attention_heads", 0)
  out = []
  for t in (1, 2, 4, 8):
    if devices % t or (heads and heads % t):
      continue
    rest = devices // t
    for f in sorted({d for d in range(1, rest + 1) if rest % d == 0}):
      d = rest // f
      if batch % (d * f) == 0 and (f & (f - 1)) == 0:   # fsdp sizes: powers of two
        out.append((d, f, t))
  return out


def mesh_plan(cfg, facts: ModelFacts, mesh: tuple[int, int, int], remat: str) -> MeshPlan:
  from speechjax.parallel import mesh as mesh_lib
  sizes = dict(zip(mesh_lib.AXES, mesh))
  rules = mesh_lib.rules(cfg.mesh)
  memory = state_bytes(facts, rules, sizes)
  if cfg.optim.get("clip_norm", 0) > 0:
    # Clipping by the global norm keeps a second gradient-sized buffer (the rescaled gradients) alive:
    # HuBERT Large (clip 1.0) on v4-64 compiles to 9.30 GiB, 1.49 more than the plan without it, where
    # wav2vec 2.0 Large (no clip) is 0.84 over (benchmarks/compiles_presets/).
    memory["gradients"] *= 2
  examples = cfg.data.batch_size / (mesh[0] * mesh[1])
  terms = activation_terms(cfg.model, cfg.data.max_sample_size, mesh[2], cfg.train.rng_impl)
  memory["activations"] = examples * (activation_bytes(terms, remat) - terms["input"])
  memory["input"] = examples * terms["input"]
  memory["total"] = sum(memory[k] for k in ("params", "optimizer", "ema", "gradients", "activations",
                                            "input"))
  return MeshPlan(mesh, examples, memory, terms)


@dataclasses.dataclass
class Plan:
  spec: str
  topology: Topology
  remat: str
  facts: ModelFacts
  chosen: MeshPlan
  how: str                   # how the mesh was chosen
  candidates: list           # MeshPlan for every candidate mesh
  mfu: float
  batch: int
  samples: int
  num_steps: int
  dtype: str
  dims: str                  # "D=…, I=…, H=…" of a transformer, else ""

  @property
  def step_flops(self) -> float:
    return self.facts.flops_per_example * self.batch

  @property
  def step_time(self) -> float:
    return self.step_flops / (self.topology.devices * self.topology.device_peak * self.mfu)


def make_plan(cfg, spec: str, topology: str, mesh: str = "auto", mfu: float = 0.5,
              facts: ModelFacts | None = None) -> Plan:
  """The plan of `cfg` on `topology`; `facts` (from model_facts(cfg)) may be passed to reuse them."""
  top = parse_topology(topology)
  if not 0 < mfu <= 1:
    raise PlanError(f"--mfu={mfu}: must be in (0, 1]")
  remat = cfg.model.get("remat_policy", "none")
  if remat not in ("none", "dots", "full"):
    raise PlanError(f"config.model.remat_policy={remat!r}: the plan knows none, dots, full")
  facts = facts or model_facts(cfg)
  batch = cfg.data.batch_size
  candidates = [mesh_plan(cfg, facts, m, remat) for m in candidate_meshes(top.devices, batch, cfg.model)]
  if mesh == "auto":
    if not candidates:
      raise PlanError(f"config.data.batch_size={batch}: no mesh of {top.devices} devices splits it "
                      f"(data × fsdp must divide the batch, tensor ≤ 8); use a multiple of "
                      f"{max(top.devices // 8, 1)}")
    budget = HEADROOM * top.device_hbm
    fitting = [p for p in candidates if p.memory["total"] <= budget]
    if fitting:
      chosen = min(fitting, key=lambda p: (p.mesh[2], p.mesh[1]))
      how = (f"auto: the least-sharded mesh (smallest tensor, then fsdp) within {HEADROOM:.0%} of HBM")
    else:
      chosen = min(candidates, key=lambda p: p.memory["total"])
      how = "auto: nothing fits; the mesh with the least memory per device"
  else:
    shape = parse_mesh(str(cfg.mesh.shape) if mesh == "config" else mesh, top.devices)
    if batch % (shape[0] * shape[1]):
      raise PlanError(f"--mesh={mesh}: data × fsdp = {shape[0] * shape[1]} does not divide "
                      f"config.data.batch_size={batch}")
    chosen = mesh_plan(cfg, facts, shape, remat)
    how = "from config.mesh.shape" if mesh == "config" else "from --mesh"
  dims = (f"D={cfg.model.hidden_size}, I={cfg.model.intermediate_size}, H={cfg.model.num_attention_heads}, "
          f"L={cfg.model.num_hidden_layers}" if "num_hidden_layers" in cfg.model else "")
  return Plan(spec, top, remat, facts, chosen, how, candidates, mfu, batch, cfg.data.max_sample_size,
              cfg.train.num_steps, str(cfg.model.get("dtype", "float32")), dims)


# ----------------------------------------------------------------------------------------------
# Report


# The config files whose models the activation model covers (transformer encoders).
PLANNED_CONFIGS = ("configs/wav2vec2.py:", "configs/hubert.py:", "configs/wavlm.py:")


def plans_compile(command: str) -> bool:
  """Whether a recorded `speechjax compile` command is of a config the plan models."""
  return any(f"--config {spec}" in command for spec in PLANNED_CONFIGS)


def replan_compile(command: str, report: dict) -> tuple[Plan, float]:
  """(plan, compiled peak bytes) of a recorded `speechjax compile` run: its command line and its `--json`
  report. The plan uses the command's config, overrides and topology on the report's mesh."""
  import shlex
  from speechjax import config as config_lib
  argv = shlex.split(command)[2:]   # after "speechjax compile"
  spec, topology = argv[argv.index("--config") + 1], argv[argv.index("--topology") + 1]
  cfg = config_lib.load(spec, [a for a in argv if a.startswith("--config.")])
  mesh = report["mesh"]
  (step,) = [s for s in report["steps"] if s["step"] == "train"]
  compiled = step["memory"]["peak"] if step["fits"] else step["overflow"]["required"]
  return make_plan(cfg, spec, topology, mesh=f"({mesh['data']},{mesh['fsdp']},{mesh['tensor']})"), compiled


def _gib(x: float) -> str:
  return f"{x / GiB:.2f}"


def _mib(x: float) -> str:
  return f"{x / 2**20:.1f}"


def _count(n: float) -> str:
  for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
    if n >= scale:
      return f"{n / scale:.2f}{unit}"
  return str(int(n))


def _flop(x: float) -> str:
  for unit, scale in (("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6)):
    if x >= scale:
      return f"{x / scale:.3g} {unit}"
  return f"{x:.3g} FLOP"


def _secs(x: float) -> str:
  return f"{x:.3g} s" if x >= 1 else f"{x * 1e3:.3g} ms" if x >= 1e-3 else f"{x * 1e6:.3g} µs"


def _duration(seconds: float) -> str:
  if seconds >= 86400:
    return f"{seconds / 86400:.1f} days"
  if seconds >= 3600:
    return f"{seconds / 3600:.1f} h"
  return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"


def format_plan(p: Plan) -> str:
  top, chip, facts, c = p.topology, p.topology.chip, p.facts, p.chosen
  m, t = c.memory, c.terms
  d, f, tp = c.mesh
  seconds = p.samples / 16000
  lines = [
      f"plan: {p.spec} on {top.name}",
      f"  chip      {chip.name}: {chip.hbm_bytes / GiB:.0f} GiB HBM, {chip.peak_flops / 1e12:.0f} TFLOP/s bf16 "
      f"peak per chip ({chip.source})",
      f"  slice     {top.name} = {top.chips} chips"
      + (f" ({top.chips * chip.cores_per_chip} TensorCores, {chip.cores_per_chip} per chip)"
         if chip.cores_per_chip > 1 else "") + f", {top.hosts} host{'s' * (top.hosts > 1)}"
      + (f"; modelled as {top.devices} devices of {top.device_hbm / GiB:.0f} GiB, one per TensorCore, as "
         "the TPU compiler sees it" if chip.devices_per_chip > 1 else ""),
      f"  model     {facts.family}: {_count(facts.num_params)} params ({facts.num_params:,}; jax.eval_shape "
      f"of the model init), compute {p.dtype}, params float32",
      f"  batch     data.batch_size={p.batch} × data.max_sample_size={p.samples} samples ({seconds:.1f} s) "
      f"→ {t['frames']} frames per example",
      f"  mesh      (data, fsdp, tensor) = ({d}, {f}, {tp})  [{p.how}]; {c.examples_per_device:g} example"
      f"{'s' * (c.examples_per_device != 1)} per device",
      "",
      f"per-device memory (GiB)      {'':>6}  derivation",
      f"  params                     {_gib(m['params']):>6}  {_count(facts.num_params)} × 4 B (float32) = "
      f"{_gib(m['replicated_params'])} GiB, each array split over the mesh axes of its logical names "
      "(mesh.rules)",
      f"  optimizer state            {_gib(m['optimizer']):>6}  AdamW: 2 moments per trained param (first in "
      "optim.mu_dtype, second float32) + counters, eval_shape of the optimizer init, sharded like the params",
  ]
  if m["ema"]:
    lines.append(f"  EMA params                 {_gib(m['ema']):>6}  optim.ema_decay > 0: a float32 copy")
  lines += [
      f"  gradients                  {_gib(m['gradients']):>6}  float32, sharded like the params",
      f"  activations                {_gib(m['activations']):>6}  {c.examples_per_device:g} × "
      f"{_gib(activation_bytes(t, p.remat) - t['input'])} GiB (below, remat={p.remat})",
      f"  input batch                {_gib(m['input']):>6}  {c.examples_per_device:g} × {p.samples} × 5 B "
      "(float32 audio + bool mask)",
      f"  total                      {_gib(m['total']):>6}  of {top.device_hbm / GiB:.0f} GiB = "
      f"{m['total'] / top.device_hbm:.0%} → "
      + ("fits" if m["total"] <= HEADROOM * top.device_hbm else
         f"DOES NOT FIT (over {HEADROOM:.0%} of HBM)"),
      "",
      f"activations per example, MiB (compute {p.dtype}, {t['dtype_bytes']} B; F = {t['frames']} "
      f"frames; tensor = {tp})",
      f"  conv feature encoder       {_mib(t['conv']):>6}  Σ_l (2 or 3 tensors) × C_l × T_l × "
      f"{t['dtype_bytes']} B / tensor (never rematerialised)",
  ]
  if "layers" in t:
    lines += [
        f"  front end + loss head      {_mib(t['front'] + t['head']):>6}  F × (2C/t + 6D) × "
        f"{t['dtype_bytes']} B + F × max(F, ΣK) × 4 B × 3",
        f"  one layer, remat none      {_mib(t['layer']['none']):>6}  F × (5D + (4D + 2I)/t) × "
        f"{t['dtype_bytes']} B + dropout masks + H × F² / t × {t['attention_pair_bytes']} B "
        f"({p.dims})",
        f"  one layer, remat dots      {_mib(t['layer']['dots']):>6}  F × (3D + (3D + I)/t) × "
        f"{t['dtype_bytes']} B (weight-matmul outputs + layer input)",
        f"  one layer, remat full      {_mib(t['layer']['full']):>6}  F × D × {t['dtype_bytes']} B "
        "(layer input)",
    ]
    for remat in ("none", "dots", "full"):
      mark = "  ← config" if remat == p.remat else ""
      extra = " (+ one layer recomputed)" if remat != "none" else ""
      lines.append(f"  all {t['layers']} layers, {remat:<4}       "
                   f"{_mib(activation_bytes(t, remat) - t['input'] - t['conv'] - t['front'] - t['head']):>6}"
                   f"  {t['layers']} × one layer{extra}{mark}")
  elif "front" in t:
    lines.append(f"  projection, MLP, logits    {_mib(t['front'] + t['head']):>6}  F × (C + E + (2M + K)/t) "
                 f"× {t['dtype_bytes']} B + float32 logits")
  step = p.step_time
  audio = p.batch * seconds
  lines += [
      "",
      "step time",
      f"  forward FLOPs per example  {_flop(facts.forward_flops)}  (the model's forward_flops: "
      "conv stack, projections, attention, FFN, heads; 2 FLOPs per multiply-add)",
      f"  FLOPs per step             3 × {_flop(facts.forward_flops)} × {p.batch} = "
      f"{_flop(p.step_flops)} (backward ≈ 2 × forward)",
      f"  step time                  {_flop(p.step_flops)} / ({top.devices} devices × "
      f"{top.device_peak / 1e12:.4g} TFLOP/s × MFU {p.mfu:.2f}) = {_secs(step)}",
      f"  throughput                 {audio:.0f} s of audio per step → {audio / step / 3600:.1f} h of audio "
      "per second of training",
      f"  run                        train.num_steps={p.num_steps} × {_secs(step)} = "
      f"{_duration(step * p.num_steps)}",
  ]
  if p.remat == "full":
    lines.append("  note: remat=full recomputes the forward pass: the chips execute 4/3 of these FLOPs "
                 f"(≈ {_secs(step * 4 / 3)} per step at the same hardware utilisation)")
  if p.dtype == "float32":
    lines.append("  note: compute dtype float32; the bf16 peak assumes --config.model.dtype=bfloat16 on TPU")
  lines += ["", f"meshes that split data.batch_size={p.batch} (per-device GiB, remat={p.remat}):",
            "  (data, fsdp, tensor)   params+opt+grads  activations   total  fits"]
  for q in p.candidates:
    mm = q.memory
    fixed = mm["params"] + mm["optimizer"] + mm["ema"] + mm["gradients"]
    mark = "  ← chosen" if q.mesh == c.mesh else ""
    lines.append(f"  {str(q.mesh):<22} {_gib(fixed):>16} {_gib(mm['activations'] + mm['input']):>12} "
                 f"{_gib(mm['total']):>7}  {'yes' if mm['total'] <= HEADROOM * top.device_hbm else 'no'}"
                 f"{mark}")
  return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser):
  parser.add_argument("--config", required=True, help="configs/<family>.py[:preset]")
  parser.add_argument("--topology", required=True, help="v4-64, v5e-256, v5p-128, v6e-256, ...")
  parser.add_argument("--mesh", default="auto", help='auto, config (config.mesh.shape) or "(data,fsdp,tensor)"')
  parser.add_argument("--mfu", type=float, default=0.5, help="assumed model FLOPs utilisation")


def run(args) -> int:
  from speechjax import config as config_lib
  try:
    cfg = config_lib.load(args.config, list(getattr(args, "overrides", None) or []))
    plan = make_plan(cfg, args.config, args.topology, args.mesh, args.mfu)
  except ValueError as e:
    print(f"speechjax plan: {e}", file=sys.stderr)
    return 2
  print(format_plan(plan))
  return 0
