"""AudioPaLM-style joint text + audio token LM: ASR and TTS on (audio tokens, transcript) pairs.

    speechjax train --config configs/audiopalm.py:tiny --workdir /tmp/audiopalm \
        [--config.data.path=LABELED --config.task.audio_labels=km --config.task.audio_rate=100 \
         --config.task.audio_vocab=100 --config.data.labels="('km',)"]

`tiny`: the tiny synthetic corpus, its 50 Hz phone labels standing in for k-means audio tokens (point it
at `speechjax label` output for real ones); whole utterances up to 6 s with transcripts up to 96
characters. The text vocabulary is scanned from the train split; `model.vocab_size` is derived.
"""
import ml_collections

from speechjax.data import pipeline
from speechjax.models import token_lm
from speechjax.parallel import mesh
from speechjax.train import optim, trainer


def get_config(arg=None):
  preset = arg or "tiny"
  if preset != "tiny":
    raise ValueError(f"configs/audiopalm.py: unknown preset {preset!r} (have ['tiny'])")
  cfg = ml_collections.ConfigDict()
  cfg.model = token_lm.model_config("tiny", vocab_size=0)   # derived by the task
  cfg.task = ml_collections.ConfigDict(dict(name="audiopalm", audio_labels="phone_20ms", audio_rate=50,
                                            audio_vocab=100, remove_duplicates=True))
  cfg.data = pipeline.default_config()
  cfg.data.path = "data/synth-tiny/records"
  cfg.data.labels = (cfg.task.audio_labels,)
  cfg.data.targets, cfg.data.max_target_length = "transcript", 96
  cfg.data.batch_size, cfg.data.max_sample_size, cfg.data.min_sample_size = 8, 96000, 0
  cfg.optim = optim.default_config()
  cfg.optim.lr, cfg.optim.warmup_steps, cfg.optim.clip_norm, cfg.optim.weight_decay = 2e-3, 100, 1.0, 0.1
  cfg.train = trainer.default_train_config()
  cfg.train.num_steps, cfg.train.log_every, cfg.train.eval_every = 1000, 50, 250
  cfg.mesh = mesh.default_config()
  cfg.checkpoint = trainer.default_checkpoint_config()
  cfg.checkpoint.save_every = 1000
  return cfg
