"""CTC fine-tuning of a pretrained encoder (fairseq's `base_10m` / `base_10h` recipes, scaled).

    speechjax train --config configs/ctc.py:tiny --workdir /tmp/ctc --config.init_from=/tmp/w2v2
    speechjax eval  --ckpt /tmp/ctc --beam 8

Presets: `tiny` (CPU: phones, 10 minutes of labelled synth-small, 1500 steps; the encoder architecture comes
from `init_from`, or wav2vec 2.0 tiny when training from scratch), `base_10m` and `base_10h` (fairseq's
LibriSpeech recipes for a Base encoder: tri-stage lr 5e-5, transformer frozen for the first 10k updates, conv
encoder always, time masking 0.65, channel masking 0.25 / 0.5, LayerDrop 0.1 / 0.05; characters).
"""
import ml_collections

from speechjax.data import pipeline
from speechjax.models import wav2vec2
from speechjax.parallel import mesh
from speechjax.train import optim, trainer


def get_config(arg=None):
  preset = arg or "tiny"
  if preset not in ("tiny", "base_10m", "base_10h"):
    raise ValueError(f"configs/ctc.py: unknown preset {preset!r} (tiny, base_10m, base_10h)")
  cfg = ml_collections.ConfigDict()
  cfg.init_from = ""              # pretrained workdir ("" = random init: the no-pretraining baseline)
  cfg.reinit_top_layers = 0
  cfg.model = wav2vec2.model_config("tiny" if preset == "tiny" else "base")
  cfg.model.final_dropout = 0.0
  cfg.model.feature_grad_mult = 0.0   # fairseq fine-tuning: the conv encoder gets no gradient
  cfg.task = ml_collections.ConfigDict(dict(name="ctc", freeze_encoder_steps=10000))
  cfg.data = pipeline.default_config()
  cfg.optim = optim.default_config()
  cfg.optim.schedule, cfg.optim.phase_ratio = "tri_stage", (0.1, 0.4, 0.5)
  cfg.optim.b2, cfg.optim.eps, cfg.optim.weight_decay = 0.98, 1e-8, 0.0
  cfg.optim.frozen = (".*/feature_extractor/.*",)
  cfg.train = trainer.default_train_config()
  cfg.mesh = mesh.default_config()
  cfg.checkpoint = trainer.default_checkpoint_config()
  cfg.checkpoint.keep_best, cfg.checkpoint.best_mode = "ctc_loss", "min"
  if preset == "tiny":
    cfg.data.path = "data/synth-small/records"
    cfg.data.targets, cfg.data.max_target_length = "phones", 96
    cfg.data.train_subset_seconds = 600.0
    cfg.data.batch_size, cfg.data.min_sample_size, cfg.data.max_sample_size = 8, 0, 112000
    cfg.data.bucket_boundaries = (48000, 80000, 112000)
    cfg.model.update(mask_prob=0.3, mask_length=4, mask_channel_prob=0.1, mask_channel_length=8,
                     layerdrop=0.0)
    cfg.task.freeze_encoder_steps = 100
    cfg.optim.lr = 2e-3
    cfg.train.num_steps, cfg.train.log_every, cfg.train.eval_every = 1500, 50, 500
    cfg.train.eval_steps = 40
    cfg.checkpoint.save_every = 500
  else:
    ten_min = preset == "base_10m"
    cfg.data.path = "data/librispeech/records"
    cfg.data.targets, cfg.data.max_target_length = "transcript", 640
    cfg.data.batch_size, cfg.data.max_sample_size = 32, 560000
    cfg.data.bucket_boundaries = (160000, 320000, 560000)
    cfg.model.update(mask_prob=0.65, mask_length=10, mask_channel_prob=0.25 if ten_min else 0.5,
                     mask_channel_length=64, layerdrop=0.1 if ten_min else 0.05, activation_dropout=0.1)
    cfg.optim.lr = 5e-5
    cfg.train.num_steps = 13000 if ten_min else 20000
    cfg.train.eval_every, cfg.checkpoint.save_every = 1000, 1000
  return cfg
