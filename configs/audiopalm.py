"""AudioPaLM-style joint text + audio token LM: ASR and TTS on (audio tokens, transcript) pairs.

    speechjax train --config configs/audiopalm.py:tiny --workdir /tmp/audiopalm \
        [--config.data.path=LABELED --config.task.audio_labels=km --config.task.audio_rate=100 \
         --config.task.audio_vocab=100 --config.data.labels="('km',)"]

`tiny`: the tiny synthetic corpus, its 50 Hz phone labels standing in for k-means audio tokens (point it
at `speechjax label` output for real ones); whole utterances up to 6 s with transcripts up to 96
characters. The text vocabulary is scanned from the train split; `model.vocab_size` is derived.
"""
import ml_collections

from speechjax.configs import common
from speechjax.models import token_lm


def get_config(arg=None):
  common.check_preset("audiopalm", arg or "tiny", ["tiny"])
  model = token_lm.model_config("tiny", vocab_size=0)   # derived by the task
  task = ml_collections.ConfigDict(dict(
      name="audiopalm",
      audio_labels="phone_20ms",
      audio_rate=50,
      audio_vocab=100,
      remove_duplicates=True,
  ))
  cfg = common.base_config(model, task)
  cfg.data.path = "data/synth-tiny/records"
  cfg.data.labels = (cfg.task.audio_labels,)
  cfg.data.targets = "transcript"
  cfg.data.max_target_length = 96
  cfg.data.batch_size = 8
  cfg.data.max_sample_size = 96000
  cfg.data.min_sample_size = 0
  cfg.optim.lr = 2e-3
  cfg.optim.warmup_steps = 100
  cfg.optim.clip_norm = 1.0
  cfg.optim.weight_decay = 0.1
  cfg.train.num_steps = 1000
  cfg.train.log_every = 50
  cfg.train.eval_every = 250
  cfg.checkpoint.save_every = 1000
  return cfg
