"""The Task contract (docs/design.md, Contracts: Task) and the single-optimizer default implementation.

A task owns its model, its objective and its TrainState layout. `speechjax.tasks.get_task(config)` builds
`Task(config)`; the trainer, `speechjax compile` and `speechjax plan` then call only:

    task.abstract_variables(batch)       -> boxed ShapeDtypeStruct tree of model variables (logical axes)
    task.init_state(rng, batch)          -> TrainState (under jax.eval_shape, then jit with out_shardings)
    task.state_shardings(abstract_state, mesh, axis_rules, batch) -> TrainState of NamedShardings
    task.warm_start(params)              -> the params training starts from (fresh runs, not on resume)
    task.train_step(state, batch)        -> (state, metrics)   pure; jitted and donated by the trainer
    task.eval_step(state, batch)         -> metrics
    task.flops_per_example()             -> model FLOPs of one training example (fwd + bwd)

and the default implementation calls `task.model_inputs(batch)` (the model's positional inputs, in
`abstract_variables` and `init_state`) and `task.filter_updates(tree, step)` (on gradients and updates, in
`train_step`).

Subclasses implement `build_model()`, `loss(params, batch, rng, train, step) -> (loss, metrics)` and
`forward_flops()`. A task with several optimizers (codec GAN) overrides `abstract_variables`, `init_state`,
`state_shardings`, `train_step` and `eval_step`.
"""
from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import linen as nn
from jax.sharding import NamedSharding, PartitionSpec as P

from speechjax.parallel import mesh as mesh_lib
from speechjax.train import optim


@flax.struct.dataclass
class TrainState:
  step: jax.Array            # int32 scalar: train_step calls so far (micro-steps with accumulation)
  params: Any
  opt_state: Any
  rng: jax.Array             # the base key's data (uint32[2] threefry, [4] rbg); see `step_key`
  ema_params: Any = None     # param EMA when optim.ema_decay > 0


def step_rng_data(train_cfg) -> jax.Array:
  """The base key of `train.seed` in `train.rng_impl`, as raw data (checkpoints hold plain arrays)."""
  return jax.random.key_data(jax.random.key(train_cfg.seed, impl=train_cfg.rng_impl))


def step_key(state: TrainState, train_cfg) -> jax.Array:
  """This step's key: fold_in(base key, step), a typed key of `train.rng_impl`."""
  return jax.random.fold_in(jax.random.wrap_key_data(state.rng, impl=train_cfg.rng_impl), state.step)


class Task:
  """Single-model, single-optimizer task: gradient of `loss`, one Optax update per step.

  The contract: `abstract_variables`, `init_state`, `state_shardings`, `warm_start`, `model_inputs`,
  `filter_updates`, `train_step`, `eval_step`, `flops_per_example` (see the module docstring and
  docs/design.md, Contracts: Task). To implement: `build_model()`, `loss(params, batch, rng, train, step)`
  (`train`: bool, `step`: int32 scalar) and `forward_flops()`; override the others as needed."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.model = self.build_model()
    self.tx, self.schedule = optim.make_optimizer(config.optim, config.train.num_steps)

  # --- to implement -------------------------------------------------------------------------
  def build_model(self) -> nn.Module:
    raise NotImplementedError

  def loss(self, params, batch: dict, rng, train: bool, step) -> tuple[jax.Array, dict]:
    """Returns (scalar loss, metrics dict of scalars). `step`: int32 scalar, for schedules inside the loss."""
    raise NotImplementedError

  def forward_flops(self) -> float:
    """Model FLOPs of one forward pass over one example of the configured length."""
    raise NotImplementedError

  def filter_updates(self, tree, step):
    """Gradients and optimizer updates pass through here (a schedule of frozen sub-trees)."""
    del step
    return tree

  def warm_start(self, params):
    """Freshly initialised params → the params training starts from (not called on resume)."""
    return params

  # --- contract -----------------------------------------------------------------------------
  def model_inputs(self, batch: dict) -> tuple:
    return batch["audio"], batch["audio_mask"]

  def abstract_variables(self, batch: dict):
    return jax.eval_shape(lambda b: self.model.init(jax.random.PRNGKey(0), *self.model_inputs(b)),
                          batch)

  def state_shardings(self, abstract_state: TrainState, mesh, axis_rules, batch: dict) -> TrainState:
    """Params sharded by their logical axes; optimizer moments like their params; the rest replicated."""
    replicated = NamedSharding(mesh, P())
    params = mesh_lib.logical_shardings(self.abstract_variables(batch)["params"], mesh, axis_rules)
    opt_state = optim.map_param_states(abstract_state.opt_state, params, lambda _: replicated)
    return TrainState(step=replicated, params=params, opt_state=opt_state, rng=replicated,
                      ema_params=None if abstract_state.ema_params is None else params)

  def init_state(self, rng, batch: dict) -> TrainState:
    params = nn.unbox(self.model.init(rng, *self.model_inputs(batch))["params"])
    ema = params if self.config.optim.ema_decay > 0 else None
    return TrainState(step=jnp.zeros([], jnp.int32), params=params, opt_state=self.tx.init(params),
                      rng=step_rng_data(self.config.train),
                      ema_params=ema)

  def train_step(self, state: TrainState, batch: dict) -> tuple[TrainState, dict]:
    rng = step_key(state, self.config.train)
    grad_fn = jax.value_and_grad(self.loss, has_aux=True)
    (loss, metrics), grads = grad_fn(state.params, batch, rng, True, state.step)
    grads = self.filter_updates(grads, state.step)
    updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
    updates = self.filter_updates(updates, state.step)
    params = optax.apply_updates(state.params, updates)
    ema = state.ema_params
    if ema is not None:
      ema = optim.ema_update(ema, params, self.config.optim.ema_decay)
    metrics = {**metrics, "loss": loss, "grad_norm": optax.global_norm(grads),
               "lr": optim.learning_rate(state.opt_state, self.schedule),
               "skipped_updates": optim.num_skipped_updates(opt_state)}
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state, ema_params=ema)
    return new_state, metrics

  def eval_step(self, state: TrainState, batch: dict) -> dict:
    params = state.ema_params if state.ema_params is not None else state.params
    loss, metrics = self.loss(params, batch, jax.random.PRNGKey(0), False, state.step)
    return {**metrics, "loss": loss}

  def flops_per_example(self) -> float:
    return 3.0 * self.forward_flops()   # forward + backward (2x)
