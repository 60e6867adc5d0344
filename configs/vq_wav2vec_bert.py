"""A BERT over vq-wav2vec ids (masked-token prediction over `speechjax tokenize` output).

    speechjax tokenize --model vq-wav2vec --ckpt VQ_WORKDIR --data DIR --out TOKENS
    # then: Task(get_config("tiny")) with batches from masked_token_lm.km_batches("TOKENS/train.km", ...)

Presets: `tiny` (CPU; ids of configs/vq_wav2vec.py:tiny, 32² = 1024), `base` (BERT base over 320² ids; span
10, ≈50% of tokens masked: the paper's values as remembered, unconfirmed). `speechjax train` cannot run it
yet (it reads audio records only): see speechjax/tasks/masked_token_lm.py.
"""
import ml_collections

from speechjax.models import token_bert
from speechjax.parallel import mesh
from speechjax.train import optim, trainer


def get_config(arg=None):
  preset = arg or "tiny"
  cfg = ml_collections.ConfigDict()
  cfg.model = token_bert.model_config(preset)
  cfg.task = ml_collections.ConfigDict(dict(name="masked_token_lm", mask_prob=0.5, mask_length=10))
  cfg.data = ml_collections.ConfigDict(dict(km="tokens/train.km", batch_size=64, max_tokens=512))
  cfg.optim = optim.default_config()
  cfg.optim.warmup_steps = 10000
  cfg.train = trainer.default_train_config()
  cfg.train.num_steps = 250000
  cfg.mesh = mesh.default_config()
  cfg.checkpoint = trainer.default_checkpoint_config()
  if preset == "tiny":
    cfg.task.mask_length = 3
    cfg.data.batch_size, cfg.data.max_tokens = 8, 64
    cfg.optim.lr, cfg.optim.warmup_steps = 2e-3, 10
    cfg.train.num_steps = 100
  return cfg
