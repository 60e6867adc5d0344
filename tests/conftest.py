import os

import pytest


@pytest.fixture(scope="session")
def tone_data(tmp_path_factory):
  import toy_data
  return toy_data.write_tone_dataset(str(tmp_path_factory.mktemp("tones")))


@pytest.fixture(scope="session")
def synth_records(tmp_path_factory):
  """The `micro` synthetic corpus (20 utterances, phone alignments) as prepared records."""
  from speechjax.data import prepare, synth
  root = tmp_path_factory.mktemp("synth_micro")
  synth.generate(str(root / "corpus"), size="micro", seed=1)
  prepare.prepare(str(root / "corpus"), str(root / "records"))
  return str(root / "records")


FAST_COMPILE_DIRS = ("nn", "models", "interop")
FAST_COMPILE = "jax_disable_most_optimizations"


@pytest.fixture
def fast_compile():
  """For one test that compiles many small programs once each (outside FAST_COMPILE_DIRS)."""
  import jax
  previous = jax.config.values[FAST_COMPILE]
  jax.config.update(FAST_COMPILE, True)
  yield
  jax.config.update(FAST_COMPILE, previous)


@pytest.fixture(autouse=True, scope="module")
def _fast_compile(request):
  """Model/layer tests compile many small programs once each: skipping most XLA optimisations cuts
  their CPU time by ~40% (results stay within the tests' tolerances). Not used for the trainer tests,
  whose bitwise comparisons span subprocesses compiled with default flags."""
  import jax
  if os.path.basename(request.fspath.dirname) not in FAST_COMPILE_DIRS:
    yield
    return
  previous = jax.config.values[FAST_COMPILE]
  jax.config.update(FAST_COMPILE, True)
  yield
  jax.config.update(FAST_COMPILE, previous)
