"""Subprocess worker: trains the tiny config on several meshes of 8 simulated CPU devices.

    python -m tests.train.mesh_worker DATA WORKDIR '[[8,1,1],[2,4,1]]' [--config.x=y ...]
Prints one JSON line: {"losses": {"8,1,1": [...]}, "state_bytes": {...}} (per-device argument bytes of
the compiled train step, from XLA's memory analysis).
"""
import json
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"

from tests.helpers import harness  # noqa: E402  (after XLA_FLAGS)


def main():
  data, workdir, shapes, *overrides = sys.argv[1:]
  losses, state_bytes = {}, {}
  for shape in json.loads(shapes):
    key = ",".join(map(str, shape))
    trainer = harness.make_trainer(data, os.path.join(workdir, key),
                                   [f"--config.mesh.shape={tuple(shape)}", *overrides])
    state_bytes[key] = harness.step_argument_bytes(trainer)
    losses[key] = harness.losses(trainer)
  print(json.dumps({"losses": losses, "state_bytes": state_bytes}))


if __name__ == "__main__":
  main()
