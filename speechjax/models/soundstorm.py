"""SoundStorm (Borsos et al. 2023): parallel, MaskGIT-style generation of all RVQ levels from semantic tokens.

    SoundStorm(config)(codes [B, T, Q], semantic [B, T], mask [B, T], train) → logits [B, T, Q, N] float32

Input per frame: the sum of one embedding per RVQ level (`code_embed` [Q·(N+1), D]; id N of each level is
MASK) plus the embedding of the frame's semantic token (`semantic_embed` [K, D]). A bidirectional pre-LN
transformer with rotary positions (not the paper's Conformer: no convolution module) reads the frames;
Q heads (`heads` [D, Q, N]) predict every level at every frame.

Training mask (`training_mask`, per example): a prompt boundary t0 ~ U{0..T_b−1} (earlier frames never
masked), a level q ~ U{0..Q−1}, a ratio p = cos(u) with u ~ U[0, π/2]; at level q each frame ≥ t0 is masked
with probability p, every level above q is masked at all frames ≥ t0, the levels below stay visible. The
loss covers only the masked tokens of level q.

Decoding (`generate`, one jit): level 0 by confidence-based iterative decoding — at step s of S every
masked token is sampled, and the ⌊n·cos(π/2·(s+1)/S)⌋ least confident (probability of the sampled token)
are masked again — then one greedy pass per later level: S + Q − 1 forward passes in all.

Config fields: levels, codebook_size, semantic_vocab, hidden_size, num_layers, num_heads,
intermediate_size, dropout, attention_dropout, eps, scan_layers, remat_policy, dtype.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
from flax import linen as nn

from speechjax.config import ConfigError, require
from speechjax.nn.lm_transformer import Stack, StackConfig
from speechjax.nn.partitioning import logical
from speechjax.nn.transformer import SCAN_MIN_LAYERS, HeadDense

_PRESETS = {
    "tiny": dict(levels=4, codebook_size=64, semantic_vocab=100, hidden_size=128, num_layers=3,
                 num_heads=4, intermediate_size=512),
    "base": dict(levels=12, codebook_size=1024, semantic_vocab=1024, hidden_size=1024, num_layers=12,
                 num_heads=16, intermediate_size=4096, dropout=0.1),
}


def model_config(preset: str = "tiny") -> ml_collections.ConfigDict:
  """`tiny` (CPU) or `base` (the paper's 12 × 1024 codes, 12 layers, d 1024, 16 heads, FFN 4096)."""
  if preset not in _PRESETS:
    raise ConfigError(f"soundstorm model preset {preset!r}: expected one of {sorted(_PRESETS)}")
  cfg = ml_collections.ConfigDict(dict(
      model_type="soundstorm", dropout=0.0, attention_dropout=0.0, eps=1e-5, scan_layers=False,
      remat_policy="none", dtype="float32"))
  cfg.update(_PRESETS[preset])
  cfg.scan_layers = cfg.num_layers >= SCAN_MIN_LAYERS
  return cfg


def validate(cfg) -> None:
  for field in ("levels", "codebook_size", "semantic_vocab", "num_layers"):
    require(cfg[field] > 0, f"model.{field}", cfg[field], "must be > 0")
  require(cfg.hidden_size % cfg.num_heads == 0 and (cfg.hidden_size // cfg.num_heads) % 2 == 0,
          "model.num_heads", cfg.num_heads, f"must divide model.hidden_size={cfg.hidden_size} into even heads")


class SoundStorm(nn.Module):
  """See the module docstring. `codes` hold ids in [0, N] (N = MASK), `mask` marks real frames."""
  config: ml_collections.FrozenConfigDict

  @nn.compact
  def __call__(self, codes, semantic, mask, *, train: bool = False):
    c, dtype = self.config, jnp.dtype(self.config.dtype)
    init = logical(nn.initializers.normal(0.02), "vocab", "embed")
    table = self.param("code_embed", init, (c.levels * (c.codebook_size + 1), c.hidden_size))
    offsets = jnp.arange(c.levels) * (c.codebook_size + 1)
    x = jnp.take(table, codes + offsets, axis=0).sum(axis=2).astype(dtype)          # [B, T, D]
    x = x + nn.Embed(c.semantic_vocab, c.hidden_size, dtype=dtype, name="semantic_embed",
                     embedding_init=init)(semantic)
    x = nn.Dropout(c.dropout, deterministic=not train)(x)
    x = Stack(StackConfig(c.num_layers, c.num_heads, c.intermediate_size, causal=False, rope=True,
                          dropout=c.dropout, attention_dropout=c.attention_dropout, eps=c.eps,
                          scan_layers=c.scan_layers, remat_policy=c.remat_policy, dtype=dtype),
              name="encoder")(x, jnp.arange(codes.shape[1]), mask, train)
    return HeadDense((c.hidden_size, c.levels, c.codebook_size), ("embed", None, "vocab"),
                     "btd,dqn->btqn", dtype, name="heads")(x).astype(jnp.float32)


def from_config(cfg) -> SoundStorm:
  validate(cfg)
  return SoundStorm(ml_collections.FrozenConfigDict(cfg))


def forward_flops(cfg, frames: int) -> float:
  d, f = cfg.hidden_size, cfg.intermediate_size
  per_frame = cfg.num_layers * (8 * d * d + 4 * d * f + 4 * frames * d) + 2 * d * cfg.levels * cfg.codebook_size
  return float(frames * per_frame)


def align_semantic(semantic, frames: int, repeat: int):
  """Semantic tokens [B, F_s] at 1/repeat of the acoustic frame rate → [B, frames], each repeated (−1 pads)."""
  aligned = jnp.repeat(semantic, repeat, axis=1)[:, :frames]
  return jnp.pad(aligned, [(0, 0), (0, frames - aligned.shape[1])], constant_values=-1)


def training_mask(rng, frame_mask, levels: int) -> dict:
  """The per-example masking of the module docstring. frame_mask [B, T] bool → dict of
  `masked` [B, T, Q] (tokens replaced by MASK), `loss` [B, T, Q] (masked tokens of the sampled level),
  `level` [B], `ratio` [B] = cos(u), `start` [B] (prompt boundary t0)."""
  batch, frames = frame_mask.shape
  start_rng, level_rng, u_rng, bernoulli_rng = jax.random.split(rng, 4)
  lengths = frame_mask.sum(-1)
  start = jnp.floor(jax.random.uniform(start_rng, [batch]) * lengths).astype(jnp.int32)
  level = jax.random.randint(level_rng, [batch], 0, levels)
  ratio = jnp.cos(jax.random.uniform(u_rng, [batch], maxval=math.pi / 2))
  picked = jax.random.uniform(bernoulli_rng, [batch, frames]) < ratio[:, None]
  after = (jnp.arange(frames)[None] >= start[:, None]) & frame_mask                # [B, T]
  at_level = jnp.arange(levels)[None, None] == level[:, None, None]                # [B, 1, Q]
  above = jnp.arange(levels)[None, None] > level[:, None, None]
  loss = after[..., None] & at_level & picked[..., None]
  return {"masked": loss | (after[..., None] & above), "loss": loss, "level": level, "ratio": ratio,
          "start": start}


def remaining_masked(num_masked, step, steps: int):
  """⌊n·cos(π/2·(step+1)/steps)⌋: tokens still masked after decoding step `step` (0 after the last)."""
  remaining = jnp.floor(num_masked * jnp.cos(math.pi / 2 * (step + 1) / steps))
  return jnp.maximum(remaining, 0).astype(jnp.int32)   # cos(π/2) is −4e−8 in float32


def generate(cfg, params, semantic, frame_mask, rng, prompt_codes=None, prompt_frames=None,
             steps: int = 16, temperature: float = 1.0):
  """semantic [B, T] (aligned to the frames), frame_mask [B, T] → codes [B, T, Q] (0 at padded frames).

  The first prompt_frames[b] frames of row b keep `prompt_codes` [B, T, Q] (an acoustic prompt); the
  others are decoded as in the module docstring. jit-able with cfg, steps and temperature static."""
  model = from_config(cfg)
  batch, frames = semantic.shape
  mask_id = cfg.codebook_size
  prompted = jnp.zeros([batch, frames], bool)
  codes = jnp.full([batch, frames, cfg.levels], mask_id, jnp.int32)
  if prompt_codes is not None:
    prompted = jnp.arange(frames)[None] < prompt_frames[:, None]
    codes = jnp.where(prompted[..., None], prompt_codes, codes)
  todo = frame_mask & ~prompted                                                    # [B, T]
  num_masked = todo.sum(-1, keepdims=True)
  semantic = jnp.maximum(semantic, 0)

  def logits_at(codes, level):
    logits = model.apply({"params": params}, codes, semantic, frame_mask)
    return jax.lax.dynamic_index_in_dim(logits, level, axis=2, keepdims=False)     # [B, T, N]

  def first_level_step(step, codes):
    logits = logits_at(codes, 0) / temperature
    sampled = jax.random.categorical(jax.random.fold_in(rng, step), logits).astype(jnp.int32)
    confidence = jnp.take_along_axis(jax.nn.log_softmax(logits), sampled[..., None], axis=-1)[..., 0]
    still = todo & (codes[..., 0] == mask_id)
    candidate = jnp.where(still, sampled, codes[..., 0])
    rank = jnp.argsort(jnp.argsort(jnp.where(still, confidence, jnp.inf), axis=-1), axis=-1)
    remask = still & (rank < remaining_masked(num_masked, step, steps))
    return codes.at[..., 0].set(jnp.where(remask, mask_id, candidate))

  def greedy_level(level, codes):
    best = jnp.argmax(logits_at(codes, level), axis=-1).astype(jnp.int32)
    current = jax.lax.dynamic_index_in_dim(codes, level, axis=2, keepdims=False)
    return jax.lax.dynamic_update_index_in_dim(codes, jnp.where(todo, best, current), level, axis=2)

  codes = jax.lax.fori_loop(0, steps, first_level_step, codes)
  codes = jax.lax.fori_loop(1, cfg.levels, greedy_level, codes)
  return jnp.where(frame_mask[..., None], codes, 0)
