"""Sharded = single device: encoder gradients on an FSDP + tensor-parallel mesh of simulated devices.

Guards against XLA SPMD partitioning bugs: partitioned by XLA, the positional conv's grouped conv
(`feature_group_count`) returned its weight gradient doubled on both meshes (batch sharded over one axis,
replicated over `tensor`); speechjax/nn/pos_conv.py computes it as matmuls over blocks of taps instead
(kernel 20 here: a scan over 4-tap blocks)."""
import json
import subprocess

import pytest

from tests.helpers import harness

pytestmark = pytest.mark.fast_compile

SHAPES = ([1, 2, 2], [2, 1, 2])   # (data, fsdp, tensor): batch over fsdp or data, heads/mlp over tensor


def test_sharded_gradients_equal_single_device():
  out = subprocess.run(harness.worker_command("tests.nn.sharding_worker", json.dumps(SHAPES)),
                       cwd=harness.REPO, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  for shape, errors in json.loads(out.stdout.strip().splitlines()[-1]).items():
    assert any("pos_conv_embed" in leaf for leaf in errors)
    worst = max(errors, key=errors.get)
    print(f"mesh {shape}: worst relative gradient error {errors[worst]:.1e} ({worst})")
    assert errors[worst] < 1e-4, (shape, worst)
