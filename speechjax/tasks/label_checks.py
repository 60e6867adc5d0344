"""Start-up checks of the frame-label sets a task reads (issue 20: never train on misaligned labels).

A task names its label sets in its own fields (`task.labels`, `task.label`, `task.semantic_labels`, ...),
usually with a frame rate (`task.label_rates`, `task.semantic_rate`, ...). These checks hold the config
against itself and, when `data.path` holds prepared records, against the data's `meta.json`, which knows
each label set's frame rate and class count:

    the set is in `data.labels` (the pipeline emits only those) and in the data
    the configured rate is the data's rate
    the rate aligns with the model's frames (a whole multiple of the model's rate, or equal to it)
    the model predicts at least as many classes as the set has

Every failure is a ConfigError naming the field. Without records (ahead-of-time compiles) only the config
is checked.
"""
from __future__ import annotations

import os

import tensorflow as tf

from speechjax.config import require
from speechjax.data import records


def data_meta(config) -> records.DatasetMeta | None:
  """The data's meta.json, or None when `data.path` holds no prepared records."""
  if tf.io.gfile.exists(os.path.join(config.data.path, "meta.json")):
    return records.read_meta(config.data.path)
  return None


def same_lengths(config, *fields: str) -> None:
  """Fields like "task.labels", "task.label_rates", "model.num_classes" must have one entry each."""
  values = {f: tuple(_get(config, f)) for f in fields}
  first = fields[0]
  for field in fields[1:]:
    require(len(values[field]) == len(values[first]), field, values[field],
            f"needs one entry per {first} entry {values[first]}")


def check_label_set(config, meta, name_field: str, name: str, *, rate: int | None = None,
                    rate_field: str | None = None, frame_rate: float | None = None, whole_multiple: bool = True,
                    classes_field: str | None = None, classes: int | None = None) -> None:
  """Checks the label set `name` (configured at `name_field`) as the module docstring lists.

  rate / rate_field: the task's rate for this set and the field it comes from, or None when the task takes
    the data's rate. frame_rate: the model's frames per second, when the task pairs labels
    with model frames: the label rate must be a whole multiple of it (`whole_multiple`) or equal to it.
  classes_field / classes: the model's class count for this set."""
  require(name in tuple(config.data.labels), "data.labels", tuple(config.data.labels),
          f"must include {name_field}={name!r} (the pipeline emits only the label sets data.labels names)")
  if rate is not None:
    require(rate > 0 and records.SAMPLE_RATE % rate == 0, rate_field, rate,
            f"must be a positive divisor of {records.SAMPLE_RATE} Hz")
  if meta is not None:
    require(name in meta.labels, name_field, name,
            f"no label set {name!r} in {config.data.path} (has {sorted(meta.labels)})")
    stored = meta.labels[name]
    if rate is not None:
      require(rate == stored.frame_rate, rate_field, rate,
              f"label set {name!r} in {config.data.path} is at {stored.frame_rate} Hz")
    rate = stored.frame_rate
    if classes is not None:
      require(classes >= stored.num_classes, classes_field, classes,
              f"label set {name!r} in {config.data.path} has {stored.num_classes} classes")
  if rate is not None and frame_rate:
    field = rate_field or "data.labels"
    if whole_multiple:
      require(rate % frame_rate == 0, field, rate if rate_field else name,
              f"{rate} Hz labels do not align with the model's {frame_rate:g} Hz frames (the label rate must "
              f"be a whole multiple of it: {frame_rate:g}, {2 * frame_rate:g}, ... Hz)")
    else:
      require(rate == frame_rate, field, rate if rate_field else name,
              f"{rate} Hz labels: this task pairs label i with model frame i, so the label rate must be the "
              f"model's {frame_rate:g} Hz")


def _get(config, field: str):
  section, key = field.split(".", 1)
  return config[section][key]
