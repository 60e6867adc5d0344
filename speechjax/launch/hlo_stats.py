"""What a compiled program does, read from JAX and XLA artefacts (used by `speechjax compile`).

    jaxpr_flops(fn, *args)      matmul + conv FLOPs of a traced function, scan bodies × their length
    collectives(hlo_text)       the collectives of an optimised HLO module, loop bodies × trip count
    hbm_overflow(message)       required / available bytes and the largest buffers of an out-of-memory error

XLA's `cost_analysis()` counts a `while` body once, so under `nn.scan` it reports one layer's FLOPs for a
whole stack; the jaxpr count multiplies every scan body by its length instead (dot_general and
conv_general_dilated only: elementwise work is a few percent of a transformer step).
"""
from __future__ import annotations

import collections
import math
import re

import jax

# --- FLOPs from the jaxpr ---------------------------------------------------------------------


def _dot_flops(eqn) -> float:
  lhs, rhs = (v.aval.shape for v in eqn.invars[:2])
  (lc, rc), (lb, _) = eqn.params["dimension_numbers"]
  contract = math.prod(lhs[d] for d in lc)
  batch = math.prod(lhs[d] for d in lb)
  lhs_free = math.prod(lhs) // (contract * batch)
  rhs_free = math.prod(rhs) // (math.prod(rhs[d] for d in rc) * batch)
  return 2.0 * batch * lhs_free * rhs_free * contract


def _conv_flops(eqn) -> float:
  out = eqn.outvars[0].aval.shape
  rhs = eqn.invars[1].aval.shape
  dn = eqn.params["dimension_numbers"]
  kernel_out = rhs[dn.rhs_spec[0]]
  # every output element: kernel spatial taps × input channels of its group, multiply-adds
  per_output = math.prod(rhs) // kernel_out
  return 2.0 * math.prod(out) * per_output / eqn.params["batch_group_count"]


def _subjaxprs(eqn):
  for value in eqn.params.values():
    for item in value if isinstance(value, (tuple, list)) else (value,):
      if isinstance(item, jax.extend.core.ClosedJaxpr):
        yield item.jaxpr
      elif isinstance(item, jax.extend.core.Jaxpr):
        yield item


def count_flops(jaxpr) -> float:
  """Matmul + conv FLOPs of `jaxpr`: scan bodies times their length, `cond` its costliest branch,
  `while` bodies once (their trip count is not static)."""
  total = 0.0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == "dot_general":
      total += _dot_flops(eqn)
    elif name == "conv_general_dilated":
      total += _conv_flops(eqn)
    elif name == "scan":
      total += eqn.params["length"] * count_flops(eqn.params["jaxpr"].jaxpr)
    elif name == "cond":
      total += max(count_flops(b.jaxpr) for b in eqn.params["branches"])
    else:
      total += sum(count_flops(sub) for sub in _subjaxprs(eqn))
  return total


def jaxpr_flops(fn, *args) -> float:
  """Global (all devices) matmul + conv FLOPs of one call of `fn(*args)`; args may be abstract."""
  return count_flops(jax.make_jaxpr(fn)(*args).jaxpr)


# --- collectives from the optimised HLO ----------------------------------------------------------

COLLECTIVES = ("all-gather", "reduce-scatter", "all-reduce", "collective-permute", "all-to-all")
_DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "bf16": 2, "f16": 2, "s16": 2, "u16": 2, "f32": 4, "s32": 4,
                "u32": 4, "f64": 8, "s64": 8, "u64": 8, "f8e4m3fn": 1, "f8e5m2": 1}
_SHAPE = re.compile(r"\b(pred|[suf]\d+|bf16|f8e4m3fn|f8e5m2)\[([\d,]*)\]")
_COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")
_OP = re.compile(r"=\s*(.+?)\s+(" + "|".join(COLLECTIVES) + r")(-start)?\(")
_WHILE = re.compile(r"\bwhile\(.*\bbody=%?([\w.\-]+)")
_TRIP = re.compile(r'"known_trip_count":\{"n":"(\d+)"')
_COND = re.compile(r"\bcondition=%?([\w.\-]+)")
_CONSTANT = re.compile(r"%([\w.\-]+) = s32\[\]\S* constant\((\d+)\)")
_LESS_THAN = re.compile(r"compare\(%[\w.\-]+, %([\w.\-]+)\), direction=LT")
_SCALAR_CONTEXT = re.compile(r"\bu32\[\]")    # the sync-flag elements of an async collective's tuple
_GROUPS = re.compile(r"replica_groups=(?:\{\{([\d,]+)\}|\[\d+,(\d+)\])")
_FUSED_REDUCE_SCATTER = "all-reduce-scatter"
_CALLS = re.compile(r"\b(?:to_apply|calls|body|condition|branch_computations)=\{?%?([\w.\-]+)")


def shape_bytes(text: str) -> list[int]:
  """Bytes of every array shape in an HLO type string, e.g. `(bf16[8,128]{1,0}, f32[4])` → [2048, 16]."""
  return [_DTYPE_BYTES.get(dtype, 4) * math.prod(int(d) for d in dims.split(",") if d)
          for dtype, dims in _SHAPE.findall(text)]


def _computations(hlo_text: str) -> dict[str, list[str]]:
  blocks, name = {}, None
  for line in hlo_text.splitlines():
    m = _COMPUTATION.match(line)
    if m and not line.startswith(" "):
      name = m.group(1)
      blocks[name] = []
    elif name is not None:
      blocks[name].append(line)
  return blocks


def _trip_count(while_line: str, blocks: dict[str, list[str]]) -> int:
  """A while loop's trip count: XLA's `known_trip_count`, else the `i < N` of its condition (jax's
  scans count up from 0), else 1."""
  known = _TRIP.search(while_line)
  if known:
    return int(known.group(1))
  cond = _COND.search(while_line)
  lines = blocks.get(cond.group(1), []) if cond else []
  constants = dict(m.groups() for m in map(_CONSTANT.search, lines) if m)
  for line in lines:
    root = _LESS_THAN.search(line)
    if line.strip().startswith("ROOT") and root and root.group(1) in constants:
      return int(constants[root.group(1)])
  return 1


def _multiplicities(blocks: dict[str, list[str]]) -> dict[str, int]:
  """How often each computation runs per call of the entry: while bodies × their trip count."""
  entry = next((name for name in blocks if name.startswith("main")), next(iter(blocks), None))
  times = collections.defaultdict(int)

  def visit(name, factor, depth=0):
    if name not in blocks or depth > 50:
      return
    times[name] += factor
    for line in blocks[name]:
      w = _WHILE.search(line)
      trips = _trip_count(line, blocks) if w else 1
      for callee in _CALLS.findall(line):
        visit(callee, factor * (trips if w and callee == w.group(1) else 1), depth + 1)
  visit(entry, 1)
  return times


def _group_size(line: str) -> int:
  """Devices per replica group of a collective: `replica_groups={{0,1,2,3},...}` or `=[G,N]<=[...]`."""
  m = _GROUPS.search(line)
  if not m:
    return 1
  return int(m.group(2)) if m.group(2) else len(m.group(1).split(","))


def collectives(hlo_text: str) -> dict[str, dict]:
  """{op: {"count": per step, "bytes": result bytes per step, "largest": bytes of the largest one}} of
  the collectives in an optimised HLO module (async `-start` ops counted once; loop bodies × trips).

  XLA:TPU writes a reduce-scatter as a fusion `%all-reduce-scatter…` around an all-reduce and the
  dynamic-slice of this device's shard, which its backend runs as one reduce-scatter: counted as a
  reduce-scatter whose result is the shard (all-reduce bytes / group size)."""
  blocks = _computations(hlo_text)
  times = _multiplicities(blocks)
  out = {}
  for name, lines in blocks.items():
    for line in lines:
      m = _OP.search(line)
      if not m:
        continue
      sizes = shape_bytes(_SCALAR_CONTEXT.sub("", m.group(1)) if m.group(3) else m.group(1))
      if m.group(3) and len(sizes) > 1 and m.group(2) != "all-reduce":
        sizes = sizes[len(sizes) // 2:]           # (operands, results) of an async start: the results
      op = m.group(2)
      if op == "all-reduce" and name.startswith(_FUSED_REDUCE_SCATTER):
        op, sizes = "reduce-scatter", [size // _group_size(line) for size in sizes]
      n = max(times.get(name, 1), 1)
      entry = out.setdefault(op, {"count": 0, "bytes": 0, "largest": 0})
      entry["count"] += n
      entry["bytes"] += n * sum(sizes)
      entry["largest"] = max(entry["largest"], max(sizes, default=0))
  return out


# --- out-of-memory errors ------------------------------------------------------------------------

_BYTE_UNITS = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def _size(text: str) -> float:
  m = re.match(r"([\d.]+)([KMGT])?", text)
  return float(m.group(1)) * _BYTE_UNITS.get(m.group(2) or "", 1)


def hbm_overflow(message: str) -> dict | None:
  """From XLA:TPU's "Ran out of memory in memory space hbm" error: required and available bytes and the
  largest allocations it lists ({"size", "shape", "what"}); None if the message is not one."""
  m = re.search(r"requir\w* (?:for [\w ]+ )?\(?([\d.]+[KMGT]?)\)? exceeds available HBM \(?([\d.]+[KMGT]?)",
                message) or re.search(r"Used ([\d.]+[KMGT]) of ([\d.]+[KMGT]) hbm", message)
  if not m:
    return None
  buffers = []
  for block in re.split(r"\n\s*\d+\.\s+Size:", message)[1:]:
    size = re.match(r"\s*([\d.]+[KMGT]?)", block)
    shape = re.search(r"Shape:\s*(\S+)", block)
    what = re.search(r"(?:Operator|XLA label):\s*(.+)", block)
    buffers.append({"size": _size(size.group(1)) if size else 0.0,
                    "shape": shape.group(1) if shape else "",
                    "what": (what.group(1).strip()[:160] if what else "")})
  return {"required": _size(m.group(1)), "available": _size(m.group(2)), "largest": buffers}
