"""The AudioPaLM-style joint text + audio LM: task tags, two-direction sequences, and the loss falls."""
import jax.numpy as jnp
import numpy as np
import pytest

from speechjax import config
from speechjax.models import audiopalm
from speechjax.train import trainer

from tests.helpers import harness
from tests.tasks.token_lm_testing import SMALL_MODEL


@pytest.mark.fast_compile
def test_audiopalm_tags_sequences_and_training(synth_records, tmp_path):
  vocab = audiopalm.JointVocab(("a", "b", "|"), audio=5)
  ids = vocab.encode("[TTS] ab a")
  assert ids == [vocab.tag("[TTS]"), 5, 6, 7, 5] and vocab.decode(ids) == "[TTS] ab a"
  audio, text = jnp.array([[4, 4, 0, -1]] * 2), jnp.array([[1, 2, 0]] * 2)
  tokens, _, target = audiopalm.sequences(vocab, audio, text, jnp.array([True, False]))
  a = vocab.text_size
  np.testing.assert_array_equal(tokens[0, :9], [0, 3, a + 4, a + 0, 1, 5, 6, 2, 0])   # ASR
  np.testing.assert_array_equal(target[0, :9], [0, 0, 0, 0, 0, 1, 1, 1, 0])
  np.testing.assert_array_equal(tokens[1, :9], [0, 4, 5, 6, 1, a + 4, a + 0, 2, 0])   # TTS
  np.testing.assert_array_equal(target[1, :9], [0, 0, 0, 0, 0, 1, 1, 1, 0])
  cfg = config.load(f"{harness.REPO}/configs/audiopalm.py:tiny", SMALL_MODEL + [
      f"--config.data.path={synth_records}", "--config.train.num_steps=30", "--config.train.log_every=10",
      "--config.data.max_sample_size=64000", "--config.data.max_target_length=80"])
  trainer.train(cfg, str(tmp_path))
  rows = harness.read_metrics(str(tmp_path))
  assert rows[30]["train/ce"] < rows[10]["train/ce"] - 0.3, (rows[10], rows[30])
