"""SUPERB-style probes of a frozen pretrained encoder (speechjax/tasks/probe.py).

    speechjax train --config configs/probe.py:phones  --workdir /tmp/probe_pr --config.init_from=/tmp/w2v2
    speechjax train --config configs/probe.py:speaker --workdir /tmp/probe_sid --config.init_from=/tmp/w2v2

Presets (synth-small): `phones` (frame-level phone classification on the 20 ms alignments, linear head,
evaluated on the held-out voices of the test split), `speaker` (voice identification from mean-pooled
frames; the test split's voices are held out, so it trains on the first 80 minutes of the train split and
evaluates on the rest of it).
"""
import ml_collections

from speechjax.configs import common
from speechjax.models import wav2vec2


def get_config(arg=None):
  preset = common.check_preset("probe", arg or "phones", ["phones", "speaker"])
  model = wav2vec2.model_config("tiny")   # replaced by the architecture of init_from
  task = ml_collections.ConfigDict(dict(name="probe", level="frame", label="phone_20ms", hidden_dim=0))
  cfg = common.base_config(model, task)
  cfg.init_from = ""
  cfg.reinit_top_layers = 0
  cfg.data.path = "data/synth-small/records"
  cfg.data.batch_size = 8
  cfg.data.max_sample_size = 32000
  cfg.data.min_sample_size = 8000
  cfg.optim.lr = 2e-3
  cfg.optim.warmup_steps = 50
  cfg.optim.weight_decay = 0.0
  cfg.optim.frozen = ("(wav2vec2|hubert|wavlm)/.*",)
  cfg.train.num_steps = 1000
  cfg.train.log_every = 50
  cfg.train.eval_every = 1000
  cfg.train.eval_steps = 40
  cfg.checkpoint.save_every = 1000
  if preset == "phones":
    cfg.data.labels = ("phone_20ms",)
  else:
    cfg.task.level = "utterance"
    cfg.task.hidden_dim = 128
    cfg.data.targets = "speaker"
    cfg.data.max_target_length = 1
    cfg.data.max_sample_size = 112000
    cfg.data.min_sample_size = 0
    cfg.data.eval_split = "train"
    cfg.data.train_subset_seconds = cfg.data.eval_skip_seconds = 4800.0
  return cfg
