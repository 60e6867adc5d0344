"""wav2vec 2.0 pretraining (contrastive task over Gumbel-quantized targets).

    speechjax train --config configs/wav2vec2.py:tiny --workdir /tmp/w2v2 --config.data.path=data/synth-small/records

Presets: `tiny` (CPU: small conv stack, D=64, 2 layers), `base` (95.0M params; LibriSpeech Base recipe:
lr 5e-4, 32k warmup, 400k updates, 15.6 s crops), `large` (LV-60 style, 317M).
"""
import ml_collections

from speechjax.configs import common
from speechjax.models import wav2vec2


def task_config():
  return ml_collections.ConfigDict(dict(
      name="pretrain_w2v2",
      num_negatives=100,
      logit_temp=0.1,
      diversity_weight=0.1,
      feature_penalty_weight=10.0,
      gumbel_temperature=(2.0, 0.5, 0.999995),
  ))


def get_config(arg=None):
  preset = common.check_preset("wav2vec2", arg or "tiny", ["tiny", "base", "large"])
  cfg = common.base_config(wav2vec2.model_config(preset), task_config())
  cfg.optim.lr = 5e-4
  cfg.optim.b2 = 0.98
  cfg.optim.eps = 1e-6
  cfg.optim.weight_decay = 0.01
  cfg.optim.clip_norm = 0.0   # fairseq's wav2vec 2.0 recipes do not clip
  if preset == "tiny":
    cfg.data.path = "data/synth-tiny/records"
    cfg.data.batch_size = 8
    cfg.data.max_sample_size = 32000
    cfg.data.min_sample_size = 8000
    cfg.task.num_negatives = 20
    # Measured on the synthetic corpus (README): with the paper's 10-frame spans at 65% coverage, lr 1e-3
    # and feature penalty 10 this 2-layer D=64 model sits at chance (ln 21) for hundreds of CPU steps; the
    # penalty holds its 32-channel conv features near zero. Shorter spans, a 5x higher peak lr and a
    # 10x lighter penalty make it learn within a few hundred steps.
    cfg.model.mask_length = 4
    cfg.model.mask_prob = 0.5
    cfg.task.feature_penalty_weight = 1.0
    cfg.optim.lr = 5e-3
    cfg.optim.warmup_steps = 100
    cfg.train.num_steps = 600
    cfg.train.log_every = 25
    cfg.checkpoint.save_every = 600
  else:
    cfg.train.rng_impl = common.TPU_RNG_IMPL
    cfg.data.batch_size = 64
    cfg.data.max_sample_size = 250000
    cfg.data.min_sample_size = 32000
    cfg.optim.warmup_steps = 32000
    cfg.train.num_steps = 400000
    cfg.checkpoint.save_every = 5000
  if preset == "large":
    cfg.data.max_sample_size = 320000
    cfg.optim.lr = 5e-3
    cfg.optim.warmup_steps = 32000
    cfg.train.num_steps = 1000000
    cfg.task.gumbel_temperature = (2.0, 0.1, 0.999995)
    cfg.task.feature_penalty_weight = 0.0
  return cfg
