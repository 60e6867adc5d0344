"""`speechjax convert`: HF save_pretrained dir → params-only checkpoint → HF dir, exact round trip."""
import json

import numpy as np
import pytest

from speechjax.interop import convert, hf_conformer
from speechjax.models import hubert, registry, wav2vec2

from tests.interop import hf_parity

pytestmark = pytest.mark.fast_compile

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors_numpy = pytest.importorskip("safetensors.numpy")


def test_wav2vec2_pretraining_round_trip(tmp_path, capsys):
  original = hf_parity.save_hf(transformers.Wav2Vec2ForPreTraining, wav2vec2.model_config("tiny"),
                               tmp_path / "hf")
  assert hf_parity.run_convert("--from-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "ckpt")) == 0
  assert "with pretraining heads" in capsys.readouterr().out
  meta = json.loads((tmp_path / "ckpt/checkpoints/0/meta/metadata").read_text())
  assert meta["heads"] and meta["config"]["model"]["hidden_size"] == 64
  cfg, params, step = convert.load_params(str(tmp_path / "ckpt"))
  assert step == 0 and "quantizer" in params
  assert hf_parity.run_convert("--to-hf", str(tmp_path / "ckpt"), "--out", str(tmp_path / "back")) == 0
  assert "Wav2Vec2ForPreTraining" in capsys.readouterr().out
  hf_parity.assert_same_state_dict(hf_parity.load_exported(tmp_path / "back"), original)


def test_hubert_from_torch_bin_with_scanned_layers(tmp_path):
  cfg = hubert.model_config("tiny")
  original = hf_parity.save_hf(transformers.HubertModel, cfg, tmp_path / "hf", safe=False)
  weights = tmp_path / "hf" / "pytorch_model.bin"
  assert weights.exists()
  assert hf_parity.run_convert("--from-hf", str(weights), "--out", str(tmp_path / "ckpt"), "--scan-layers") == 0
  loaded_cfg, params, _ = convert.load_params(str(tmp_path / "ckpt"))
  assert loaded_cfg.scan_layers and params["encoder"]["layers"]["attention"]["q_proj"]["kernel"].shape[0] == 2
  assert hf_parity.run_convert("--to-hf", str(tmp_path / "ckpt"), "--out", str(tmp_path / "back")) == 0
  exported = hf_parity.load_exported(tmp_path / "back")
  for key, value in original.items():
    np.testing.assert_array_equal(exported[key], value, err_msg=key)


def test_bad_sources_give_clear_errors(tmp_path, capsys):
  assert hf_parity.run_convert("--from-hf", str(tmp_path / "nothing"), "--out", str(tmp_path / "ckpt")) == 1
  assert "no such file or directory" in capsys.readouterr().err
  (tmp_path / "empty").mkdir()
  assert hf_parity.run_convert("--from-hf", str(tmp_path / "empty"), "--out", str(tmp_path / "ckpt")) == 1
  assert "no weights file" in capsys.readouterr().err
  assert hf_parity.run_convert("--to-hf", str(tmp_path / "empty"), "--out", str(tmp_path / "out")) == 1
  assert "no checkpoint steps" in capsys.readouterr().err


@pytest.mark.parametrize("family,hf_class,heads", [
    ("wav2vec2_conformer", "Wav2Vec2ConformerForPreTraining", True),
    ("wav2vec2_bert", "Wav2Vec2BertModel", False)])
def test_conformer_families_round_trip(family, hf_class, heads, tmp_path, capsys):
  cfg = registry.get(family).model_config("tiny")
  if family == "wav2vec2_conformer":
    cfg.conv_norm = "batch_norm"   # HF's conv module
  original = hf_parity.save_hf(getattr(transformers, hf_class), cfg, tmp_path / "hf")
  assert hf_parity.run_convert("--from-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "ckpt")) == 0
  assert ("with pretraining heads" if heads else "without pretraining heads") in capsys.readouterr().out
  assert hf_parity.run_convert("--to-hf", str(tmp_path / "ckpt"), "--out", str(tmp_path / "back")) == 0
  assert hf_class in capsys.readouterr().out
  def used(state_dict):   # HF also saves what it builds and never calls (fresh values on export)
    return {k: v for k, v in state_dict.items() if not hf_conformer.IGNORED.search(k)}
  hf_parity.assert_same_state_dict(used(hf_parity.load_exported(tmp_path / "back")), used(original))
