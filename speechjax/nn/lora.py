"""LoRA (Hu et al. 2021) for any model, as a transform of its params tree (no module changes).

    adapters = lora.init(rng, params, targets, rank)     # {path: {"a": [in, r], "b": [r, out]}}, b = 0
    merged = lora.merge(params, adapters, alpha)         # W + (alpha / rank) · a @ b on every target
    model.apply({"params": merged}, ...)

`targets` maps a regex over "/"-joined param paths (full match) to the number of leading kernel dims that
are inputs: an attention q/k/v kernel [D, H, Dh] has 1, an output kernel [H, Dh, D] has 2; the kernel is
viewed as [prod(in dims), prod(out dims)]. `a` ~ kaiming-uniform (torch `nn.Linear` default, as HF peft),
`b` = 0, so the merged model equals the base model until `b` moves. Scanned stacks (params with a leading
`layers` axis) get one adapter per layer: `a` [L, in, r], `b` [L, r, out].

Training with adapters: differentiate with respect to the adapters only (`jax.grad` of a function of them),
or keep the base params in the train state and freeze them with `optim.frozen`, whose partitions get no
optimizer state. `merge` runs inside the jitted step: the merged kernels exist only transiently.
`LLAMA_ATTENTION` is the paper's (and Speech-LLaMA's) choice: q, k, v, o of every LLaMA layer.
"""
from __future__ import annotations

import math
import re
from typing import Mapping

import jax
import jax.numpy as jnp
from flax import traverse_util

LLAMA_ATTENTION = {r"(.*/)?self_attn/(q|k|v)_proj/kernel": 1, r"(.*/)?self_attn/o_proj/kernel": 2}


def _targets(params, targets: Mapping[str, int]) -> dict[tuple, int]:
  """{flat path: input dims} of the kernels matched by `targets`; every pattern must match one."""
  flat = traverse_util.flatten_dict(params)
  found, used = {}, set()
  for path in flat:
    name = "/".join(path)
    pattern = next((p for p in targets if re.fullmatch(p, name)), None)
    if pattern is not None:
      found[path] = targets[pattern]
      used.add(pattern)
  unused = sorted(set(targets) - used)
  if unused:
    examples = ["/".join(p) for p in flat][:3]
    raise ValueError(f"LoRA targets {unused} match no param; paths look like {examples}")
  return found


def _split(shape, in_dims: int, stacked: bool):
  """(leading layer dims, in size, out size) of a kernel."""
  lead = shape[:1] if stacked else ()
  rest = shape[len(lead):]
  return lead, math.prod(rest[:in_dims]), math.prod(rest[in_dims:])


def init(rng, params, targets: Mapping[str, int], rank: int) -> dict:
  """Zero-effect adapters for the targeted kernels of `params` (a nested dict of arrays)."""
  if rank < 1:
    raise ValueError(f"LoRA rank must be >= 1, got {rank}")
  adapters = {}
  for i, (path, in_dims) in enumerate(sorted(_targets(params, targets).items())):
    kernel = traverse_util.flatten_dict(params)[path]
    lead, fan_in, fan_out = _split(kernel.shape, in_dims, "layers" in path)
    bound = 1.0 / math.sqrt(fan_in)   # kaiming_uniform(a=√5) of a [rank, fan_in] torch weight
    a = jax.random.uniform(jax.random.fold_in(rng, i), (*lead, fan_in, rank), jnp.float32, -bound, bound)
    adapters["/".join(path)] = {"a": a, "b": jnp.zeros((*lead, rank, fan_out), jnp.float32)}
  return adapters


def merge(params, adapters: Mapping[str, dict], alpha: float):
  """`params` with W + (alpha / rank) · a @ b added to every adapted kernel (in the kernel's dtype)."""
  flat = dict(traverse_util.flatten_dict(params))
  for name, ab in adapters.items():
    path = tuple(name.split("/"))
    if path not in flat:
      raise ValueError(f"LoRA adapter {name} has no kernel in the params")
    kernel = flat[path]
    rank = ab["a"].shape[-1]
    delta = jnp.matmul(ab["a"], ab["b"]) * (alpha / rank)           # [(L,) in, out]
    flat[path] = kernel + delta.reshape(kernel.shape).astype(kernel.dtype)
  return traverse_util.unflatten_dict(flat)


def num_params(adapters) -> int:
  return sum(x.size for x in jax.tree.leaves(adapters))
