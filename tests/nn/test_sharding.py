"""Sharded = single device: encoder gradients on an FSDP + tensor-parallel mesh of simulated devices.

Guards against XLA SPMD partitioning bugs: with a grouped conv (`feature_group_count`) the positional
conv's weight gradient came back doubled on this mesh (see speechjax/nn/pos_conv.py)."""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(__file__)
SHAPE = [1, 2, 2]   # (data, fsdp, tensor): batch and `embed` over fsdp, heads/mlp over tensor


def test_sharded_gradients_equal_single_device():
  out = subprocess.run([sys.executable, os.path.join(HERE, "sharding_worker.py"), json.dumps([SHAPE])],
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  errors = json.loads(out.stdout.strip().splitlines()[-1])["1,2,2"]
  assert any("pos_conv_embed" in leaf for leaf in errors)
  worst = max(errors, key=errors.get)
  print(f"worst relative gradient error {errors[worst]:.1e} ({worst})")
  assert errors[worst] < 1e-4, worst
