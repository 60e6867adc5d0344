"""A BERT over discrete speech tokens (vq-wav2vec's second stage): token embedding → bidirectional
transformer (speechjax.nn.transformer, positional conv instead of position embeddings) → logits.

    model = from_config(model_config("tiny"))
    out = model.apply({"params": params}, tokens, tokens_mask, train=True, rngs={"dropout": key})

Inputs: tokens [B, L] int32 in [0, vocab_size] (id `vocab_size` = MASK, see `mask_id`), tokens_mask [B, L]
bool (real tokens). Outputs: logits [B, L, vocab_size] float32, last_hidden_state [B, L, D].
"""
from __future__ import annotations

import jax.numpy as jnp
import ml_collections
from flax import linen as nn

from speechjax.config import ConfigError, require
from speechjax.nn.partitioning import dense_inits, logical
from speechjax.nn.transformer import EncoderConfig, TransformerEncoder

_BASE = dict(vocab_size=102400, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
             intermediate_size=3072, num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16,
             hidden_dropout=0.1, attention_dropout=0.1, dtype="float32")
_PRESETS = {
    "tiny": dict(vocab_size=1024, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=128, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                 hidden_dropout=0.0, attention_dropout=0.0),
    "base": {},
}


def model_config(preset: str = "base") -> ml_collections.ConfigDict:
  """`tiny` (CPU, 32² vq-wav2vec tiny ids) or `base` (BERT base over 320² ids)."""
  if preset not in _PRESETS:
    raise ConfigError(f"token_bert model preset {preset!r}: expected one of {sorted(_PRESETS)}")
  return ml_collections.ConfigDict({**_BASE, **_PRESETS[preset]})


def mask_id(cfg) -> int:
  return cfg.vocab_size


def validate(cfg) -> None:
  require(cfg.vocab_size >= 2, "model.vocab_size", cfg.vocab_size, "must be at least 2")
  require(cfg.hidden_size % cfg.num_attention_heads == 0, "model.num_attention_heads",
          cfg.num_attention_heads, f"must divide hidden_size={cfg.hidden_size}")
  require(cfg.hidden_size % cfg.num_conv_pos_embedding_groups == 0, "model.num_conv_pos_embedding_groups",
          cfg.num_conv_pos_embedding_groups, f"must divide hidden_size={cfg.hidden_size}")


class TokenBert(nn.Module):
  config: ml_collections.FrozenConfigDict

  @nn.compact
  def __call__(self, tokens, tokens_mask, *, train: bool = False):
    c, dtype = self.config, jnp.dtype(self.config.dtype)
    x = nn.Embed(c.vocab_size + 1, c.hidden_size, dtype=dtype, name="embed_tokens",
                 embedding_init=logical(nn.initializers.normal(0.02), "vocab", "embed"))(tokens)
    stack = EncoderConfig(c.num_hidden_layers, c.num_attention_heads, c.intermediate_size,
                          pos_conv_kernel=c.num_conv_pos_embeddings,
                          pos_conv_groups=c.num_conv_pos_embedding_groups, dropout=c.hidden_dropout,
                          attention_dropout=c.attention_dropout, dtype=dtype)
    last, _ = TransformerEncoder(stack, name="encoder")(x, tokens_mask.astype(bool), train)
    logits = nn.Dense(c.vocab_size, dtype=dtype, name="lm_head", **dense_inits("embed", "vocab"))(last)
    return {"logits": logits.astype(jnp.float32), "last_hidden_state": last}


def from_config(cfg) -> nn.Module:
  validate(cfg)
  return TokenBert(ml_collections.FrozenConfigDict(cfg))


def forward_flops(cfg, length: int) -> float:
  """Matmul FLOPs of one forward pass over `length` tokens: positional conv, attention projections and
  the two L² matmuls, FFN, LM head."""
  d, l = cfg.hidden_size, float(length)
  pos_conv = 2 * l * d * (d // cfg.num_conv_pos_embedding_groups) * cfg.num_conv_pos_embeddings
  per_layer = 2 * l * 4 * d * d + 2 * 2 * l * l * d + 2 * l * 2 * d * cfg.intermediate_size
  return pos_conv + cfg.num_hidden_layers * per_layer + 2 * l * d * cfg.vocab_size
