"""fairseq .km label files and dict.km.txt."""
import numpy as np
import pytest

from speechjax.data import labels


def test_km_round_trip(tmp_path):
  path = str(tmp_path / "train.km")
  utterances = [np.array([3, 3, 17, 0]), np.array([], np.int64), np.array([499], np.int16)]
  labels.write_km(path, utterances)
  assert open(path).read() == "3 3 17 0\n\n499\n"
  loaded = labels.read_km(path)
  assert len(loaded) == 3
  for got, want in zip(loaded, utterances):
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, want)


def test_write_dict(tmp_path):
  path = str(tmp_path / "dict.km.txt")
  labels.write_dict(path, 3)
  assert open(path).read() == "0 1\n1 1\n2 1\n"
  with pytest.raises(ValueError, match="positive"):
    labels.write_dict(path, 0)


def test_bad_km_lines_name_the_line(tmp_path):
  path = tmp_path / "bad.km"
  path.write_text("1 2\n3 x 4\n")
  with pytest.raises(ValueError, match=r"bad.km:2"):
    labels.read_km(str(path))
  path.write_text("1 -2\n")
  with pytest.raises(ValueError, match=r"bad.km:1"):
    labels.read_km(str(path))


def test_bad_labels_leave_no_file(tmp_path):
  path = tmp_path / "train.km"
  with pytest.raises(ValueError, match="utterance 1"):
    labels.write_km(str(path), [np.array([1, 2]), np.array([0.5])])
  with pytest.raises(ValueError, match="utterance 0"):
    labels.write_km(str(path), [np.array([[1, 2]])])
  assert list(tmp_path.iterdir()) == []
