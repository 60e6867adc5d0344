"""LLaMA-architecture decoder-only LM (HF `LlamaForCausalLM`; TinyLlama, SmolLM, Llama 2/3 checkpoints).

    model = from_config(cfg)                                   # decode=True keeps a KV cache
    logits = model.apply({"params": p}, tokens)                # tokens [B, L] int32 → [B, L, V] float32
    logits = model.apply({"params": p}, tokens, prefix=x)      # embeddings [B, A, D] before the tokens
                                                               # (Speech-LLaMA) → logits [B, A + L, V]
    logits = model.apply({"params": p}, tokens, mask=m)        # key padding mask [B, A + L] (decoding:
                                                               # [B, cache length])
    logits = model.apply({"params": p}, tokens, all_heads=True)  # [B, L, 1 + mtp_heads, V]: head j
                                                               # predicts the token j + 1 further on

embed_tokens [V, D] → decoder layers (`speechjax.nn.llama`; scanned when `scan_layers`) → `norm` (RMSNorm)
→ `lm_head` [D, V] (no bias), or the embedding transposed when `tie_word_embeddings`. Positions 0..L−1
(decoding: after those already cached, `cache/index`); padded keys are masked, padded rows are garbage
the caller ignores. `speechjax.interop.hf_llama` converts HF state dicts and configs.

Config fields are HF `LlamaConfig`'s: vocab_size, hidden_size, intermediate_size, num_hidden_layers,
num_attention_heads, num_key_value_heads, head_dim (0: hidden_size / heads), rms_norm_eps, rope_theta,
max_position_embeddings, tie_word_embeddings, attention_bias, mlp_bias, bos_token_id, eos_token_id; RoPE
scaling flattened into rope_type ("default" | "linear" | "llama3"), rope_factor, rope_low_freq_factor,
rope_high_freq_factor, rope_original_max_position; plus mtp_heads (extra heads for multi-token prediction,
Raj et al. 2024's latent-space expansion: a D×D matrix per head before the shared un-embedding; their
params `mtp_<j>` exist only when called with all_heads=True), scan_layers, remat_policy, dtype.
Presets: `tiny` (CPU), `smollm_135m`, `tinyllama_1b`, `llama3_2_1b` (the public checkpoints' shapes).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import linen as nn

from speechjax.config import ConfigError, require
from speechjax.models import sampling, token_lm
from speechjax.nn import llama
from speechjax.nn.layer_stack import REMAT_POLICIES, run_layers
from speechjax.nn.lm_transformer import decode_positions
from speechjax.nn.partitioning import logical
from speechjax.nn.transformer import SCAN_MIN_LAYERS

_BASE = dict(
    model_type="llama", vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
    num_attention_heads=32, num_key_value_heads=32, head_dim=0, rms_norm_eps=1e-5, rope_theta=10000.0,
    rope_type="default", rope_factor=1.0, rope_low_freq_factor=1.0, rope_high_freq_factor=4.0,
    rope_original_max_position=8192, max_position_embeddings=2048, tie_word_embeddings=False,
    attention_bias=False, mlp_bias=False, bos_token_id=1, eos_token_id=2, mtp_heads=0, scan_layers=True,
    remat_policy="none", dtype="float32")

_PRESETS = {
    "tiny": dict(vocab_size=1024, hidden_size=128, intermediate_size=352, num_hidden_layers=4,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024),
    "smollm_135m": dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                        num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True,
                        bos_token_id=0, eos_token_id=0),
    "tinyllama_1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                         num_key_value_heads=4),
    "llama3_2_1b": dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                        num_attention_heads=32, num_key_value_heads=8, rope_theta=500000.0, rope_type="llama3",
                        rope_factor=32.0, max_position_embeddings=131072, tie_word_embeddings=True,
                        bos_token_id=128000, eos_token_id=128001),
}


def model_config(preset: str = "tiny") -> ml_collections.ConfigDict:
  """`tiny` (CPU tests) or the shapes of SmolLM-135M, TinyLlama-1.1B, Llama-3.2-1B."""
  if preset not in _PRESETS:
    raise ConfigError(f"llama model preset {preset!r}: expected one of {sorted(_PRESETS)}")
  cfg = ml_collections.ConfigDict({**_BASE, **_PRESETS[preset]})
  cfg.scan_layers = cfg.num_hidden_layers >= SCAN_MIN_LAYERS
  return cfg


def head_dim(cfg) -> int:
  return cfg.head_dim or cfg.hidden_size // cfg.num_attention_heads


def validate(cfg) -> None:
  require(cfg.num_attention_heads % cfg.num_key_value_heads == 0, "model.num_key_value_heads",
          cfg.num_key_value_heads, f"must divide num_attention_heads={cfg.num_attention_heads}")
  require(cfg.head_dim or cfg.hidden_size % cfg.num_attention_heads == 0, "model.num_attention_heads",
          cfg.num_attention_heads, f"must divide hidden_size={cfg.hidden_size} (or set model.head_dim)")
  require(head_dim(cfg) % 2 == 0, "model.head_dim", head_dim(cfg), "rotary positions need an even head size")
  require(cfg.rope_type in llama.ROPE_TYPES, "model.rope_type", cfg.rope_type,
          f"expected one of {llama.ROPE_TYPES}")
  require(cfg.remat_policy in ("none", *REMAT_POLICIES), "model.remat_policy", cfg.remat_policy,
          f"expected 'none' or one of {sorted(REMAT_POLICIES)}")


def stack_config(cfg, decode: bool) -> llama.LlamaStackConfig:
  inv_freq = llama.rope_inv_freq(head_dim(cfg), cfg.rope_theta, cfg.rope_type, cfg.rope_factor,
                                 cfg.rope_low_freq_factor, cfg.rope_high_freq_factor,
                                 cfg.rope_original_max_position)
  return llama.LlamaStackConfig(
      num_layers=cfg.num_hidden_layers, num_heads=cfg.num_attention_heads,
      num_kv_heads=cfg.num_key_value_heads, head_dim=head_dim(cfg), intermediate_size=cfg.intermediate_size,
      inv_freq=inv_freq, eps=cfg.rms_norm_eps, attention_bias=cfg.attention_bias, mlp_bias=cfg.mlp_bias,
      decode=decode, scan_layers=cfg.scan_layers, remat_policy=cfg.remat_policy, dtype=jnp.dtype(cfg.dtype))


class LlamaForCausalLM(nn.Module):
  """See the module docstring."""
  config: ml_collections.FrozenConfigDict
  decode: bool = False

  @nn.compact
  def __call__(self, tokens, *, prefix=None, mask=None, all_heads: bool = False):
    c, dtype = self.config, jnp.dtype(self.config.dtype)
    embed = nn.Embed(c.vocab_size, c.hidden_size, dtype=dtype, name="embed_tokens",
                     embedding_init=logical(nn.initializers.normal(0.02), "vocab", "embed"))
    parts = ([] if prefix is None else [prefix.astype(dtype)]) + ([] if tokens is None else [embed(tokens)])
    x = jnp.concatenate(parts, axis=1)
    positions = self._positions(x.shape[1])
    x = nn.with_logical_constraint(x, ("batch", "length", "embed"))
    x, _ = run_layers(llama.LlamaDecoderLayer, stack_config(c, self.decode), x, positions, mask,
                      train_argnum=None)
    x = llama.RMSNorm(c.rms_norm_eps, dtype, name="norm")(x)
    if c.tie_word_embeddings:
      unembed = embed.attend
    else:
      unembed = nn.Dense(c.vocab_size, use_bias=False, dtype=dtype, name="lm_head",
                         kernel_init=logical(nn.initializers.normal(0.02), "embed", "vocab"))
    if not all_heads:
      return unembed(x).astype(jnp.float32)
    # multi-token prediction (latent-space expansion): head j maps x by its own D×D matrix (identity at
    # init) into the shared un-embedding and predicts the token j + 1 positions further on
    heads = [x] + [nn.Dense(c.hidden_size, use_bias=False, dtype=dtype, name=f"mtp_{j}",
                            kernel_init=logical(lambda k, s, d: jnp.eye(s[0], dtype=d), "embed", None))(x)
                   for j in range(1, c.mtp_heads + 1)]
    return jnp.stack([unembed(h) for h in heads], axis=2).astype(jnp.float32)

  def _positions(self, length: int):
    return decode_positions(self, length, self.decode)


def from_config(cfg, decode: bool = False) -> LlamaForCausalLM:
  validate(cfg)
  return LlamaForCausalLM(ml_collections.FrozenConfigDict(cfg), decode=decode)


def forward_flops(cfg, length: int) -> float:
  """Matmul FLOPs of one forward pass over `length` tokens (causal attention counted in full)."""
  d, hd = cfg.hidden_size, head_dim(cfg)
  attention = 2 * d * hd * (2 * cfg.num_attention_heads + 2 * cfg.num_key_value_heads)
  per_token = cfg.num_hidden_layers * (attention + 6 * d * cfg.intermediate_size
                                       + 4 * length * hd * cfg.num_attention_heads) + 2 * d * cfg.vocab_size
  return float(length * per_token)


def generate(cfg, params, prompt, prompt_length, rngs, length: int, temperature: float = 1.0,
             top_k: int = 0, top_p: float = 0.0):
  """`token_lm.generate`'s contract for a LLaMA: prompt [B, P] int32 (row r's first prompt_length[r]
  tokens), rngs [B] → tokens [B, length]; temperature 0 is greedy. One `fori_loop` over the KV cache."""
  require(length <= cfg.max_position_embeddings, "model.max_position_embeddings", cfg.max_position_embeddings,
          f"must be >= length {length}")
  model = from_config(cfg, decode=True)
  cache = token_lm.init_cache(model, prompt.shape[0], length)

  def next_logits(i, tokens, cache):
    logits, updates = model.apply({"params": params, "cache": cache}, tokens[:, i, None], mutable=["cache"])
    return logits[:, 0], updates["cache"]
  return sampling.decode_loop(next_logits, cache, prompt, prompt_length, rngs, length, temperature, top_k,
                              top_p)
