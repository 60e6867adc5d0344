"""`allocator.reuse_freed_memory`: large buffers freed and allocated again reuse their pages."""
import subprocess
import sys

import pytest

_PROBE = """
import resource, sys
import numpy as np
from speechjax.train import allocator
applied = allocator.reuse_freed_memory() if sys.argv[1] == "reuse" else False
np.ones(64 << 17)   # 64 MiB of float64, touched once to grow the heap
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
  np.ones(64 << 17)
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str, **env) -> tuple[str, int]:
  out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True,
                       env={**env, "PATH": ""}).stdout.split()
  return out[0], int(out[1])


def test_reuse_avoids_page_faults_of_freed_buffers():
  applied, reused = _faults("reuse")
  if applied != "True":
    pytest.skip("mallopt is glibc-only")
  _, default = _faults("default")
  huge_pages = 10 * 64 // 2   # 10 × 64 MiB; numpy asks for 2 MiB pages, 4 KiB ones fault more
  assert default >= huge_pages   # glibc maps each buffer afresh: its pages fault again
  assert reused < default / 20


def test_opt_out():
  assert _faults("reuse", SPEECHJAX_SYSTEM_MALLOC="1")[0] == "False"
