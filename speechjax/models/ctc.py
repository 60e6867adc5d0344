"""An SSL encoder with a linear CTC head (HF `Wav2Vec2ForCTC` / `HubertForCTC` / `WavLMForCTC` layout).

    model = from_config(cfg, vocab_size)          # cfg.model_type: any of registry.ENCODERS
    out = model.apply({"params": params}, audio, audio_mask, train=True, rngs={"dropout": k1, "mask": k2})
    out["logits"]  [B, F, V] float32, V = vocab_size (id 0 = blank)

The encoder sits under the scope name of its pretraining model (`wav2vec2/`, `hubert/`, `wavlm/`), so a
pretraining checkpoint's encoder subtree drops in unchanged; the head is `lm_head` as in HF. Training-time
time/channel masking and LayerDrop come from the encoder's config fields (`mask_prob`, `mask_channel_prob`,
`layerdrop`); `final_dropout` is applied before the head.
"""
from __future__ import annotations

import jax.numpy as jnp
import ml_collections
from flax import linen as nn

from speechjax.config import require
from speechjax.models import registry
from speechjax.nn.transformer import linear_inits

class EncoderForCTC(nn.Module):
  config: ml_collections.FrozenConfigDict
  vocab_size: int

  @nn.compact
  def __call__(self, audio, audio_mask, *, train: bool = False, mask_time=None,
               output_hidden_states: bool = False):
    c = self.config
    family = registry.get(c.model_type, registry.ENCODERS)
    out = family.encoder(c, name=family.scope)(
        audio, audio_mask, train=train, mask_time=mask_time, output_hidden_states=output_hidden_states)
    x = nn.Dropout(c.get("final_dropout", 0.0), deterministic=not train)(out["last_hidden_state"])
    logits = nn.Dense(self.vocab_size, dtype=jnp.dtype(c.dtype), name="lm_head",
                      **linear_inits("embed", "vocab", c.hidden_size))(x)
    return {**out, "logits": logits.astype(jnp.float32)}


def from_config(cfg, vocab_size: int) -> EncoderForCTC:
  family = registry.get(cfg.get("model_type"), registry.ENCODERS)
  require(vocab_size >= 2, "data.target_vocab", vocab_size - 1, "needs at least one symbol")
  family.validate(cfg)
  return EncoderForCTC(ml_collections.FrozenConfigDict(cfg), vocab_size)


def forward_flops(cfg, num_samples: int, vocab_size: int) -> float:
  flops, frames = registry.get(cfg.model_type, registry.ENCODERS).encoder_flops(cfg, num_samples)
  return flops + 2.0 * frames * cfg.hidden_size * vocab_size
