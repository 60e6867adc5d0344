"""`cpu_threefry.unroll`: the same random bits as JAX's rolled CPU loop, from a program without the loop."""
import subprocess
import sys

import numpy as np

_PROBE = """
import re, sys
import jax, numpy as np
from speechjax.train import cpu_threefry
applied = cpu_threefry.unroll()
draw = jax.jit(lambda key: (jax.random.bits(key, (3, 1001)), jax.random.bernoulli(key, 0.1, (7, 13))))
hlo = draw.lower(jax.random.key(5)).compile().as_text()
bits, mask = draw(jax.random.key(5))
np.save(sys.argv[1], np.concatenate([np.asarray(bits).ravel(), np.asarray(mask).ravel().astype(np.uint32)]))
print(applied, re.search(r" while\(", hlo) is not None)   # a while instruction
"""


def _draw(tmp_path, name: str, **env) -> tuple[list[str], np.ndarray]:
  out = tmp_path / f"{name}.npy"
  flags = subprocess.run([sys.executable, "-c", _PROBE, str(out)], capture_output=True, text=True,
                         check=True, env={**env, "PATH": "", "JAX_PLATFORMS": "cpu"}).stdout.split()
  return flags, np.load(out)


def test_unrolled_lowering_draws_the_same_bits_without_a_loop(tmp_path):
  (applied, has_loop), unrolled = _draw(tmp_path, "unrolled")
  (kept, had_loop), rolled = _draw(tmp_path, "rolled", SPEECHJAX_ROLLED_THREEFRY="1")
  assert (applied, kept) == ("True", "False")
  assert (has_loop, had_loop) == ("False", "True")   # the rolled lowering is a while loop in the HLO
  np.testing.assert_array_equal(unrolled, rolled)
  assert len(np.unique(unrolled[:3003])) > 3000   # real bits, not a constant
