"""Speech-LLaMA (Fathullah et al. 2023): an audio encoder's frames, stacked and projected to the LLM's width,
prepended to the text embeddings of a LLaMA-architecture decoder that writes the transcript.

    prefix, prefix_mask = AudioPrefix(cfg)(audio, audio_mask)     # [B, A, D_llm], [B, A] bool
    logits = LlamaForCausalLM(cfg.llm)(tokens, prefix=prefix, mask=concat(prefix_mask, token_mask))

AudioPrefix: any encoder family (`cfg.encoder`, under its own scope, so pretrained checkpoints drop in)
→ `stride` consecutive frames concatenated ([B, F, De] → [B, F // stride, stride · De]; a stacked frame is
real when all its frames are; the remainder frames are dropped) → `projection` Dense → D_llm. A 20 ms
encoder with stride 4 gives the paper's 80 ms per embedding; stride 48 gives 960 ms.

Text (`TextIds`): the data's target ids and the LLM's BOS / EOS. Symbols (`data.target_vocab`, ids 1..V,
`speechjax.data.vocab`): 0 = padding, BOS = V + 1, EOS = V + 2, `vocab_size` = V + 3. A subword tokenizer
(`data.text_tokenizer`, `speechjax.text_tokenizer`): its own ids, BOS, EOS and size. The LLM reads
[prefix, BOS, t1 .. tn] and is trained to write [t1 .. tn, EOS] (loss on those positions only).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
from flax import linen as nn

from speechjax.config import require
from speechjax.models import llama, registry
from speechjax.nn.partitioning import dense_inits
from speechjax.text_tokenizer import TextTokenizer


@dataclasses.dataclass(frozen=True)
class TextIds:
  bos: int
  eos: int
  vocab_size: int


def text_ids(data_cfg) -> TextIds:
  """The LLM's text ids for `data.targets`: the tokenizer's, or the symbols' plus BOS / EOS."""
  if data_cfg.get("text_tokenizer"):
    tokenizer = TextTokenizer.load(data_cfg.text_tokenizer)
    return TextIds(tokenizer.bos_id, tokenizer.eos_id, tokenizer.vocab_size)
  symbols = len(data_cfg.target_vocab)
  return TextIds(symbols + 1, symbols + 2, symbols + 3)


def validate(cfg) -> None:
  family = registry.get(cfg.encoder.model_type, registry.ENCODERS)
  family.validate(cfg.encoder)
  llama.validate(cfg.llm)
  require(cfg.stride >= 1, "model.stride", cfg.stride, "must be >= 1 (encoder frames per embedding)")


class AudioPrefix(nn.Module):
  """audio [B, T], audio_mask [B, T] → (prefix [B, A, D_llm], prefix_mask [B, A] bool)."""
  config: ml_collections.FrozenConfigDict

  @nn.compact
  def __call__(self, audio, audio_mask, train: bool = False):
    c = self.config
    family = registry.get(c.encoder.model_type, registry.ENCODERS)
    out = family.encoder(c.encoder, name=family.scope)(audio, audio_mask, train=train)
    hidden, frame_mask = out["last_hidden_state"], out["frame_mask"]
    batch, frames, dim = hidden.shape
    stacked = frames // c.stride
    if stacked < 1:
      raise ValueError(f"{frames} encoder frames are fewer than model.stride={c.stride}")
    x = hidden[:, :stacked * c.stride].reshape(batch, stacked, c.stride * dim)
    mask = frame_mask[:, c.stride - 1:stacked * c.stride:c.stride]
    prefix = nn.Dense(c.llm.hidden_size, dtype=jnp.dtype(c.llm.dtype), name="projection",
                      **dense_inits(None, "embed"))(x)
    return jnp.where(mask[..., None], prefix, 0), mask


def teacher_forcing(targets, targets_mask, ids: TextIds):
  """Data targets [B, T] → (LLM inputs [BOS, t1..tn, 0..], outputs [t1..tn, EOS, 0..], output mask),
  each [B, T + 1]."""
  bos, eos = ids.bos, ids.eos
  lengths = targets_mask.sum(-1)
  targets = jnp.where(targets_mask, targets, 0)
  inputs = jnp.concatenate([jnp.full((targets.shape[0], 1), bos, targets.dtype), targets], axis=1)
  positions = jnp.arange(targets.shape[1] + 1)[None]
  outputs = jnp.concatenate([targets, jnp.zeros_like(targets[:, :1])], axis=1)
  outputs = jnp.where(positions == lengths[:, None], eos, outputs)
  return inputs, outputs, positions <= lengths[:, None]


def greedy_decode(cfg, params, audio, audio_mask, max_length: int, ids: TextIds):
  """Greedy transcripts with the KV cache: ids [B, max_length] (text ids, EOS, then 0) under one jit
  (`cfg`, `ids` static); the loop stops when every row has written EOS.
  `params` = {"prefix": ..., "llm": ... (LoRA merged)}."""
  bos, eos = ids.bos, ids.eos
  model, cache, prefix, mask = _decode_setup(cfg, params, audio, audio_mask, max_length)
  batch = prefix.shape[0]
  first = jnp.full([batch, 1], bos, jnp.int32)
  logits, updates = model.apply({"params": params["llm"], "cache": cache}, first, prefix=prefix, mask=mask,
                                mutable=["cache"])

  def body(carry):
    i, out, last_logits, cache, done = carry
    token = jnp.where(done, 0, jnp.argmax(last_logits, -1).astype(jnp.int32))
    out = out.at[:, i].set(token)
    done = done | (token == eos)
    logits, updates = model.apply({"params": params["llm"], "cache": cache}, token[:, None], mask=mask,
                                  mutable=["cache"])
    return i + 1, out, logits[:, -1], updates["cache"], done

  out = jnp.zeros([batch, max_length], jnp.int32)
  done = jnp.zeros([batch], bool)
  carry = (jnp.int32(0), out, logits[:, -1], updates["cache"], done)
  i, out, last_logits, _, done = jax.lax.while_loop(_running(max_length), body, carry)
  return out.at[:, i].set(jnp.where(done, 0, jnp.argmax(last_logits, -1).astype(jnp.int32)))


def _running(max_length: int):
  """while_loop condition on (step, ..., done [B] or [B, K]): steps left and a row still writing."""
  return lambda carry: (carry[0] < max_length - 1) & ~jnp.all(carry[-1])


def _decode_setup(cfg, params, audio, audio_mask, max_length: int, copies: int = 1):
  """(model with a KV cache, zero cache for prefix + max_length slots, prefix, key mask); each utterance's
  rows repeated `copies` times (beam search: [B · copies, ...], utterance-major)."""
  frozen = ml_collections.FrozenConfigDict(cfg)
  prefix, prefix_mask = AudioPrefix(frozen).apply({"params": params["prefix"]}, audio, audio_mask)
  prefix, prefix_mask = jnp.repeat(prefix, copies, axis=0), jnp.repeat(prefix_mask, copies, axis=0)
  model = llama.from_config(cfg.llm, decode=True)
  batch, audio_len = prefix_mask.shape
  total = audio_len + max_length
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros([batch, total], jnp.int32)))
  cache = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), nn.unbox(shapes["cache"]))
  mask = jnp.concatenate([prefix_mask, jnp.ones([batch, max_length], bool)], axis=1)
  return model, cache, prefix, mask


def beam_decode(cfg, params, audio, audio_mask, max_length: int, ids: TextIds, beam: int,
                length_penalty: float = 1.0):
  """Beam search with the KV cache: ids [B, max_length] as `greedy_decode`, under one jit.

  `beam` hypotheses per utterance compete on summed log-probabilities; a hypothesis that wrote EOS keeps its
  score and stays in the beam (padding after it). The answer is the hypothesis with the highest
  score / length ** `length_penalty` (length counting EOS; HF `generate`'s normalisation). The cache rows
  follow their hypotheses (gathered by parent at every step); the loop stops when every hypothesis has
  finished."""
  batch = audio.shape[0]
  model, cache, prefix, mask = _decode_setup(cfg, params, audio, audio_mask, max_length, copies=beam)
  first = jnp.full([batch * beam, 1], ids.bos, jnp.int32)
  logits, updates = model.apply({"params": params["llm"], "cache": cache}, first, prefix=prefix, mask=mask,
                                mutable=["cache"])
  vocab_size = logits.shape[-1]
  finished_row = jnp.full([vocab_size], -jnp.inf).at[0].set(0.0)     # a finished hypothesis only pads
  rows_of = lambda parent: (parent + beam * jnp.arange(batch)[:, None]).reshape(-1)

  def extend(i, tokens, scores, done, lengths, last_logits):
    log_probs = jax.nn.log_softmax(last_logits.astype(jnp.float32)).reshape(batch, beam, vocab_size)
    log_probs = jnp.where(done[..., None], finished_row, log_probs)
    scores, flat = jax.lax.top_k((scores[..., None] + log_probs).reshape(batch, beam * vocab_size), beam)
    parent, token = flat // vocab_size, (flat % vocab_size).astype(jnp.int32)
    take = lambda x: jnp.take_along_axis(x, parent.reshape(parent.shape + (1,) * (x.ndim - 2)), axis=1)
    tokens, done = take(tokens).at[:, :, i].set(token), take(done)
    lengths = take(lengths) + ~done
    return tokens, scores, done | (token == ids.eos), lengths, parent

  def body(carry):
    i, tokens, scores, lengths, last_logits, cache, done = carry
    tokens, scores, done, lengths, parent = extend(i, tokens, scores, done, lengths, last_logits)
    rows = rows_of(parent)
    cache = jax.tree.map(lambda c: jnp.take(c, rows, axis=c.ndim - 4) if c.ndim >= 4 else c, cache)
    logits, updates = model.apply({"params": params["llm"], "cache": cache}, tokens[:, :, i].reshape(-1, 1),
                                  mask=mask, mutable=["cache"])
    return i + 1, tokens, scores, lengths, logits[:, -1], updates["cache"], done

  tokens = jnp.zeros([batch, beam, max_length], jnp.int32)
  scores = jnp.tile(jnp.where(jnp.arange(beam) == 0, 0.0, -jnp.inf), (batch, 1))
  done, lengths = jnp.zeros([batch, beam], bool), jnp.zeros([batch, beam], jnp.int32)
  carry = (jnp.int32(0), tokens, scores, lengths, logits[:, -1], updates["cache"], done)
  i, tokens, scores, lengths, last_logits, _, done = jax.lax.while_loop(_running(max_length), body, carry)
  tokens, scores, _, lengths, _ = extend(i, tokens, scores, done, lengths, last_logits)
  best = jnp.argmax(scores / jnp.maximum(lengths, 1).astype(jnp.float32) ** length_penalty, axis=1)
  return jnp.take_along_axis(tokens, best[:, None, None], axis=1)[:, 0]


def multi_token_decode(cfg, params, audio, audio_mask, max_length: int, ids: TextIds):
  """Greedy transcript of one utterance (B = 1) with the `mtp_heads` future heads drafting k tokens that the
  next call verifies (Raj et al. 2024, verification-based): each call feeds [last, d1 .. dk], accepts the
  drafts that equal the model's own greedy choices, and adds one more (its choice after the last accepted
  draft). The output equals plain greedy decoding; each call yields 1 .. k + 1 tokens.
  Returns (ids [max_length] as `greedy_decode`, decoder calls including the prefill)."""
  k = cfg.llm.mtp_heads
  model, cache, prefix, mask = _decode_setup(cfg, params, audio, audio_mask, max_length + k + 1)
  first = jnp.full([1, 1], ids.bos, jnp.int32)
  heads, updates = model.apply({"params": params["llm"], "cache": cache}, first, prefix=prefix, mask=mask,
                               all_heads=True, mutable=["cache"])
  guesses = jnp.argmax(heads[0, -1], -1).astype(jnp.int32)               # [1 + k]: next, then drafts
  out = jnp.zeros([max_length + k + 1], jnp.int32).at[0].set(guesses[0])
  state = (out, jnp.int32(1), guesses[0], guesses[1:], updates["cache"], jnp.int32(1))

  def running(state):
    out, n, last, _, _, _ = state
    return (n < max_length) & ~jnp.any((out == ids.eos) & (jnp.arange(out.shape[0]) < n))

  def step(state):
    out, n, last, drafts, cache, calls = state
    fed = jnp.concatenate([last[None], drafts])[None]                     # [1, k + 1]
    heads, updates = model.apply({"params": params["llm"], "cache": cache}, fed, mask=mask, all_heads=True,
                                 mutable=["cache"])
    choice = jnp.argmax(heads[0], -1).astype(jnp.int32)                   # [k + 1, 1 + k]
    accepted = jnp.sum(jnp.cumprod(drafts == choice[:-1, 0]))            # leading drafts the model agrees with
    new = jnp.where(jnp.arange(k + 1) < accepted, jnp.concatenate([drafts, drafts[:1]]), 0)
    new = jnp.where(jnp.arange(k + 1) == accepted, choice[accepted, 0], new)
    cache = {**updates["cache"], "index": cache["index"] + accepted + 1}   # rejected slots get overwritten
    out = jax.lax.dynamic_update_slice(out, new, (n,))
    return out, n + accepted + 1, choice[accepted, 0], choice[accepted, 1:], cache, calls + 1

  out, n, _, _, _, calls = jax.lax.while_loop(running, step, state)
  seen_eos = jnp.cumsum(out == ids.eos) - (out == ids.eos) > 0            # positions after the first EOS
  out = jnp.where(seen_eos | (jnp.arange(out.shape[0]) >= n), 0, out)
  return out[:max_length], calls
