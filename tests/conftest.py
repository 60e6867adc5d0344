import pytest


@pytest.fixture(scope="session")
def tone_data(tmp_path_factory):
  import toy_data
  return toy_data.write_tone_dataset(str(tmp_path_factory.mktemp("tones")))
