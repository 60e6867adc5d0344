"""Tests for `speechjax prepare`: every kind of source, bad inputs, output layout."""
import argparse
import json
import os

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf
import tensorflow_datasets as tfds

from speechjax.data import prepare as prep
from speechjax.data import records
from speechjax.data.prepare import PrepareError, Summary

RATE = 16000


def _tone(freq: float, seconds: float, rate: int, channels: int = 1) -> np.ndarray:
  """[T] (or [T, channels]) float32 sine at half scale."""
  t = np.arange(round(seconds * rate)) / rate
  x = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
  return np.repeat(x[:, None], channels, axis=1) if channels > 1 else x


def _pcm(seconds: float, seed: int = 0) -> np.ndarray:
  """[T] int16 noise at 16 kHz."""
  return np.random.default_rng(seed).integers(-8000, 8000, round(seconds * RATE), dtype=np.int16)


def _write(path, samples, rate=RATE, **kwargs):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  sf.write(path, samples, rate, **kwargs)
  return str(path)


def _peak_hz(audio: np.ndarray) -> float:
  return np.argmax(np.abs(np.fft.rfft(audio))) * RATE / len(audio)


def _read_split(out_dir, split, label_names=()):
  """The split's examples in written order (shards are filled round-robin), as numpy dicts."""
  meta = records.read_meta(str(out_dir))
  per_shard = []
  for name in meta.splits[split].shards:
    ds = tf.data.TFRecordDataset(os.path.join(out_dir, name))
    per_shard.append([_to_numpy(records.parse_example(r, label_names)) for r in ds])
  ordered = [ex for row in _zip_longest(per_shard) for ex in row]
  assert len(ordered) == meta.splits[split].num_examples
  return ordered


def _zip_longest(lists):
  longest = max(map(len, lists))
  return [[l[i] for l in lists if i < len(l)] for i in range(longest)]


def _to_numpy(example):
  out = {}
  for key, value in example.items():
    value = value.numpy()
    out[key] = value.decode() if isinstance(value, bytes) else value
  return out


def _report(out_dir):
  with open(os.path.join(out_dir, "report.tsv")) as f:
    return [tuple(line.rstrip("\n").split("\t")) for line in f]


def _run(source, out_dir, **kwargs):
  summary = Summary()
  meta = prep.prepare(str(source), str(out_dir), summary=summary, **kwargs)
  assert summary.inputs == summary.written + sum(summary.skipped.values())
  return meta, summary


# --- folder of audio files -------------------------------------------------------------------


def test_folder_resamples_downmixes_and_round_trips(tmp_path):
  src, out = tmp_path / "src", tmp_path / "out"
  pcm = _pcm(0.3)
  _write(src / "a.wav", pcm, subtype="PCM_16")
  _write(src / "sub" / "b.flac", _tone(440, 0.5, 8000), 8000)
  _write(src / "sub" / "c.ogg", _tone(1000, 0.3, 44100, channels=2), 44100)
  (src / "notes.txt").write_text("not audio")

  meta, summary = _run(src, out)

  assert list(meta.splits) == ["train"] and meta.splits["train"].num_examples == 3
  assert len(meta.splits["train"].shards) == 3
  examples = _read_split(out, "train")
  assert [ex["id"] for ex in examples] == ["a", "sub/b", "sub/c"]
  np.testing.assert_array_equal(np.round(examples[0]["audio"] * 32768).astype(np.int16), pcm)
  assert [ex["num_samples"] for ex in examples] == [len(pcm), 8000, 4800]
  assert abs(_peak_hz(examples[1]["audio"]) - 440) <= 2
  assert abs(_peak_hz(examples[2]["audio"]) - 1000) <= 4
  assert (summary.written, summary.fixed) == (3, 2)
  assert summary.fixes == {"resampled": 2, "downmixed": 1}
  assert (str(src / "sub" / "c.ogg"), "fixed: downmixed (2 channels to mono)") in _report(out)


def test_folder_split_name_and_shard_count(tmp_path):
  for i in range(5):
    _write(tmp_path / "src" / f"{i}.wav", _pcm(0.2, seed=i))
  meta, _ = _run(tmp_path / "src", tmp_path / "out", split="dev", num_shards=2)
  assert meta.splits["dev"].shards == ["dev-00000-of-00002.tfrecord", "dev-00001-of-00002.tfrecord"]
  assert [ex["id"] for ex in _read_split(tmp_path / "out", "dev")] == list("01234")


def test_duplicate_ids_are_skipped(tmp_path):
  _write(tmp_path / "src" / "a.wav", _pcm(0.2))
  _write(tmp_path / "src" / "a.flac", _pcm(0.2))
  meta, summary = _run(tmp_path / "src", tmp_path / "out")
  assert meta.splits["train"].num_examples == 1
  assert summary.skipped == {"duplicate id": 1}


def test_default_num_shards():
  assert prep.default_num_shards(0.01, 3) == 3
  assert prep.default_num_shards(0.5, 1000) == prep.MIN_SHARDS
  assert prep.default_num_shards(100.2, 10**6) == 101
  assert prep.default_num_shards(5000, 10**6) == prep.MAX_SHARDS
  assert prep.default_num_shards(0, 0) == 1


# --- fairseq manifest ------------------------------------------------------------------------


@pytest.mark.parametrize("ext,lines", [
    (".wrd", ["hello world", "good bye", "not used", "not used either"]),
    (".ltr", ["H E L L O | W O R L D |", "G O O D | B Y E |", "N O |", "N O |"]),
])
def test_manifest_with_transcripts_and_bad_rows(tmp_path, ext, lines):
  audio = tmp_path / "audio"
  _write(audio / "x" / "one.wav", _pcm(0.2, 1))
  _write(audio / "two.flac", _pcm(0.3, 2))
  _write(audio / "three.wav", _pcm(0.25, 3))
  manifest = tmp_path / "manifests" / "train.tsv"
  manifest.parent.mkdir()
  manifest.write_text(f"{audio}\nx/one.wav\t3200\ntwo.flac\t4800\nthree.wav\t9999\nbroken line\n")
  manifest.with_suffix(ext).write_text("\n".join(lines) + "\n")

  meta, summary = _run(manifest, tmp_path / "out")

  examples = _read_split(tmp_path / "out", "train")
  assert [(ex["id"], ex["transcript"]) for ex in examples] == [
      ("x/one", "HELLO WORLD" if ext == ".ltr" else "hello world"),
      ("two", "GOOD BYE" if ext == ".ltr" else "good bye")]
  assert meta.source == f"manifest:{manifest}"
  assert summary.skipped == {"length mismatch": 1, "bad manifest line": 1}
  report = dict(_report(tmp_path / "out"))
  assert report[str(audio / "three.wav")] == (
      "skipped: length mismatch (listed 9999 frames, decoded 4000)")
  assert report[f"{manifest}:5"].startswith("skipped: bad manifest line")


def test_manifest_transcripts_must_match_line_count(tmp_path):
  _write(tmp_path / "a.wav", _pcm(0.2))
  (tmp_path / "valid.tsv").write_text(f"{tmp_path}\na.wav\t3200\n")
  (tmp_path / "valid.wrd").write_text("one\ntwo\n")
  with pytest.raises(PrepareError, match="valid.wrd has 2 lines"):
    prep.prepare(str(tmp_path / "valid.tsv"), str(tmp_path / "out"))


# --- LibriSpeech tree ------------------------------------------------------------------------


def _librispeech(root):
  chapter = root / "dev-clean" / "84" / "121123"
  _write(chapter / "84-121123-0000.flac", _pcm(0.2, 1))
  _write(chapter / "84-121123-0001.flac", _pcm(0.3, 2))
  (chapter / "84-121123.trans.txt").write_text(
      "84-121123-0000 GO DO YOU HEAR\n84-121123-0001 BUT IN LESS THAN FIVE MINUTES\n"
      "84-121123-0002 THE AUDIO OF THIS LINE IS MISSING\n")
  chapter = root / "test-clean" / "61" / "70968"
  _write(chapter / "61-70968-0000.flac", _pcm(0.2, 3))
  (chapter / "61-70968.trans.txt").write_text("61-70968-0000 HE BEGAN A CONFUSED COMPLAINT\n")
  (root / "SPEAKERS.TXT").write_text("; not read\n")


def test_librispeech_tree_with_several_splits(tmp_path):
  _librispeech(tmp_path / "LibriSpeech")
  meta, summary = _run(tmp_path / "LibriSpeech", tmp_path / "out")
  assert sorted(meta.splits) == ["dev-clean", "test-clean"]
  dev = _read_split(tmp_path / "out", "dev-clean")
  assert [(ex["id"], ex["transcript"], ex["speaker"]) for ex in dev] == [
      ("84-121123-0000", "GO DO YOU HEAR", "84"),
      ("84-121123-0001", "BUT IN LESS THAN FIVE MINUTES", "84")]
  assert _read_split(tmp_path / "out", "test-clean")[0]["transcript"] == (
      "HE BEGAN A CONFUSED COMPLAINT")
  assert summary.skipped == {"unreadable": 1}
  assert _report(tmp_path / "out")[0][0].endswith("84-121123-0002.flac")


def test_librispeech_single_split_folder(tmp_path):
  _librispeech(tmp_path)
  meta, _ = _run(tmp_path / "test-clean", tmp_path / "out")
  assert list(meta.splits) == ["test-clean"] and meta.splits["test-clean"].num_examples == 1


def test_split_option_needs_a_one_split_source(tmp_path):
  _librispeech(tmp_path / "ls")
  with pytest.raises(PrepareError, match="one-split"):
    prep.prepare(str(tmp_path / "ls"), str(tmp_path / "out"), split="train")
  with pytest.raises(PrepareError, match="not usable in file names"):
    prep.prepare(str(tmp_path / "ls" / "dev-clean"), str(tmp_path / "out"), split="a/b")


# --- TFDS ------------------------------------------------------------------------------------

TFDS_NAME = "speechjax_test_tones"


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp("tfds")
  features = tfds.features.FeaturesDict({
      "speech": tfds.features.Audio(sample_rate=8000, dtype=np.int16),
      "text": tfds.features.Text(),
      "speaker_id": np.int64,
  })
  examples = [{"speech": np.round(_tone(300 + 100 * i, 0.2, 8000) * 32767).astype(np.int16),
               "text": f"utterance {i}", "speaker_id": 10 + i} for i in range(3)]
  tfds.dataset_builders.store_as_tfds_dataset(
      TFDS_NAME, "1.0.0", features, {"train": list(enumerate(examples)),
                                     "test": list(enumerate(examples[:1]))},
      data_dir=str(data_dir), disable_shuffling=True)
  return str(data_dir)


def test_tfds_source(tfds_dir, tmp_path):
  meta, summary = _run(f"tfds:{TFDS_NAME}:train", tmp_path / "out", tfds_data_dir=tfds_dir)
  assert list(meta.splits) == ["train"] and meta.source == f"tfds:{TFDS_NAME}"
  examples = _read_split(tmp_path / "out", "train")
  assert [(ex["id"], ex["transcript"], ex["speaker"]) for ex in examples] == [
      (f"train-{i:08d}", f"utterance {i}", str(10 + i)) for i in range(3)]
  assert all(ex["num_samples"] == 3200 for ex in examples)
  assert abs(_peak_hz(examples[2]["audio"]) - 500) <= 5
  assert summary.fixes == {"resampled": 3}


def test_tfds_all_splits(tfds_dir, tmp_path):
  meta, _ = _run(f"tfds:{TFDS_NAME}", tmp_path / "out", tfds_data_dir=tfds_dir)
  assert {k: v.num_examples for k, v in meta.splits.items()} == {"test": 1, "train": 3}


@pytest.mark.parametrize("spec,message", [
    ("tfds:speechjax_no_such_set:train", "not found"),
    (f"tfds:{TFDS_NAME}:validation", "Unknown split"),
])
def test_tfds_errors(tfds_dir, tmp_path, spec, message):
  with pytest.raises(PrepareError, match=message):
    prep.prepare(spec, str(tmp_path / "out"), tfds_data_dir=tfds_dir)


# --- synthetic corpus ------------------------------------------------------------------------

PHONES = ["sil", "a", "b"]


def _synth_entry(root, split, n, num_samples, align_10ms=None):
  uid = f"{split}-{n:06d}"
  _write(root / split / f"{uid}.wav", _pcm(num_samples / RATE, n), subtype="PCM_16")
  frames10, frames20 = num_samples // 160, num_samples // 320
  return {"id": uid, "path": f"{split}/{uid}.wav", "num_samples": num_samples,
          "transcript": "ab ba", "phones": ["a", "b", "b", "a"],
          "align_10ms": align_10ms or [(i * 3 // frames10) for i in range(frames10)],
          "align_20ms": [(i * 3 // frames20) for i in range(frames20)],
          "speaker": f"voice{n}", "language": "en"}


def _synth(root):
  splits = {"train": [_synth_entry(root, "train", 0, 4000), _synth_entry(root, "train", 1, 3520),
                      _synth_entry(root, "train", 2, 4000, align_10ms=[1] * 24)],
            "test": [_synth_entry(root, "test", 0, 3200)]}
  for split, entries in splits.items():
    (root / f"{split}.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
  info = {"version": 1, "size": "tiny", "seed": 7, "sample_rate": RATE, "phones": PHONES,
          "splits": {s: {"num_utterances": len(e), "speakers": []} for s, e in splits.items()},
          "languages": ["en"]}
  (root / "synth.json").write_text(json.dumps(info))
  return splits


def test_synth_source_keeps_labels(tmp_path):
  entries = _synth(tmp_path / "synth")
  meta, summary = _run(tmp_path / "synth", tmp_path / "out")
  assert meta.labels == {"phone_10ms": records.LabelSet(100, 3, PHONES),
                         "phone_20ms": records.LabelSet(50, 3, PHONES)}
  assert {k: v.num_examples for k, v in meta.splits.items()} == {"train": 2, "test": 1}
  examples = _read_split(tmp_path / "out", "train", ("phone_10ms", "phone_20ms"))
  for ex, entry in zip(examples, entries["train"]):
    assert ex["id"] == entry["id"] and ex["phones"] == "a b b a"
    assert (ex["speaker"], ex["language"], ex["transcript"]) == (entry["speaker"], "en", "ab ba")
    np.testing.assert_array_equal(ex["labels/phone_10ms"], entry["align_10ms"])
    np.testing.assert_array_equal(ex["labels/phone_20ms"], entry["align_20ms"])
  assert summary.skipped == {"label length mismatch": 1}
  reloaded = records.read_meta(str(tmp_path / "out"))
  assert reloaded.labels == meta.labels and reloaded.source == f"synth:{tmp_path / 'synth'}"


def test_synth_bad_lines_and_labels(tmp_path):
  root = tmp_path / "synth"
  _synth(root)
  good = _synth_entry(root, "test", 1, 3200)
  bad_ids = dict(_synth_entry(root, "test", 2, 3200), align_20ms=[7] * 10)
  with open(root / "test.jsonl", "a") as f:
    f.write(json.dumps(good) + "\n" + json.dumps(bad_ids) + "\n{not json\n")
  _, summary = _run(root, tmp_path / "out")
  assert summary.skipped == {"label length mismatch": 1, "label out of range": 1,
                             "bad jsonl line": 1}


# --- bad inputs ------------------------------------------------------------------------------


def _bad_folder(root):
  """One file per bad-input case, plus one good file; returns file name → expected note."""
  _write(root / "good.wav", _pcm(0.2))
  (root / "corrupt.wav").write_bytes(b"RIFF....WAVEjunk" + os.urandom(200))
  data = open(_write(root / "full.flac", _pcm(0.5)), "rb").read()
  os.remove(root / "full.flac")
  (root / "truncated.flac").write_bytes(data[:len(data) // 2])
  (root / "empty.wav").write_bytes(b"")
  _write(root / "zero.wav", np.zeros(0, np.float32))
  x = _tone(440, 0.2, RATE)
  _write(root / "nan.wav", np.where(np.arange(len(x)) == 7, np.nan, x), subtype="FLOAT")
  _write(root / "inf.wav", np.where(np.arange(len(x)) == 7, np.inf, x), subtype="FLOAT")
  _write(root / "rate8k.wav", _tone(440, 0.2, 8000), 8000)
  _write(root / "stereo.wav", _tone(440, 0.2, RATE, channels=2))
  _write(root / "short.wav", _tone(440, 0.05, RATE))
  return {"corrupt.wav": "skipped: undecodable", "truncated.flac": "skipped: truncated",
          "empty.wav": "skipped: empty file", "zero.wav": "skipped: zero-length audio",
          "nan.wav": "skipped: non-finite samples", "inf.wav": "skipped: non-finite samples",
          "rate8k.wav": "fixed: resampled (8000 Hz to 16000 Hz)",
          "stereo.wav": "fixed: downmixed (2 channels to mono)",
          "short.wav": "skipped: too short (0.050 s < 0.100 s)"}


def test_bad_inputs_are_reported_and_counted(tmp_path):
  expected = _bad_folder(tmp_path / "src")
  meta, summary = _run(tmp_path / "src", tmp_path / "out")
  assert meta.splits["train"].num_examples == 3
  assert (summary.inputs, summary.written, summary.fixed) == (10, 3, 2)
  assert summary.skipped == {"undecodable": 1, "truncated": 1, "empty file": 1,
                             "zero-length audio": 1, "non-finite samples": 2, "too short": 1}
  assert summary.fixes == {"resampled": 1, "downmixed": 1}
  report = _report(tmp_path / "out")
  assert len(report) == len(expected)
  for path, note in report:
    assert note.startswith(expected[os.path.basename(path)]), (path, note)
  assert [ex["id"] for ex in _read_split(tmp_path / "out", "train")] == [
      "good", "rate8k", "stereo"]


def test_strict_raises_naming_the_file(tmp_path):
  _write(tmp_path / "src" / "a.wav", _pcm(0.2))
  _write(tmp_path / "src" / "b_short.wav", _pcm(0.01))
  with pytest.raises(PrepareError, match=r"b_short\.wav: too short"):
    prep.prepare(str(tmp_path / "src"), str(tmp_path / "out"), strict=True)
  assert not os.path.exists(tmp_path / "out" / "meta.json")


def test_strict_accepts_fixes(tmp_path):
  _write(tmp_path / "src" / "a.wav", _tone(440, 0.2, 8000), 8000)
  meta, summary = _run(tmp_path / "src", tmp_path / "out", strict=True)
  assert meta.splits["train"].num_examples == 1 and summary.fixed == 1


def test_failure_midway_leaves_no_meta(tmp_path, monkeypatch):
  for i in range(4):
    _write(tmp_path / "src" / f"{i}.wav", _pcm(0.2, i))
  calls = []

  def failing_encode(*args, **kwargs):
    calls.append(1)
    if len(calls) == 3:
      raise OSError("disk full")
    return records.encode_example(*args, **kwargs)

  monkeypatch.setattr(prep, "encode_example", failing_encode)
  monkeypatch.setattr(prep, "PROBE_RECORDS", 1)  # so that the shards are open when it fails
  with pytest.raises(OSError, match="disk full"):
    prep.prepare(str(tmp_path / "src"), str(tmp_path / "out"))
  assert sorted(os.listdir(tmp_path / "out")) == [
      f"train-0000{i}-of-00004.tfrecord.tmp" for i in range(4)]


def test_no_usable_input_is_an_error(tmp_path):
  (tmp_path / "src").mkdir()
  (tmp_path / "src" / "a.wav").write_bytes(b"")
  with pytest.raises(PrepareError, match="no usable input"):
    prep.prepare(str(tmp_path / "src"), str(tmp_path / "out"))
  assert _report(tmp_path / "out") == [
      (str(tmp_path / "src" / "a.wav"), "skipped: empty file (0 bytes)")]
  assert not os.path.exists(tmp_path / "out" / "meta.json")


def test_source_errors(tmp_path):
  (tmp_path / "empty").mkdir()
  with pytest.raises(PrepareError, match="no audio files"):
    prep.prepare(str(tmp_path / "empty"), str(tmp_path / "out"))
  with pytest.raises(PrepareError, match="not a folder"):
    prep.prepare(str(tmp_path / "missing"), str(tmp_path / "out"))
  with pytest.raises(PrepareError, match="--workers"):
    prep.prepare(str(tmp_path / "empty"), str(tmp_path / "out"), workers=0)


def test_refuses_to_overwrite_a_finished_output(tmp_path):
  _write(tmp_path / "src" / "a.wav", _pcm(0.2))
  _run(tmp_path / "src", tmp_path / "out")
  with pytest.raises(PrepareError, match="already holds a prepared data set"):
    prep.prepare(str(tmp_path / "src"), str(tmp_path / "out"))


def test_workers_give_the_same_records(tmp_path):
  _bad_folder(tmp_path / "src")
  _run(tmp_path / "src", tmp_path / "one", num_shards=1)
  _, summary = _run(tmp_path / "src", tmp_path / "two", num_shards=1, workers=2)
  assert summary.written == 3
  shard = "train-00000-of-00001.tfrecord"
  read = lambda d: [r.numpy() for r in tf.data.TFRecordDataset(str(tmp_path / d / shard))]
  assert read("one") == read("two")
  assert _report(tmp_path / "one") == _report(tmp_path / "two")


# --- CLI -------------------------------------------------------------------------------------


def _cli(argv):
  parser = argparse.ArgumentParser()
  prep.add_arguments(parser)
  return prep.run(parser.parse_args(argv))


def test_cli_prints_the_summary(tmp_path, capsys):
  _write(tmp_path / "src" / "a.wav", _tone(440, 0.2, 8000), 8000)
  _write(tmp_path / "src" / "b.wav", _pcm(0.01))
  assert _cli(["--source", str(tmp_path / "src"), "--out", str(tmp_path / "out")]) == 0
  printed = capsys.readouterr().out
  assert "train: 1 utterances" in printed
  assert "inputs 2, written 1, fixed 1 (resampled 1), skipped 1 (too short 1)" in printed
  assert _cli(["--source", str(tmp_path / "src"), "--out", str(tmp_path / "strict"),
               "--strict"]) == 1
  assert "b.wav: too short" in capsys.readouterr().err
