"""WavLM pretraining: HuBERT's masked prediction of offline k-means labels, with the gated relative
position bias in the model and utterance mixing in the task.

    speechjax train --config configs/wavlm.py:tiny --workdir /tmp/wavlm --config.data.path=DIR

Presets: `tiny` (CPU, like configs/hubert.py:tiny), `base` (960 h, HuBERT Base's recipe), `base_plus` (the
same network, 94k h), `large`. Everything but the model and the mixing knobs comes from configs/hubert.py
(same preset; `base_plus` uses `base`). Step counts of base_plus (1M) and large (700k) are the WavLM paper's
as remembered, unconfirmed; the other optimisation values are HuBERT's.
"""
import os

from speechjax.config import load_file
from speechjax.configs import common
from speechjax.models import wavlm

HUBERT_PRESET = {"tiny": "tiny", "base": "base", "base_plus": "base", "large": "large"}
NUM_STEPS = {"base_plus": 1_000_000, "large": 700_000}


def get_config(arg=None):
  preset = common.check_preset("wavlm", arg or "tiny", HUBERT_PRESET)
  cfg = load_file(os.path.join(os.path.dirname(__file__), "hubert.py") + ":" + HUBERT_PRESET[preset])
  num_classes = cfg.model.num_classes
  cfg.model = wavlm.model_config(preset)
  cfg.model.num_classes = num_classes
  cfg.task.name = "pretrain_wavlm"
  cfg.task.mix_prob = 0.2                    # probability that an utterance gets another one mixed in
  cfg.task.mix_energy_ratio_db = (-5.0, 5.0)   # primary-to-interference energy ratio range
  cfg.task.mix_max_overlap = 0.5             # the interference covers < this fraction of the primary
  cfg.train.num_steps = NUM_STEPS.get(preset, cfg.train.num_steps)
  return cfg
