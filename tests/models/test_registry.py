"""The model-family registry: one record per family, read by CTC, probe, warm starts, HF interop and the
wav2vec pretraining task."""
import pytest

from speechjax.config import ConfigError
from speechjax.models import registry

pytestmark = pytest.mark.fast_compile


def test_every_family_builds_its_tiny_preset_and_counts_flops():
  for name, family in registry.FAMILIES.items():
    cfg = family.model_config("tiny")
    assert cfg.model_type == name == family.scope
    assert family.from_config(cfg) is not None
    assert family.forward_flops(cfg, 16000) > 0


def test_encoders_are_the_transformer_and_conformer_families_with_hf_names():
  assert set(registry.ENCODERS) == {"wav2vec2", "hubert", "wavlm", "wav2vec2_conformer", "wav2vec2_bert"}
  for name, family in registry.ENCODERS.items():
    assert family.hf.prefix == f"{name}."
  assert registry.ENCODERS["wav2vec2"].hf.pretraining_heads
  assert registry.ENCODERS["wav2vec2_conformer"].hf.pretraining_heads
  assert not registry.ENCODERS["hubert"].hf.pretraining_heads


def test_unknown_model_type_names_the_field():
  with pytest.raises(ConfigError, match=r"config.model.model_type='conformer': expected one of \['hubert'"):
    registry.get("conformer", registry.ENCODERS)
