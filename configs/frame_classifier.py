"""Supervised phone classification from the synthetic corpus's 20 ms alignments (the trainer's baseline).

    speechjax train --config configs/frame_classifier.py:tiny --workdir /tmp/fc --config.train.num_steps=100

Presets: `tiny` (CPU tests: small 4-layer conv encoder on data/synth-tiny), `small` (the same model on
data/synth-small, 2000 steps: the README's main job), `base` (the wav2vec 2.0 conv encoder).
"""
import ml_collections

from speechjax.configs import common

PRESETS = {
    "tiny": dict(conv_layers=((32, 10, 5), (32, 8, 4), (32, 4, 4), (32, 4, 4)), embed_dim=32, mlp_dim=64),
    "small": dict(conv_layers=((64, 10, 5), (64, 8, 4), (64, 4, 4), (64, 4, 4)), embed_dim=128,
                  mlp_dim=256),
    "base": dict(conv_layers=((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2,
                 embed_dim=768, mlp_dim=3072),
}


def get_config(arg=None):
  preset = common.check_preset("frame_classifier", arg or "tiny", PRESETS)
  model = ml_collections.ConfigDict(dict(
      num_classes=64,
      extractor_mode="group_norm",
      dtype="float32",
      **PRESETS[preset],
  ))
  cfg = common.base_config(model, ml_collections.ConfigDict(dict(name="frame_classify", label="phone_20ms")))
  cfg.data.labels = ("phone_20ms",)
  cfg.optim.lr = 1e-3
  cfg.optim.warmup_steps = 10
  if preset == "small":
    cfg.data.max_sample_size = 32000
    cfg.data.min_sample_size = 3200
    cfg.data.batch_size = 16
    cfg.train.num_steps = 2000
    cfg.train.log_every = 100
    cfg.train.eval_every = 500
    cfg.optim.lr = 2e-3
    cfg.optim.warmup_steps = 100
    cfg.checkpoint.save_every = 500
    cfg.checkpoint.keep_best = "accuracy"
    cfg.checkpoint.best_mode = "max"
  if preset == "tiny":
    cfg.data.path = "data/synth-tiny/records"
    cfg.data.max_sample_size = 16000
    cfg.data.min_sample_size = 3200
    cfg.data.batch_size = 8
    cfg.train.num_steps = 200
    cfg.train.log_every = 10
    cfg.checkpoint.save_every = 100
  return cfg
