"""Tests of the TFDS builder `synth_speech` (on the 20-utterance `micro` config)."""
import json
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

import speechjax.data.tfds  # pylint: disable=unused-import  (registers synth_speech)
from speechjax.data import records
from speechjax.data import synth

_NAME = "synth_speech/micro"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("tfds"))
  tfds.load(_NAME, data_dir=path, split="train")  # builds the data set
  return path


def _corpus(data_dir):
  return os.path.join(data_dir, "downloads", "synth_speech-micro-seed7")


def test_sample_rate_is_the_record_format_one():
  assert synth.SAMPLE_RATE == records.SAMPLE_RATE


def test_configs_cover_the_sizes():
  assert {c.name for c in tfds.builder_cls("synth_speech").BUILDER_CONFIGS} == set(synth.SIZES)


def test_examples_match_the_generated_corpus(data_dir):
  corpus = _corpus(data_dir)
  with open(os.path.join(corpus, "synth.json"), encoding="utf-8") as f:
    phones = json.load(f)["phones"]
  for split in synth.SPLITS:
    with open(os.path.join(corpus, f"{split}.jsonl"), encoding="utf-8") as f:
      expected = {r["id"]: r for r in map(json.loads, f)}
    examples = list(tfds.as_numpy(tfds.load(_NAME, data_dir=data_dir, split=split)))
    assert sorted(e["id"].decode() for e in examples) == sorted(expected)
    for e in examples:
      r = expected[e["id"].decode()]
      assert e["audio"].dtype == np.int16 and len(e["audio"]) == r["num_samples"]
      assert e["transcript"].decode() == r["transcript"]
      assert (e["speaker"].decode(), e["language"].decode()) == (r["speaker"], r["language"])
      assert [phones[i] for i in e["phones"]] == r["phones"]
      assert e["align_10ms"].tolist() == r["align_10ms"]
      assert e["align_20ms"].tolist() == r["align_20ms"]


def test_reloaded_builder_knows_the_phone_names(data_dir):
  with open(os.path.join(_corpus(data_dir), "synth.json"), encoding="utf-8") as f:
    phones = json.load(f)["phones"]
  info = tfds.builder(_NAME, data_dir=data_dir).info
  for name in ("phones", "align_10ms", "align_20ms"):
    assert info.features[name].feature.names == phones
  assert info.features["audio"].sample_rate == 16000
  assert info.splits["test"].num_examples > 0 and info.splits["train"].num_examples > 0
