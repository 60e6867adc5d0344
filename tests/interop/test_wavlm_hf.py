"""WavLM parity with HF transformers' `WavLMModel` (random weights, reduced sizes; nothing downloaded), the
weight/config converters and `speechjax convert`."""
import functools

import jax
import numpy as np
import pytest

from speechjax.interop import convert, hf
from speechjax.models import wavlm
from speechjax.nn import rel_pos_bias

from tests.interop import hf_parity

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors_numpy = pytest.importorskip("safetensors.numpy")
pytestmark = [pytest.mark.fast_compile,
              pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")]   # inside HF

# Reduced Base (group-norm extractor, post-LN) and Large (layer-norm extractor, conv bias, pre-LN; scanned
# layers on our side) layouts. 2 s of audio = 99 frames, so offsets reach the log-spaced buckets (≥ 80).
STYLES = {"base": dict(num_hidden_layers=3),
          "large": dict(num_hidden_layers=3, extractor_mode="layer_norm", conv_bias=True,
                        do_stable_layer_norm=True, scan_layers=True)}
B, T, REAL = 2, 32000, 26000
TOLERANCE = 1e-4


def _config(style):
  cfg = wavlm.model_config("tiny")
  cfg.update(STYLES[style])
  return cfg


@functools.lru_cache(maxsize=None)
def _hf_model(style):
  """(our config, HF WavLMModel in eval mode); norms, biases, gates and the bias table perturbed."""
  cfg = _config(style)
  return cfg, hf_parity.perturbed_hf_model(transformers.WavLMModel, cfg,
                                           hf_parity.PERTURBED + ("gru_rel_pos", "rel_attn_embed"))


def _time_mask(frames):
  return hf_parity.time_mask(B, frames, [(0, 2, 12), (0, 40, 50), (1, 60, 70)])


@pytest.mark.parametrize("style", ["base", "large"])
def test_hidden_states_match_hf_at_every_layer(style):
  cfg, model = _hf_model(style)
  params = hf.from_hf(model.state_dict(), cfg)
  module = wavlm.from_config(cfg, heads=False)
  audio, audio_mask = hf_parity.padded_batch(T, REAL)
  run = jax.jit(lambda p, m: module.apply({"params": p}, audio, audio_mask, mask_time=m,
                                          output_hidden_states=True))
  frames = None
  for masked in (False, True):
    mask_time = _time_mask(frames) if masked else None
    theirs = hf_parity.hf_outputs(model, audio, audio_mask, mask_time).hidden_states
    frames = theirs[0].shape[1]
    ours = run(params, _time_mask(frames) if masked else np.zeros((B, frames), bool))["hidden_states"]
    assert frames > 80 and len(ours) == len(theirs) == cfg.num_hidden_layers + 1
    errors = hf_parity.max_errors(ours, theirs)
    print(f"wavlm/{style} {'masked' if masked else 'unmasked'}: max abs error per layer "
          f"{['%.1e' % e for e in errors]}")
    assert max(errors) <= TOLERANCE


def test_buckets_equal_hf_for_every_offset():
  for buckets, distance in ((320, 800), (320, 1280), (64, 100)):
    attention = transformers.models.wavlm.modeling_wavlm.WavLMAttention(
        64, 4, num_buckets=buckets, max_distance=distance)
    n = 1500   # offsets up to ±1499: past every max_distance
    ours = rel_pos_bias.relative_position_buckets(n, n, buckets, distance)
    offsets = np.arange(-(n - 1), n)
    theirs = attention._relative_positions_bucket(  # pylint: disable=protected-access
        torch.from_numpy(offsets)).numpy()
    np.testing.assert_array_equal(np.r_[ours[n - 1], ours[0, 1:]], theirs)


@pytest.mark.parametrize("style", ["base", "large"])
def test_export_import_round_trip_is_exact(style):
  cfg, model = _hf_model(style)
  theirs = hf_parity.state_dict(model)
  params = hf.from_hf(theirs, cfg)
  back = hf.to_hf(params, cfg)
  hf_parity.assert_same_state_dict(back, theirs)
  jax.tree.map(np.testing.assert_array_equal, hf.from_hf(back, cfg), params)
  prefixed = {"wavlm." + k: v for k, v in theirs.items()}
  jax.tree.map(np.testing.assert_array_equal, hf.from_hf(prefixed, cfg), params)


def test_pretraining_tree_exports_only_its_encoder():
  cfg, model = _hf_model("base")
  params = hf.from_hf(hf_parity.state_dict(model), cfg)
  with pytest.raises(ValueError, match="no pretraining heads for WavLMModel"):
    hf.to_hf({"wavlm": params, "final_proj": {}}, cfg)
  missing = {k: v for k, v in hf_parity.state_dict(model).items()
             if "gru_rel_pos_const" not in k or ".2." not in k}
  with pytest.raises(ValueError, match="missing.*layers.2.attention.gru_rel_pos_const"):
    hf.from_hf(missing, cfg)


def test_configs_round_trip_and_hf_defaults_are_the_base_preset():
  for style in STYLES:
    cfg = _config(style)
    hf_cfg = hf.hf_config(cfg)
    assert isinstance(hf_cfg, transformers.WavLMConfig)
    back = hf.config_from_hf(hf_cfg)
    for field in hf.SAME_NAME + hf.WAVLM_ONLY + ("extractor_mode", "mask_prob", "mask_length"):
      assert back[field] == cfg[field], field
    assert back.model_type == "wavlm"
  ours, base = hf.config_from_hf(transformers.WavLMConfig()), wavlm.model_config("base")
  for field in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "conv_bias",
                "extractor_mode", "do_stable_layer_norm", "num_buckets", "max_bucket_distance"):
    assert ours[field] == base[field], field


def test_convert_verb_round_trip(tmp_path, capsys):
  original = hf_parity.save_hf(transformers.WavLMModel, wavlm.model_config("tiny"), tmp_path / "hf")
  assert hf_parity.run_convert("--from-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "ckpt"),
                               "--scan-layers") == 0
  assert capsys.readouterr().out.startswith("wavlm:")
  loaded_cfg, params, _ = convert.load_params(str(tmp_path / "ckpt"))
  assert loaded_cfg.model_type == "wavlm" and "rel_attn_embed" in params["encoder"]
  assert hf_parity.run_convert("--to-hf", str(tmp_path / "ckpt"), "--out", str(tmp_path / "back")) == 0
  assert "WavLMModel" in capsys.readouterr().out
  hf_parity.assert_same_state_dict(hf_parity.load_exported(tmp_path / "back"), original)
