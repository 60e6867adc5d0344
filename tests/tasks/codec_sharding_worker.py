"""Subprocess worker (8 simulated CPU devices): the codec losses' collectives with the batch sharded.

Prints one JSON line: {name: {collective: count}} of the compiled HLO of the mel reconstruction loss and
of interleave → split_real_fake, and whether the round trip returns real and fake unchanged."""
import os

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"

import json  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P  # noqa: E402

from speechjax.launch import hlo_stats  # noqa: E402
from speechjax.tasks import codec_losses  # noqa: E402


def main():
  mesh = Mesh(np.asarray(jax.devices()[:8]), ("data",))
  batch = NamedSharding(mesh, P("data"))
  rng = np.random.default_rng(0)
  real, fake = (jax.device_put(rng.normal(size=(16, 4000)).astype(np.float32), batch) for _ in range(2))
  loss = jax.jit(lambda a, b: codec_losses.reconstruction_loss(a, b, 16000))
  round_trip = jax.jit(lambda a, b: codec_losses.split_real_fake(
      (codec_losses.interleave_real_fake(a, b) * 2.0,)))
  (got_real,), (got_fake,) = round_trip(real, fake)
  counts = {name: {k: v["count"] for k, v in hlo_stats.collectives(fn.lower(real, fake).compile().as_text()).items()}
            for name, fn in (("reconstruction_loss", loss), ("real_fake_round_trip", round_trip))}
  counts["round_trip_exact"] = bool(np.array_equal(got_real, 2 * np.asarray(real))
                                    and np.array_equal(got_fake, 2 * np.asarray(fake)))
  print(json.dumps(counts))


if __name__ == "__main__":
  main()
