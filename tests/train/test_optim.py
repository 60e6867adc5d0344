"""Tests for speechjax.train.optim: schedules against fairseq's formulas, optimizer wrappers."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from speechjax.train import optim

LR, END_LR, TOTAL, WARMUP = 1e-3, 1e-5, 100, 10


def _cfg(**overrides):
  """The default config with a warmup that fits TOTAL, then `overrides`."""
  cfg = optim.default_config()
  cfg.warmup_steps = WARMUP
  cfg.update(overrides)
  return cfg


def _stepper(tx):
  """A jitted (state, params, grads) -> (new params, new state): one tx.update, one micro-batch."""
  def step(state, params, grads):
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state
  return jax.jit(step)


def _tree_equal(a, b) -> bool:
  leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
  return (jax.tree.structure(a) == jax.tree.structure(b)
          and all(np.array_equal(x, y) for x, y in zip(leaves_a, leaves_b)))


def _assert_trees_close(a, b):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-9), a, b)


def _adam_state(opt_state) -> optax.ScaleByAdamState:
  nodes = jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, optax.ScaleByAdamState))
  (adam,) = [n for n in nodes if isinstance(n, optax.ScaleByAdamState)]
  return adam


# ---- reference schedules, written from fairseq's scheduler semantics (update count n) ----------


def _ref_polynomial(n, lr, end_lr, power, warmup, total):
  if warmup > 0 and n <= warmup:
    return lr * n / warmup
  if n >= total:
    return end_lr
  remaining = 1 - (n - warmup) / (total - warmup)
  return (lr - end_lr) * remaining ** power + end_lr


def _ref_tri_stage(n, lr, ratios, init_scale, final_scale, total):
  warmup, hold, decay = (int(total * r) for r in ratios)
  if n < warmup:
    return init_scale * lr + (lr - init_scale * lr) / warmup * n
  if n < warmup + hold:
    return lr
  if n <= warmup + hold + decay:
    return lr * math.exp(math.log(final_scale) / decay * (n - warmup - hold))
  return final_scale * lr


def _ref_cosine(n, lr, end_lr, warmup, total):
  if n < warmup:
    return lr * n / warmup
  if n >= total:
    return end_lr
  return end_lr + (lr - end_lr) * (1 + math.cos(math.pi * (n - warmup) / (total - warmup))) / 2


def _ref_constant(n, lr, warmup):
  return lr * min(n / warmup, 1.0) if warmup else lr


STEPS = (0, 1, 5, WARMUP - 1, WARMUP, WARMUP + 1, 30, 50, 51, 75, TOTAL - 1, TOTAL, TOTAL + 1, 1000)


@pytest.mark.parametrize("name,overrides,reference", [
    ("polynomial", dict(power=1.0), lambda n: _ref_polynomial(n, LR, END_LR, 1.0, WARMUP, TOTAL)),
    ("polynomial", dict(power=2.0), lambda n: _ref_polynomial(n, LR, END_LR, 2.0, WARMUP, TOTAL)),
    ("polynomial", dict(warmup_steps=0), lambda n: _ref_polynomial(n, LR, END_LR, 1.0, 0, TOTAL)),
    ("tri_stage", dict(), lambda n: _ref_tri_stage(n, LR, (0.1, 0.4, 0.5), 0.01, 0.05, TOTAL)),
    ("tri_stage", dict(phase_ratio=(0.25, 0.0, 0.75), init_lr_scale=0.1, final_lr_scale=0.2),
     lambda n: _ref_tri_stage(n, LR, (0.25, 0.0, 0.75), 0.1, 0.2, TOTAL)),
    ("cosine", dict(), lambda n: _ref_cosine(n, LR, END_LR, WARMUP, TOTAL)),
    ("constant", dict(), lambda n: _ref_constant(n, LR, WARMUP)),
    ("constant", dict(warmup_steps=0), lambda n: _ref_constant(n, LR, 0)),
])
def test_schedule_matches_fairseq_formula(name, overrides, reference):
  cfg = _cfg(**{"schedule": name, "lr": LR, "end_lr": END_LR, **overrides})
  schedule = optim.make_schedule(cfg, TOTAL)
  got = [float(schedule(n)) for n in STEPS]
  np.testing.assert_allclose(got, [reference(n) for n in STEPS], rtol=1e-5, atol=1e-12)


def test_tri_stage_stage_lengths_truncate_like_fairseq():
  cfg = _cfg(schedule="tri_stage", lr=LR)
  schedule = jax.jit(optim.make_schedule(cfg, 13))   # stages 1 / 5 / 6 steps, constant from 13
  got = [float(schedule(jnp.int32(n))) for n in range(16)]
  want = [_ref_tri_stage(n, LR, (0.1, 0.4, 0.5), 0.01, 0.05, 13) for n in range(16)]
  np.testing.assert_allclose(got, want, rtol=1e-5)


# ---- optimizer ----------------------------------------------------------------------------------


def test_weight_decay_only_on_kernels():
  params = {"dense": {"kernel": jnp.ones((3, 4)), "bias": jnp.ones(4)},
            "LayerNorm_0": {"scale": jnp.ones(4)},
            "layers": {"final_norm": {"scale": jnp.ones((2, 4))}}}   # scanned norm: ndim 2
  cfg = _cfg(schedule="constant", warmup_steps=0, lr=0.1, weight_decay=0.5)
  tx, _ = optim.make_optimizer(cfg, TOTAL)
  zero_grads = jax.tree.map(jnp.zeros_like, params)
  new, _ = _stepper(tx)(tx.init(params), params, zero_grads)
  np.testing.assert_allclose(new["dense"]["kernel"], 1 - 0.1 * 0.5)
  np.testing.assert_array_equal(new["dense"]["bias"], 1.0)
  np.testing.assert_array_equal(new["LayerNorm_0"]["scale"], 1.0)
  np.testing.assert_array_equal(new["layers"]["final_norm"]["scale"], 1.0)


def test_frozen_params_get_zero_updates_and_no_state():
  params = {"feature_encoder": {"conv_0": {"kernel": jnp.ones((3, 2, 4))}},
            "proj": {"kernel": jnp.ones((4, 4))}}
  cfg = _cfg(schedule="constant", warmup_steps=0, frozen=("feature_encoder/.*",),
             grad_accum_steps=2)
  tx, _ = optim.make_optimizer(cfg, TOTAL)
  state = tx.init(params)
  state_paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(state)[0]]
  assert any("proj" in p for p in state_paths)
  assert not any("feature_encoder" in p for p in state_paths), state_paths
  grads, step = jax.tree.map(jnp.ones_like, params), _stepper(tx)
  for _ in range(2):
    params, state = step(state, params, grads)
  np.testing.assert_array_equal(params["feature_encoder"]["conv_0"]["kernel"], 1.0)
  assert np.all(params["proj"]["kernel"] < 1.0)


def test_frozen_pattern_that_matches_nothing_is_an_error():
  tx, _ = optim.make_optimizer(_cfg(frozen=("encoder/.*",)), TOTAL)
  with pytest.raises(ValueError, match=r"optim\.frozen.*matches no param"):
    tx.init({"feature_encoder": {"kernel": jnp.ones((2, 2))}})


def test_clipping_bounds_the_first_moment():
  params = {"w": jnp.zeros((2, 2))}
  cfg = _cfg(clip_norm=1.0, weight_decay=0.0, b1=0.9)
  tx, _ = optim.make_optimizer(cfg, TOTAL)
  _, state = _stepper(tx)(tx.init(params), params, {"w": jnp.full((2, 2), 1e6)})
  # clipped gradient: each entry 0.5 (global norm 1); first moment = (1 - b1) * 0.5.
  np.testing.assert_allclose(_adam_state(state).mu["w"], 0.05, rtol=1e-6)


def test_mu_dtype_bfloat16():
  params = {"w": jnp.zeros((2, 2))}
  tx, _ = optim.make_optimizer(_cfg(mu_dtype="bfloat16"), TOTAL)
  adam = _adam_state(tx.init(params))
  assert adam.mu["w"].dtype == jnp.bfloat16 and adam.nu["w"].dtype == jnp.float32


def _random_grads(params, count, seed=0):
  rng = np.random.default_rng(seed)
  return [jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape, np.float32)), params)
          for _ in range(count)]


PARAMS = {"dense": {"kernel": jnp.arange(12.0).reshape(3, 4) / 10, "bias": jnp.ones(4)}}
ACCUM_CFG = dict(schedule="constant", warmup_steps=0, lr=0.01)


def test_grad_accumulation_equals_one_step_on_the_mean():
  grads = _random_grads(PARAMS, 3)
  tx, schedule = optim.make_optimizer(_cfg(grad_accum_steps=3, **ACCUM_CFG), TOTAL)
  params, state, step = PARAMS, tx.init(PARAMS), _stepper(tx)
  for i, g in enumerate(grads):
    params, state = step(state, params, g)
    assert _tree_equal(params, PARAMS) == (i < 2)
  assert float(optim.learning_rate(state, schedule)) == float(schedule(1))
  tx1, _ = optim.make_optimizer(_cfg(**ACCUM_CFG), TOTAL)
  mean = jax.tree.map(lambda *g: sum(g) / len(g), *grads)
  want, want_state = _stepper(tx1)(tx1.init(PARAMS), PARAMS, mean)
  _assert_trees_close(params, want)
  _assert_trees_close(_adam_state(state), _adam_state(want_state))


def test_nonfinite_gradient_is_skipped_and_counted():
  tx, schedule = optim.make_optimizer(_cfg(**ACCUM_CFG), TOTAL)
  update = _stepper(tx)
  good, = _random_grads(PARAMS, 1)
  params, state = update(tx.init(PARAMS), PARAMS, good)
  for bad_value in (jnp.nan, jnp.inf):
    bad = jax.tree.map(lambda g, v=bad_value: g.at[0].set(v), good)
    new_params, new_state = update(state, params, bad)
    assert _tree_equal(new_params, params)
    assert _tree_equal(new_state.inner_state, state.inner_state)   # Adam moments and counts
    state = new_state
  assert int(optim.num_skipped_updates(state)) == 2
  assert float(optim.learning_rate(state, schedule)) == float(schedule(1))


def test_skip_nonfinite_equals_optax_apply_if_finite():
  """The select-based skip gives optax.apply_if_finite's updates and state bit for bit."""
  adam = optax.adam(1e-2)
  ours, theirs = optim.skip_nonfinite(adam), optax.apply_if_finite(adam, max_consecutive_errors=10**6)
  grads = _random_grads(PARAMS, 6)
  grads[1] = jax.tree.map(lambda g: g.at[0].set(jnp.nan), grads[1])
  grads[3] = jax.tree.map(lambda g: g.at[-1].set(-jnp.inf), grads[3])
  grads[4] = jax.tree.map(lambda g: jnp.full_like(g, 3e38), grads[4])   # finite, though their sum overflows
  ours_state, theirs_state = ours.init(PARAMS), theirs.init(PARAMS)
  for g in grads:
    ours_updates, ours_state = jax.jit(ours.update)(g, ours_state, PARAMS)
    theirs_updates, theirs_state = jax.jit(theirs.update)(g, theirs_state, PARAMS)
    assert _tree_equal(ours_updates, theirs_updates)
    assert _tree_equal(ours_state, theirs_state)
  assert int(ours_state.total_notfinite) == 2


def test_nonfinite_micro_batch_is_dropped_from_accumulation():
  g1, g2 = _random_grads(PARAMS, 2)
  nan = jax.tree.map(lambda g: jnp.full_like(g, jnp.nan), g1)
  tx, _ = optim.make_optimizer(_cfg(grad_accum_steps=2, **ACCUM_CFG), TOTAL)
  params, state, step = PARAMS, tx.init(PARAMS), _stepper(tx)
  for g in (g1, nan, g2):
    params, state = step(state, params, g)
  assert int(optim.num_skipped_updates(state)) == 1
  tx1, _ = optim.make_optimizer(_cfg(**ACCUM_CFG), TOTAL)
  mean = jax.tree.map(lambda a, b: (a + b) / 2, g1, g2)
  want, want_state = _stepper(tx1)(tx1.init(PARAMS), PARAMS, mean)
  _assert_trees_close(params, want)
  _assert_trees_close(_adam_state(state), _adam_state(want_state))


def test_skip_nonfinite_off_lets_nan_through():
  tx, _ = optim.make_optimizer(_cfg(skip_nonfinite=False, **ACCUM_CFG), TOTAL)
  nan = jax.tree.map(lambda p: jnp.full_like(p, jnp.nan), PARAMS)
  params, state = _stepper(tx)(tx.init(PARAMS), PARAMS, nan)
  assert np.isnan(params["dense"]["kernel"]).all()
  assert int(optim.num_skipped_updates(state)) == 0


def test_learning_rate_follows_the_update_count():
  cfg = _cfg(schedule="polynomial", lr=LR, warmup_steps=4)
  tx, schedule = optim.make_optimizer(cfg, TOTAL)
  params, state, step = PARAMS, tx.init(PARAMS), _stepper(tx)
  grads, = _random_grads(PARAMS, 1)
  for n in range(6):
    assert float(optim.learning_rate(state, schedule)) == pytest.approx(float(schedule(n)))
    params, state = step(state, params, grads)


def test_map_param_states_follows_params_through_frozen_and_accumulation():
  params = {"feature_encoder": {"kernel": jnp.ones((2, 3))},
            "dense": {"kernel": jnp.ones((3, 4)), "bias": jnp.ones(4)}}
  cfg = _cfg(frozen=("feature_encoder/.*",), grad_accum_steps=2)
  tx, _ = optim.make_optimizer(cfg, TOTAL)
  state = jax.eval_shape(tx.init, params)
  names = jax.tree_util.tree_map_with_path(lambda path, _: optim.param_path(path), params)
  mapped = optim.map_param_states(state, names, lambda _: "other")
  assert jax.tree.structure(mapped) == jax.tree.structure(state)
  leaves = jax.tree_util.tree_flatten_with_path(state)[0]
  for (path, leaf), got in zip(leaves, jax.tree.leaves(mapped)):
    want = {(3, 4): "dense/kernel", (4,): "dense/bias"}.get(leaf.shape, "other")
    assert got == want, jax.tree_util.keystr(path)
  assert jax.tree.leaves(mapped).count("dense/kernel") == 3   # mu, nu, acc_grads


def test_ema_update():
  ema = {"w": jnp.array([1.0, 2.0]), "b": jnp.array([4.0], jnp.bfloat16)}
  params = {"w": jnp.array([3.0, 6.0]), "b": jnp.array([0.0], jnp.bfloat16)}
  new = optim.ema_update(ema, params, 0.9)
  np.testing.assert_allclose(new["w"], [0.9 * 1 + 0.1 * 3, 0.9 * 2 + 0.1 * 6], rtol=1e-6)
  assert new["b"].dtype == jnp.bfloat16
  np.testing.assert_allclose(np.float32(new["b"]), [3.6], rtol=1e-2)


def test_default_config_is_valid():
  tx, schedule = optim.make_optimizer(optim.default_config(), 400_000)
  assert float(schedule(32_000)) == pytest.approx(5e-4)
  assert tx.init(PARAMS) is not None


@pytest.mark.parametrize("field,value,message", [
    ("name", "sgd", "optim.name='sgd'"),
    ("schedule", "linear", "optim.schedule='linear'"),
    ("lr", -1e-3, "optim.lr=-0.001"),
    ("lr", 0.0, "optim.lr=0.0"),
    ("b1", 1.0, "optim.b1=1.0"),
    ("b2", 1.0, "optim.b2=1.0"),
    ("eps", 0.0, "optim.eps=0.0"),
    ("weight_decay", -0.1, "optim.weight_decay"),
    ("mu_dtype", "float16", "optim.mu_dtype"),
    ("warmup_steps", 200, "optim.warmup_steps=200: must be <= total_steps=100"),
    ("warmup_steps", -1, "optim.warmup_steps=-1"),
    ("warmup_steps", 1.5, "optim.warmup_steps=1.5"),
    ("end_lr", 1.0, "optim.end_lr=1.0"),
    ("power", 0.0, "optim.power=0.0"),
    ("phase_ratio", (0.1, 0.4, 0.4), "optim.phase_ratio.*must sum to 1"),
    ("phase_ratio", (0.5, 0.5), "optim.phase_ratio"),
    ("init_lr_scale", 2.0, "optim.init_lr_scale"),
    ("final_lr_scale", 0.0, "optim.final_lr_scale"),
    ("clip_norm", -1.0, "optim.clip_norm"),
    ("grad_accum_steps", 0, "optim.grad_accum_steps=0"),
    ("skip_nonfinite", 1, "optim.skip_nonfinite"),
    ("ema_decay", 1.0, "optim.ema_decay=1.0"),
    ("frozen", "encoder/.*", "optim.frozen"),
    ("frozen", ("encoder/(",), "optim.frozen.*not a valid regex"),
])
def test_bad_config_names_the_field(field, value, message):
  cfg = _cfg()
  with cfg.ignore_type():
    cfg[field] = value
  with pytest.raises(ValueError, match=message):
    optim.make_optimizer(cfg, TOTAL)


def test_unknown_field_is_an_error():
  cfg = _cfg()
  cfg.warmup_step = 5   # a typo must not be silently ignored
  with pytest.raises(ValueError, match="unknown fields.*warmup_step"):
    optim.make_optimizer(cfg, TOTAL)


def test_bad_total_steps():
  with pytest.raises(ValueError, match="total_steps=0"):
    optim.make_schedule(_cfg(), 0)
