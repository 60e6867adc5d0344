"""The model families, by `config.model.model_type` (see `speechjax.models.family`)."""
from __future__ import annotations

from speechjax.config import require
from speechjax.models import hubert, vq_wav2vec, w2v_bert, wav2vec, wav2vec2, wav2vec2_conformer, wavlm
from speechjax.models.family import Family

FAMILIES: dict[str, Family] = {f.model_type: f for f in (
    wav2vec.FAMILY,
    vq_wav2vec.FAMILY,
    wav2vec2.FAMILY,
    hubert.FAMILY,
    wavlm.FAMILY,
    wav2vec2_conformer.FAMILY,
    w2v_bert.FAMILY,
)}
# transformer encoders with a CTC / probe body and HF weights
ENCODERS: dict[str, Family] = {name: f for name, f in FAMILIES.items() if f.encoder is not None}


def get(model_type, families: dict[str, Family] = FAMILIES) -> Family:
  """The family of `config.model.model_type`, or a ConfigError naming the field and the choices."""
  require(model_type in families, "model.model_type", model_type, f"expected one of {sorted(families)}")
  return families[model_type]
