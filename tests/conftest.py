import os
import tempfile

import pytest

# One persistent XLA compilation cache per test run, shared by the xdist workers and every subprocess the
# tests start (they inherit the environment): the same tiny programs compile in many tests (the HuBERT
# loop's resume test recompiles what its uninterrupted run compiled). Entries are keyed by the program and
# the compile options, so a hit runs the identical executable. Set before any test imports jax.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="speechjax-test-xla-cache-")
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"

# As every `speechjax` command does: large freed buffers are reused instead of mapped afresh
# (speechjax/train/allocator.py).
from speechjax.train import allocator  # noqa: E402

allocator.reuse_freed_memory()
# tcmalloc, where installed, for the xdist workers and subprocesses started after this: XLA compiles faster
# with it (tests/nn 84 → 76 s on 2 cores).
allocator.preload_tcmalloc_for_children()


@pytest.fixture(scope="session")
def tone_data(tmp_path_factory):
  from tests.helpers import toy_data
  return toy_data.write_tone_dataset(str(tmp_path_factory.mktemp("tones")))


@pytest.fixture(scope="session")
def synth_records(tmp_path_factory):
  """The `micro` synthetic corpus (20 utterances, phone alignments) as prepared records."""
  from speechjax.data import prepare, synth
  root = tmp_path_factory.mktemp("synth_micro")
  synth.generate(str(root / "corpus"), size="micro", seed=1)
  prepare.prepare(str(root / "corpus"), str(root / "records"))
  return str(root / "records")


@pytest.fixture(scope="module")
def pretrained(synth_records, tmp_path_factory):
  """A 2-step tiny wav2vec 2.0 run on the micro corpus (its workdir), for the fine-tuning and analysis tests
  (tests/tasks/test_ctc.py, test_probe.py, tests/eval/test_analyze.py); one per test module."""
  from tests.helpers import harness
  return harness.pretrain_tiny_wav2vec2(synth_records, str(tmp_path_factory.mktemp("w2v2")))


FAST_COMPILE = "jax_disable_most_optimizations"


@pytest.fixture(scope="session")
def tpu_mesh():
  """A v5e 2x2 slice (4 chips) as a (data, fsdp, tensor) = (4, 1, 1) mesh of abstract devices: ahead-of-time
  TPU compiles on this machine (needs libtpu, no TPU); skips when the TPU compiler cannot start."""
  import numpy as np
  from jax.experimental import topologies
  from jax.sharding import Mesh
  # Ahead-of-time compiles use no TPU: let libtpu start beside another process holding its lockfile.
  os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
  try:
    topo = topologies.get_topology_desc(topology_name="v5e:2x2", platform="tpu")
  except Exception as e:  # pylint: disable=broad-except
    pytest.skip(f"no TPU compiler (libtpu: pip install 'jax[tpu]'): {type(e).__name__}: {e}")
  return Mesh(np.array(topo.devices).reshape(4, 1, 1), ("data", "fsdp", "tensor"))


def _fast_compile_if_marked(request):
  """Sets FAST_COMPILE while `request.node` (a module or a test) carries the `fast_compile` marker."""
  if request.node.get_closest_marker("fast_compile") is None:
    yield
    return
  import jax
  previous = jax.config.values[FAST_COMPILE]
  jax.config.update(FAST_COMPILE, True)
  yield
  jax.config.update(FAST_COMPILE, previous)


@pytest.fixture(autouse=True, scope="module")
def _fast_compile_module(request):
  """`pytestmark = pytest.mark.fast_compile` (the model, layer and interop tests): the whole module, its
  module-scoped fixtures included, runs with most XLA optimisations skipped. They compile many small programs
  once each: this cuts their CPU time by ~40% (results stay within the tests' tolerances). Not for the
  trainer tests, whose bitwise comparisons span subprocesses compiled with default flags."""
  yield from _fast_compile_if_marked(request)


@pytest.fixture(autouse=True)
def _fast_compile_test(request):
  """`@pytest.mark.fast_compile` on one test (one that compiles many small programs once each)."""
  yield from _fast_compile_if_marked(request)


# The modules that take longest (seconds of one worker in a full `-n 2` run, 2026-12-07), started first and
# longest first, so that the two xdist workers finish together. pytest.ini passes --no-loadscope-reorder:
# by default xdist starts the modules with the most tests first, which left the few-but-long ones (the
# loop, the notebook, the text LM) running alone at the end. A stale list only costs speed.
SLOW_MODULES = ("tasks/test_speech_llm.py", "tasks/test_pretrain_training.py", "eval/test_generate.py",
                "launch/test_hubert_loop.py", "launch/test_compile.py", "tasks/test_codec_gan.py",
                "tasks/test_ctc.py", "train/test_multiprocess.py", "tasks/test_pretrain_wav2vec.py",
                "models/test_token_lm.py", "train/test_trainer_resume.py", "train/test_trainer_mesh.py",
                "models/test_soundstream_disc.py", "tasks/test_pretrain_wavlm.py", "tasks/test_probe.py",
                "test_notebook.py", "train/test_trainer_basics.py", "nn/test_attention.py")


def pytest_collection_modifyitems(items):
  """Slow modules first (SLOW_MODULES order); the rest keep their order. Every worker sorts alike."""
  rank = {f"tests/{module}": i for i, module in enumerate(SLOW_MODULES)}
  items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
