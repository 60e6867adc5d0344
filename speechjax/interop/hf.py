"""Weights and configs to and from HF transformers (`Wav2Vec2Model`, `Wav2Vec2ForPreTraining`,
`HubertModel`, `WavLMModel`, `Wav2Vec2ConformerModel`, `Wav2Vec2ConformerForPreTraining`,
`Wav2Vec2BertModel`; the conformer layers' names are in `speechjax.interop.hf_conformer`).

    params = from_hf(state_dict, cfg)      # numpy/torch state dict → our params (numpy)
    state_dict = to_hf(params, cfg)        # our params → numpy state dict, loadable with load_state_dict
    hf_cfg = hf_config(cfg)                # our model ConfigDict → transformers config object
    cfg = config_from_hf(hf_cfg)           # and back

`from_hf` takes state dicts with or without the `wav2vec2.` / `hubert.` / `wavlm.` prefix and both weight-norm
namings of the positional conv (`weight_g`/`weight_v` and `parametrizations.weight.original0/1`). It
returns the `Wav2Vec2ForPreTraining` tree when the state dict has the quantizer, else the encoder tree
(`Wav2Vec2Model` / `HubertModel`). Missing keys, unknown keys and shape mismatches raise ValueError.
`from_hf` stacks the layers when `cfg.scan_layers`; `to_hf` takes either layout (`speechjax.nn.layer_stack`)
and writes the `parametrizations` naming (torch ≥ 2.1; torch maps the old names on load). HF has no
HuBERT/WavLM pretraining heads: pass `params["hubert"]` (`params["wavlm"]`) to export the encoder of a
`HubertForPreTraining` (`WavLMForPreTraining`) tree. WavLM's relative position table (ours: one per encoder,
`encoder/rel_attn_embed`) is HF's `encoder.layers.0.attention.rel_attn_embed`.
Only torch-free code here: transformers is imported by `hf_config` / `config_from_hf` alone.
"""
from __future__ import annotations

import warnings

import jax
import ml_collections
import numpy as np

from speechjax.config import ConfigError
from speechjax.interop import hf_conformer
from speechjax.interop import hf_transforms as t
from speechjax.models import registry, wav2vec2
from speechjax.nn import layer_stack
from speechjax.parallel.mesh import strip_boxes

FAMILIES = {name: f for name, f in registry.ENCODERS.items() if f.hf is not None}   # HF's encoder families
WEIGHT_NORM_NAMES = {"parametrizations.weight.original0": "weight_g",
                     "parametrizations.weight.original1": "weight_v"}
W2V2_HEADS = ("quantizer", "project_q", "project_hid")
OPTIONAL = "masked_spec_embed"   # HF creates it only when mask_time_prob or mask_feature_prob > 0


# --- the name map ------------------------------------------------------------------------------------
def _layer_entries(i: int, gated: bool) -> list:
  ours, theirs = ("encoder", f"layers_{i}"), f"encoder.layers.{i}"
  entries = []
  for proj in ("q_proj", "k_proj", "v_proj"):
    entries += t.dense(ours + ("attention", proj), f"{theirs}.attention.{proj}")
  entries += t.dense(ours + ("attention", "out_proj"), f"{theirs}.attention.out_proj", num_in=2)
  if gated:   # WavLM's gate of the relative position bias
    gate = ours + ("attention", "gru_rel_pos")
    entries += t.dense(gate + ("linear",), f"{theirs}.attention.gru_rel_pos_linear")
    entries.append((gate + ("const",), f"{theirs}.attention.gru_rel_pos_const",
                    t.shaped(lambda a: (1, a.size, 1, 1))))
  for dense in ("intermediate_dense", "output_dense"):
    entries += t.dense(ours + ("feed_forward", dense), f"{theirs}.feed_forward.{dense}")
  entries += t.norm(ours + ("layer_norm",), f"{theirs}.layer_norm")
  entries += t.norm(ours + ("final_layer_norm",), f"{theirs}.final_layer_norm")
  return entries


def _conformer_layers(cfg) -> list:
  return [e for i in range(cfg.num_hidden_layers)
          for e in hf_conformer.layer_entries(i, cfg.position_embeddings_type, cfg.conv_norm)]


def _encoder_entries(cfg) -> list:
  """(our path, HF key without prefix, transform) for every encoder parameter (unscanned layout)."""
  if _family(cfg) == "wav2vec2_bert":   # fbank features: no conv front end, no LayerNorm after the stack
    return (t.norm(("feature_projection", "layer_norm"), "feature_projection.layer_norm")
            + t.dense(("feature_projection", "projection"), "feature_projection.projection")
            + [(("masked_spec_embed",), OPTIONAL, t.flat())] + _conformer_layers(cfg))
  entries = []
  for i in range(len(cfg.conv_layers)):
    conv, theirs = ("feature_extractor", f"conv{i}"), f"feature_extractor.conv_layers.{i}"
    entries.append((conv + ("kernel",), f"{theirs}.conv.weight", t.conv()))
    if cfg.conv_bias:
      entries.append((conv + ("bias",), f"{theirs}.conv.bias", t.flat()))
    if cfg.extractor_mode == "layer_norm" or i == 0:
      entries += t.norm(("feature_extractor", f"norm{i}"), f"{theirs}.layer_norm")
  if cfg.feat_proj_layer_norm:
    entries += t.norm(("feature_projection", "layer_norm"), "feature_projection.layer_norm")
  entries += t.dense(("feature_projection", "projection"), "feature_projection.projection")
  entries.append((("masked_spec_embed",), OPTIONAL, t.flat()))
  entries += t.norm(("encoder", "layer_norm"), "encoder.layer_norm")
  if _family(cfg) == "wav2vec2_conformer":
    return entries + _conformer_layers(cfg)
  pos = ("encoder", "pos_conv_embed")
  entries += [(pos + ("weight_g",), "encoder.pos_conv_embed.conv.weight_g",
               t.shaped(lambda a: (1, 1, a.size))),
              (pos + ("weight_v",), "encoder.pos_conv_embed.conv.weight_v", t.conv()),
              (pos + ("bias",), "encoder.pos_conv_embed.conv.bias", t.flat())]
  gated = _family(cfg) == "wavlm"
  if gated:
    entries.append((("encoder", "rel_attn_embed", "embedding"),
                    "encoder.layers.0.attention.rel_attn_embed.weight", t.same()))
  for i in range(cfg.num_hidden_layers):
    entries += _layer_entries(i, gated)
  return entries


def _head_entries() -> list:
  """Wav2Vec2ForPreTraining's top-level heads."""
  return ([(("quantizer", "codevectors"), "quantizer.codevectors",
            t.shaped(lambda a: (1, a.shape[0] * a.shape[1], a.shape[2])))]
          + t.dense(("quantizer", "weight_proj"), "quantizer.weight_proj")
          + t.dense(("project_q",), "project_q") + t.dense(("project_hid",), "project_hid"))


def _entries(cfg, heads: bool) -> list:
  encoder = _encoder_entries(cfg)
  if not heads:
    return encoder
  family = FAMILIES[_family(cfg)]
  return ([((family.scope,) + path, family.hf.prefix + key, tr) for path, key, tr in encoder]
          + _head_entries())


# --- param trees ---------------------------------------------------------------------------------------
def _family(cfg) -> str:
  return registry.get(cfg.get("model_type", "wav2vec2"), FAMILIES).model_type


def _min_samples(layers) -> int:
  """The receptive field of the conv stack in samples (the shortest input giving one frame)."""
  field, jump = 1, 1
  for _, kernel, stride in layers:
    field, jump = field + (kernel - 1) * jump, jump * stride
  return field


def abstract_params(cfg, heads: bool):
  """ShapeDtypeStructs of the model's params (never allocated)."""
  module = FAMILIES[_family(cfg)].from_config(cfg, heads=heads)
  if "conv_layers" in cfg:
    shape = (1, _min_samples(wav2vec2.conv_layers(cfg)))
  else:   # w2v-BERT: two frames of input features
    shape = (1, 2, cfg.feature_projection_input_dim)
  inputs = jax.ShapeDtypeStruct(shape, np.float32)
  mask = jax.ShapeDtypeStruct(shape[:2], np.bool_)
  variables = jax.eval_shape(module.init, jax.random.PRNGKey(0), inputs, mask)
  return strip_boxes(variables)["params"]


def _unscanned(cfg):
  cfg = cfg.copy_and_resolve_references()
  cfg.scan_layers = False
  return cfg


def _get(tree: dict, path: tuple):
  try:
    for part in path:
      tree = tree[part]
  except (KeyError, TypeError):
    raise ValueError(f"params have no {'/'.join(path)}: do they match the config "
                     "(num_hidden_layers, heads)?") from None
  return tree


def _set(tree: dict, path: tuple, value) -> None:
  for part in path[:-1]:
    tree = tree.setdefault(part, {})
  tree[path[-1]] = value


# --- state dicts -----------------------------------------------------------------------------------------
def _numpy(value) -> np.ndarray:
  if hasattr(value, "detach"):   # a torch tensor
    value = value.detach().cpu().float().numpy()
  return np.asarray(value, np.float32)


def _legacy_name(key: str) -> str:
  """`...parametrizations.weight.original0/1` → `...weight_g/weight_v` (our canonical names)."""
  for new, old in WEIGHT_NORM_NAMES.items():
    if key.endswith(new):
      return key[:-len(new)] + old
  return key


def _modern_name(key: str) -> str:
  """`...conv.weight_g/weight_v` → `...conv.parametrizations.weight.original0/1`."""
  for new, old in WEIGHT_NORM_NAMES.items():
    if key.endswith("conv." + old):
      return key[:-len(old)] + new
  return key


def _has_heads(keys, family: str) -> bool:
  return FAMILIES[family].hf.pretraining_heads and any(k.split(".")[0] in W2V2_HEADS for k in keys)


def _canonical(state_dict, family: str) -> dict:
  """Numpy arrays under canonical keys: old-style weight-norm names; the base-model prefix kept only
  with pretraining heads (`Wav2Vec2ForPreTraining` layout), else stripped."""
  out = {_legacy_name(k): _numpy(v) for k, v in state_dict.items()}
  if _has_heads(out, family):
    return out
  return {k.removeprefix(FAMILIES[family].hf.prefix): v for k, v in out.items()}


def from_hf(state_dict, cfg) -> dict:
  """HF state dict (torch tensors or numpy) → our params (nested dict of float32 numpy arrays)."""
  family = _family(cfg)
  sd = _canonical(state_dict, family)
  heads = _has_heads(sd, family)
  shapes = abstract_params(_unscanned(cfg), heads)
  params, used, missing = {}, set(), []
  for path, key, (_, from_theirs) in _entries(cfg, heads):
    shape = _get(shapes, path).shape
    if key not in sd:
      if key.endswith(OPTIONAL):
        warnings.warn(f"{key} is not in the state dict (HF mask_time_prob = 0): initialised U(0, 1)")
        _set(params, path, np.random.default_rng(0).uniform(size=shape).astype(np.float32))
      else:
        missing.append(key)
      continue
    try:
      _set(params, path, from_theirs(sd[key], shape))
    except ValueError:
      raise ValueError(f"{key}: shape {sd[key].shape} does not fit our {shape}") from None
    used.add(key)
  unexpected = sorted(k for k in set(sd) - used if not hf_conformer.IGNORED.search(k))
  if missing or unexpected:
    raise ValueError(f"state dict does not match the config: missing {missing}, unexpected {unexpected}")
  return layer_stack.loop_to_scan(params) if cfg.scan_layers else params


def to_hf(params, cfg) -> dict[str, np.ndarray]:
  """Our params (Wav2Vec2ForPreTraining, or an encoder tree; either layer layout, whatever
  `cfg.scan_layers`) → HF state dict of float32 numpy arrays."""
  family = _family(cfg)
  if not FAMILIES[family].hf.pretraining_heads and family in params:
    raise ValueError(f"transformers has no pretraining heads for {FAMILIES[family].hf.model_class} "
                     f"(final_proj, label_embs): export "
                     f"params['{family}'] as the encoder")
  heads = FAMILIES[family].scope in params
  params = layer_stack.scan_to_loop(params)
  keep_embed = cfg.mask_prob > 0 or cfg.mask_channel_prob > 0
  out = {}
  for path, key, (to_theirs, _) in _entries(cfg, heads):
    if key.endswith(OPTIONAL) and not keep_embed:
      continue
    value = to_theirs(np.asarray(_get(params, path), np.float32))
    out[_modern_name(key)] = np.array(value, np.float32, order="C")   # a writable copy
  return out


# --- configs ----------------------------------------------------------------------------------------------
EXTRACTOR = {"group_norm": "group", "layer_norm": "layer"}
SAME_NAME = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
             "hidden_dropout", "attention_dropout", "activation_dropout", "feat_proj_dropout", "layerdrop",
             "layer_norm_eps", "conv_bias", "num_conv_pos_embeddings", "num_conv_pos_embedding_groups",
             "do_stable_layer_norm")
RENAMED = {"mask_prob": "mask_time_prob", "mask_length": "mask_time_length",
           "min_masks": "mask_time_min_masks", "mask_channel_prob": "mask_feature_prob",
           "mask_channel_length": "mask_feature_length", "mask_channel_min_masks": "mask_feature_min_masks"}
W2V2_ONLY = ("num_codevector_groups", "num_codevectors_per_group", "codevector_dim", "proj_codevector_dim",
             "feat_quantizer_dropout")
WAVLM_ONLY = ("num_buckets", "max_bucket_distance")
CONFORMER_ONLY = ("hidden_act", "position_embeddings_type", "rotary_embedding_base",
                  "conv_depthwise_kernel_size", "conformer_conv_dropout")


def _our_model_type(hf_model_type: str) -> str:
  return hf_model_type.replace("-", "_")   # "wav2vec2-conformer" → "wav2vec2_conformer"


BERT_SAME_NAME = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
                  "hidden_dropout", "attention_dropout", "activation_dropout", "feat_proj_dropout", "layerdrop",
                  "layer_norm_eps", "feature_projection_input_dim", "position_embeddings_type",
                  "left_max_position_embeddings", "right_max_position_embeddings", "rotary_embedding_base",
                  "conv_depthwise_kernel_size", "conformer_conv_dropout")


def _bert_hf_config(cfg):
  import transformers   # pylint: disable=import-outside-toplevel
  if cfg.conv_norm != "layer_norm":
    raise ConfigError(f"config.model.conv_norm={cfg.conv_norm!r}: HF Wav2Vec2Bert's conv module has "
                      "LayerNorm ('layer_norm')")
  renamed = {theirs: cfg[ours] for ours, theirs in RENAMED.items()}
  return transformers.Wav2Vec2BertConfig(**{name: cfg[name] for name in BERT_SAME_NAME}, **renamed,
                                         add_adapter=False, use_intermediate_ffn_before_adapter=False)


def _bert_config_from_hf(hf) -> ml_collections.ConfigDict:
  bad = [name for name in ("add_adapter", "use_intermediate_ffn_before_adapter") if getattr(hf, name, False)]
  if bad:
    raise ConfigError(f"HF config not supported by speechjax: {', '.join(f'{n}=True' for n in bad)} "
                      "(the adapter of fine-tuned w2v-BERT 2.0 checkpoints)")
  cfg = FAMILIES["wav2vec2_bert"].model_config("base")
  cfg.update({name: getattr(hf, name) for name in BERT_SAME_NAME})
  cfg.update({ours: getattr(hf, theirs) for ours, theirs in RENAMED.items()})
  if not getattr(hf, "apply_spec_augment", True):
    cfg.mask_prob, cfg.mask_channel_prob = 0.0, 0.0
  cfg.contrastive_layers = max(1, cfg.num_hidden_layers // 2)   # pretraining only: HF has no such split
  return cfg


def hf_config(cfg):
  """Our model ConfigDict → `transformers.Wav2Vec2Config`, `HubertConfig`, `WavLMConfig`,
  `Wav2Vec2ConformerConfig` or `Wav2Vec2BertConfig`."""
  import transformers   # pylint: disable=import-outside-toplevel
  family = _family(cfg)
  if family == "wav2vec2_bert":
    return _bert_hf_config(cfg)
  layers = wav2vec2.conv_layers(cfg)
  kwargs = {name: cfg[name] for name in SAME_NAME}
  kwargs.update({theirs: cfg[ours] for ours, theirs in RENAMED.items()})
  kwargs.update(conv_dim=[c for c, _, _ in layers], conv_kernel=[k for _, k, _ in layers],
                conv_stride=[s for _, _, s in layers], feat_extract_norm=EXTRACTOR[cfg.extractor_mode],
                hidden_act="gelu", feat_extract_activation="gelu")
  if family == "hubert":
    return transformers.HubertConfig(feat_proj_layer_norm=cfg.feat_proj_layer_norm, **kwargs)
  if not cfg.feat_proj_layer_norm:
    raise ConfigError(f"config.model.feat_proj_layer_norm=False: HF {family} always has this LayerNorm")
  if family == "wavlm":
    kwargs.pop("mask_feature_min_masks")   # not a WavLMConfig field (HF WavLM uses 0)
    return transformers.WavLMConfig(**kwargs, **{name: cfg[name] for name in WAVLM_ONLY})
  if family == "wav2vec2_conformer":
    if cfg.conv_norm != "batch_norm":
      raise ConfigError(f"config.model.conv_norm={cfg.conv_norm!r}: HF Wav2Vec2Conformer's conv module has "
                        "BatchNorm ('batch_norm')")
    kwargs.update({name: cfg[name] for name in CONFORMER_ONLY + W2V2_ONLY})
    return transformers.Wav2Vec2ConformerConfig(**kwargs)
  return transformers.Wav2Vec2Config(**kwargs, **{name: cfg[name] for name in W2V2_ONLY})


def _check_supported(hf) -> None:
  activations = ("gelu", "swish") if hf.model_type == "wav2vec2-conformer" else ("gelu",)
  unsupported = {
      "hidden_act": hf.hidden_act not in activations,
      "feat_extract_activation": hf.feat_extract_activation != "gelu",
      "add_adapter": getattr(hf, "add_adapter", False),
      "adapter_attn_dim": getattr(hf, "adapter_attn_dim", None) is not None,
      "conv_pos_batch_norm": getattr(hf, "conv_pos_batch_norm", False),
      "feat_extract_norm": hf.feat_extract_norm not in EXTRACTOR.values(),
  }
  bad = [f"{name}={getattr(hf, name)!r}" for name, is_bad in unsupported.items() if is_bad]
  if bad:
    raise ConfigError(f"HF config not supported by speechjax: {', '.join(bad)}")


def config_from_hf(hf) -> ml_collections.ConfigDict:
  """A transformers `Wav2Vec2Config` / `HubertConfig` / `WavLMConfig` / `Wav2Vec2ConformerConfig` → our
  model ConfigDict (the `base` preset of the family for fields HF does not have: feature_grad_mult,
  scan/remat/dtype, HuBERT's heads)."""
  family = _our_model_type(hf.model_type)
  if family not in FAMILIES:
    raise ConfigError(f"HF model_type {hf.model_type!r}: expected one of {sorted(FAMILIES)}")
  if family == "wav2vec2_bert":
    return _bert_config_from_hf(hf)
  _check_supported(hf)
  cfg = FAMILIES[family].model_config("base")
  cfg.update({name: getattr(hf, name) for name in SAME_NAME})
  # WavLMConfig has no mask_feature_min_masks (0 in HF WavLM)
  cfg.update({ours: getattr(hf, theirs, 0) for ours, theirs in RENAMED.items()})
  if not getattr(hf, "apply_spec_augment", True):
    cfg.mask_prob, cfg.mask_channel_prob = 0.0, 0.0
  cfg.conv_layers = tuple(zip(hf.conv_dim, hf.conv_kernel, hf.conv_stride))
  cfg.extractor_mode = {v: k for k, v in EXTRACTOR.items()}[hf.feat_extract_norm]
  if family == "hubert":
    cfg.feat_proj_layer_norm = hf.feat_proj_layer_norm
  elif family == "wavlm":
    cfg.update({name: getattr(hf, name) for name in WAVLM_ONLY})
  elif family == "wav2vec2_conformer":
    cfg.update({name: getattr(hf, name) for name in CONFORMER_ONLY + W2V2_ONLY}, conv_norm="batch_norm")
  else:
    cfg.update({name: getattr(hf, name) for name in W2V2_ONLY})
  return cfg
