"""Numeric parity with HF transformers (PyTorch) on converted random weights, and the converter itself.

HF models are built from configs with random weights; nothing is downloaded.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from speechjax.config import ConfigError
from speechjax.interop import hf
from speechjax.models import hubert, wav2vec2
from speechjax.nn import layer_stack

from tests.interop import hf_parity

pytestmark = pytest.mark.fast_compile

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

FAMILIES = {"wav2vec2": wav2vec2, "hubert": hubert}
# Base: group-norm extractor, post-LN. Large: layer-norm extractor, conv bias, pre-LN (HuBERT: and no LN
# before the projection; wav2vec 2.0: run with scanned layers).
STYLES = {"base": {}, "large": dict(extractor_mode="layer_norm", conv_bias=True, do_stable_layer_norm=True)}
LARGE_EXTRA = {"wav2vec2": dict(scan_layers=True), "hubert": dict(feat_proj_layer_norm=False)}
B, T, REAL = 2, 8000, 5000
TOLERANCE = 1e-4


def _config(family, style):
  cfg = FAMILIES[family].model_config("tiny")
  cfg.update(STYLES[style])
  if style == "large":
    cfg.update(LARGE_EXTRA[family])
  return cfg


@functools.lru_cache(maxsize=None)
def _hf_model(family, style):
  """(our config, HF model in eval mode) with random weights; norms and biases perturbed so they matter."""
  cfg = _config(family, style)
  cls = transformers.Wav2Vec2ForPreTraining if family == "wav2vec2" else transformers.HubertModel
  return cfg, hf_parity.perturbed_hf_model(cls, cfg)


def _batch():
  return hf_parity.padded_batch(T, REAL)


def _time_mask(frames):
  return hf_parity.time_mask(B, frames, [(0, 2, 7), (0, 15, 19), (1, 5, 9)])


@functools.lru_cache(maxsize=None)
def _ours(family, style):
  """jitted (params, mask_time) → outputs of our model on `_batch()`, with converted params."""
  cfg, model = _hf_model(family, style)
  params = hf.from_hf(model.state_dict(), cfg)
  module = FAMILIES[family].from_config(cfg, heads=family == "wav2vec2")
  audio, audio_mask = _batch()
  run = jax.jit(lambda p, m: module.apply({"params": p}, audio, audio_mask, mask_time=m,
                                          output_hidden_states=True))
  return params, run


def _hf_outputs(model, mask_time=None):
  return hf_parity.hf_outputs(model, *_batch(), mask_time)


@pytest.mark.parametrize("family,style", [("wav2vec2", "base"), ("wav2vec2", "large"), ("hubert", "base"),
                                          ("hubert", "large")])
def test_hidden_states_match_hf_at_every_layer(family, style):
  cfg, model = _hf_model(family, style)
  params, run = _ours(family, style)
  frames = _hf_outputs(model).hidden_states[0].shape[1]
  for mask_time in (None, _time_mask(frames)):
    theirs = _hf_outputs(model, mask_time)
    ours = run(params, np.zeros((B, frames), bool) if mask_time is None else mask_time)
    assert len(ours["hidden_states"]) == len(theirs.hidden_states) == cfg.num_hidden_layers + 1
    errors = hf_parity.max_errors(ours["hidden_states"], theirs.hidden_states)
    print(f"{family}/{style} {'masked' if mask_time is not None else 'unmasked'}: max abs error per "
          f"layer {['%.1e' % e for e in errors]}")
    assert max(errors) <= TOLERANCE
    if family == "wav2vec2":
      heads = hf_parity.max_errors([ours["projected_states"], ours["projected_quantized"]],
                          [theirs.projected_states, theirs.projected_quantized_states])
      print(f"  projected_states {heads[0]:.1e}, projected_quantized {heads[1]:.1e}")
      assert max(heads) <= TOLERANCE


def test_quantizer_picks_hf_codes():
  cfg, model = _hf_model("wav2vec2", "base")
  params, run = _ours("wav2vec2", "base")
  audio, audio_mask = _batch()
  with torch.no_grad():
    base = model.wav2vec2(torch.from_numpy(audio),
                          attention_mask=torch.from_numpy(audio_mask.astype(np.int64)))
    frame_mask = np.asarray(run(params, np.zeros((B, base.extract_features.shape[1]), bool))["frame_mask"])
    codevectors, perplexity = model.quantizer(base.extract_features, torch.tensor(frame_mask))
  ours = run(params, np.zeros_like(frame_mask))
  groups = cfg.num_codevector_groups
  chunks = codevectors.numpy().reshape(B, -1, groups, cfg.codevector_dim // groups)
  book = np.asarray(params["quantizer"]["codevectors"])   # [G, V, d]
  hf_codes = np.stack([np.abs(chunks[:, :, g, None, :] - book[g]).sum(-1).argmin(-1)
                       for g in range(groups)], -1)
  np.testing.assert_array_equal(ours["codes"], hf_codes)
  assert len(np.unique(hf_codes)) > 3
  np.testing.assert_allclose(ours["code_perplexity"], perplexity.item(), rtol=1e-5)


@pytest.mark.parametrize("family", ["wav2vec2", "hubert"])
def test_export_import_round_trip_is_exact(family):
  cfg, model = _hf_model(family, "large")
  theirs = hf_parity.state_dict(model)
  params = hf.from_hf(theirs, cfg)
  back = hf.to_hf(params, cfg)
  hf_parity.assert_same_state_dict(back, theirs)
  again = hf.from_hf(back, cfg)
  jax.tree.map(np.testing.assert_array_equal, again, params)


@pytest.mark.parametrize("family", ["wav2vec2", "hubert"])
def test_export_takes_either_layer_layout_whatever_the_config(family):
  cfg, model = _hf_model(family, "base")
  theirs = hf_parity.state_dict(model)
  loop = hf.from_hf(theirs, cfg)
  scanned_cfg = cfg.copy_and_resolve_references()
  scanned_cfg.scan_layers = True
  scan = hf.from_hf(theirs, scanned_cfg)
  jax.tree.map(np.testing.assert_array_equal, scan, layer_stack.loop_to_scan(loop))
  assert "layers" in (scan["wav2vec2"] if family == "wav2vec2" else scan)["encoder"]
  for tree in (loop, scan, jax.tree.map(jnp.asarray, scan)):
    for config in (cfg, scanned_cfg):
      hf_parity.assert_same_state_dict(hf.to_hf(tree, config), theirs)


def test_legacy_weight_norm_names_and_prefixes_are_accepted():
  cfg, model = _hf_model("wav2vec2", "base")
  full = hf_parity.state_dict(model)
  params = hf.from_hf(full, cfg)
  legacy = {k.replace("parametrizations.weight.original0", "weight_g")
            .replace("parametrizations.weight.original1", "weight_v"): v for k, v in full.items()}
  assert legacy.keys() != full.keys()
  jax.tree.map(np.testing.assert_array_equal, hf.from_hf(legacy, cfg), params)
  encoder_only = {k.removeprefix("wav2vec2."): v for k, v in full.items() if k.startswith("wav2vec2.")}
  jax.tree.map(np.testing.assert_array_equal, hf.from_hf(encoder_only, cfg), params["wav2vec2"])
  exported = hf.to_hf(params["wav2vec2"], cfg)
  assert set(exported) == set(encoder_only)


def test_hubert_prefixed_state_dict_and_missing_mask_embedding():
  cfg, model = _hf_model("hubert", "base")
  plain = hf_parity.state_dict(model)
  prefixed = {"hubert." + k: v for k, v in plain.items()}
  jax.tree.map(np.testing.assert_array_equal, hf.from_hf(prefixed, cfg), hf.from_hf(plain, cfg))
  del plain["masked_spec_embed"]
  with pytest.warns(UserWarning, match="masked_spec_embed"):
    params = hf.from_hf(plain, cfg)
  assert params["masked_spec_embed"].shape == (cfg.hidden_size,)


def test_mismatched_state_dicts_raise_clear_errors():
  cfg, model = _hf_model("hubert", "base")
  sd = hf_parity.state_dict(model)
  with pytest.raises(ValueError, match="unexpected.*lm_head"):
    hf.from_hf({**sd, "lm_head.weight": np.zeros((32, 64))}, cfg)
  missing = {k: v for k, v in sd.items() if "layers.1.attention.q_proj.weight" not in k}
  with pytest.raises(ValueError, match="missing.*layers.1.attention.q_proj.weight"):
    hf.from_hf(missing, cfg)
  wrong = {**sd, "encoder.layers.0.feed_forward.intermediate_dense.weight": np.zeros((96, 64))}
  with pytest.raises(ValueError, match="intermediate_dense.weight: shape"):
    hf.from_hf(wrong, cfg)
  with pytest.raises(ValueError, match="no pretraining heads for HubertModel"):
    hf.to_hf({"hubert": {}, "final_proj": {}}, cfg)


@pytest.mark.parametrize("family", ["wav2vec2", "hubert"])
def test_configs_round_trip_and_hf_defaults_are_the_base_preset(family):
  for style in STYLES:
    cfg = _config(family, style)
    back = hf.config_from_hf(hf.hf_config(cfg))
    for field in hf.SAME_NAME + tuple(hf.RENAMED) + ("extractor_mode", "feat_proj_layer_norm"):
      assert back[field] == cfg[field], field
    assert wav2vec2.conv_layers(back) == wav2vec2.conv_layers(cfg)
  default = transformers.Wav2Vec2Config() if family == "wav2vec2" else transformers.HubertConfig()
  ours, base = hf.config_from_hf(default), FAMILIES[family].model_config("base")
  for field in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "conv_bias",
                "extractor_mode", "do_stable_layer_norm", "num_conv_pos_embeddings", "layer_norm_eps"):
    assert ours[field] == base[field], field
  assert wav2vec2.conv_layers(ours) == wav2vec2.conv_layers(base)
  with pytest.raises(ConfigError, match="hidden_act"):
    hf.config_from_hf(type(default)(hidden_act="relu"))
