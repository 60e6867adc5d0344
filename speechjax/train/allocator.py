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
it must be preloaded. `preload_tcmalloc_for_children()` sets `LD_PRELOAD` for the processes this one starts
(the test suite's xdist workers); `speechjax tpu run` preloads it on the workers. XLA:CPU's and libtpu's
compilers spend much of their time in malloc: with tcmalloc, TPU compiles here are 9–21 % faster and
`tests/nn` runs 84 → 76 s, while tiny HuBERT's CPU step is as fast as with the setting above
(docs/scaling.md).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4   # glibc's mallopt parameters (malloc.h)
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
# tcmalloc reports every allocation over 1 GiB on stderr by default; XLA's buffers are often that large.
TCMALLOC_QUIET = {"TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": str(1 << 40)}


def reuse_freed_memory() -> bool:
  """Applies the setting to this process; False where it cannot (not glibc, or opted out)."""
  if os.environ.get("SPEECHJAX_SYSTEM_MALLOC", "") not in ("", "0"):
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
  if (environ.get("SPEECHJAX_SYSTEM_MALLOC", "") not in ("", "0") or not os.path.exists(path)
      or path in preload.split(":")):
    return False
  environ["LD_PRELOAD"] = f"{path}:{preload}" if preload else path
  for name, value in TCMALLOC_QUIET.items():
    environ.setdefault(name, value)
  return True
