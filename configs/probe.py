"""SUPERB-style probes of a frozen pretrained encoder (speechjax/tasks/probe.py).

    speechjax train --config configs/probe.py:phones  --workdir /tmp/probe_pr --config.init_from=/tmp/w2v2
    speechjax train --config configs/probe.py:speaker --workdir /tmp/probe_sid --config.init_from=/tmp/w2v2

Presets (synth-small): `phones` (frame-level phone classification on the 20 ms alignments, linear head,
evaluated on the held-out voices of the test split), `speaker` (voice identification from mean-pooled
frames; the test split's voices are held out, so it trains on the first 80 minutes of the train split and
evaluates on the rest of it).
"""
import ml_collections

from speechjax.data import pipeline
from speechjax.models import wav2vec2
from speechjax.parallel import mesh
from speechjax.train import optim, trainer


def get_config(arg=None):
  preset = arg or "phones"
  if preset not in ("phones", "speaker"):
    raise ValueError(f"configs/probe.py: unknown preset {preset!r} (phones, speaker)")
  cfg = ml_collections.ConfigDict()
  cfg.init_from = ""
  cfg.reinit_top_layers = 0
  cfg.model = wav2vec2.model_config("tiny")   # replaced by the architecture of init_from
  cfg.task = ml_collections.ConfigDict(dict(name="probe", level="frame", label="phone_20ms", hidden_dim=0))
  cfg.data = pipeline.default_config()
  cfg.data.path = "data/synth-small/records"
  cfg.data.batch_size, cfg.data.max_sample_size, cfg.data.min_sample_size = 8, 32000, 8000
  cfg.optim = optim.default_config()
  cfg.optim.lr, cfg.optim.warmup_steps, cfg.optim.weight_decay = 2e-3, 50, 0.0
  cfg.optim.frozen = ("(wav2vec2|hubert|wavlm)/.*",)
  cfg.train = trainer.default_train_config()
  cfg.train.num_steps, cfg.train.log_every, cfg.train.eval_every, cfg.train.eval_steps = 1000, 50, 1000, 40
  cfg.mesh = mesh.default_config()
  cfg.checkpoint = trainer.default_checkpoint_config()
  cfg.checkpoint.save_every = 1000
  if preset == "phones":
    cfg.data.labels = ("phone_20ms",)
  else:
    cfg.task.level, cfg.task.hidden_dim = "utterance", 128
    cfg.data.targets, cfg.data.max_target_length = "speaker", 1
    cfg.data.max_sample_size, cfg.data.min_sample_size = 112000, 0
    cfg.data.eval_split = "train"
    cfg.data.train_subset_seconds = cfg.data.eval_skip_seconds = 4800.0
  return cfg
