"""A BERT over vq-wav2vec ids (masked-token prediction over `speechjax tokenize` output).

    speechjax tokenize --model vq-wav2vec --ckpt VQ_WORKDIR --data DIR --out TOKENS
    speechjax train --config configs/vq_wav2vec_bert.py:tiny --workdir /tmp/bert --config.data.path=TOKENS

Presets: `tiny` (CPU; ids of configs/vq_wav2vec.py:tiny, 32² = 1024, 64-token crops), `base` (BERT base over
320² ids, 512-token crops; span 10, ≈50% of tokens masked: the paper's values as remembered, unconfirmed).
Token crops come with the audio through the standard pipeline: `data.max_sample_size` samples hold
max_sample_size · 100 / 16000 ids (vq-wav2vec: 100 Hz).
"""
import ml_collections

from speechjax.configs import common
from speechjax.models import token_bert


def get_config(arg=None):
  preset = common.check_preset("vq_wav2vec_bert", arg or "tiny", ["tiny", "base"])
  task = ml_collections.ConfigDict(dict(
      name="masked_token_lm",
      mask_prob=0.5,
      mask_length=10,
      labels="km",
      token_rate=100,
  ))
  cfg = common.base_config(token_bert.model_config(preset), task)
  cfg.data.path = "tokens"
  cfg.data.labels = ("km",)
  cfg.data.batch_size = 64
  cfg.data.max_sample_size = 81920   # 512 ids
  cfg.data.min_sample_size = 16000
  cfg.optim.warmup_steps = 10000
  cfg.train.num_steps = 250000
  if preset == "tiny":
    cfg.task.mask_length = 3
    cfg.data.batch_size = 8
    cfg.data.max_sample_size = 10240   # 64 ids
    cfg.data.min_sample_size = 8000
    cfg.optim.lr = 2e-3
    cfg.optim.warmup_steps = 10
    cfg.train.num_steps = 100
  return cfg
