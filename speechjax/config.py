"""Run configs: `configs/<family>.py:<arg>` files (big_vision style) plus `--config.a.b=v` overrides.

    cfg = load("configs/frame_classifier.py:tiny", ["--config.optim.lr=3e-4", "--config.train.num_steps", "10"])

A `configs/<family>.py` path that does not exist relative to the current directory is taken from the configs
installed with the package, so an installed (non-editable) speechjax runs them from any directory.
`get_config(arg)` in the file returns an `ml_collections.ConfigDict`. Overrides must name an existing field;
the value is parsed as a Python literal and must fit the field's type. Errors name the field.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import os

import ml_collections

SECTIONS = ("model", "task", "data", "optim", "train", "mesh", "checkpoint")


class ConfigError(ValueError):
  """A config value is missing, unknown or ill-typed; the message names the field."""


def _find_file(path: str) -> str | None:
  """`path` if it exists, else for `configs/<name>.py` the file of that name shipped with the package (setup.py
  installs the checkout's configs/ as `speechjax.configs`); None when neither exists."""
  if os.path.exists(path):
    return path
  folder, name = os.path.split(os.path.normpath(path))
  package = importlib.util.find_spec("speechjax.configs") if folder == "configs" else None
  if package is None:
    return None
  shipped = os.path.join(os.path.dirname(package.origin), name)
  return shipped if os.path.exists(shipped) else None


def exec_file(path: str, prefix: str):
  """The module a Python file defines (config and sweep files are loaded by path, not imported)."""
  mod_spec = importlib.util.spec_from_file_location(f"{prefix}_{abs(hash(path))}", path)
  module = importlib.util.module_from_spec(mod_spec)
  mod_spec.loader.exec_module(module)
  return module


def load_file(spec: str) -> ml_collections.ConfigDict:
  """Loads `path.py[:arg]` (found by `_find_file`) and returns `get_config(arg)`."""
  given, _, arg = spec.partition(":")
  path = _find_file(given)
  if path is None:
    raise ConfigError(f"config file {given!r} not found")
  module = exec_file(path, "speechjax_config")
  if not hasattr(module, "get_config"):
    raise ConfigError(f"{path} has no get_config(arg)")
  return module.get_config(arg or None)


def parse_overrides(argv: list[str]) -> list[tuple[str, str]]:
  """`["--config.a.b=1", "--config.c", "2"]` → `[("a.b", "1"), ("c", "2")]`."""
  out, i = [], 0
  while i < len(argv):
    arg = argv[i]
    if not arg.startswith("--config."):
      raise ConfigError(f"unexpected argument {arg!r}: overrides look like --config.section.field=value")
    key = arg[len("--config."):]
    if "=" in key:
      key, value = key.split("=", 1)
    elif i + 1 < len(argv):
      i += 1
      value = argv[i]
    else:
      raise ConfigError(f"--config.{key}: missing value")
    out.append((key, value))
    i += 1
  return out


def _parse_value(text: str):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text   # bare strings: --config.task.name=hubert


def set_field(cfg: ml_collections.ConfigDict, key: str, text: str) -> None:
  """Sets `cfg.<key>` from its text form, checking that the field exists and the type fits."""
  *parents, leaf = key.split(".")
  node = cfg
  for i, part in enumerate(parents):
    if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
      raise ConfigError(f"config.{key}: unknown field {'.'.join(parents[:i + 1])!r}")
    node = node[part]
  if leaf not in node:
    raise ConfigError(f"config.{key}: unknown field (known in this section: {sorted(node.keys())})")
  value, old = _parse_value(text), node[leaf]
  if isinstance(old, (tuple, list)) and isinstance(value, (tuple, list)):
    value = type(old)(value)
  elif isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
    value = float(value)
  elif isinstance(old, str) and not isinstance(value, str):
    value = text
  try:
    node[leaf] = value
  except TypeError as e:
    raise ConfigError(f"config.{key}={text!r}: expected {type(old).__name__} ({e})") from None


def load(spec: str, overrides: list[str] = ()) -> ml_collections.ConfigDict:
  cfg = load_file(spec)
  for key, value in parse_overrides(list(overrides)):
    set_field(cfg, key, value)
  return cfg


def to_json(cfg: ml_collections.ConfigDict) -> str:
  return json.dumps(cfg.to_dict(), indent=2, sort_keys=True, default=str)


def from_json(text: str) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(json.loads(text))


def require(cond: bool, field: str, value, why: str) -> None:
  """Raises ConfigError("config.<field>=<value>: <why>") unless `cond`."""
  if not cond:
    raise ConfigError(f"config.{field}={value!r}: {why}")


def check_sections(cfg: ml_collections.ConfigDict) -> None:
  missing = [s for s in SECTIONS if s not in cfg]
  if missing:
    raise ConfigError(f"config is missing sections {missing} (a run config has {list(SECTIONS)})")
