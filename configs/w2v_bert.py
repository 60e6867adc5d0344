"""w2v-BERT pretraining (speechjax.tasks.pretrain_w2v_bert): contrastive + MLM on a conformer over the
w2v-BERT 2.0 fbank front end.

    speechjax train --config configs/w2v_bert.py:tiny --workdir /tmp/w2v_bert

Presets: `tiny` (CPU: D=64, 2 contrastive + 2 MLM layers, 64 codes), `base` (D=768, 6 + 6), `xl` (the
paper's 0.6B: D=1024, 12 + 12, 1024 codes). Large presets use wav2vec 2.0's Base schedule (lr 5e-4, 32k
warmup, 400k updates, 15.6 s crops); the paper's batch 2048 is `data.batch_size` on a pod.
"""
import ml_collections

from speechjax.configs import common
from speechjax.configs import wav2vec2 as wav2vec2_recipe
from speechjax.models import w2v_bert


def task_config():
  task = wav2vec2_recipe.task_config()
  task.name = "pretrain_w2v_bert"
  del task["feature_penalty_weight"]   # no conv feature encoder
  task.mlm_weight = 1.0
  return task


def get_config(arg=None):
  preset = common.check_preset("w2v_bert", arg or "tiny", ["tiny", "base", "xl"])
  recipe = wav2vec2_recipe.get_config("tiny" if preset == "tiny" else "base")
  cfg = common.base_config(w2v_bert.model_config(preset), task_config())
  for section in ("data", "optim", "train", "checkpoint"):
    cfg[section] = recipe[section]
  cfg.task.num_negatives = recipe.task.num_negatives
  if preset == "tiny":   # the wav2vec 2.0 tiny recipe's masking (configs/wav2vec2.py)
    cfg.model.mask_length = 4
    cfg.model.mask_prob = 0.5
    cfg.train.num_steps = 400
  return cfg
