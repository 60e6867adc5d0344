"""HF `LlamaForCausalLM` weights and configs ↔ `speechjax.models.llama`.

    params = from_hf(state_dict, cfg)       # torch or numpy state dict → our params (numpy)
    state_dict = to_hf(params, cfg)         # → numpy state dict for `LlamaForCausalLM.load_state_dict`
    cfg = config_from_hf(hf_cfg)            # transformers LlamaConfig (or its dict) → our model config
    hf_cfg = hf_config(cfg)

HF checkpoints already hold q/k in HF's half-split RoPE layout: they are read as they are (Meta's
interleaved checkpoints must go through transformers' own converter first; permuting twice is the classic
cause of gibberish). `lm_head.weight` is absent with `tie_word_embeddings`. Both RoPE config forms are read:
`rope_theta` + `rope_scaling` (transformers 4.x) and `rope_parameters` (5.x). Other RoPE types (dynamic, yarn,
longrope) are refused with a message naming them.
"""
from __future__ import annotations

import ml_collections
import numpy as np

from speechjax.config import ConfigError
from speechjax.interop import hf_transforms as t
from speechjax.models import llama
from speechjax.nn import layer_stack
from speechjax.nn.llama import ROPE_TYPES
from speechjax.nn.transformer import SCAN_MIN_LAYERS

SAME_NAME = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
             "num_key_value_heads", "rms_norm_eps", "max_position_embeddings", "tie_word_embeddings",
             "attention_bias", "mlp_bias", "bos_token_id", "eos_token_id")
ROPE_KEYS = {"rope_factor": "factor", "rope_low_freq_factor": "low_freq_factor",
             "rope_high_freq_factor": "high_freq_factor",
             "rope_original_max_position": "original_max_position_embeddings"}


def _entries(cfg) -> list:
  """(our path, HF key, transform) for every parameter (loop layout)."""
  entries = [(("embed_tokens", "embedding"), "model.embed_tokens.weight", t.same()),
             (("norm", "scale"), "model.norm.weight", t.flat())]
  if not cfg.tie_word_embeddings:
    entries.append((("lm_head", "kernel"), "lm_head.weight", t.linear(1)))
  for i in range(cfg.num_hidden_layers):
    ours, theirs = (f"layers_{i}",), f"model.layers.{i}"
    for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
      path, key = ours + ("self_attn", proj), f"{theirs}.self_attn.{proj}"
      entries.append((path + ("kernel",), f"{key}.weight", t.linear(2 if proj == "o_proj" else 1)))
      if cfg.attention_bias:
        entries.append((path + ("bias",), f"{key}.bias", t.flat()))
    for proj in ("gate_proj", "up_proj", "down_proj"):
      entries += (t.dense(ours + ("mlp", proj), f"{theirs}.mlp.{proj}") if cfg.mlp_bias
                  else [(ours + ("mlp", proj, "kernel"), f"{theirs}.mlp.{proj}.weight", t.linear(1))])
    for norm in ("input_layernorm", "post_attention_layernorm"):
      entries.append((ours + (norm, "scale"), f"{theirs}.{norm}.weight", t.flat()))
  return entries


def _shape(cfg, path) -> tuple[int, ...]:
  """Our shape of the parameter at `path` (loop layout)."""
  d, hd, f, v = cfg.hidden_size, llama.head_dim(cfg), cfg.intermediate_size, cfg.vocab_size
  heads = {"q_proj": cfg.num_attention_heads, "k_proj": cfg.num_key_value_heads,
           "v_proj": cfg.num_key_value_heads, "o_proj": cfg.num_attention_heads}
  name, leaf = path[-2], path[-1]
  if name == "embed_tokens":
    return (v, d)
  if name == "lm_head":
    return (d, v)
  if name in heads:
    if leaf == "bias":
      return (d,) if name == "o_proj" else (heads[name], hd)
    return (heads[name], hd, d) if name == "o_proj" else (d, heads[name], hd)
  if name in ("gate_proj", "up_proj", "down_proj"):
    shape = (f, d) if name == "down_proj" else (d, f)
    return shape if leaf == "kernel" else shape[1:]
  return (d,)   # norms


def _numpy(value) -> np.ndarray:
  if hasattr(value, "detach"):   # a torch tensor
    value = value.detach().cpu().float().numpy()
  return np.asarray(value, np.float32)


def from_hf(state_dict, cfg) -> dict:
  """HF `LlamaForCausalLM` state dict → our params (float32 numpy; layers stacked when cfg.scan_layers).
  Missing, unexpected (other than the rotary `inv_freq` buffers) and misshapen keys raise ValueError."""
  sd = {k: v for k, v in state_dict.items() if not k.endswith("rotary_emb.inv_freq")}
  if cfg.tie_word_embeddings and "lm_head.weight" in sd:   # torch's state_dict lists the tied copy
    head = _numpy(sd.pop("lm_head.weight"))
    if "model.embed_tokens.weight" in sd and not np.array_equal(head, _numpy(sd["model.embed_tokens.weight"])):
      raise ValueError("lm_head.weight differs from model.embed_tokens.weight but tie_word_embeddings=True")
  params, missing = {}, []
  for path, key, (_, from_theirs) in _entries(cfg):
    if key not in sd:
      missing.append(key)
      continue
    shape = _shape(cfg, path)
    value = _numpy(sd.pop(key))
    try:
      value = from_theirs(value, shape)
    except ValueError:
      raise ValueError(f"{key}: shape {value.shape} does not fit {shape}, the shape the config's sizes give "
                       "(vocab_size, hidden_size, intermediate_size, num_attention_heads, num_key_value_heads, "
                       "head_dim): a config.json from another checkpoint?") from None
    node = params
    for part in path[:-1]:
      node = node.setdefault(part, {})
    node[path[-1]] = value
  if missing or sd:
    more = "..." if len(missing) > 5 else ""
    raise ValueError(f"state dict does not match the config: missing {missing[:5]}{more}, "
                     f"unexpected {sorted(sd)[:5]}")
  return layer_stack.loop_to_scan(params) if cfg.scan_layers else params


def to_hf(params, cfg) -> dict[str, np.ndarray]:
  """Our params (either layer layout) → HF state dict of float32 numpy arrays."""
  params = layer_stack.scan_to_loop(params)
  out = {}
  for path, key, (to_theirs, _) in _entries(cfg):
    node = params
    for part in path:
      node = node[part]
    out[key] = np.array(to_theirs(np.asarray(node, np.float32)), np.float32, order="C")
  return out


def _rope(hf: dict) -> dict:
  """Our rope_* fields from an HF config dict (4.x `rope_theta` + `rope_scaling`, or 5.x `rope_parameters`)."""
  params = hf.get("rope_parameters") or {}
  scaling = hf.get("rope_scaling") or params
  theta = params.get("rope_theta", hf.get("rope_theta", 10000.0))
  rope_type = scaling.get("rope_type", scaling.get("type", "default")) if scaling else "default"
  if rope_type not in ROPE_TYPES:
    raise ConfigError(f"HF rope type {rope_type!r} is not supported (have {ROPE_TYPES})")
  out = {"rope_theta": float(theta), "rope_type": rope_type}
  out.update({ours: scaling[theirs] for ours, theirs in ROPE_KEYS.items() if theirs in scaling})
  return out


def config_from_hf(hf) -> ml_collections.ConfigDict:
  """A transformers `LlamaConfig` (or its `to_dict()`) → our model config (preset `tiny` for the rest)."""
  hf = hf if isinstance(hf, dict) else hf.to_dict()
  if hf.get("model_type") != "llama":
    raise ConfigError(f"HF model_type {hf.get('model_type')!r}: expected 'llama'")
  if hf.get("hidden_act", "silu") != "silu":
    raise ConfigError(f"HF hidden_act={hf['hidden_act']!r}: LLaMA's MLP is SwiGLU ('silu')")
  cfg = llama.model_config("tiny")
  cfg.update({name: hf[name] for name in SAME_NAME if hf.get(name) is not None})
  if hf.get("num_key_value_heads") is None:
    cfg.num_key_value_heads = cfg.num_attention_heads
  eos = hf.get("eos_token_id")
  cfg.eos_token_id = eos[0] if isinstance(eos, list) else cfg.eos_token_id
  default_head_dim = cfg.hidden_size // cfg.num_attention_heads
  cfg.head_dim = 0 if hf.get("head_dim") in (None, default_head_dim) else hf["head_dim"]
  cfg.update(_rope(hf))
  cfg.scan_layers = cfg.num_hidden_layers >= SCAN_MIN_LAYERS
  return cfg


def hf_config(cfg):
  """Our model config → `transformers.LlamaConfig`."""
  import transformers   # pylint: disable=import-outside-toplevel
  kwargs = {name: cfg[name] for name in SAME_NAME}
  scaling = None
  if cfg.rope_type != "default":
    scaling = {"rope_type": cfg.rope_type, **{theirs: cfg[ours] for ours, theirs in ROPE_KEYS.items()}}
  return transformers.LlamaConfig(**kwargs, head_dim=llama.head_dim(cfg), rope_theta=cfg.rope_theta,
                                  rope_scaling=scaling, hidden_act="silu")
