"""Supervised phone classification from the synthetic corpus's 20 ms alignments (the trainer's baseline).

    speechjax train --config configs/frame_classifier.py:tiny --workdir /tmp/fc --config.train.num_steps=100

Presets: `tiny` (CPU tests: small 4-layer conv encoder on data/synth-tiny), `small` (the same model on
data/synth-small, 2000 steps: the README's main job), `base` (the wav2vec 2.0 conv encoder).
"""
import ml_collections

from speechjax.data import pipeline
from speechjax.parallel import mesh
from speechjax.train import optim, trainer

PRESETS = {
    "tiny": dict(conv_layers=((32, 10, 5), (32, 8, 4), (32, 4, 4), (32, 4, 4)), embed_dim=32, mlp_dim=64),
    "small": dict(conv_layers=((64, 10, 5), (64, 8, 4), (64, 4, 4), (64, 4, 4)), embed_dim=128,
                  mlp_dim=256),
    "base": dict(conv_layers=((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2,
                 embed_dim=768, mlp_dim=3072),
}


def get_config(arg=None):
  preset = arg or "tiny"
  if preset not in PRESETS:
    raise ValueError(f"configs/frame_classifier.py: unknown preset {preset!r} (have {list(PRESETS)})")
  cfg = ml_collections.ConfigDict()
  cfg.model = ml_collections.ConfigDict(dict(
      num_classes=64, extractor_mode="group_norm", dtype="float32", **PRESETS[preset]))
  cfg.task = ml_collections.ConfigDict(dict(name="frame_classify", label="phone_20ms"))
  cfg.data = pipeline.default_config()
  cfg.data.labels = ("phone_20ms",)
  cfg.optim = optim.default_config()
  cfg.optim.lr, cfg.optim.warmup_steps = 1e-3, 10
  cfg.train = trainer.default_train_config()
  cfg.mesh = mesh.default_config()
  cfg.checkpoint = trainer.default_checkpoint_config()
  if preset == "small":
    cfg.data.max_sample_size, cfg.data.min_sample_size, cfg.data.batch_size = 32000, 3200, 16
    cfg.train.num_steps, cfg.train.log_every, cfg.train.eval_every = 2000, 100, 500
    cfg.optim.lr, cfg.optim.warmup_steps = 2e-3, 100
    cfg.checkpoint.save_every, cfg.checkpoint.keep_best, cfg.checkpoint.best_mode = 500, "accuracy", "max"
  if preset == "tiny":
    cfg.data.path = "data/synth-tiny/records"
    cfg.data.max_sample_size, cfg.data.min_sample_size, cfg.data.batch_size = 16000, 3200, 8
    cfg.train.num_steps, cfg.train.log_every = 200, 10
    cfg.checkpoint.save_every = 100
  return cfg
