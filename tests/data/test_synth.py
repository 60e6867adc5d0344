"""Tests of the synthetic corpus (speechjax.data.synth) and its eSpeak NG binding."""
import argparse
import collections
import itertools
import json
import os
import shutil

import numpy as np
import pytest
import soundfile
import wordfreq

from speechjax.data import espeak
from speechjax.data import synth

TEXT = "Hello there, my friend."


# ----------------------------------------------------------------------------- helpers


def _files(root) -> dict[str, bytes]:
  """Relative path → contents of every file under `root`."""
  out = {}
  for folder, _, names in os.walk(root):
    for name in names:
      path = os.path.join(folder, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, root)] = f.read()
  return out


def _records(corpus, split="train") -> list[dict]:
  with open(os.path.join(corpus, f"{split}.jsonl"), encoding="utf-8") as f:
    return [json.loads(line) for line in f]


def _meta(corpus) -> dict:
  with open(os.path.join(corpus, "synth.json"), encoding="utf-8") as f:
    return json.load(f)


def _audio(corpus, record) -> np.ndarray:
  audio, rate = soundfile.read(os.path.join(corpus, record["path"]), dtype="int16")
  assert rate == synth.SAMPLE_RATE
  return audio


def _collapse(ids) -> list[int]:
  """Frame ids → phone sequence: repeats merged, silence dropped."""
  return [k for k, _ in itertools.groupby(ids) if k != 0]


def _in_order_fraction(phones: list[int], aligned: list[int]) -> float:
  """Fraction of `phones` found in order in `aligned` (longest common subsequence)."""
  lcs = np.zeros(len(aligned) + 1, int)
  for p in phones:
    prev = lcs.copy()
    for j, a in enumerate(aligned):
      lcs[j + 1] = prev[j] + 1 if p == a else max(prev[j + 1], lcs[j])
  return lcs[-1] / len(phones)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def micro(tmp_path_factory):
  return synth.generate(str(tmp_path_factory.mktemp("micro")), size="micro", seed=0, workers=1)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
  return synth.generate(str(tmp_path_factory.mktemp("tiny")), size="tiny", seed=7, workers=1)


# ----------------------------------------------------------------------------- eSpeak


def test_espeak_gives_int16_audio_and_ordered_phoneme_events():
  samples, events = espeak.synthesize(TEXT, "en+m3")
  assert samples.dtype == np.int16 and len(samples) > espeak.native_sample_rate() // 2
  phones = [e for e in events if e.kind == "phoneme"]
  assert [e.name for e in phones[:4]] == ["h", "@", "l", "'oU"]
  positions = [e.sample for e in events]
  assert positions == sorted(positions) and 0 <= positions[0] and positions[-1] <= len(samples)


def test_espeak_is_repeatable_and_seeded():
  first, _ = espeak.synthesize(TEXT, "en+f3", seed=1)
  espeak.synthesize("Something else entirely.", "en+m1", rate=300, pitch=10)
  again, _ = espeak.synthesize(TEXT, "en+f3", seed=1)
  other_seed, _ = espeak.synthesize(TEXT, "en+f3", seed=2)  # f3 is breathy: noise differs
  np.testing.assert_array_equal(first, again)
  assert not np.array_equal(first, other_seed)


def test_espeak_rate_changes_duration():
  slow, _ = espeak.synthesize(TEXT, "en", rate=120)
  fast, _ = espeak.synthesize(TEXT, "en", rate=300)
  assert len(slow) > 1.5 * len(fast)


@pytest.mark.parametrize("kwargs, message", [
    ({"voice": "qq"}, "voice 'qq'"),
    ({"voice": "en+nosuch"}, "unknown variant 'nosuch'"),
    ({"rate": 20}, "rate: 20 is outside"),
    ({"pitch": 101}, "pitch: 101 is outside"),
])
def test_espeak_bad_request_is_a_clear_error(kwargs, message):
  with pytest.raises(ValueError, match=message):
    espeak.synthesize(TEXT, **kwargs)


# ----------------------------------------------------------------------------- layout


def test_layout_follows_the_contract(micro):
  meta = _meta(micro)
  assert meta["version"] == 1 and meta["size"] == "micro" and meta["seed"] == 0
  assert meta["sample_rate"] == 16000 and meta["languages"] == ["en"]
  assert meta["phones"][0] == "sil" and meta["phones"][1:] == sorted(set(meta["phones"][1:]))
  for split in synth.SPLITS:
    records = _records(micro, split)
    assert len(records) == meta["splits"][split]["num_utterances"] > 0
    assert [r["id"] for r in records] == sorted(r["id"] for r in records)
    for r in records:
      info = soundfile.info(os.path.join(micro, r["path"]))
      assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
      assert r["path"] == f"{split}/{r['id']}.wav" and info.frames == r["num_samples"]
      assert len(r["align_10ms"]) == r["num_samples"] // 160
      assert len(r["align_20ms"]) == r["num_samples"] // 320
      assert r["transcript"] and r["phones"] and r["language"] == "en"
      assert set(r["phones"]) <= set(meta["phones"][1:])


def test_frame_labels_take_the_phone_at_the_frame_centre():
  ids = {"sil": 0, "a": 1, "b": 2}
  bounds = [(100, "a"), (300, "sil"), (350, "b"), (500, "sil")]
  # Frame centres at 80, 240, 400, 560 (hop 160).
  assert synth.frame_labels(bounds, 700, 160, ids) == [0, 1, 2, 0]
  assert synth.frame_labels(bounds, 700, 320, ids) == [1, 2]  # centres 160, 480


# ----------------------------------------------------------------------------- determinism


def test_same_seed_same_bytes_with_one_or_two_workers(micro, tmp_path):
  again = synth.generate(str(tmp_path), size="micro", seed=0, workers=2)
  ours, theirs = _files(micro), _files(again)
  assert sorted(ours) == sorted(theirs)
  assert [p for p in ours if ours[p] != theirs[p]] == []


def test_other_seed_gives_other_corpus(micro, tmp_path):
  other = synth.generate(str(tmp_path), size="micro", seed=1, workers=1)
  ours, theirs = _files(micro), _files(other)
  same = [p for p in ours if p.endswith(".wav") and ours[p] == theirs.get(p)]
  assert same == []
  assert ({r["transcript"] for r in _records(micro)}
          .isdisjoint(r["transcript"] for r in _records(other)))


# ----------------------------------------------------------------------------- content


def test_tiny_is_about_ten_minutes(tiny):
  info = synth.summary(tiny)
  assert 450 < info["seconds"] < 800
  test_share = info["splits"]["test"]["utterances"] / sum(
      s["utterances"] for s in info["splits"].values())
  assert 0.07 < test_share < 0.13
  assert info["phones"] >= 40


def test_alignment_is_consistent_with_phones_and_audio(tiny):
  phone_ids = {p: i for i, p in enumerate(_meta(tiny)["phones"])}
  fractions, speech_rms, edge_rms = [], [], []
  for r in _records(tiny):
    align = np.array(r["align_10ms"])
    assert align.min() >= 0 and align.max() < len(phone_ids)
    assert align[0] == 0 and align[-1] == 0 and np.any(align > 0)
    ids = [phone_ids[p] for p in r["phones"]]
    fractions.append(_in_order_fraction(ids, _collapse(align.tolist())))
    frames = _audio(tiny, r)[:len(align) * 160].reshape(len(align), 160) / 32768.0
    rms = np.sqrt((frames ** 2).mean(axis=1))
    speech_rms.append(np.median(rms[align > 0]))
    edge_rms.append(max(rms[0], rms[-1]))
  # Phones shorter than half a frame can vanish from the 10 ms alignment; observed ≈ 99 %.
  assert np.mean(fractions) > 0.97 and min(fractions) > 0.8
  assert np.median(speech_rms) > 0.02 and max(edge_rms) < 1e-4  # clean corpus: silent edges


def test_text_is_varied_and_zipf_like(tiny):
  counts = collections.Counter(
      w for split in synth.SPLITS for r in _records(tiny, split) for w in r["transcript"].split())
  assert len(counts) > 400
  assert all(w.isalpha() for w in counts)
  top = counts.most_common(1)[0][1]
  assert top > 20 * np.median(list(counts.values()))


def test_test_speakers_and_voices_are_held_out(tiny):
  meta = _meta(tiny)
  train, test = (set(meta["splits"][s]["speakers"]) for s in synth.SPLITS)
  assert len(train) >= 8 and len(test) >= 3 and train.isdisjoint(test)
  variants = {s: {meta["speakers"][n]["variant"] for n in meta["splits"][s]["speakers"]}
              for s in synth.SPLITS}
  assert variants["train"].isdisjoint(variants["test"]) and len(variants["train"]) >= 8
  for split in synth.SPLITS:
    assert {r["speaker"] for r in _records(tiny, split)} == set(meta["splits"][split]["speakers"])


def test_several_languages_each_with_its_own_words(tmp_path):
  corpus = synth.generate(str(tmp_path), size="micro", seed=0, workers=1, languages=("en", "de"))
  records = [r for split in synth.SPLITS for r in _records(corpus, split)]
  assert {r["language"] for r in records} == {"en", "de"}
  lexicons = {lang: set(wordfreq.top_n_list(lang, synth.TOP_WORDS)) for lang in ("en", "de")}
  for r in records:
    assert set(r["transcript"].split()) <= lexicons[r["language"]]


def test_noise_is_added_at_the_requested_snr(micro, tmp_path):
  noisy = synth.generate(str(tmp_path), size="micro", seed=0, workers=1, noise_snr_db=10.0)
  snrs = []
  for clean_r, noisy_r in zip(_records(micro), _records(noisy)):
    assert clean_r["align_10ms"] == noisy_r["align_10ms"]
    clean = _audio(micro, clean_r).astype(float)
    noise = _audio(noisy, noisy_r) - clean
    first, last = np.flatnonzero(clean)[[0, -1]]
    speech = clean[first:last + 1]
    snrs.append(10 * np.log10(np.mean(speech ** 2) / np.mean(noise[first:last + 1] ** 2)))
  np.testing.assert_allclose(snrs, 10.0, atol=1.0)


# ----------------------------------------------------------------------------- cache


def test_complete_corpus_is_reused_without_synthesis(micro, tmp_path, monkeypatch):
  corpus = shutil.copytree(micro, tmp_path / "c")
  before = {p: os.stat(os.path.join(corpus, p)).st_mtime_ns for p in _files(corpus)}

  def fail(*args):
    raise AssertionError("synthesised again")

  monkeypatch.setattr(synth, "_render_all", fail)
  synth.generate(corpus, size="micro", seed=0, workers=1)
  assert {p: os.stat(os.path.join(corpus, p)).st_mtime_ns for p in before} == before
  with pytest.raises(AssertionError, match="synthesised again"):  # other arguments: not reused
    synth.generate(corpus, size="micro", seed=0, workers=1, noise_snr_db=20.0)


def test_unfinished_corpus_is_regenerated(micro, tmp_path):
  corpus = str(shutil.copytree(micro, tmp_path / "c"))
  os.remove(os.path.join(corpus, "synth.json"))  # as if killed before the end
  with open(os.path.join(corpus, "train", "train-000000.wav"), "wb") as f:
    f.write(b"partial")
  assert not synth.is_generated(corpus, size="micro", seed=0)
  synth.generate(corpus, size="micro", seed=0, workers=1)
  assert _files(corpus) == _files(micro)


def test_utterances_without_phonemes_are_dropped_and_counted(tmp_path, monkeypatch, caplog):
  victim = synth.plan("micro", 0)[3]
  real = espeak.synthesize

  def mute_one(text, *args):
    return (np.zeros([0], np.int16), []) if text == victim.text else real(text, *args)

  monkeypatch.setattr(espeak, "synthesize", mute_one)
  corpus = synth.generate(str(tmp_path), size="micro", seed=0, workers=1)
  meta = _meta(corpus)
  assert meta["splits"][victim.split]["dropped"] == 1
  assert victim.uid not in {r["id"] for r in _records(corpus, victim.split)}
  assert "dropped 1 of" in caplog.text and victim.uid in caplog.text


# ----------------------------------------------------------------------------- arguments


@pytest.mark.parametrize("kwargs, field", [
    ({"size": "huge"}, "size"),
    ({"languages": ("en", "xx")}, "languages"),
    ({"languages": ()}, "languages"),
    ({"seed": -1}, "seed"),
    ({"workers": 0}, "workers"),
    ({"noise_snr_db": float("nan")}, "noise_snr_db"),
])
def test_bad_arguments_name_the_field(tmp_path, kwargs, field):
  with pytest.raises(ValueError, match=f"^{field}: "):
    synth.generate(str(tmp_path), **kwargs)
  assert not os.listdir(tmp_path)


def _cli(*argv) -> argparse.Namespace:
  parser = argparse.ArgumentParser()
  synth.add_arguments(parser)
  return parser.parse_args(argv)


def test_cli_prints_a_summary(tiny, capsys):
  assert synth.run(_cli("--out", tiny, "--size", "tiny", "--seed", "7", "--workers", "1")) == 0
  out = capsys.readouterr().out
  info = synth.summary(tiny)
  assert f"train: {info['splits']['train']['utterances']} utterances" in out
  assert f"phones: {info['phones']} + sil" in out and "reused" in out


def test_cli_rejects_unknown_language(tmp_path, capsys):
  assert synth.run(_cli("--out", str(tmp_path), "--size", "tiny", "--languages", "en,xx")) == 2
  assert "languages:" in capsys.readouterr().err
