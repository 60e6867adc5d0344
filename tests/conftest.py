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
