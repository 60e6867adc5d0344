"""Device mesh, logical-axis rules and host-local → global batches (docs/design.md, Contracts: Sharding).

Mesh axes are always `("data", "fsdp", "tensor")`. Parameters carry logical axis names; the `mesh.rules`
table of the config maps each logical name to mesh axes, so data parallel, FSDP and tensor parallel are
config changes only:

    data parallel   mesh.shape=(-1, 1, 1)
    FSDP            mesh.shape=(1, -1, 1)    params/optimizer state sharded over `fsdp` via `embed`
    tensor parallel mesh.shape=(1, 1, -1)    `mlp`, `heads`, `vocab` over `tensor`
"""
from __future__ import annotations

import math
import os
from typing import Callable

import jax
import ml_collections
import numpy as np
from flax import linen as nn
from jax.experimental import mesh_utils, multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from speechjax.config import ConfigError

AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")

# Priority order (flax semantics): the first rule whose mesh axis is still free in that array wins, so a
# logical name listed twice falls back to its second mesh axis.
DEFAULT_RULES = (
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),
    ("conv_in", "fsdp"),    # conv kernels' input channels: all-gathered for the conv (see below)
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("vocab", "tensor"),
    ("conv_out", "tensor"),
    ("mlp", "fsdp"),        # fallbacks: arrays without an embed/conv_in dim still shard over fsdp
    ("vocab", "fsdp"),
    ("kv", None),
    ("codebook", None),
    ("layers", None),
    ("length", None),
)
# Conv kernels are stored with their input channels over `fsdp` and all-gathered before the conv
# (speechjax.nn.partitioning.gathered_kernel): left sharded, XLA (jaxlib 0.10.2, CPU) computed wrong input
# gradients for such convs on a (2,2,2) mesh (tests/train/test_trainer_mesh.py caught it).


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({"shape": (-1, 1, 1), "rules": DEFAULT_RULES})


def resolve_shape(shape, num_devices: int) -> tuple[int, int, int]:
  """Fills the one `-1` entry of `shape` so that the product is `num_devices`."""
  shape = tuple(int(s) for s in shape)
  if len(shape) != len(AXES):
    raise ConfigError(f"config.mesh.shape={shape}: needs one size per axis {AXES}")
  free = [i for i, s in enumerate(shape) if s == -1]
  if len(free) > 1 or any(s == 0 or s < -1 for s in shape):
    raise ConfigError(f"config.mesh.shape={shape}: sizes must be positive, at most one -1")
  known = math.prod(s for s in shape if s != -1)
  if free:
    if num_devices % known:
      raise ConfigError(f"config.mesh.shape={shape}: {num_devices} devices not divisible by {known}")
    shape = tuple(num_devices // known if s == -1 else s for s in shape)
  if math.prod(shape) != num_devices:
    raise ConfigError(f"config.mesh.shape={shape}: product {math.prod(shape)} != {num_devices} devices")
  return shape


def make_mesh(mesh_cfg, devices=None) -> Mesh:
  """An Auto-typed mesh (logical constraints need Auto axes; jax_codebase.md gotcha 1)."""
  devices = list(devices if devices is not None else jax.devices())
  shape = resolve_shape(mesh_cfg.shape, len(devices))
  try:
    grid = mesh_utils.create_device_mesh(shape, devices=devices)
  except (ValueError, AssertionError, NotImplementedError):
    grid = np.asarray(devices).reshape(shape)
  return Mesh(grid, AXES)


def rules(mesh_cfg) -> tuple:
  return tuple((name, tuple(a) if isinstance(a, list) else a) for name, a in mesh_cfg.rules)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def logical_shardings(boxed_tree, mesh: Mesh, axis_rules):
  """NamedShardings for a tree of `nn.LogicallyPartitioned` boxes (unboxed leaves replicate).

  A dimension that its mesh axes do not divide evenly is left unsharded, so any vocabulary or
  channel count works on any mesh."""
  specs = nn.get_partition_spec(boxed_tree)
  shardings = nn.logical_to_mesh_sharding(specs, mesh, axis_rules)
  shapes = strip_boxes(boxed_tree)
  return jax.tree.map(lambda x, s: NamedSharding(mesh, _fit(x.shape, s.spec, mesh)), shapes, shardings)


def strip_boxes(tree):
  """The values inside `nn.Partitioned` boxes, without applying their sharding constraints."""
  return jax.tree.map(lambda x: x.value if isinstance(x, nn.Partitioned) else x, tree,
                      is_leaf=lambda x: isinstance(x, nn.Partitioned))


def _fit(shape, spec: P, mesh: Mesh) -> P:
  out = []
  for dim, axes in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
    names = (axes,) if isinstance(axes, str) else (axes or ())
    out.append(axes if dim % math.prod(mesh.shape[a] for a in names) == 0 else None)
  return P(*out)


def device_fields(batch: dict) -> dict:
  """The numeric fields of a host batch (strings stay on the host)."""
  return {k: v for k, v in batch.items() if v.dtype.kind in "biuf"}


def host_to_global(batch: dict, mesh: Mesh) -> dict:
  """Host-local numpy batch `[B_host, ...]` → global jax.Arrays `[B_host * processes, ...]`
  sharded over the batch axes."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, v)
          for k, v in device_fields(batch).items()}


def add_distributed_arguments(parser) -> None:
  """The command-line flags of `maybe_init_distributed`."""
  parser.add_argument("--coordinator", default="", help="multi-host: coordinator host:port")
  parser.add_argument("--num-processes", type=int, default=0)
  parser.add_argument("--process-id", type=int, default=-1)


def on_process_zero(name: str, write: Callable[[], object]) -> None:
  """Runs `write()` on process 0 only, between two barriers of all processes: what any process checked
  before sees none of its output, and what any process does after sees all of it."""
  multihost_utils.sync_global_devices(f"{name}: start")
  if jax.process_index() == 0:
    write()
  multihost_utils.sync_global_devices(f"{name}: done")


def maybe_init_distributed(coordinator: str = "", num_processes: int = 0, process_id: int = -1):
  """`jax.distributed.initialize` when asked: explicit flags, or a TPU pod / cluster environment
  (`SPEECHJAX_DISTRIBUTED=1`, as set by speechjax/launch/tpu.py). Must run before any JAX computation."""
  if coordinator:
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id)
  elif os.environ.get("SPEECHJAX_DISTRIBUTED") == "1":
    jax.distributed.initialize()
