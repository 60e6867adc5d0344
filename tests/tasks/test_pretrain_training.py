"""Tiny wav2vec 2.0 and HuBERT train through the trainer on the synthetic corpus and their loss falls."""
import math

import harness
from speechjax import config
from speechjax.train import trainer

COMMON = ["--config.data.batch_size=8", "--config.data.min_sample_size=0", "--config.train.log_every=10",
          "--config.optim.warmup_steps=10", "--config.checkpoint.save_every=1000"]


def _train(spec, data, workdir, overrides):
  cfg = config.load(spec, COMMON + [f"--config.data.path={data}", *overrides])
  trainer.train(cfg, str(workdir))
  return harness.read_metrics(str(workdir))


def test_wav2vec2_tiny_contrastive_loss_falls_below_chance(synth_records, tmp_path):
  rows = _train(f"{harness.REPO}/configs/wav2vec2.py:tiny", synth_records, tmp_path,
                ["--config.train.num_steps=200"])
  chance = math.log(20 + 1)   # 20 distractors + the positive
  first, last = rows[10]["train/contrastive"], rows[200]["train/contrastive"]
  assert last < chance - 0.15 and last < first - 0.15, (first, last)
  assert rows[200]["train/accuracy"] > 2 / 21
  assert rows[200]["train/code_perplexity"] > 8    # 2 groups × 16 entries: codes in use, no collapse


def test_hubert_tiny_masked_loss_falls(synth_records, tmp_path):
  rows = _train(f"{harness.REPO}/configs/hubert.py:tiny", synth_records, tmp_path,
                ["--config.train.num_steps=100", "--config.data.labels=('phone_20ms',)"])
  first = rows[10]["train/phone_20ms/masked_loss"]
  last = rows[100]["train/phone_20ms/masked_loss"]
  assert last < first - 0.3, (first, last)
  assert rows[100]["train/phone_20ms/masked_accuracy"] > rows[10]["train/phone_20ms/masked_accuracy"]
