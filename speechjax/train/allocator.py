"""Host allocator setting that keeps freed memory for reuse (Linux, glibc).

XLA:CPU allocates each execution's temporary buffers with malloc, and a step's buffers are tens of MB or
more. glibc serves every allocation above its mmap threshold (32 MB at most) with a fresh `mmap` and unmaps
it at `free`, so every step page-faults and zero-fills all of that memory again in the kernel. Measured on
tiny HuBERT's train step (batch 8 × 2 s, 200 steps, this 2-core machine): 0.049 → 0.037 s per step, system
time 6.1 → 1.5 s (docs/performance.md). `reuse_freed_memory()` makes glibc serve large allocations from the
heap (M_MMAP_MAX = 0) and keep freed heap memory instead of returning it (M_TRIM_THRESHOLD = 2 GiB), so
the pages of one step are reused by the next. The price: the process keeps its peak heap resident.

`speechjax` commands apply it at start; `SPEECHJAX_SYSTEM_MALLOC=1` leaves glibc's defaults.

tcmalloc (`TCMALLOC`, Debian/Ubuntu's libtcmalloc-minimal4) cannot be switched to inside a running process:
it must be preloaded. XLA:CPU's and libtpu's compilers spend much of their time in malloc: with tcmalloc,
TPU compiles here are 9–21 % faster, `tests/nn` runs 84 → 76 s and the main job 7 % faster; CPU train steps
are within −12 … +8 % of the setting above, at up to a third more resident memory (Base; docs/scaling.md,
docs/performance.md). So where it is
installed, the `speechjax` command starts itself again with it preloaded (`exec_with_tcmalloc`, before
anything imports JAX), and `preload_tcmalloc_for_children()` sets `LD_PRELOAD` for the processes a process
starts (the test suite's xdist workers). `SPEECHJAX_SYSTEM_MALLOC=1` opts out of both, and of
`reuse_freed_memory`.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4   # glibc's mallopt parameters (malloc.h)
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
# tcmalloc reports every allocation over 1 GiB on stderr by default; XLA's buffers are often that large.
TCMALLOC_QUIET = {"TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": str(1 << 40)}


def _opted_out(environ) -> bool:
  return environ.get("SPEECHJAX_SYSTEM_MALLOC", "") not in ("", "0")


def reuse_freed_memory() -> bool:
  """Applies the setting to this process; False where it cannot (not glibc, or opted out)."""
  if _opted_out(os.environ):
    return False
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    mallopt = libc.mallopt
  except (OSError, AttributeError, TypeError):   # no C library found, or not glibc
    return False
  return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


def preload_tcmalloc_for_children(path: str = TCMALLOC, environ=os.environ) -> bool:
  """Adds tcmalloc at `path` to `environ`'s LD_PRELOAD, inherited by the processes started from now on;
  False (nothing changed) where it is not installed, already preloaded, or SPEECHJAX_SYSTEM_MALLOC is set."""
  preload = environ.get("LD_PRELOAD", "")
  if _opted_out(environ) or not os.path.exists(path) or path in preload.split(":"):
    return False
  environ["LD_PRELOAD"] = f"{path}:{preload}" if preload else path
  for name, value in TCMALLOC_QUIET.items():
    environ.setdefault(name, value)
  return True


def exec_with_tcmalloc(path: str = TCMALLOC) -> None:
  """Replaces this process by the same command line with tcmalloc at `path` preloaded, where it is installed
  and not yet preloaded (nor opted out); otherwise returns. Call it first thing: whatever ran before is
  run again. A failed preload cannot loop: the new process finds `path` in LD_PRELOAD and goes on."""
  environ = dict(os.environ)
  if preload_tcmalloc_for_children(path, environ):
    os.execve(sys.executable, sys.orig_argv, environ)
