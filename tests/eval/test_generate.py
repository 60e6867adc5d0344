"""`speechjax tokenize` (hubert, soundstream) and `speechjax generate` end to end on checkpoints of every part
(random weights: this tests the plumbing; learning is shown in the token-LM task tests and the README)."""
import jax
import numpy as np
import pytest
import soundfile as sf

import harness
from speechjax import cli, config
from speechjax.cluster import kmeans, tokenize
from speechjax.data import labels, records
from speechjax.eval.codec import Codec
from speechjax.tasks import get_task
from speechjax.train import checkpoint

CODEC = ["--config.model.channels=2", "--config.model.embedding_dim=8", "--config.model.num_quantizers=4",
         "--config.model.codebook_size=16"]
LM = ["--config.model.hidden_size=16", "--config.model.num_layers=1", "--config.model.num_heads=2",
      "--config.model.intermediate_size=32", "--config.task.semantic_vocab=8", "--config.task.codebook_size=16",
      "--config.task.levels=4", "--config.task.coarse_levels=2"]
VOCAB = {"semantic": 9, "coarse": 41, "fine": 73}            # 1 + 8 + levels · 16
MAX_LENGTH = {"semantic": 64, "coarse": 256, "fine": 41}      # fine: chunks of (41 − 1) / 4 = 10 frames
CROP = {"semantic": 16000, "coarse": 16000, "fine": 3200}


def _save_initial(config_path: str, overrides: list, workdir: str) -> str:
  cfg = config.load(f"{harness.REPO}/configs/{config_path}", overrides)
  task = get_task(cfg)
  state = jax.jit(task.init_state)(jax.random.PRNGKey(0), checkpoint.example_batch(cfg, 1))
  saver = checkpoint.Checkpointer(workdir, cfg.checkpoint, config.to_json(cfg))
  saver.save(0, state, {"epoch": 0, "batch": 0}, force=True)
  saver.close()
  return workdir


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
  root = tmp_path_factory.mktemp("parts")
  out = {"codec": _save_initial("soundstream.py:tiny", CODEC, str(root / "codec")),
         "hubert": _save_initial("hubert.py:tiny", [], str(root / "hubert"))}
  for stage in VOCAB:
    out[stage] = _save_initial(f"token_lm.py:{stage}_tiny", LM + [
        f"--config.model.vocab_size={VOCAB[stage]}", f"--config.model.max_length={MAX_LENGTH[stage]}",
        f"--config.data.max_sample_size={CROP[stage]}", "--config.data.min_sample_size=0"],
                               str(root / stage))
  hidden = config.load(f"{harness.REPO}/configs/hubert.py:tiny", []).model.hidden_size
  centroids = np.random.default_rng(0).normal(size=(8, hidden)).astype(np.float32)
  out["kmeans"] = str(root / "km.npz")
  kmeans.save(out["kmeans"], kmeans.KMeansResult(centroids, np.ones(8, np.int64), 1.0, [1.0], 8, 1, True, 0))
  return out


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
  codec = Codec.load(parts["codec"])
  utt = next(u for u in tokenize.features.utterances(tokens, "train", labels=("codec0", "codec2", "km")))
  frames = len(utt["audio"]) // codec.hop
  codes = codec.encode(utt["audio"], 3)[:frames]                  # the codec on the whole utterance
  np.testing.assert_array_equal(utt["labels/codec0"], codes[:, 0])
  np.testing.assert_array_equal(utt["labels/codec2"], codes[:, 2])
  assert utt["labels/km"].min() >= 0 and utt["labels/km"].max() < 8
  first_line = labels.read_km(f"{tokens}/train.codec2")[0]
  np.testing.assert_array_equal(first_line, codes[:, 2])
  with pytest.raises(ValueError, match="model_type='hubert'"):
    cli.main(["tokenize", "--model", "soundstream", "--ckpt", parts["hubert"], "--data", synth_records,
              "--out", str(tmp_path / "bad")])


def test_generate_continues_a_prompt_wav(parts, synth_records, tmp_path):
  audio = next(tokenize.features.utterances(synth_records, "test"))["audio"][:8100]   # 25 frames + 100
  prompt, out = str(tmp_path / "prompt.wav"), str(tmp_path / "out.wav")
  sf.write(prompt, audio, 16000)
  args = ["generate", "--prompt", prompt, "--out", out, "--codec", parts["codec"], "--hubert",
          parts["hubert"], "--layer", "2", "--kmeans", parts["kmeans"], "--top-k", "4"] + [
              a for stage in VOCAB for a in (f"--{stage}", parts[stage])]
  assert cli.main(args + ["--seconds", "0.5"]) == 0
  generated, rate = sf.read(out, dtype="float32")
  assert rate == 16000 and generated.shape == ((25 + 25) * 320,) and np.isfinite(generated).all()
  codec = Codec.load(parts["codec"])
  round_trip = codec.decode(codec.encode(audio[:8000], 4))        # the causal decoder: prefix unchanged
  np.testing.assert_allclose(generated[:8000], np.clip(round_trip, -1, 1), atol=1e-4)   # 16-bit wav
  with pytest.raises(ValueError, match="stage semantic needs 92 tokens .*max_length is 64"):
    cli.main(args + ["--seconds", "3"])
