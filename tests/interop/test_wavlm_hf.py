"""WavLM parity with HF transformers' `WavLMModel` (random weights, reduced sizes; nothing downloaded), the
weight/config converters and `speechjax convert`."""
import argparse
import functools
import os

import jax
import numpy as np
import pytest

from speechjax.interop import convert, hf
from speechjax.models import wavlm
from speechjax.nn import rel_pos_bias

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors_numpy = pytest.importorskip("safetensors.numpy")
pytestmark = pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")   # inside HF

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
  torch.manual_seed(0)
  model = transformers.WavLMModel(hf.hf_config(cfg)).eval()
  with torch.no_grad():
    for name, p in model.named_parameters():
      if any(k in name for k in ("bias", "norm", "masked_spec_embed", "gru_rel_pos", "rel_attn_embed")):
        p.add_(0.2 * torch.randn_like(p))
  return cfg, model


def _state_dict(model):
  return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def _batch():
  rng = np.random.default_rng(0)
  audio = (0.3 * rng.standard_normal((B, T))).astype(np.float32)
  audio_mask = np.arange(T)[None, :] < np.array([[T], [REAL]])
  return np.where(audio_mask, audio, 0).astype(np.float32), audio_mask


def _time_mask(frames):
  mask = np.zeros((B, frames), bool)
  mask[0, 2:12], mask[0, 40:50], mask[1, 60:70] = True, True, True
  return mask


@pytest.mark.parametrize("style", ["base", "large"])
def test_hidden_states_match_hf_at_every_layer(style):
  cfg, model = _hf_model(style)
  params = hf.from_hf(model.state_dict(), cfg)
  module = wavlm.from_config(cfg, heads=False)
  audio, audio_mask = _batch()
  run = jax.jit(lambda p, m: module.apply({"params": p}, audio, audio_mask, mask_time=m,
                                          output_hidden_states=True))
  frames = None
  for masked in (False, True):
    with torch.no_grad():
      kwargs = {}
      if masked:
        kwargs["mask_time_indices"] = torch.from_numpy(_time_mask(frames))
      theirs = model(torch.from_numpy(audio), attention_mask=torch.from_numpy(audio_mask.astype(np.int64)),
                     output_hidden_states=True, **kwargs).hidden_states
    frames = theirs[0].shape[1]
    ours = run(params, _time_mask(frames) if masked else np.zeros((B, frames), bool))["hidden_states"]
    assert frames > 80 and len(ours) == len(theirs) == cfg.num_hidden_layers + 1
    errors = [float(np.abs(np.asarray(a) - b.numpy()).max()) for a, b in zip(ours, theirs)]
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
  theirs = _state_dict(model)
  params = hf.from_hf(theirs, cfg)
  back = hf.to_hf(params, cfg)
  assert set(back) == set(theirs)
  for key, value in theirs.items():
    np.testing.assert_array_equal(back[key], value, err_msg=key)
  jax.tree.map(np.testing.assert_array_equal, hf.from_hf(back, cfg), params)
  prefixed = {"wavlm." + k: v for k, v in theirs.items()}
  jax.tree.map(np.testing.assert_array_equal, hf.from_hf(prefixed, cfg), params)


def test_pretraining_tree_exports_only_its_encoder():
  cfg, model = _hf_model("base")
  params = hf.from_hf(_state_dict(model), cfg)
  with pytest.raises(ValueError, match="WavLM pretraining heads"):
    hf.to_hf({"wavlm": params, "final_proj": {}}, cfg)
  missing = {k: v for k, v in _state_dict(model).items() if "gru_rel_pos_const" not in k or ".2." not in k}
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


def _run(*argv):
  parser = argparse.ArgumentParser()
  convert.add_arguments(parser)
  return convert.run(parser.parse_args(list(argv)))


def test_convert_verb_round_trip(tmp_path, capsys):
  cfg = wavlm.model_config("tiny")
  torch.manual_seed(0)
  model = transformers.WavLMModel(hf.hf_config(cfg))
  model.save_pretrained(tmp_path / "hf")
  original = _state_dict(model)
  assert _run("--from-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "ckpt"), "--scan-layers") == 0
  assert capsys.readouterr().out.startswith("wavlm:")
  loaded_cfg, params, _ = convert.load_params(str(tmp_path / "ckpt"))
  assert loaded_cfg.model_type == "wavlm" and "rel_attn_embed" in params["encoder"]
  assert _run("--to-hf", str(tmp_path / "ckpt"), "--out", str(tmp_path / "back")) == 0
  assert "WavLMModel" in capsys.readouterr().out
  exported = safetensors_numpy.load_file(os.path.join(tmp_path / "back", "model.safetensors"))
  assert set(exported) == set(original)
  for key, value in original.items():
    np.testing.assert_array_equal(exported[key], value, err_msg=key)
