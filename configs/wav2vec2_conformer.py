"""wav2vec 2.0 pretraining of a conformer encoder (fairseq `wav2vec2_conformer_*` recipes): the recipe of
configs/wav2vec2.py with `speechjax.models.wav2vec2_conformer` as the model.

    speechjax train --config configs/wav2vec2_conformer.py:tiny --workdir /tmp/w2v2c

Presets: `tiny` (CPU: D=64, 2 layers, kernel 15, LayerNorm conv module), `base` (relative positions, the
fairseq Base recipe), `large` (LibriVox Large: 24 layers, D=1024).
"""
from speechjax.configs import common
from speechjax.configs import wav2vec2 as wav2vec2_recipe
from speechjax.models import wav2vec2_conformer


def get_config(arg=None):
  preset = common.check_preset("wav2vec2_conformer", arg or "tiny", ["tiny", "base", "large"])
  cfg = wav2vec2_recipe.get_config(preset)
  cfg.model = wav2vec2_conformer.model_config(preset)
  if preset == "tiny":   # the recipe's tiny masking (configs/wav2vec2.py)
    cfg.model.mask_length = 4
    cfg.model.mask_prob = 0.5
  return cfg
