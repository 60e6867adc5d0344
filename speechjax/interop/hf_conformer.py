"""HF names of the conformer layers (`Wav2Vec2ConformerEncoderLayer`, `Wav2Vec2BertEncoderLayer`) for
`speechjax.interop.hf`: (our path, HF key, (to_hf, from_hf) transform) per parameter.

Keys HF has and speechjax does not use (`IGNORED`: skipped on import, not written on export):
`encoder.pos_conv_embed.*` of Wav2Vec2Conformer (built, never called), the rotary `inv_freq` buffer
(`encoder.embed_positions.inv_freq`, a function of the config) and BatchNorm's `num_batches_tracked`.
"""
from __future__ import annotations

import re

from speechjax.interop import hf_transforms as t

IGNORED = re.compile(r"(^|\.)encoder\.(pos_conv_embed|embed_positions)\.|\.num_batches_tracked$")


def _pointwise():
  """Our Dense kernel [D_in, D_out] ↔ torch Conv1d weight [D_out, D_in, 1]."""
  return (lambda a: a.T[:, :, None], lambda w, shape: w[:, :, 0].T.reshape(shape))


def _depthwise():
  """Our depthwise kernel [K, D] ↔ torch Conv1d weight [D, 1, K]."""
  return (lambda a: a.T[:, None, :], lambda w, shape: w[:, 0, :].T.reshape(shape))


def layer_entries(i: int, position: str, conv_norm: str) -> list:
  """Every parameter of conformer layer `i` (loop layout)."""
  ours, theirs = ("encoder", f"layers_{i}"), f"encoder.layers.{i}"
  entries = []
  for norm in ("ffn1_layer_norm", "self_attn_layer_norm", "ffn2_layer_norm", "final_layer_norm"):
    entries += t.norm(ours + (norm,), f"{theirs}.{norm}")
  for ffn in ("ffn1", "ffn2"):
    for dense in ("intermediate_dense", "output_dense"):
      entries += t.dense(ours + (ffn, dense), f"{theirs}.{ffn}.{dense}")
  attn, attn_key = ours + ("self_attn",), f"{theirs}.self_attn"
  for proj in ("linear_q", "linear_k", "linear_v"):
    entries += t.dense(attn + (proj,), f"{attn_key}.{proj}")
  entries += t.dense(attn + ("linear_out",), f"{attn_key}.linear_out", num_in=2)
  if position == "relative":
    entries.append((attn + ("linear_pos",), f"{attn_key}.linear_pos.weight", t.linear(1)))
    entries += [(attn + (bias,), f"{attn_key}.{bias}", t.same()) for bias in ("pos_bias_u", "pos_bias_v")]
  elif position == "relative_key":
    entries.append((attn + ("distance_embedding",), f"{attn_key}.distance_embedding.weight", t.same()))
  conv, conv_key = ours + ("conv_module",), f"{theirs}.conv_module"
  entries += t.norm(conv + ("layer_norm",), f"{conv_key}.layer_norm")
  entries += [(conv + (name, "kernel"), f"{conv_key}.{name}.weight", _pointwise())
              for name in ("pointwise_conv1", "pointwise_conv2")]
  entries.append((conv + ("depthwise_conv",), f"{conv_key}.depthwise_conv.weight", _depthwise()))
  if conv_norm == "layer_norm":
    entries += t.norm(conv + ("depthwise_layer_norm",), f"{conv_key}.depthwise_layer_norm")
  else:
    bn, bn_key = conv + ("batch_norm",), f"{conv_key}.batch_norm"
    entries += t.norm(bn, bn_key)
    entries += [(bn + ("mean",), f"{bn_key}.running_mean", t.flat()),
                (bn + ("var",), f"{bn_key}.running_var", t.flat())]
  return entries
