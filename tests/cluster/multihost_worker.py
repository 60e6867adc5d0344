"""Subprocess worker: the HuBERT loop's dump → k-means → label stage (iteration 1, MFCC) as one process
of a `jax.distributed` run on 2 simulated CPU devices per process.

    python -m tests.cluster.multihost_worker DATA WORKDIR PROCESS_ID NUM_PROCESSES PORT
"""
import os
import sys

from tests.helpers import harness

LOOP_CONFIG = os.path.join(harness.REPO, "configs", "hubert_loop.py") + ":tiny"


def main():
  os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"   # before JAX is imported
  data, workdir, process_id, num_processes, port = sys.argv[1:]
  from speechjax.parallel import mesh
  mesh.maybe_init_distributed(f"127.0.0.1:{port}", int(num_processes), int(process_id))
  from speechjax.launch import hubert_loop
  from speechjax import config
  cfg = config.load(LOOP_CONFIG, [f"--config.data={data}"])
  hubert_loop.Loop(cfg, workdir).cluster(1, cfg.iterations[0])


if __name__ == "__main__":
  main()
