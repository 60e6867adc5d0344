"""CTC fine-tuning of a pretrained encoder (fairseq's `base_10m` / `base_10h` recipes, scaled).

    speechjax train --config configs/ctc.py:tiny --workdir /tmp/ctc --config.init_from=/tmp/w2v2
    speechjax eval  --ckpt /tmp/ctc --beam 8

Presets: `tiny` (CPU: phones, 10 minutes of labelled synth-small, 1500 steps; the encoder architecture comes
from `init_from`, or wav2vec 2.0 tiny when training from scratch), `base_10m` and `base_10h` (fairseq's
LibriSpeech recipes for a Base encoder: tri-stage lr 5e-5, transformer frozen for the first 10k updates, conv
encoder always, time masking 0.65, channel masking 0.25 / 0.5, LayerDrop 0.1 / 0.05; characters).
"""
import ml_collections

from speechjax.configs import common
from speechjax.models import wav2vec2


def get_config(arg=None):
  preset = common.check_preset("ctc", arg or "tiny", ["tiny", "base_10m", "base_10h"])
  model = wav2vec2.model_config("tiny" if preset == "tiny" else "base")
  cfg = common.base_config(model, ml_collections.ConfigDict(dict(name="ctc", freeze_encoder_steps=10000)))
  cfg.init_from = ""              # pretrained workdir ("" = random init: the no-pretraining baseline)
  cfg.reinit_top_layers = 0
  cfg.model.final_dropout = 0.0
  cfg.model.feature_grad_mult = 0.0   # fairseq fine-tuning: the conv encoder gets no gradient
  cfg.optim.schedule = "tri_stage"
  cfg.optim.phase_ratio = (0.1, 0.4, 0.5)
  cfg.optim.b2 = 0.98
  cfg.optim.eps = 1e-8
  cfg.optim.weight_decay = 0.0
  cfg.optim.frozen = (".*/feature_extractor/.*",)
  cfg.checkpoint.keep_best = "ctc_loss"
  cfg.checkpoint.best_mode = "min"
  if preset == "tiny":
    cfg.data.path = "data/synth-small/records"
    cfg.data.targets = "phones"
    cfg.data.max_target_length = 96
    cfg.data.train_subset_seconds = 600.0
    cfg.data.batch_size = 8
    cfg.data.min_sample_size = 0
    cfg.data.max_sample_size = 112000
    cfg.data.bucket_boundaries = (48000, 80000, 112000)
    cfg.model.mask_prob = 0.3
    cfg.model.mask_length = 4
    cfg.model.mask_channel_prob = 0.1
    cfg.model.mask_channel_length = 8
    cfg.model.layerdrop = 0.0
    cfg.task.freeze_encoder_steps = 100
    cfg.optim.lr = 2e-3
    cfg.train.num_steps = 1500
    cfg.train.log_every = 50
    cfg.train.eval_every = 500
    cfg.train.eval_steps = 40
    cfg.checkpoint.save_every = 500
  else:
    ten_min = preset == "base_10m"
    cfg.data.path = "data/librispeech/records"
    cfg.data.targets = "transcript"
    cfg.data.max_target_length = 640
    cfg.data.batch_size = 32
    cfg.data.max_sample_size = 560000
    cfg.data.bucket_boundaries = (160000, 320000, 560000)
    cfg.model.mask_prob = 0.65
    cfg.model.mask_length = 10
    cfg.model.mask_channel_prob = 0.25 if ten_min else 0.5
    cfg.model.mask_channel_length = 64
    cfg.model.layerdrop = 0.1 if ten_min else 0.05
    cfg.model.activation_dropout = 0.1
    cfg.optim.lr = 5e-5
    cfg.train.num_steps = 13000 if ten_min else 20000
    cfg.train.eval_every = 1000
    cfg.checkpoint.save_every = 1000
  return cfg
