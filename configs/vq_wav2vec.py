"""vq-wav2vec pretraining: wav2vec's objective over Gumbel or k-means quantized frames.

    speechjax train --config configs/vq_wav2vec.py:tiny --workdir /tmp/vqw2v --config.data.path=DIR
    speechjax tokenize --model vq-wav2vec --ckpt /tmp/vqw2v --data DIR --out TOKENS

Presets: `tiny` (Gumbel) and `tiny_kmeans` (CPU, configs/wav2vec.py:tiny's network, 2 × 32 codewords),
`gumbel` and `kmeans` (2 × 320 codewords on configs/wav2vec.py:large's network and schedule). README values:
lr 1e-5 cosine with 1000 warm-up steps, 400k updates; Gumbel temperature max(2 · 0.999995^step, 0.5), no
diversity loss; k-means loss weight 1, gamma 0.25.
"""
import os

from speechjax.config import load_file
from speechjax.configs import common
from speechjax.models import vq_wav2vec

NETWORK = {"tiny": "tiny", "tiny_kmeans": "tiny", "gumbel": "large", "kmeans": "large"}


def get_config(arg=None):
  preset = common.check_preset("vq_wav2vec", arg or "tiny", NETWORK)
  cfg = load_file(os.path.join(os.path.dirname(__file__), "wav2vec.py") + ":" + NETWORK[preset])
  cfg.model = vq_wav2vec.model_config(preset)
  cfg.task.gumbel_temperature = (2.0, 0.5, 0.999995)   # (start, end, decay per update)
  cfg.task.diversity_weight = 0.0                       # Gumbel: × (G·V − prob_perplexity) / (G·V)
  cfg.task.vq_loss_weight = 1.0                         # k-means: × codebook + gamma · commitment loss
  if preset == "tiny":
    cfg.task.diversity_weight = 0.5   # measured: without it the 2 × 32 codes fell to perplexity 9 in 60 steps
  if preset == "tiny_kmeans":
    # measured (docs/wav2vec.md): at weight 1 the codebook + commitment terms pull the encoder onto one
    # codeword per group (perplexity 2 of 64); at 0.1, with unit-scale codebook init, 16 of 64 and learning.
    cfg.task.vq_loss_weight = 0.1
  if NETWORK[preset] != "tiny":
    cfg.optim.lr = 1e-5
    cfg.optim.warmup_steps = 1000
  return cfg
