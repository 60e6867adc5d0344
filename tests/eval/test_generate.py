"""`speechjax tokenize` (hubert, soundstream) and `speechjax generate` end to end on checkpoints of every part
(random weights: this tests the plumbing; learning is shown in the token-LM task tests and the README)."""
import numpy as np
import pytest
import soundfile as sf

from speechjax import cli
from speechjax.cluster import tokenize
from speechjax.data import labels, records
from speechjax.eval.codec import load_codec

from tests.helpers import audiolm_parts


# Random-weight checkpoints of five models and tokenizers run once each: compiled with few optimisations.
pytestmark = pytest.mark.fast_compile


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
  return audiolm_parts.build(tmp_path_factory.mktemp("parts"))


def test_tokenize_adds_semantic_then_acoustic_streams(parts, synth_records, tmp_path):
  semantic, tokens = str(tmp_path / "semantic"), str(tmp_path / "tokens")
  assert cli.main(["tokenize", "--model", "hubert", "--ckpt", parts["hubert"], "--layer", "2", "--kmeans",
                   parts["kmeans"], "--data", synth_records, "--out", semantic]) == 0
  assert cli.main(["tokenize", "--model", "soundstream", "--ckpt", parts["codec"], "--n_q", "3",
                   "--data", semantic, "--out", tokens]) == 0
  meta = records.read_meta(tokens)
  assert {n: (meta.labels[n].frame_rate, meta.labels[n].num_classes) for n in ("km", "codec0", "codec2")} == {
      "km": (50, 8), "codec0": (50, 16), "codec2": (50, 16)}
  assert "codec3" not in meta.labels and "phone_10ms" in meta.labels     # earlier label sets are kept
  codec = load_codec(parts["codec"])
  utt = next(u for u in tokenize.features.utterances(tokens, "train", labels=("codec0", "codec2", "km")))
  frames = len(utt["audio"]) // codec.hop
  codes = codec.encode(utt["audio"], 3)[:frames]                  # the codec on the whole utterance
  np.testing.assert_array_equal(utt["labels/codec0"], codes[:, 0])
  np.testing.assert_array_equal(utt["labels/codec2"], codes[:, 2])
  assert utt["labels/km"].min() >= 0 and utt["labels/km"].max() < 8
  first_line = labels.read_km(f"{tokens}/train.codec2")[0]
  np.testing.assert_array_equal(first_line, codes[:, 2])
  with pytest.raises(ValueError, match="model_type='hubert'"):   # --debug: the error itself
    cli.main(["tokenize", "--model", "soundstream", "--ckpt", parts["hubert"], "--data", synth_records,
              "--out", str(tmp_path / "bad"), "--debug"])


def test_generate_continues_a_prompt_wav(parts, synth_records, tmp_path):
  audio = next(tokenize.features.utterances(synth_records, "test"))["audio"][:8100]   # 25 frames + 100
  prompt, out = str(tmp_path / "prompt.wav"), str(tmp_path / "out.wav")
  sf.write(prompt, audio, 16000)
  args = ["generate", "--prompt", prompt, "--out", out, "--codec", parts["codec"], "--hubert",
          parts["hubert"], "--layer", "2", "--kmeans", parts["kmeans"], "--top-k", "4"] + [
              a for stage in audiolm_parts.VOCAB for a in (f"--{stage}", parts[stage])]
  assert cli.main(args + ["--seconds", "0.5"]) == 0
  generated, rate = sf.read(out, dtype="float32")
  assert rate == 16000 and generated.shape == ((25 + 25) * 320,) and np.isfinite(generated).all()
  codec = load_codec(parts["codec"])
  round_trip = codec.decode(codec.encode(audio[:8000], 4))        # the causal decoder: prefix unchanged
  np.testing.assert_allclose(generated[:8000], np.clip(round_trip, -1, 1), atol=1e-4)   # 16-bit wav
  with pytest.raises(ValueError, match=r"stage semantic needs \d+ tokens for 175 frames .*max_length is 64"):
    cli.main(args + ["--seconds", "3", "--debug"])


def test_tokenize_w2v_bert_units(parts, synth_records, tmp_path):
  """AudioLM's semantic tokens from a w2v-BERT checkpoint: k-means ids of one of its layers, 50 Hz."""
  ckpt = audiolm_parts.save_initial("w2v_bert.py:tiny", [], str(tmp_path / "w2v_bert"))
  out = str(tmp_path / "semantic")
  assert cli.main(["tokenize", "--model", "w2v-bert", "--ckpt", ckpt, "--layer", "3", "--kmeans",
                   parts["kmeans"], "--data", synth_records, "--out", out]) == 0
  meta = records.read_meta(out)
  assert (meta.labels["km"].frame_rate, meta.labels["km"].num_classes) == (50, 8)
  utt = next(u for u in tokenize.features.utterances(out, "train", labels=("km",)))
  assert abs(len(utt["labels/km"]) - len(utt["audio"]) / 320) <= 2
  with pytest.raises(ValueError, match="model_type='hubert'"):
    cli.main(["tokenize", "--model", "w2v-bert", "--ckpt", parts["hubert"], "--layer", "2", "--kmeans",
              parts["kmeans"], "--data", synth_records, "--out", str(tmp_path / "bad"), "--debug"])
