"""Where a SoundStream train step's TPU compile time goes: its pieces compiled alone for one v4 core.

    python benchmarks/soundstream_compile_pieces.py [--preset 16khz] [--pieces generator_fwd_bwd,...]
        [--disc-dtype bfloat16]

The task's own functions (speechjax.tasks.codec_gan) at the preset's per-device batch (4 × 2 s; the codec in
bf16 and the discriminators in their configured dtype, float32, as benchmarks/compiles_presets compiles them),
compiled by libtpu on this CPU (no TPU): the generator's fwd + bwd, the discriminators (forward only; with
the backward towards their parameters; with both backwards, as the step runs them), the multi-scale mel
loss, the 16 kHz → model-rate resampling and the two Adam updates. Prints one JSON line per piece; the
pieces add up to about the whole step (`speechjax compile`), docs/scaling.md.
"""
import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from jax.sharding import NamedSharding, PartitionSpec as P

from speechjax import config as config_lib
from speechjax.audio.resample import resample
from speechjax.launch import compile as compile_lib
from speechjax.launch import plan
from speechjax.parallel import mesh as mesh_lib
from speechjax.tasks import codec_losses as losses
from speechjax.tasks import get_task
from speechjax.train import checkpoint, trainer

PER_DEVICE_BATCH = 4


def task_and_state(preset: str, disc_dtype: str):
  """(task, abstract state on one v4 core, mesh, replicated sharding, samples at the model's rate)."""
  cfg = config_lib.load(f"configs/soundstream.py:{preset}", [
      "--config.model.dtype=bfloat16", f"--config.data.batch_size={PER_DEVICE_BATCH}",
      "--config.mesh.shape=(1, 1, 1)", "--config.data.path=/nonexistent"]
      + ([f"--config.task.discriminator.dtype={disc_dtype}"] if disc_dtype else []))
  mesh = mesh_lib.make_mesh(cfg.mesh, compile_lib.tpu_devices(plan.parse_topology("v4-8"))[:1])
  rules = mesh_lib.rules(cfg.mesh)
  task = get_task(cfg)
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    state, _ = trainer.abstract_state(task, mesh, rules, checkpoint.example_batch(cfg, 1),
                                      jax.ShapeDtypeStruct((2,), np.uint32))
  replicated = NamedSharding(mesh, P())
  state = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), state)
  return task, state, mesh, replicated, cfg.data.max_sample_size * cfg.model.sample_rate // 16000


def pieces(task, state, replicated, samples: int) -> dict:
  """name → (function, abstract arguments)."""
  def array(shape, dtype=jnp.float32):
    return jax.ShapeDtypeStruct(shape, dtype, sharding=replicated)

  audio, params = array((PER_DEVICE_BATCH, samples)), state.params
  records_audio = array((PER_DEVICE_BATCH, task.config.data.max_sample_size))

  def generator(gen, vq_stats, x, mask, num_active, key):
    (fake, commitment), vjp, _ = jax.vjp(
        lambda g: task._generate(g, vq_stats, x, mask, num_active, None, key), gen, has_aux=True)
    return vjp((fake, jnp.ones_like(commitment)))

  def discriminate(disc, target, fake):
    return task.disc.apply({"params": disc}, losses.interleave_real_fake(target, fake))

  def discriminators_param_backward(disc, target, fake):
    outputs, vjp = jax.vjp(lambda d: discriminate(d, target, fake), disc)
    return vjp(jax.tree.map(jnp.ones_like, outputs))

  def mel_loss(target, fake):
    return jax.value_and_grad(
        lambda f: losses.reconstruction_loss(target, f, task.config.model.sample_rate))(fake)

  def update(tx):
    return lambda grads, opt_state, p: task._update(tx, grads, opt_state, p)

  gen_args = (params["generator"], params["vq_stats"], audio, array(audio.shape, jnp.bool_),
              array((PER_DEVICE_BATCH,), jnp.int32), array((2,), jnp.uint32))
  disc_args = (params["discriminator"], audio, audio)
  return {
      "generator_fwd_bwd": (generator, gen_args),
      "discriminators_forward": (discriminate, disc_args),
      "discriminators_param_backward": (discriminators_param_backward, disc_args),
      "discriminators_both_backwards": (task._adversarial, disc_args),
      "mel_loss_fwd_bwd": (mel_loss, (audio, audio)),
      "resample_to_model_rate": (lambda x: resample(x, samples), (records_audio,)),
      "update_generator": (update(task.tx), (params["generator"], state.opt_state["generator"],
                                             params["generator"])),
      "update_discriminators": (update(task.disc_tx), (params["discriminator"],
                                                       state.opt_state["discriminator"],
                                                       params["discriminator"])),
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--preset", default="16khz", choices=("16khz", "24khz"))
  parser.add_argument("--pieces", default="", help="comma-separated names (default: all)")
  parser.add_argument("--disc-dtype", default="", help="the discriminators' compute dtype (default: the preset's)")
  args = parser.parse_args()
  task, state, mesh, replicated, samples = task_and_state(args.preset, args.disc_dtype)
  wanted = set(filter(None, args.pieces.split(",")))
  by_name = pieces(task, state, replicated, samples)
  if wanted - set(by_name):
    parser.error(f"--pieces: unknown {sorted(wanted - set(by_name))}; pieces are {sorted(by_name)}")
  with jax.set_mesh(mesh):
    for name, (fn, fn_args) in by_name.items():
      if wanted and name not in wanted:
        continue
      start = time.perf_counter()
      compiled = jax.jit(fn).lower(*fn_args).compile()
      seconds = time.perf_counter() - start
      cost = compiled.cost_analysis() or {}
      print(json.dumps({"preset": args.preset, "disc_dtype": task.config.task.discriminator.dtype,
                        "piece": name, "compile_s": round(seconds, 1),
                        "xla_gflop": round(cost.get("flops", 0.0) / 1e9, 2),
                        "gib_accessed": round(cost.get("bytes accessed", 0.0) / 2**30, 2)}), flush=True)


if __name__ == "__main__":
  main()
