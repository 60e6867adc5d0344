"""`allocator.reuse_freed_memory`: large buffers freed and allocated again reuse their pages."""
import os
import subprocess
import sys

import pytest

from speechjax.train import allocator

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


def test_tcmalloc_preload_for_children(tmp_path):
  library = tmp_path / "libtcmalloc_minimal.so.4"
  assert not allocator.preload_tcmalloc_for_children(str(library), {})   # not installed
  library.write_bytes(b"")
  env = {"LD_PRELOAD": "/other.so"}
  assert allocator.preload_tcmalloc_for_children(str(library), env)
  assert env["LD_PRELOAD"] == f"{library}:/other.so" and "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD" in env
  assert not allocator.preload_tcmalloc_for_children(str(library), env)   # already there
  assert not allocator.preload_tcmalloc_for_children(str(library), {"SPEECHJAX_SYSTEM_MALLOC": "1"})


def test_tcmalloc_preloaded_child_runs_jax():
  if not os.path.exists(allocator.TCMALLOC):
    pytest.skip(f"tcmalloc is not installed ({allocator.TCMALLOC}; apt-get install libtcmalloc-minimal4)")
  env = {"PATH": os.environ.get("PATH", "")}
  allocator.preload_tcmalloc_for_children(environ=env)
  probe = ("import jax.numpy as jnp; "
           "print(float(jnp.ones((512, 512)).sum()), 'tcmalloc' in open('/proc/self/maps').read())")
  out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
  assert out.stdout.split() == ["262144.0", "True"]


_REEXEC_PROBE = """
import os, sys
from speechjax.train import allocator
print("run", os.environ.get("LD_PRELOAD", ""), flush=True)
allocator.exec_with_tcmalloc(sys.argv[1])
print("went on", "tcmalloc" in open("/proc/self/maps").read(), sys.argv[1:], flush=True)
"""


def _reexec(library: str, **env) -> list[str]:
  return subprocess.run([sys.executable, "-c", _REEXEC_PROBE, library, "--flag"], capture_output=True,
                        text=True, check=True, env={"PATH": "", **env}).stdout.splitlines()


def test_exec_with_tcmalloc_restarts_the_command_line_once(tmp_path):
  missing = str(tmp_path / "libtcmalloc_minimal.so.4")
  assert _reexec(missing) == ["run ", f"went on False {[missing, '--flag']}"]   # not installed: goes on
  if not os.path.exists(allocator.TCMALLOC):
    pytest.skip(f"tcmalloc is not installed ({allocator.TCMALLOC}; apt-get install libtcmalloc-minimal4)")
  lines = _reexec(allocator.TCMALLOC)
  # the first process printed once and was replaced; the second had tcmalloc mapped and the same arguments
  assert lines == ["run ", f"run {allocator.TCMALLOC}", f"went on True {[allocator.TCMALLOC, '--flag']}"]
  assert _reexec(allocator.TCMALLOC, SPEECHJAX_SYSTEM_MALLOC="1")[-1].startswith("went on False")
