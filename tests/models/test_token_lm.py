"""Token LM: KV-cache decoding equals recomputation, sampling filters, batched generation, vocab growth."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from speechjax.models import audiolm, sampling, token_lm

pytestmark = pytest.mark.fast_compile

B, L = 3, 12


def _config(**overrides):
  cfg = token_lm.model_config("tiny", vocab_size=37)
  cfg.update(dict(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, max_length=16))
  cfg.update(overrides)
  return cfg


def _params(cfg):
  tokens = jnp.zeros([1, L], jnp.int32)
  return nn.unbox(token_lm.from_config(cfg).init(jax.random.PRNGKey(0), tokens)["params"])


@pytest.mark.parametrize("overrides", [dict(position="rope"), dict(position="learned", scan_layers=True,
                                                                 tie_embeddings=True, remat_policy="full")])
def test_cached_decoding_equals_full_recomputation(overrides):
  cfg = _config(**overrides)
  params = _params(cfg)
  tokens = jax.random.randint(jax.random.PRNGKey(1), [B, L], 0, cfg.vocab_size)
  full = token_lm.from_config(cfg).apply({"params": params}, tokens)
  model = token_lm.from_config(cfg, decode=True)
  cache = token_lm.init_cache(model, B, L)
  step = jax.jit(lambda cache, chunk: model.apply({"params": params, "cache": cache}, chunk,
                                                  mutable=["cache"]))
  outputs = []
  for chunk in (tokens[:, :5], *[tokens[:, i, None] for i in range(5, L)]):   # prefill, then one by one
    logits, updates = step(cache, chunk)
    cache = updates["cache"]
    outputs.append(logits)
  np.testing.assert_allclose(np.concatenate(outputs, axis=1), full, atol=1e-5, rtol=0)


def test_scanned_params_carry_logical_axes():
  cfg = _config(scan_layers=True)
  boxed = token_lm.from_config(cfg).init(jax.random.PRNGKey(0), jnp.zeros([1, L], jnp.int32))["params"]
  names = nn.get_partition_spec(boxed)
  assert names["embed"]["embedding"] == jax.sharding.PartitionSpec("vocab", "embed")
  assert names["decoder"]["layers"]["attention"]["q_proj"]["kernel"] == jax.sharding.PartitionSpec(
      "layers", "embed", "heads", "kv")


def test_top_k_top_p_never_emit_excluded_tokens():
  logits = jax.random.normal(jax.random.PRNGKey(2), [4, 50]) * 1.5
  k, p = 7, 0.6
  keys = jax.random.split(jax.random.PRNGKey(3), 4000)
  draws = jax.jit(jax.vmap(lambda key: sampling.sample(jax.random.split(key, 4), logits, 1.0, k, p)))(keys)
  probs = np.asarray(jax.nn.softmax(logits))
  for row in range(4):
    order = np.argsort(-probs[row])
    top = order[:k]
    renorm = probs[row][top] / probs[row][top].sum()
    allowed = set(top[:np.searchsorted(np.cumsum(renorm), p) + 1].tolist())
    emitted = set(np.asarray(draws[:, row]).tolist())
    assert emitted <= allowed, (row, emitted - allowed)
    assert emitted == allowed   # and every allowed token does occur in 4000 draws
  only_k = np.asarray(jax.vmap(lambda key: sampling.sample(jax.random.split(key, 4), logits, 1.0, k))(keys))
  for row in range(4):
    assert set(only_k[:, row].tolist()) == set(np.argsort(-probs[row])[:k].tolist())


def test_batched_generation_with_ragged_prompts_equals_per_row():
  cfg = _config()
  params = _params(cfg)
  prompt = jax.random.randint(jax.random.PRNGKey(4), [B, 6], 0, cfg.vocab_size)
  lengths = jnp.array([1, 6, 3])
  rngs = jax.random.split(jax.random.PRNGKey(5), B)
  gen = jax.jit(lambda prompt, lengths, rngs: token_lm.generate(cfg, params, prompt, lengths, rngs, 16,
                                                                temperature=1.0, top_k=10))
  batched = np.asarray(gen(prompt, lengths, rngs))
  for r in range(B):
    np.testing.assert_array_equal(batched[r], gen(prompt[r:r + 1], lengths[r:r + 1], rngs[r:r + 1])[0])
    np.testing.assert_array_equal(batched[r, :lengths[r]], prompt[r, :lengths[r]])
  recomputed = token_lm.generate(cfg, params, prompt, lengths, rngs, 16, temperature=0.0, use_cache=False)
  cached = token_lm.generate(cfg, params, prompt, lengths, rngs, 16, temperature=0.0)
  np.testing.assert_array_equal(recomputed, cached)


def test_extend_vocab_keeps_text_rows_bit_identical():
  for tied in (False, True):
    cfg = _config(tie_embeddings=tied)
    params = _params(cfg)
    grown = token_lm.extend_vocab(params, 20, jax.random.PRNGKey(6))
    v = cfg.vocab_size
    assert grown["embed"]["embedding"].shape == (v + 20, cfg.hidden_size)
    np.testing.assert_array_equal(grown["embed"]["embedding"][:v], params["embed"]["embedding"])
    if not tied:
      np.testing.assert_array_equal(grown["lm_head"]["kernel"][:, :v], params["lm_head"]["kernel"])
      np.testing.assert_array_equal(grown["lm_head"]["bias"][:v], params["lm_head"]["bias"])
    cfg.vocab_size = v + 20
    tokens = jax.random.randint(jax.random.PRNGKey(7), [B, L], 0, v)
    old = token_lm.from_config(_config(tie_embeddings=tied)).apply({"params": params}, tokens)
    new = token_lm.from_config(cfg).apply({"params": grown}, tokens)
    np.testing.assert_array_equal(new[..., :v], old)   # text-only inputs: text logits unchanged


def test_audiolm_continuation_emits_each_stream_in_its_range():
  vocab = audiolm.Vocab(semantic=6, codebook=5, levels=3, coarse_levels=1)
  models = {}
  for stage in audiolm.STAGES:
    cfg = _config(vocab_size=vocab.size(stage), max_length=32, num_layers=1)
    models[stage] = (cfg, _params(cfg))
  semantic_prompt = jnp.array([[2, 2, 3, -1], [4, -1, -1, -1]])
  codes_prompt = jnp.array([[[1, 2, 3], [4, 0, 1]]] * 2)
  semantic, codes = jax.jit(lambda rng: audiolm.continue_tokens(
      models, vocab, semantic_prompt, codes_prompt, 8, 6, rng, temperatures=(1.0, 1.0, 1.0)))(
          jax.random.PRNGKey(8))
  assert semantic.shape == (2, 8) and codes.shape == (2, 6, 3)
  np.testing.assert_array_equal(semantic[0, :2], [2, 3])          # the deduplicated prompt, then samples
  assert semantic[1, 0] == 4 and semantic.min() >= 0 and semantic.max() < 6
  np.testing.assert_array_equal(codes[:, :2], codes_prompt)
  assert codes.min() >= 0 and codes.max() < 5


def test_audiolm_fine_stage_chunks_see_only_their_own_coarse_codes():
  vocab = audiolm.Vocab(semantic=6, codebook=5, levels=3, coarse_levels=1)
  cfg = _config(vocab_size=vocab.size("fine"), max_length=32, num_layers=1)
  models = {"fine": (cfg, _params(cfg))}
  coarse = jax.random.randint(jax.random.PRNGKey(1), [2, 10], 0, 5)[..., None]
  prompt = jnp.array([[[1, 2]] * 3] * 2)        # fine codes of the first 3 frames
  run = jax.jit(lambda c: audiolm.fine_codes(models, vocab, c, prompt, 4, jax.random.PRNGKey(2), 1.0))
  fine = run(coarse)
  assert fine.shape == (2, 10, 2) and fine.min() >= 0 and fine.max() < 5
  np.testing.assert_array_equal(fine[:, :3], prompt)
  changed = run(coarse.at[:, 4:8].set((coarse[:, 4:8] + 1) % 5))   # chunk 2 of 3 (frames 4..7)
  np.testing.assert_array_equal(changed[:, :4], fine[:, :4])
  np.testing.assert_array_equal(changed[:, 8:], fine[:, 8:])
  assert not np.array_equal(changed[:, 4:8], fine[:, 4:8])
