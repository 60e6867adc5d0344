"""How a transformer stack runs (`run_layers`, shared by `speechjax.nn.transformer` and
`speechjax.nn.lm_transformer`), its two param layouts, and conversions between them:

    loop   `scan_layers=False`: {..., "layers_0": {...}, ..., "layers_{L-1}": {...}}
    scan   `scan_layers=True` (`nn.scan`): {..., "layers": {...}}, every leaf with a leading [L] axis

    params = scan_to_loop(params)          # every `layers` subtree → layers_0..layers_{L-1}
    params = loop_to_scan(params)          # every set of layers_<i> siblings → one `layers` subtree
    params = match_layout(params, like)    # stack by stack, to the layout of `like` (the target model's
                                           # params or ShapeDtypeStructs)

Trees are nested mappings of numpy or jax arrays; the result is a new tree of dicts with arrays of the same
kind (numpy stays numpy), placed by jax's defaults: callers `device_put` onto shardings.
"""
from __future__ import annotations

import re
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from flax import traverse_util

LAYERS = "layers"
_INDEXED = re.compile(r"layers_\d+")
REMAT_POLICIES = {
    "full": None,                                                       # save nothing, recompute all
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,   # save weight matmul outputs
}


def remat_layer(layer_cls, policy: str, static_argnums: tuple[int, ...]):
  """`layer_cls` itself (policy "none") or rematerialised with a REMAT_POLICIES policy; `static_argnums`
  index the call's non-array arguments (self = 0)."""
  if policy == "none":
    return layer_cls
  if policy not in REMAT_POLICIES:
    raise ValueError(f"model.remat_policy={policy!r}: expected 'none' or one of {sorted(REMAT_POLICIES)}")
  return nn.remat(layer_cls, policy=REMAT_POLICIES[policy], static_argnums=static_argnums)


def run_layers(layer_cls, config, x, *args, train_argnum: int | None, collect: bool = False):
  """`config.num_layers` blocks `layer_cls(config)` applied in turn: x [B, L, D] → (x, per-layer outputs).

  Call it inside a compact method: the blocks become that module's submodules, `layers_<i>` (loop layout)
  or one `layers` under `nn.scan` when `config.scan_layers` (params and the `cache` collection stacked on a
  leading axis), rematerialised with `config.remat_policy`. `args` go to every block unchanged;
  `train_argnum` is the position of the block's boolean `train` argument (self = 0), static under remat
  (None: the block has none).
  Per-layer outputs: a list (loop), stacked [L, B, L, D] with `collect` (scan), else None (scan)."""
  static = () if train_argnum is None else (train_argnum,)
  cls = remat_layer(layer_cls, config.remat_policy, static_argnums=static)
  if not config.scan_layers:
    outputs = []
    for i in range(config.num_layers):
      x = cls(config, name=f"layers_{i}")(x, *args)
      outputs.append(x)
    return x, outputs

  def body(layer, carry, *body_args):
    y = layer(carry, *body_args)
    return y, (y if collect else None)

  scan = nn.scan(body, variable_axes={"params": 0, "cache": 0}, split_rngs={"params": True, "dropout": True},
                 in_axes=(nn.broadcast,) * len(args), length=config.num_layers,
                 metadata_params={nn.PARTITION_NAME: LAYERS})
  return scan(cls(config, name=LAYERS), x, *args)


def scan_to_loop(tree):
  """Every `layers` subtree (leaves [L, ...]) → `layers_0..layers_{L-1}` (leaves [...])."""
  return _scan_to_loop(tree, ())


def loop_to_scan(tree):
  """Every set of `layers_0..layers_{L-1}` siblings (identical trees) → `layers` (leaves [L, ...])."""
  return _loop_to_scan(tree, ())


def match_layout(tree, like):
  """`tree` with each of its stacks in the layout of the same stack in `like`; stacks (and all else) that
  `like` lacks are left as they are, for the caller's own comparison of keys and shapes."""
  return _match(tree, like, ())


def _scan_to_loop(tree, path):
  if not isinstance(tree, Mapping):
    return tree
  node = _unstack(tree, path) if _is_scanned(tree) else tree
  return {k: _scan_to_loop(v, path + (k,)) for k, v in node.items()}


def _loop_to_scan(tree, path):
  if not isinstance(tree, Mapping):
    return tree
  node = {k: _loop_to_scan(v, path + (k,)) for k, v in tree.items()}
  return _stack(node, path) if _layer_keys(node) else node


def _match(tree, like, path):
  if not (isinstance(tree, Mapping) and isinstance(like, Mapping)):
    return tree
  if _is_scanned(tree) and _layer_keys(like):
    tree = _unstack(tree, path)
  stack = bool(_layer_keys(tree)) and _is_scanned(like)
  node = {k: _match(v, like[LAYERS] if stack and _INDEXED.fullmatch(k) else like.get(k), path + (k,))
          for k, v in tree.items()}
  return _stack(node, path) if stack else node


def _is_scanned(node: Mapping) -> bool:
  return isinstance(node.get(LAYERS), Mapping)


def _layer_keys(node: Mapping) -> list[str]:
  """The `layers_<i>` keys of `node`, by index."""
  return sorted((k for k in node if _INDEXED.fullmatch(k)), key=lambda k: int(k[len(LAYERS) + 1:]))


def _name(path) -> str:
  return "/".join(path) or "<root>"


def _unstack(node: Mapping, path) -> dict:
  """`node` with its `layers` subtree split along the leading axis into `layers_0..layers_{L-1}`."""
  where = _name(path + (LAYERS,))
  if _layer_keys(node):
    raise ValueError(f"{where}: a stacked `layers` beside {_layer_keys(node)}: mixed layouts")
  flat = traverse_util.flatten_dict(node[LAYERS])
  lengths = {"/".join(k): np.shape(v)[0] if np.ndim(v) else None for k, v in flat.items()}
  if not flat or len(set(lengths.values())) != 1 or None in lengths.values():
    raise ValueError(f"{where}: stacked params need one shared leading layer axis; leading sizes {lengths}")
  stacked = node[LAYERS]
  rest = {k: v for k, v in node.items() if k != LAYERS}
  num = next(iter(lengths.values()))
  return {**rest, **{f"{LAYERS}_{i}": jax.tree.map(lambda x, i=i: x[i], stacked) for i in range(num)}}


def _stack(node: Mapping, path) -> dict:
  """`node` with its `layers_0..layers_{L-1}` children stacked into one `layers` subtree."""
  keys = _layer_keys(node)
  where = _name(path)
  if LAYERS in node:
    raise ValueError(f"{where}: {keys} beside a stacked `layers`: mixed layouts")
  expected = [f"{LAYERS}_{i}" for i in range(len(keys))]
  if keys != expected:
    last = int(keys[-1][len(LAYERS) + 1:])
    missing = [f"{LAYERS}_{i}" for i in range(last + 1) if f"{LAYERS}_{i}" not in keys]
    raise ValueError(f"{where}: layers must be layers_0..layers_<L-1>: has {keys}, missing {missing}")
  flats = [traverse_util.flatten_dict(node[k]) for k in keys]
  for key, flat in zip(keys[1:], flats[1:]):
    if flat.keys() != flats[0].keys():
      diff = sorted("/".join(k) for k in flat.keys() ^ flats[0].keys())
      raise ValueError(f"{where}/{key}: params differ from {where}/layers_0: {diff[:5]}")
    for name, value in flat.items():
      ref = flats[0][name]
      if (np.shape(value), value.dtype) != (np.shape(ref), ref.dtype):
        raise ValueError(f"{where}/{key}/{'/'.join(name)}: shape {np.shape(value)} {value.dtype}, "
                         f"layers_0 has {np.shape(ref)} {ref.dtype}")
  stacked = {name: _stack_arrays([flat[name] for flat in flats]) for name in flats[0]}
  rest = {k: v for k, v in node.items() if k not in keys}
  return {**rest, LAYERS: traverse_util.unflatten_dict(stacked)}


def _stack_arrays(arrays):
  if all(isinstance(a, np.ndarray) for a in arrays):
    return np.stack(arrays)
  return jnp.stack(arrays)
