"""Subprocess worker for test_sharding.py: gradients of a small TransformerEncoder (positional conv +
layers, params and batch sharded by their logical axes) on meshes of 4 simulated CPU devices, against one
device.

    python -m tests.nn.sharding_worker '[[1,2,2]]'   (from the repo root)
Prints one JSON line {"1,2,2": {leaf: max abs error / max(max abs reference, 1e-3)}}.
"""
import json
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"

import jax  # noqa: E402  (after XLA_FLAGS)
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
from flax import linen as nn  # noqa: E402

from speechjax.nn.transformer import EncoderConfig, TransformerEncoder  # noqa: E402
from speechjax.parallel import mesh as mesh_lib  # noqa: E402

jax.config.update("jax_disable_most_optimizations", True)
B, F, D = 4, 16, 32


def _problem():
  model = TransformerEncoder(EncoderConfig(num_layers=1, num_heads=4, intermediate_size=64, pos_conv_kernel=20,
                                           pos_conv_groups=4))
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((B, F, D)), jnp.float32)
  mask = jnp.asarray(np.arange(F)[None] < np.array([[F], [12], [F], [9]]))
  weights = jnp.asarray(rng.standard_normal((B, F, D)), jnp.float32)
  boxed = jax.eval_shape(model.init, jax.random.PRNGKey(0), x, mask)
  params = jax.tree.map(lambda v: jnp.asarray(0.2 * rng.standard_normal(v.shape), v.dtype),
                        nn.unbox(boxed)["params"])

  def loss(p, x, mask):
    return jnp.sum(model.apply({"params": p}, x, mask)[0] * weights)
  return boxed["params"], params, x, mask, jax.grad(loss)


def main():
  boxed, params, x, mask, grad_fn = _problem()
  reference = jax.jit(grad_fn)(params, x, mask)
  result = {}
  for shape in json.loads(sys.argv[1]):
    mesh_cfg = ml_collections.ConfigDict({"shape": tuple(shape), "rules": mesh_lib.DEFAULT_RULES})
    mesh, rules = mesh_lib.make_mesh(mesh_cfg), mesh_lib.rules(mesh_cfg)
    shardings = mesh_lib.logical_shardings(boxed, mesh, rules)
    batch = mesh_lib.batch_sharding(mesh)
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
      grads = jax.jit(grad_fn, in_shardings=(shardings, batch, batch),
                      out_shardings=shardings)(jax.device_put(params, shardings), x, mask)
    result[",".join(map(str, shape))] = {
        jax.tree_util.keystr(path): float(jnp.abs(g - r).max() / max(float(jnp.abs(r).max()), 1e-3))
        for (path, g), r in zip(jax.tree_util.tree_leaves_with_path(grads), jax.tree.leaves(reference))}
  print(json.dumps(result))


if __name__ == "__main__":
  main()
