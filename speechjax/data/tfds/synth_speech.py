"""TFDS builder `synth_speech`: the built-in synthetic corpus of `speechjax.data.synth`.

    import speechjax.data.tfds  # registers the builder
    ds = tfds.load("synth_speech/tiny", data_dir=DIR, split="train")

Nothing is downloaded: the corpus is synthesised into the download directory with
`synth.generate` (seed 7) and then written as TFDS records. Configs: tiny (≈ 10 min), small
(≈ 2 h), medium (≈ 8 h), large (≈ 20 h) and micro (20 utterances, for tests). Phone ids index the ClassLabel
names, which are the corpus' phone vocabulary ("sil" first); they are known only after synthesis.
"""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import soundfile
import tensorflow_datasets as tfds

from speechjax.data import synth

_PHONE_FEATURES = ("phones", "align_10ms", "align_20ms")
_TEXT_FEATURES = ("id", "transcript", "speaker", "language")


@dataclasses.dataclass
class SynthSpeechConfig(tfds.core.BuilderConfig):
  size: str = "tiny"
  seed: int = 7


class SynthSpeech(tfds.core.GeneratorBasedBuilder):
  """Synthetic English speech from eSpeak NG voices with 10 / 20 ms phone alignments."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  BUILDER_CONFIGS = [
      SynthSpeechConfig(name=size, size=size,
                        description=f"about {preset.seconds / 60:g} minutes of audio")
      for size, preset in synth.SIZES.items()]
  DEFAULT_CONFIG_NAME = "tiny"

  def _info(self) -> tfds.core.DatasetInfo:
    features = {name: tfds.features.Text() for name in _TEXT_FEATURES}
    features["audio"] = tfds.features.Audio(shape=(None,), dtype=np.int16,
                                            sample_rate=synth.SAMPLE_RATE)
    for name in _PHONE_FEATURES:
      features[name] = tfds.features.Sequence(tfds.features.ClassLabel())
    return tfds.core.DatasetInfo(
        builder=self, description=__doc__, features=tfds.features.FeaturesDict(features),
        supervised_keys=("audio", "transcript"))

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    config = self.builder_config
    corpus = synth.generate(
        os.path.join(dl_manager.download_dir, f"synth_speech-{config.size}-seed{config.seed}"),
        size=config.size, seed=config.seed)
    with open(os.path.join(corpus, "synth.json"), encoding="utf-8") as f:
      phones = json.load(f)["phones"]
    for name in _PHONE_FEATURES:
      self.info.features[name].feature.names = phones
    return {split: self._generate_examples(corpus, split) for split in synth.SPLITS}

  def _generate_examples(self, corpus: str, split: str):
    with open(os.path.join(corpus, f"{split}.jsonl"), encoding="utf-8") as f:
      for line in f:
        record = json.loads(line)
        audio, _ = soundfile.read(os.path.join(corpus, record["path"]), dtype="int16")
        example = {name: record[name] for name in _TEXT_FEATURES + _PHONE_FEATURES}
        yield record["id"], {**example, "audio": audio}
