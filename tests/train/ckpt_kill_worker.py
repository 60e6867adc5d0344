"""Subprocess worker: completes a checkpoint at step 1, then SIGKILLs itself while step 2 is being written.

    python -m tests.train.ckpt_kill_worker WORKDIR   (from the repo root)
"""
import os
import signal
import sys

import flax
import jax.numpy as jnp
import ml_collections

from speechjax.train import checkpoint


@flax.struct.dataclass
class State:
  """Has what the Checkpointer needs of a TrainState: `params` and `replace`."""
  params: dict
  extra: dict


def main():
  cfg = ml_collections.ConfigDict({"save_every": 1, "max_to_keep": 3, "keep_best": "", "best_mode": "min",
                                   "async_save": True})
  ckpt = checkpoint.Checkpointer(sys.argv[1], cfg, "{}")
  position = {"epoch": 0, "batch": 1}
  ckpt.save(1, State(params={"w": jnp.ones((2048, 2048))}, extra={}), position)
  ckpt.wait()
  big = {f"w{i}": jnp.full((2048, 2048), 2.0) for i in range(24)}   # ~400 MB: slow to write
  ckpt.save(2, State(params={"w": jnp.full((2048, 2048), 2.0)}, extra=big), position)
  os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
  main()
