"""AudioLM stages and SoundStorm as tasks: sequence layouts, and the losses fall."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from speechjax import config
from speechjax.models import audiolm
from speechjax.tasks import get_task
from speechjax.train import trainer

from tests.helpers import harness
from tests.tasks.token_lm_testing import SMALL_MODEL


def test_stage_sequences():
  vocab = audiolm.Vocab(semantic=10, codebook=4, levels=3, coarse_levels=2)
  semantic = jnp.array([[3, 3, 5, 5, 3, -1]])
  codes = jnp.array([[[0, 1, 2], [3, 0, 1], [-1, -1, -1]]])
  tokens, mask, target = audiolm.stage_sequence("coarse", vocab, semantic, codes)
  level = [vocab.acoustic_offset(q) for q in range(3)]
  expected = [0, 4, 6, 4, level[0] + 0, level[1] + 1, level[0] + 3, level[1] + 0]
  assert tokens.shape[1] == audiolm.sequence_length("coarse", vocab, 6, 3)
  np.testing.assert_array_equal(tokens[0, :len(expected)], expected)
  np.testing.assert_array_equal(mask[0], np.arange(tokens.shape[1]) < len(expected))
  np.testing.assert_array_equal(target[0, :len(expected)], [0, 0, 0, 0, 1, 1, 1, 1])
  tokens, _, target = audiolm.stage_sequence("fine", vocab, None, codes)
  np.testing.assert_array_equal(tokens[0, :7], [0, level[0], level[1] + 1, level[0] + 3, level[1],
                                                level[2] + 2, level[2] + 1])
  np.testing.assert_array_equal(target[0, :7], [0, 0, 0, 0, 0, 1, 1])
  assert int(tokens.max()) < vocab.size("fine")


def _train_synthetic(preset, steps=20):
  """Trains `preset` on synthetic codes that are a function of the semantic tokens; (first, last) loss."""
  cfg = config.load(f"{harness.REPO}/configs/token_lm.py:{preset}",
                    SMALL_MODEL + ["--config.data.path=/nonexistent", "--config.data.max_sample_size=8000"])
  task = get_task(cfg)
  b, frames = 8, 25                                                      # 0.5 s at 50 Hz
  semantic = jax.random.randint(jax.random.PRNGKey(0), [64, frames], 0, 10)
  semantic = jnp.repeat(semantic[:, ::5], 5, axis=1)                     # runs of 5 frames
  codes = (semantic[..., None] * 7 + 3 * jnp.arange(4)) % 64             # codes follow the semantics
  codes = codes.at[:, 22:].set(-1)                                       # padded tail
  state = jax.jit(task.init_state)(jax.random.PRNGKey(1), {"audio": jnp.zeros([b, 1])})
  step = jax.jit(task.train_step)
  losses = []
  for i in range(steps):
    rows = slice((i * b) % 64, (i * b) % 64 + b)
    state, metrics = step(state, {"labels/phone_20ms": semantic[rows], "acoustic_codes": codes[rows]})
    losses.append(float(metrics["loss"]))
  return np.mean(losses[:3]), np.mean(losses[-3:])


@pytest.mark.fast_compile
@pytest.mark.parametrize("preset", ["coarse_tiny", "soundstorm_tiny"])   # fine: same path as coarse
def test_acoustic_stages_learn_synthetic_codes(preset):
  first, last = _train_synthetic(preset)
  assert last < first - 1.0, (first, last)


@pytest.mark.fast_compile
def test_semantic_stage_trains_on_phone_labels(synth_records, tmp_path):
  cfg = config.load(f"{harness.REPO}/configs/token_lm.py:semantic_tiny", SMALL_MODEL + [
      f"--config.data.path={synth_records}", "--config.data.max_sample_size=16000",
      "--config.data.min_sample_size=0", "--config.train.num_steps=30", "--config.train.log_every=10",
      "--config.train.eval_every=0"])
  trainer.train(cfg, str(tmp_path))
  rows = harness.read_metrics(str(tmp_path))
  assert rows[30]["train/ce"] < rows[10]["train/ce"] - 0.5, (rows[10], rows[30])
  assert rows[30]["train/tokens"] > 8


@pytest.mark.parametrize("stage", ["semantic", "coarse", "fine", "soundstorm"])
def test_tokens_presets_read_tokenize_streams(stage):
  """`configs/token_lm.py:<stage>_tiny,tokens` reads `speechjax tokenize` output: `km` semantic ids and the
  tiny codec's `codec0`..`codec3` (256 codes); each stage loads only the streams it uses."""
  cfg = config.load(f"{harness.REPO}/configs/token_lm.py:{stage}_tiny,tokens",
                    ["--config.data.path=/nonexistent"])   # the config alone: no records to check against
  codecs = ("codec0", "codec1", "codec2", "codec3")
  expected = {"semantic": ("km",), "coarse": ("km",) + codecs, "fine": codecs,
              "soundstorm": ("km",) + codecs}[stage]
  assert tuple(cfg.data.labels) == expected and tuple(cfg.task.acoustic_labels) == codecs
  if stage == "soundstorm":
    assert cfg.model.codebook_size == 256
  else:
    assert cfg.task.codebook_size == 256
    assert get_task(cfg).seq_len <= cfg.model.max_length   # the crop fits the model
  with pytest.raises(ValueError, match="unknown preset"):
    config.load(f"{harness.REPO}/configs/token_lm.py:{stage}_tiny,tokenz", [])
