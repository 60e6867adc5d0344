"""WavLM pretraining task: utterance mixing (jitted, static shapes) and a tiny run whose loss falls."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from speechjax import config
from speechjax.config import ConfigError
from speechjax.tasks import get_task, pretrain_wavlm
from speechjax.train import trainer

from tests.helpers import harness

B, T = 6, 4000
LENGTHS = np.array([4000, 3500, 3000, 2000, 1200, 800])


def _batch():
  rng = np.random.default_rng(0)
  mask = np.arange(T)[None, :] < LENGTHS[:, None]
  gains = np.array([1.0, 0.1, 0.5, 2.0, 0.3, 0.05])[:, None]   # different energies per utterance
  audio = np.where(mask, gains * rng.standard_normal((B, T)), 0.0).astype(np.float32)
  labels = rng.integers(0, 64, (B, 13)).astype(np.int32)
  return {"audio": audio, "audio_mask": mask, "labels/phone_20ms": labels}


def _task(*overrides):
  return get_task(config.load(f"{harness.REPO}/configs/wavlm.py:tiny", list(overrides)))


def test_mixing_adds_a_scaled_crop_of_another_row_and_keeps_the_labels():
  task = _task("--config.task.mix_prob=1.0", "--config.task.mix_energy_ratio_db=(-5.0, 5.0)",
               "--config.task.mix_max_overlap=0.5")
  batch = _batch()
  for seed in range(3):
    mixed, info = jax.jit(task.augment)(batch, jax.random.PRNGKey(seed))
    info = jax.tree.map(np.asarray, info)
    np.testing.assert_array_equal(mixed["labels/phone_20ms"], batch["labels/phone_20ms"])
    np.testing.assert_array_equal(mixed["audio_mask"], batch["audio_mask"])
    assert info["mixed"].all() and (info["partner"] != np.arange(B)).all()
    added = np.asarray(mixed["audio"], np.float64) - batch["audio"]
    for i in range(B):
      start, length, j, src = info["start"][i], info["length"][i], info["partner"][i], info["source_start"][i]
      overlap = length / LENGTHS[i]
      assert 0 < overlap <= 0.5 and start + length <= LENGTHS[i]          # inside the primary's samples
      assert not added[i, :start].any() and not added[i, start + length:].any()
      crop = batch["audio"][j, src:src + length]
      assert src + length <= LENGTHS[j]
      segment = added[i, start:start + length]                               # the partner's crop, scaled
      scale = segment @ crop / (crop @ crop)
      assert scale > 0 and np.linalg.norm(segment - scale * crop) < 1e-5 * np.linalg.norm(segment)
      primary = np.mean(batch["audio"][i, :LENGTHS[i]].astype(np.float64) ** 2)
      ratio_db = 10 * np.log10(primary / np.mean(added[i, start:start + length] ** 2))
      assert -5.0 - 1e-3 <= ratio_db <= 5.0 + 1e-3
      np.testing.assert_allclose(ratio_db, info["ratio_db"][i], atol=1e-3)


def test_mixing_probability_range_and_eval_off():
  rng = np.random.default_rng(1)
  audio = rng.standard_normal((400, 800)).astype(np.float32)
  mask = np.ones_like(audio, bool)
  _, info = jax.jit(lambda k: pretrain_wavlm.mix_utterances(k, audio, mask, 0.3, (2.0, 3.0), 0.2))(
      jax.random.PRNGKey(0))
  assert abs(float(info["mixed"].mean()) - 0.3) < 0.08
  assert float(info["ratio_db"].min()) >= 2.0 and float(info["ratio_db"].max()) <= 3.0
  assert int(info["length"].max()) <= 0.2 * 800
  out, info = pretrain_wavlm.mix_utterances(jax.random.PRNGKey(0), audio[:1], mask[:1], 1.0)
  assert not bool(info["mixed"].any()) and np.array_equal(out, audio[:1])   # no other row to mix in
  with pytest.raises(ConfigError, match="mix_energy_ratio_db"):
    _task("--config.task.mix_energy_ratio_db=(5.0, -5.0)")


def test_wavlm_tiny_masked_loss_falls(synth_records, tmp_path):
  cfg = config.load(f"{harness.REPO}/configs/wavlm.py:tiny", [
      f"--config.data.path={synth_records}", "--config.data.batch_size=8", "--config.data.min_sample_size=0",
      "--config.train.log_every=10", "--config.optim.warmup_steps=10", "--config.checkpoint.save_every=1000",
      "--config.train.num_steps=60", "--config.task.mix_prob=0.5"])
  trainer.train(cfg, str(tmp_path))
  rows = harness.read_metrics(str(tmp_path))
  first, last = rows[10]["train/phone_20ms/masked_loss"], rows[60]["train/phone_20ms/masked_loss"]
  print(f"wavlm tiny masked loss {first:.3f} → {last:.3f}")
  assert last < first - 0.3, (first, last)
  assert 0 < rows[60]["train/mixed_fraction"] < 1
  assert jnp.isfinite(rows[60]["train/loss"])
