"""Sharded = single device: gradients on FSDP and FSDP + tensor-parallel meshes of simulated devices.

Guards against XLA SPMD partitioning bugs:
- partitioned by XLA, the positional conv's grouped conv (`feature_group_count`) returned its weight gradient
  doubled on both mixed meshes (batch sharded over one axis, replicated over `tensor`);
  speechjax/nn/pos_conv.py computes it as matmuls over blocks of taps instead (kernel 20 here: a scan over
  4-tap blocks);
- conv kernels sharded over their input channels (`conv_in` over `fsdp`) got wrong input gradients; they are
  all-gathered before the conv (speechjax.nn.partitioning.gathered_kernel). Checked on the wav2vec 2.0
  conv feature encoder and on SoundStream's lane-folded encoder and decoder."""
import json
import subprocess

import pytest

from tests.helpers import harness

pytestmark = pytest.mark.fast_compile

# (data, fsdp, tensor): batch over fsdp or data or both, heads/mlp/conv outputs over tensor. Without the
# gathered conv kernels, the conv encoder's gradients are wrong on (2, 2, 2) (relative error 1.2).
SHAPES = ([1, 2, 2], [2, 1, 2], [2, 2, 2])


def test_sharded_gradients_equal_single_device():
  out = subprocess.run(harness.worker_command("tests.nn.sharding_worker", json.dumps(SHAPES)),
                       cwd=harness.REPO, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert sorted(result) == ["conv_encoder", "soundstream", "transformer"]
  assert any("pos_conv_embed" in leaf for leaf in result["transformer"]["1,2,2"])
  for module, by_shape in result.items():
    for shape, errors in by_shape.items():
      worst = max(errors, key=errors.get)
      print(f"{module}, mesh {shape}: worst relative gradient error {errors[worst]:.1e} ({worst})")
      assert errors[worst] < 1e-4, (module, shape, worst)
