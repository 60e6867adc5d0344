"""Decoder-only token language model with a KV cache, and batched sampling under one jit.

    TokenLM(config, decode=False)(tokens [B, L], train=False) → logits [B, L, V] float32

Token embedding (`embed`, [V, D], logical `vocab`, `embed`) → (+ learned positions `pos_embed`
[max_length, D] when `position="learned"`; rotary phases in every attention when `position="rope"`) →
causal pre-LN stack (`speechjax.nn.lm_transformer`) → logits through the embedding (`tie_embeddings`) or
an `lm_head` Dense [D, V].

Decoding (`decode=True`): the model keeps its write position `cache/index` and every layer its keys and
values; each call feeds the next L ≥ 1 tokens. `generate` runs the whole loop in one `lax.fori_loop`:
prompts of different lengths per row are forced through position by position (lm1b style), so all rows
share one static shape and one compile.

Config fields: vocab_size, hidden_size, num_layers, num_heads, intermediate_size, max_length, position
("rope" | "learned"), tie_embeddings, dropout, attention_dropout, scan_layers, remat_policy, dtype.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import linen as nn

from speechjax.config import ConfigError, require
from speechjax.models import sampling
from speechjax.nn.lm_transformer import Stack, StackConfig, decode_positions
from speechjax.nn.partitioning import dense_inits, logical
from speechjax.nn.layer_stack import REMAT_POLICIES
from speechjax.nn.transformer import SCAN_MIN_LAYERS

POSITIONS = ("rope", "learned")

_PRESETS = {
    "tiny": dict(hidden_size=128, num_layers=3, num_heads=4, intermediate_size=512, max_length=512),
    "base": dict(hidden_size=1024, num_layers=12, num_heads=16, intermediate_size=4096, max_length=2048,
                 dropout=0.1, attention_dropout=0.1),
}


def model_config(preset: str = "tiny", vocab_size: int = 1024) -> ml_collections.ConfigDict:
  """`tiny` (CPU) or `base` (AudioLM's per-stage size: 12 layers, d 1024, 16 heads, FFN 4096)."""
  if preset not in _PRESETS:
    raise ConfigError(f"token_lm model preset {preset!r}: expected one of {sorted(_PRESETS)}")
  cfg = ml_collections.ConfigDict(dict(
      model_type="token_lm", vocab_size=vocab_size, position="rope", tie_embeddings=False, dropout=0.0,
      attention_dropout=0.0, eps=1e-5, scan_layers=False, remat_policy="none", dtype="float32"))
  cfg.update(_PRESETS[preset])
  cfg.scan_layers = cfg.num_layers >= SCAN_MIN_LAYERS
  return cfg


def validate(cfg) -> None:
  require(cfg.vocab_size > 0, "model.vocab_size", cfg.vocab_size, "must be > 0")
  require(cfg.hidden_size % cfg.num_heads == 0, "model.hidden_size", cfg.hidden_size,
          f"must be divisible by model.num_heads={cfg.num_heads}")
  require((cfg.hidden_size // cfg.num_heads) % 2 == 0 or cfg.position != "rope", "model.num_heads",
          cfg.num_heads, "rotary positions need an even head size")
  require(cfg.position in POSITIONS, "model.position", cfg.position, f"expected one of {POSITIONS}")
  require(cfg.remat_policy in ("none", *REMAT_POLICIES), "model.remat_policy", cfg.remat_policy,
          f"expected 'none' or one of {sorted(REMAT_POLICIES)}")
  require(cfg.max_length > 0, "model.max_length", cfg.max_length, "must be > 0")


class TokenLM(nn.Module):
  """See the module docstring. Sequences are right-padded: causal attention keeps padding out of the
  real positions, and the loss ignores the padded ones."""
  config: ml_collections.FrozenConfigDict
  decode: bool = False

  @nn.compact
  def __call__(self, tokens, *, train: bool = False):
    c, dtype = self.config, jnp.dtype(self.config.dtype)
    length = tokens.shape[1]
    embed = nn.Embed(c.vocab_size, c.hidden_size, dtype=dtype, name="embed",
                     embedding_init=logical(nn.initializers.normal(0.02), "vocab", "embed"))
    positions = self._positions(length)
    x = embed(tokens)
    if c.position == "learned":
      table = self.param("pos_embed", logical(nn.initializers.normal(0.02), None, "embed"),
                         (c.max_length, c.hidden_size))
      x = x + jnp.take(table, positions, axis=0).astype(dtype)[None]
    x = nn.Dropout(c.dropout, deterministic=not train)(x)
    x = Stack(StackConfig(c.num_layers, c.num_heads, c.intermediate_size, causal=True,
                          rope=c.position == "rope", decode=self.decode, dropout=c.dropout,
                          attention_dropout=c.attention_dropout, eps=c.eps, scan_layers=c.scan_layers,
                          remat_policy=c.remat_policy, dtype=dtype),
              name="decoder")(x, positions, None, train)
    if c.tie_embeddings:
      return embed.attend(x).astype(jnp.float32)
    return nn.Dense(c.vocab_size, dtype=dtype, name="lm_head", **dense_inits("embed", "vocab"))(
        x).astype(jnp.float32)

  def _positions(self, length: int):
    return decode_positions(self, length, self.decode)


def from_config(cfg, decode: bool = False) -> TokenLM:
  validate(cfg)
  return TokenLM(ml_collections.FrozenConfigDict(cfg), decode=decode)


def forward_flops(cfg, length: int) -> float:
  """Matmul FLOPs of one forward pass over `length` tokens (causal attention counted in full)."""
  d, f = cfg.hidden_size, cfg.intermediate_size
  per_token = cfg.num_layers * (8 * d * d + 4 * d * f + 4 * length * d) + 2 * d * cfg.vocab_size
  return float(length * per_token)


def init_cache(model: TokenLM, batch: int, length: int):
  """Zero KV cache for `batch` rows (a tree of the `cache` collection), without running the model."""
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros([batch, length], jnp.int32)))
  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), nn.unbox(shapes["cache"]))


def generate(cfg, params, prompt, prompt_length, rngs, length: int, temperature: float = 1.0,
             top_k: int = 0, top_p: float = 0.0, use_cache: bool = True, token_range=None):
  """Samples continuations of per-row prompts; jit-able (all of cfg, length and the sampling settings
  are static).

  prompt [B, P] int32 (row r's first prompt_length[r] ≥ 1 tokens are its prompt), rngs [B] keys (row r's
  draws depend only on rngs[r]) → tokens [B, length]: the prompt, then samples. Each position i + 1 ≥
  prompt_length is sampled from the logits after position i. `use_cache=False` recomputes the whole
  sequence at every step (the reference the cache is measured against). `token_range` = (low, high),
  each [B, length] int32, restricts the token sampled at position j of row b to [low[b, j], high[b, j])
  (e.g. one RVQ level's slice of a shared vocabulary)."""
  require(length <= cfg.max_length, "model.max_length", cfg.max_length, f"must be >= length {length}")
  model = from_config(cfg, decode=use_cache)
  cache = init_cache(model, prompt.shape[0], length) if use_cache else None

  def next_logits(i, tokens, cache):
    if use_cache:
      logits, updates = model.apply({"params": params, "cache": cache}, tokens[:, i, None],
                                    mutable=["cache"])
      return logits[:, 0], updates["cache"]
    logits = model.apply({"params": params}, tokens)
    return jax.lax.dynamic_index_in_dim(logits, i, axis=1, keepdims=False), None

  return sampling.decode_loop(next_logits, cache, prompt, prompt_length, rngs, length, temperature, top_k,
                              top_p, token_range)


def extend_vocab(params, num_new: int, rng, stddev: float = 0.02):
  """Grows a TokenLM's vocabulary by `num_new` tokens appended after the existing ones (AudioPaLM: text
  vocabulary t → t + a audio tokens). `embed/embedding` [V, D] gains rows, an untied `lm_head` its kernel
  [D, V] columns and bias entries; new weights ~ N(0, stddev), new biases 0. Every existing value is kept
  bit for bit. Params are an unboxed tree; the model config needs `vocab_size` += num_new."""
  if num_new < 1:
    raise ValueError(f"extend_vocab: num_new must be >= 1, got {num_new}")
  embed_rng, head_rng = jax.random.split(rng)
  table = params["embed"]["embedding"]
  new_rows = stddev * jax.random.normal(embed_rng, (num_new, table.shape[1]), table.dtype)
  out = {**params, "embed": {"embedding": jnp.concatenate([table, new_rows], axis=0)}}
  if "lm_head" in params:
    kernel, bias = params["lm_head"]["kernel"], params["lm_head"]["bias"]
    new_cols = stddev * jax.random.normal(head_rng, (kernel.shape[0], num_new), kernel.dtype)
    out["lm_head"] = {"kernel": jnp.concatenate([kernel, new_cols], axis=1),
                      "bias": jnp.concatenate([bias, jnp.zeros([num_new], bias.dtype)])}
  return out
