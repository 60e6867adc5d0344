"""SoundStream codec training: generator (codec) and discriminators updated in ONE jitted step.

    G:  fake = SoundStream(inputs, n_q per example)          (codebooks: EMA updates in "vq_stats")
        L_G = λ_rec L_rec(target, fake) + λ_adv L_adv + λ_feat L_feat + λ_commit commitment
    D:  L_D = hinge(D(target), D(stop_gradient(fake)))

Both losses come from one forward pass of the discriminators on concat([target, fake]): its VJP is taken
once towards the fake audio (for G) and once towards the discriminator params (for D), so the step costs one
generator forward/backward and one discriminator forward plus two backward passes. G is updated with the
`optim` optimizer and D with `task.disc_optim`, both from the same (old) parameters. During the first
`task.warmup_steps` steps only L_rec (and commitment) train G and D is not updated (`lax.cond`, no host sync).

Quantizer dropout draws n_q ∈ [1, N_q] per example; `bitrate_kbps` is the batch mean of n_q · log2 N ·
frame rate. Denoising (`task.denoise`, needs `model.film` != "none"): each example is made noisy (white
noise at an SNR drawn from `task.noise_snr_db`) with probability `task.noise_prob`, and gets a random flag;
target = clean audio when the flag is set, else the input (so clean inputs train with both flags).
The records are 16 kHz; a model at another `model.sample_rate` gets the audio resampled inside the step.

TrainState layout (`CodecState`): params = {"generator", "discriminator", "vq_stats"} (everything the codec
needs for inference sits in params, so `checkpoint.load_model` restores a codec), opt_state =
{"generator", "discriminator"}. FLOPs for MFU count the generator only (discriminators excluded).
"""
from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from flax import linen as nn
from jax.sharding import NamedSharding, PartitionSpec as P

from speechjax.audio.resample import resample
from speechjax.config import require
from speechjax.data import records
from speechjax.models import soundstream, soundstream_disc
from speechjax.nn import rvq
from speechjax.parallel import mesh as mesh_lib
from speechjax.tasks import base
from speechjax.tasks import codec_losses as losses
from speechjax.train import optim


@flax.struct.dataclass
class CodecState:
  step: jax.Array     # int32 scalar
  params: Any         # {"generator": ..., "discriminator": ..., "vq_stats": ...}
  opt_state: Any      # {"generator": ..., "discriminator": ...}
  rng: jax.Array      # uint32[2]; step keys are fold_in(rng, step)


def validate(cfg) -> None:
  t, hop = cfg.task, soundstream.hop_length(cfg.model)
  samples = model_samples(cfg)
  require(samples % hop == 0, "data.max_sample_size", cfg.data.max_sample_size,
          f"must give a multiple of the hop {hop} at model.sample_rate={cfg.model.sample_rate} ({samples})")
  for name in ("reconstruction_weight", "adversarial_weight", "feature_weight", "commitment_weight"):
    require(t[name] >= 0, f"task.{name}", t[name], "must be >= 0")
  require(t.warmup_steps >= 0, "task.warmup_steps", t.warmup_steps, "must be >= 0")
  require(not t.denoise or cfg.model.film != "none", "task.denoise", t.denoise,
          "needs model.film = 'encoder' or 'decoder'")
  require(0.0 <= t.noise_prob <= 1.0, "task.noise_prob", t.noise_prob, "must be in [0, 1]")
  require(len(t.noise_snr_db) == 2 and t.noise_snr_db[0] <= t.noise_snr_db[1], "task.noise_snr_db",
          t.noise_snr_db, "must be (low, high) in dB")
  # options of the single-optimizer trainer step that this task's own step does not implement
  for field, value in (("optim.ema_decay", cfg.optim.ema_decay), ("task.disc_optim.ema_decay",
                                                                   t.disc_optim.ema_decay)):
    require(value == 0, field, value, "the codec task keeps no parameter EMA; must be 0")
  require(t.disc_optim.grad_accum_steps == cfg.optim.grad_accum_steps, "task.disc_optim.grad_accum_steps",
          t.disc_optim.grad_accum_steps,
          f"must equal optim.grad_accum_steps={cfg.optim.grad_accum_steps} (G and D update together)")


def model_samples(cfg) -> int:
  """Samples per example at the model's rate (the records are 16 kHz)."""
  return cfg.data.max_sample_size * cfg.model.sample_rate // records.SAMPLE_RATE


def add_noise(rng, audio, mask, snr_db):
  """audio [B, T] plus white noise at an SNR drawn per example from U[snr_db] (relative to its RMS)."""
  snr_rng, noise_rng = jax.random.split(rng)
  snr = jax.random.uniform(snr_rng, audio.shape[:1], minval=snr_db[0], maxval=snr_db[1])
  power = jnp.sum(audio ** 2, -1) / jnp.maximum(mask.sum(-1), 1)
  scale = jnp.sqrt(power / 10.0 ** (snr / 10.0))
  return audio + scale[:, None] * jax.random.normal(noise_rng, audio.shape) * mask


class Task(base.Task):

  def __init__(self, config):
    validate(config)
    super().__init__(config)
    self.disc = soundstream_disc.from_config(config.task.discriminator)
    self.disc_tx, self.disc_schedule = optim.make_optimizer(config.task.disc_optim, config.train.num_steps)

  def build_model(self):
    return soundstream.from_config(self.config.model)

  def forward_flops(self):
    return soundstream.forward_flops(self.config.model, model_samples(self.config))

  # --- state --------------------------------------------------------------------------------
  def _variables(self, rng, batch):
    """Boxed {"generator", "discriminator", "vq_stats"} for the batch's static shapes."""
    gen_rng, disc_rng = jax.random.split(rng)
    audio = resample(batch["audio"], model_samples(self.config))   # not a constant: XLA folds no convs
    gen = soundstream.init_variables(self.model, gen_rng, audio)
    disc = self.disc.init(disc_rng, audio)
    return {"generator": gen["params"], "discriminator": disc["params"], "vq_stats": gen["vq_stats"]}

  def abstract_variables(self, batch):
    """Boxed variable shapes; nothing runs eagerly, so it works on a mesh of abstract (AOT) devices."""
    return {"params": jax.eval_shape(lambda b: self._variables(jax.random.PRNGKey(0), b), batch)}

  def init_state(self, rng, batch):
    params = nn.unbox(self._variables(rng, batch))
    opt_state = {"generator": self.tx.init(params["generator"]),
                 "discriminator": self.disc_tx.init(params["discriminator"])}
    return CodecState(step=jnp.zeros([], jnp.int32), params=params, opt_state=opt_state,
                      rng=base.step_rng_data(self.config.train))

  def state_shardings(self, abstract_state, mesh, axis_rules, batch):
    replicated = NamedSharding(mesh, P())
    params = mesh_lib.logical_shardings(self.abstract_variables(batch)["params"], mesh, axis_rules)
    opt_state = {k: optim.map_param_states(abstract_state.opt_state[k], params[k], lambda _: replicated)
                 for k in ("generator", "discriminator")}
    return CodecState(step=replicated, params=params, opt_state=opt_state, rng=replicated)

  # --- step ---------------------------------------------------------------------------------
  def _pairs(self, rng, batch):
    """(inputs [B, T'], target [B, T'], audio mask [B, T'], denoise flags [B] or None) at the model rate."""
    samples = model_samples(self.config)
    mask = resample(batch["audio_mask"].astype(jnp.float32), samples) > 0.5
    clean = resample(batch["audio"] * batch["audio_mask"], samples) * mask
    t = self.config.task
    if not t.denoise:
      return clean, clean, mask, None
    noisy_rng, flag_rng, noise_rng = jax.random.split(rng, 3)
    noisy = jax.random.bernoulli(noisy_rng, t.noise_prob, clean.shape[:1])
    flag = jax.random.bernoulli(flag_rng, 0.5, clean.shape[:1])
    inputs = jnp.where(noisy[:, None], add_noise(noise_rng, clean, mask, t.noise_snr_db), clean)
    return inputs, jnp.where(flag[:, None], clean, inputs), mask, flag

  def _adversarial(self, disc_params, target, fake):
    """(dL_G/dfake from L_adv and L_feat, dL_D/dparams, metrics) from one discriminator pass."""
    t = self.config.task

    def discriminate(params, fake):
      return self.disc.apply({"params": params}, losses.interleave_real_fake(target, fake))

    def generator_loss(outputs):
      real, fake = losses.split_real_fake(outputs)
      adv, feat = losses.generator_hinge(fake), losses.feature_matching(real, fake)
      return t.adversarial_weight * adv + t.feature_weight * feat, (adv, feat)

    outputs, vjp = jax.vjp(discriminate, disc_params, fake)
    (_, (adv, feat)), g_cotangent = jax.value_and_grad(generator_loss, has_aux=True)(outputs)
    disc_loss, d_cotangent = jax.value_and_grad(
        lambda o: losses.discriminator_hinge(*losses.split_real_fake(o)))(outputs)
    return vjp(g_cotangent)[1], vjp(d_cotangent)[0], {"adv": adv, "feat": feat, "disc_loss": disc_loss}

  def _generator_only(self, disc_params, target, fake):
    del target
    zero = jnp.zeros([], jnp.float32)
    return (jnp.zeros_like(fake), jax.tree.map(jnp.zeros_like, disc_params),
            {"adv": zero, "feat": zero, "disc_loss": zero})

  def _generate(self, gen_params, vq_stats, inputs, mask, num_active, flag, rng):
    """fake audio [B, T] and commitment, with (new vq_stats, quantizer metrics) as aux."""
    out, new = self.model.apply({"params": gen_params, "vq_stats": vq_stats}, inputs, mask, num_active,
                                flag, train=True, rngs={"vq": rng}, mutable=[rvq.STATS])
    metrics = {f"{name}/q{i}": out[name][i] for name in ("perplexity", "usage")
               for i in range(self.config.model.num_quantizers)}
    metrics["codes_replaced"] = out["replaced"].sum()
    return (out["audio"] * mask, out["commitment"]), (new[rvq.STATS], metrics)

  def train_step(self, state, batch):
    cfg, t = self.config, self.config.task
    rng = base.step_key(state, self.config.train)
    pair_rng, dropout_rng, vq_rng = jax.random.split(rng, 3)
    inputs, target, mask, flag = self._pairs(pair_rng, batch)
    num_active = rvq.dropout_num_quantizers(dropout_rng, inputs.shape[0], cfg.model.num_quantizers)
    params = state.params
    (fake, commitment), gen_vjp, (vq_stats, metrics) = jax.vjp(
        lambda p: self._generate(p, params["vq_stats"], inputs, mask, num_active, flag, vq_rng),
        params["generator"], has_aux=True)
    rec, rec_grad = jax.value_and_grad(lambda f: losses.reconstruction_loss(target, f, cfg.model.sample_rate))(fake)
    adversarial = state.step >= t.warmup_steps
    adv_grad, disc_grads, adv_metrics = jax.lax.cond(
        adversarial, self._adversarial, self._generator_only, params["discriminator"], target, fake)
    (gen_grads,) = gen_vjp((t.reconstruction_weight * rec_grad + adv_grad,
                            jnp.asarray(t.commitment_weight, commitment.dtype)))
    gen, gen_opt = self._update(self.tx, gen_grads, state.opt_state["generator"], params["generator"])
    disc, disc_opt = jax.lax.cond(
        adversarial, lambda: self._update(self.disc_tx, disc_grads, state.opt_state["discriminator"],
                                          params["discriminator"]),
        lambda: (params["discriminator"], state.opt_state["discriminator"]))
    loss = (t.reconstruction_weight * rec + t.commitment_weight * commitment
            + t.adversarial_weight * adv_metrics["adv"] + t.feature_weight * adv_metrics["feat"])
    opt_state = {"generator": gen_opt, "discriminator": disc_opt}
    metrics = {**metrics, **adv_metrics, "loss": loss, "rec": rec, "commitment": commitment,
               "bitrate_kbps": jnp.mean(num_active) * self._kbps_per_codebook(),
               "grad_norm": optax.global_norm(gen_grads), "disc_grad_norm": optax.global_norm(disc_grads),
               "lr": optim.learning_rate(state.opt_state["generator"], self.schedule),
               "skipped_updates": optim.num_skipped_updates(opt_state)}
    new_params = {"generator": gen, "discriminator": disc, "vq_stats": vq_stats}
    return state.replace(step=state.step + 1, params=new_params, opt_state=opt_state), metrics

  @staticmethod
  def _update(tx, grads, opt_state, params):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  def _kbps_per_codebook(self) -> float:
    return soundstream.bitrate(self.config.model, 1) / 1000.0

  def eval_step(self, state, batch):
    """Reconstruction loss of clean audio with all N_q codebooks and with the first one only."""
    _, target, mask, _ = self._pairs(jax.random.PRNGKey(0), batch)
    params, n_max = state.params, self.config.model.num_quantizers
    variables = {"params": params["generator"], "vq_stats": params["vq_stats"]}
    metrics = {}
    for n_q in sorted({1, n_max}):
      active = jnp.full(target.shape[:1], n_q, jnp.int32)
      fake = self.model.apply(variables, target, mask, active)["audio"] * mask
      metrics[f"rec_nq{n_q}"] = losses.reconstruction_loss(target, fake, self.config.model.sample_rate)
    metrics["loss"] = metrics[f"rec_nq{n_max}"]
    return metrics

