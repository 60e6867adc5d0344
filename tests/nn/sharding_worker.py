"""Subprocess worker for test_sharding.py: gradients of small modules (params and batch sharded by their
logical axes) on meshes of up to 8 simulated CPU devices, against one device. Modules: a TransformerEncoder
(positional conv + layers), the wav2vec 2.0 conv feature encoder, and SoundStream's lane-folded encoder and
decoder (strided, dilated and transposed convs).

    python -m tests.nn.sharding_worker '[[1,2,2]]'   (from the repo root)
Prints one JSON line {module: {"1,2,2": {leaf: max abs error / max(max abs reference, 1e-3)}}}.
"""
import json
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"

import jax  # noqa: E402  (after XLA_FLAGS)
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
from flax import linen as nn  # noqa: E402

from speechjax.models import soundstream  # noqa: E402
from speechjax.nn.conv_encoder import ConvFeatureEncoder  # noqa: E402
from speechjax.nn.transformer import EncoderConfig, TransformerEncoder  # noqa: E402
from speechjax.parallel import mesh as mesh_lib  # noqa: E402

jax.config.update("jax_disable_most_optimizations", True)
B, F, D = 8, 16, 32


def _problem(model, *inputs):
  """(boxed params, params, inputs, grad of Σ output · fixed weights w.r.t. the params)."""
  rng = np.random.default_rng(0)
  boxed = jax.eval_shape(model.init, jax.random.PRNGKey(0), *inputs)
  params = jax.tree.map(lambda v: jnp.asarray(0.2 * rng.standard_normal(v.shape), v.dtype),
                        nn.unbox(boxed)["params"])
  def output(p, *inputs):   # the module's output, or the first of its outputs
    out = model.apply({"params": p}, *inputs)
    return out[0] if isinstance(out, tuple) else out
  weights = jnp.asarray(rng.standard_normal(jax.eval_shape(output, params, *inputs).shape), jnp.float32)

  def loss(p, *inputs):
    return jnp.sum(output(p, *inputs) * weights)
  return boxed["params"], params, inputs, jax.grad(loss)


class _Codec(nn.Module):
  """SoundStream's encoder then decoder (no quantizer), lane-folded: [B, T] → [B, T]."""
  config: ml_collections.FrozenConfigDict

  @nn.compact
  def __call__(self, audio):
    return soundstream.Decoder(self.config, name="decoder")(soundstream.Encoder(self.config, name="encoder")(audio))


def problems() -> dict:
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.standard_normal((B, F, D)), jnp.float32)
  mask = jnp.asarray(np.arange(F)[None] < np.array([[F], [12], [F], [9]] * (B // 4)))
  audio = jnp.asarray(rng.standard_normal((B, 9600)), jnp.float32)
  codec = soundstream.model_config("tiny")
  codec.update(strides=(2, 4), channels=4, embedding_dim=16, lane_fold=8)
  return {
      "transformer": _problem(TransformerEncoder(EncoderConfig(num_layers=1, num_heads=4, intermediate_size=64,
                                                               pos_conv_kernel=20, pos_conv_groups=4)), x, mask),
      "conv_encoder": _problem(ConvFeatureEncoder(((32, 10, 5), (32, 8, 4), (32, 4, 4), (32, 4, 4))), audio),
      "soundstream": _problem(_Codec(ml_collections.FrozenConfigDict(codec)), audio),
  }


def main():
  result = {}
  for name, (boxed, params, inputs, grad_fn) in problems().items():
    reference = jax.jit(grad_fn)(params, *inputs)
    result[name] = {}
    for shape in json.loads(sys.argv[1]):
      mesh_cfg = ml_collections.ConfigDict({"shape": tuple(shape), "rules": mesh_lib.DEFAULT_RULES})
      mesh = mesh_lib.make_mesh(mesh_cfg, jax.devices()[:int(np.prod(shape))])
      rules = mesh_lib.rules(mesh_cfg)
      shardings = mesh_lib.logical_shardings(boxed, mesh, rules)
      batch = mesh_lib.batch_sharding(mesh)
      with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        grads = jax.jit(grad_fn, in_shardings=(shardings,) + (batch,) * len(inputs),
                        out_shardings=shardings)(jax.device_put(params, shardings), *inputs)
      result[name][",".join(map(str, shape))] = {
          jax.tree_util.keystr(path): float(jnp.abs(g - r).max() / max(float(jnp.abs(r).max()), 1e-3))
          for (path, g), r in zip(jax.tree_util.tree_leaves_with_path(grads), jax.tree.leaves(reference))}
  print(json.dumps(result))


if __name__ == "__main__":
  main()
