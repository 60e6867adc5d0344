"""A BERT over vq-wav2vec ids (masked-token prediction over `speechjax tokenize` output).

    speechjax tokenize --model vq-wav2vec --ckpt VQ_WORKDIR --data DIR --out TOKENS
    speechjax train --config configs/vq_wav2vec_bert.py:tiny --workdir /tmp/bert --config.data.path=TOKENS

Presets: `tiny` (CPU; ids of configs/vq_wav2vec.py:tiny, 32² = 1024, 64-token crops), `base` (BERT base over
320² ids, 512-token crops; span 10, ≈50% of tokens masked: the paper's values as remembered, unconfirmed).
Token crops come with the audio through the standard pipeline: `data.max_sample_size` samples hold
max_sample_size · 100 / 16000 ids (vq-wav2vec: 100 Hz).
"""
import ml_collections

from speechjax.data import pipeline
from speechjax.models import token_bert
from speechjax.parallel import mesh
from speechjax.train import optim, trainer


def get_config(arg=None):
  preset = arg or "tiny"
  cfg = ml_collections.ConfigDict()
  cfg.model = token_bert.model_config(preset)
  cfg.task = ml_collections.ConfigDict(dict(name="masked_token_lm", mask_prob=0.5, mask_length=10,
                                            labels="km", token_rate=100))
  cfg.data = pipeline.default_config()
  cfg.data.path, cfg.data.labels = "tokens", ("km",)
  cfg.data.batch_size, cfg.data.max_sample_size, cfg.data.min_sample_size = 64, 81920, 16000   # 512 ids
  cfg.optim = optim.default_config()
  cfg.optim.warmup_steps = 10000
  cfg.train = trainer.default_train_config()
  cfg.train.num_steps = 250000
  cfg.mesh = mesh.default_config()
  cfg.checkpoint = trainer.default_checkpoint_config()
  if preset == "tiny":
    cfg.task.mask_length = 3
    cfg.data.batch_size, cfg.data.max_sample_size, cfg.data.min_sample_size = 8, 10240, 8000   # 64 ids
    cfg.optim.lr, cfg.optim.warmup_steps = 2e-3, 10
    cfg.train.num_steps = 100
  return cfg
