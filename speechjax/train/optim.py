"""Optimizer and learning-rate schedule from the `optim` section of a run config.

The optimizer is AdamW built from Optax pieces, wrapped from the inside out:

    chain(clip_by_global_norm, scale_by_adam, add_decayed_weights, scale_by_learning_rate)
      → MultiSteps                 (grad_accum_steps > 1: the trainer steps once per micro-batch)
      → skip_nonfinite             (a NaN/inf micro-batch is dropped and counted; apply_if_finite by selects)
      → partition                  (frozen params: zero updates, no optimizer state at all)

Schedules are counted in optimizer updates and follow fairseq's `polynomial_decay` and `tri_stage`.
`schedule(n)` is the learning rate of the update made when `n` updates have already been applied.
"""
from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import optax

OPTIMIZERS = ("adamw",)
SCHEDULES = ("polynomial", "tri_stage", "cosine", "constant")
MU_DTYPES = {"": None, "float32": jnp.float32, "bfloat16": jnp.bfloat16}
# Never decayed: a param named "bias" or "scale" (Flax norms), or one inside a module whose name
# contains "norm" (LayerNorm_0, final_norm, ...). Scanned stacks make these ndim > 1.
NO_DECAY_PATH = re.compile(r"(^|/)(bias|scale)$|(^|/)[^/]*norm[^/]*/", re.IGNORECASE)


def default_config() -> ml_collections.ConfigDict:
  """The `optim` section with every field at its default (fairseq wav2vec 2.0 / HuBERT Base)."""
  return ml_collections.ConfigDict(dict(
      name="adamw",
      lr=5e-4,                # peak learning rate
      b1=0.9,
      b2=0.98,
      eps=1e-6,
      weight_decay=0.01,      # decoupled, times lr; only ndim > 1 params, never norms or biases
      mu_dtype="",            # first-moment dtype: "" = the param dtype, "float32" or "bfloat16"
      schedule="polynomial",  # one of SCHEDULES
      warmup_steps=32000,     # polynomial, cosine, constant (tri_stage uses phase_ratio)
      end_lr=0.0,             # polynomial, cosine: lr at total_steps
      power=1.0,              # polynomial: 1.0 = linear decay
      phase_ratio=(0.1, 0.4, 0.5),  # tri_stage: warmup / hold / exp. decay, fractions of total
      init_lr_scale=0.01,     # tri_stage: warmup starts at init_lr_scale * lr
      final_lr_scale=0.05,    # tri_stage: decay ends at final_lr_scale * lr
      clip_norm=0.0,          # global gradient-norm clipping; 0 = off
      grad_accum_steps=1,     # micro-batches per optimizer update
      skip_nonfinite=True,    # skip (and count) updates whose gradient has a NaN or inf
      ema_decay=0.0,          # parameter EMA kept by the trainer with `ema_update`; 0 = off
      frozen=(),              # regexes fully matching "/"-joined param paths: "feature_encoder/.*"
  ))


# ----------------------------------------------------------------------------------------------
# Validation


def _fail(field: str, value, requirement: str):
  raise ValueError(f"optim.{field}={value!r}: {requirement}")


def _is_number(value) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_range(cfg, field: str, low: float, high: float, low_open=False, high_open=False):
  """Raises unless cfg[field] lies in [low, high], with an open end where asked."""
  value = cfg[field]
  if not _is_number(value) or not math.isfinite(value):
    _fail(field, value, "must be a finite number")
  too_low = value <= low if low_open else value < low
  too_high = value >= high if high_open else value > high
  if too_low or too_high:
    interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    _fail(field, value, f"must be in {interval}")


def _check_choice(cfg, field: str, choices):
  if cfg[field] not in choices:
    _fail(field, cfg[field], f"must be one of {tuple(choices)}")


def _check_int(cfg, field: str, low: int, high: int | None = None, high_name: str = ""):
  value = cfg[field]
  if not _is_int(value) or value < low:
    _fail(field, value, f"must be an integer >= {low}")
  if high is not None and value > high:
    _fail(field, value, f"must be <= {high_name}={high}")


def _check_phase_ratio(cfg):
  ratio = cfg.phase_ratio
  if (not isinstance(ratio, Sequence) or len(ratio) != 3
      or not all(_is_number(r) and r >= 0 for r in ratio)):
    _fail("phase_ratio", ratio, "must be three fractions >= 0 (warmup, hold, decay)")
  if abs(sum(ratio) - 1.0) > 1e-6:
    _fail("phase_ratio", ratio, f"must sum to 1, sums to {sum(ratio)}")


def _check_frozen(cfg):
  patterns = cfg.frozen
  if isinstance(patterns, str) or not isinstance(patterns, Sequence):
    _fail("frozen", patterns, "must be a tuple of regex strings")
  for pattern in patterns:
    if not isinstance(pattern, str):
      _fail("frozen", patterns, f"{pattern!r} is not a string")
    try:
      re.compile(pattern)
    except re.error as e:
      _fail("frozen", patterns, f"{pattern!r} is not a valid regex ({e})")


def validate(cfg: ml_collections.ConfigDict, total_steps: int):
  """Raises ValueError naming the first bad field of the `optim` section."""
  if not _is_int(total_steps) or total_steps < 1:
    raise ValueError(f"total_steps={total_steps!r}: must be an integer >= 1")
  known, given = set(default_config().keys()), set(cfg.keys())
  if given - known:
    raise ValueError(f"optim has unknown fields {sorted(given - known)}; known: {sorted(known)}")
  if known - given:
    raise ValueError(f"optim lacks fields {sorted(known - given)}; start from default_config()")
  _check_choice(cfg, "name", OPTIMIZERS)
  _check_choice(cfg, "schedule", SCHEDULES)
  _check_choice(cfg, "mu_dtype", MU_DTYPES)
  _check_range(cfg, "lr", 0, math.inf, low_open=True)
  _check_range(cfg, "b1", 0, 1, high_open=True)
  _check_range(cfg, "b2", 0, 1, high_open=True)
  _check_range(cfg, "eps", 0, math.inf, low_open=True)
  _check_range(cfg, "weight_decay", 0, math.inf)
  _check_range(cfg, "end_lr", 0, cfg.lr)
  _check_range(cfg, "power", 0, math.inf, low_open=True)
  _check_range(cfg, "init_lr_scale", 0, 1)
  _check_range(cfg, "final_lr_scale", 0, 1, low_open=True)
  _check_range(cfg, "clip_norm", 0, math.inf)
  _check_range(cfg, "ema_decay", 0, 1, high_open=True)
  _check_int(cfg, "grad_accum_steps", 1)
  if cfg.schedule != "tri_stage":
    _check_int(cfg, "warmup_steps", 0, total_steps, "total_steps")
  _check_phase_ratio(cfg)
  if not isinstance(cfg.skip_nonfinite, bool):
    _fail("skip_nonfinite", cfg.skip_nonfinite, "must be True or False")
  _check_frozen(cfg)


# ----------------------------------------------------------------------------------------------
# Schedules


def _linear_warmup(step: jax.Array, warmup_steps: int, lr: float) -> jax.Array:
  """lr * step / warmup_steps: 0 at step 0, lr at warmup_steps."""
  return lr * step / max(warmup_steps, 1)


def _decay_fraction(step: jax.Array, warmup_steps: int, total_steps: int) -> jax.Array:
  """How far past warmup towards total_steps, clipped to [0, 1]."""
  return jnp.clip((step - warmup_steps) / max(total_steps - warmup_steps, 1), 0.0, 1.0)


def _warmup_then(decay: Callable[[jax.Array], jax.Array], lr: float, warmup_steps: int
                 ) -> optax.Schedule:
  """Linear warmup 0 → lr over warmup_steps, then decay(step)."""
  def schedule(step):
    step = jnp.asarray(step, jnp.float32)
    return jnp.where(step < warmup_steps, _linear_warmup(step, warmup_steps, lr), decay(step))
  return schedule


def _polynomial(cfg, total_steps: int) -> optax.Schedule:
  """fairseq polynomial_decay: warmup 0 → lr, then (lr - end_lr)·(1 - frac)^power + end_lr."""
  lr, end_lr, power, warmup = float(cfg.lr), float(cfg.end_lr), float(cfg.power), cfg.warmup_steps
  def decay(step):
    return (lr - end_lr) * (1.0 - _decay_fraction(step, warmup, total_steps)) ** power + end_lr
  return _warmup_then(decay, lr, warmup)


def _cosine(cfg, total_steps: int) -> optax.Schedule:
  """Warmup 0 → lr, then a half cosine from lr to end_lr at total_steps."""
  lr, end_lr, warmup = float(cfg.lr), float(cfg.end_lr), cfg.warmup_steps
  def decay(step):
    frac = _decay_fraction(step, warmup, total_steps)
    return end_lr + (lr - end_lr) * 0.5 * (1.0 + jnp.cos(jnp.pi * frac))
  return _warmup_then(decay, lr, warmup)


def _constant(cfg, total_steps: int) -> optax.Schedule:
  """Warmup 0 → lr, then lr for ever."""
  del total_steps
  lr = float(cfg.lr)
  return _warmup_then(lambda step: jnp.full_like(step, lr), lr, cfg.warmup_steps)


def _tri_stage(cfg, total_steps: int) -> optax.Schedule:
  """fairseq tri_stage with phase_ratio: linear warmup, hold, exponential decay, then constant.

  Stage lengths are int(total_steps * ratio) as in fairseq. Warmup goes linearly from
  init_lr_scale·lr to lr; decay is lr·exp(-k·t) with k = -ln(final_lr_scale) / decay_steps, so it
  reaches final_lr_scale·lr after decay_steps and stays there.
  """
  warmup, hold, decay = (int(total_steps * r) for r in cfg.phase_ratio)
  lr = float(cfg.lr)
  init_lr, final_lr = cfg.init_lr_scale * lr, cfg.final_lr_scale * lr
  warmup_rate = (lr - init_lr) / warmup if warmup else 0.0
  decay_rate = -math.log(cfg.final_lr_scale) / max(decay, 1)

  def schedule(step):
    step = jnp.asarray(step, jnp.float32)
    warming = init_lr + warmup_rate * step
    decaying = lr * jnp.exp(-decay_rate * (step - warmup - hold))
    return jnp.where(step < warmup, warming,
                     jnp.where(step < warmup + hold, lr,
                               jnp.where(step <= warmup + hold + decay, decaying, final_lr)))
  return schedule


_SCHEDULE_FNS = {"polynomial": _polynomial, "tri_stage": _tri_stage, "cosine": _cosine,
                 "constant": _constant}


def make_schedule(cfg: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
  """Returns schedule(step) -> float32 learning rate; step counts optimizer updates."""
  validate(cfg, total_steps)
  return _SCHEDULE_FNS[cfg.schedule](cfg, total_steps)


# ----------------------------------------------------------------------------------------------
# Param selection by path


def _key_str(key) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def param_path(path) -> str:
  """A jax key path as a "/"-joined string, e.g. "encoder/layers_0/attn/kernel"."""
  return "/".join(_key_str(k) for k in path)


def _decay_mask(params):
  """True for params that get weight decay: ndim > 1 and not a norm or bias."""
  return jax.tree_util.tree_map_with_path(
      lambda path, p: p.ndim > 1 and not NO_DECAY_PATH.search(param_path(path)), params)


def _frozen_labels(patterns: Sequence[str]) -> Callable:
  """params -> tree of "frozen"/"train" labels; raises if a pattern matches no param."""
  compiled = [re.compile(p) for p in patterns]

  def labels(params):
    paths = [param_path(path) for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    for regex in compiled:
      if not any(regex.fullmatch(path) for path in paths):
        raise ValueError(f"optim.frozen={tuple(patterns)!r}: {regex.pattern!r} matches no param "
                         f"path; paths look like {paths[:3]}")
    return jax.tree_util.tree_map_with_path(
        lambda path, _: "frozen" if any(r.fullmatch(param_path(path)) for r in compiled)
        else "train", params)
  return labels


# ----------------------------------------------------------------------------------------------
# Optimizer


def _adamw(cfg, schedule: optax.Schedule) -> optax.GradientTransformation:
  """Clip → Adam moments → decoupled weight decay → scale by -schedule(count)."""
  parts = []
  if cfg.clip_norm > 0:
    parts.append(optax.clip_by_global_norm(cfg.clip_norm))
  parts.append(optax.scale_by_adam(b1=cfg.b1, b2=cfg.b2, eps=cfg.eps,
                                   mu_dtype=MU_DTYPES[cfg.mu_dtype]))
  if cfg.weight_decay > 0:
    parts.append(optax.add_decayed_weights(cfg.weight_decay, mask=_decay_mask))
  parts.append(optax.scale_by_learning_rate(schedule))
  return optax.chain(*parts)


def make_optimizer(cfg: ml_collections.ConfigDict, total_steps: int
                   ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """Returns (tx, schedule); schedule(step) -> learning rate at optimizer update `step`.

  With grad_accum_steps = k the trainer calls tx.update once per micro-batch; every k-th finite
  micro-batch applies the mean of the last k finite ones, the others return zero updates.
  """
  schedule = make_schedule(cfg, total_steps)
  tx = _adamw(cfg, schedule)
  if cfg.grad_accum_steps > 1:
    tx = optax.MultiSteps(tx, every_k_schedule=cfg.grad_accum_steps).gradient_transformation()
  if cfg.skip_nonfinite:
    tx = skip_nonfinite(tx)
  if cfg.frozen:
    labels = _frozen_labels(tuple(cfg.frozen))
    tx = optax.partition({"train": tx, "frozen": optax.set_to_zero()}, labels)
  return tx, schedule


def skip_nonfinite(inner: optax.GradientTransformation) -> optax.GradientTransformation:
  """`optax.apply_if_finite` that never gives up, without its `lax.cond`: the inner update is always
  computed and a non-finite one is replaced (zero updates, inner state kept) by elementwise selects.

  Same state (`optax.ApplyIfFiniteState`) and the same results; the cond copied every parameter and
  optimizer buffer on CPU (wav2vec 2.0 Base step 2.32 → 2.24 s without it, docs/performance.md).
  The check is one float sum of `u · 0` over every leaf: NaN exactly when some element is NaN or ±inf,
  and never overflowing. XLA:CPU vectorises a float sum but not a boolean `all` (24M floats: 10.7 → 3.5
  ms; the Base optimizer update compiled alone 330–460 → 300–335 ms on a 2-core CPU, though the whole
  Base train step did not change beyond run-to-run noise, docs/performance.md)."""
  wrapped = optax.apply_if_finite(inner, max_consecutive_errors=0)

  def update(updates, state, params=None):
    finite = jnp.isfinite(sum(jnp.sum(u * 0, dtype=jnp.float32) for u in jax.tree.leaves(updates)))
    new_updates, new_inner = inner.update(updates, state.inner_state, params)
    new_updates = jax.tree.map(lambda u: jnp.where(finite, u, jnp.zeros_like(u)), new_updates)
    new_inner = jax.tree.map(lambda n, old: jnp.where(finite, n, old), new_inner, state.inner_state)
    count, total = state.notfinite_count, state.total_notfinite
    return new_updates, optax.ApplyIfFiniteState(
        notfinite_count=jnp.where(finite, jnp.zeros_like(count), optax.safe_increment(count)),
        last_finite=finite, total_notfinite=jnp.where(finite, total, optax.safe_increment(total)),
        inner_state=new_inner)

  return optax.GradientTransformation(wrapped.init, update)


def _find_states(opt_state, state_type) -> list:
  """All sub-states of type `state_type` in an optimizer state tree."""
  nodes = jax.tree_util.tree_leaves(opt_state, is_leaf=lambda x: isinstance(x, state_type))
  return [n for n in nodes if isinstance(n, state_type)]


def num_skipped_updates(opt_state) -> jax.Array:
  """int32 scalar: micro-batches skipped so far because their gradient was not finite."""
  states = _find_states(opt_state, optax.ApplyIfFiniteState)
  return sum((s.total_notfinite for s in states), jnp.zeros([], jnp.int32))


def learning_rate(opt_state, schedule: optax.Schedule) -> jax.Array:
  """The learning rate that the next applied update will use, from the optimizer's own count."""
  states = _find_states(opt_state, optax.ScaleByScheduleState)
  if len(states) != 1:
    raise ValueError(f"expected one schedule state in the optimizer state, found {len(states)}")
  return schedule(states[0].count)


def map_param_states(opt_state, params_like, non_param: Callable):
  """A tree shaped like opt_state, e.g. its shardings from the params' shardings.

  A leaf whose key path ends with a param's path (mu/<param path>, acc_grads/<param path>, ...)
  gets that param's entry of `params_like`; every other leaf x (counts, flags) gets non_param(x).
  Unlike optax.tree_map_params this also works when frozen params are masked out of the state.
  """
  by_path = {tuple(_key_str(k) for k in path): value
             for path, value in jax.tree_util.tree_flatten_with_path(params_like)[0]}
  depths = sorted({len(path) for path in by_path})

  def entry(path, leaf):
    keys = tuple(_key_str(k) for k in path)
    for depth in depths:
      if keys[-depth:] in by_path:
        return by_path[keys[-depth:]]
    return non_param(leaf)
  return jax.tree_util.tree_map_with_path(entry, opt_state)


def ema_update(ema_params, params, decay: float):
  """ema ← decay·ema + (1 - decay)·params, leaf by leaf, in the dtype of ema_params."""
  return jax.tree.map(lambda e, p: (decay * e + (1.0 - decay) * p).astype(e.dtype),
                      ema_params, params)
