"""Speech-LLaMA (speechjax.models.speech_llm, speechjax.tasks.speech_llm): teacher forcing, cached greedy
decoding against full recomputation, the three LLM modes on the micro corpus, and `speechjax eval`."""
import itertools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import linen as nn

import speechjax
from speechjax import cli
from speechjax import config as config_lib
from speechjax.data import records
from speechjax.eval import transcribe
from speechjax.models import llama, speech_llm
from speechjax.train import trainer

from tests.helpers import harness

SPEC = f"{harness.REPO}/configs/speech_llm.py:tiny"
# Random-weight decoders compiled once each and short trainings: compile time dominates (the three training
# tests: 115 → 93 s alone with this mark).
pytestmark = pytest.mark.fast_compile


def _config(data, *overrides):
  return config_lib.load(SPEC, [f"--config.data.path={data}", "--config.optim.warmup_steps=5",
                                "--config.train.log_every=5", "--config.train.eval_every=0",
                                "--config.checkpoint.async_save=False", *overrides])


def test_teacher_forcing_shifts_and_ends_with_eos():
  targets = jnp.array([[3, 1, 2, 0], [2, 0, 0, 0]])
  inputs, outputs, mask = speech_llm.teacher_forcing(targets, targets > 0, speech_llm.TextIds(4, 5, 6))
  np.testing.assert_array_equal(inputs, [[4, 3, 1, 2, 0], [4, 2, 0, 0, 0]])
  np.testing.assert_array_equal(outputs, [[3, 1, 2, 5, 0], [2, 5, 0, 0, 0]])
  np.testing.assert_array_equal(mask, [[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]])


def _random_prefix_and_llm(cfg, audio, audio_mask, **init_kwargs):
  """Random (prefix params, LLaMA params × 4: logits peaked enough for varied decodes), initialised under
  `jax.jit` (eager initialisation of the encoder and the LLM took ~15 s)."""
  frozen = ml_collections.FrozenConfigDict(cfg)
  model = llama.from_config(cfg.llm)

  @jax.jit
  def init(audio, audio_mask):
    prefix_params = speech_llm.AudioPrefix(frozen).init(jax.random.PRNGKey(1), audio, audio_mask)["params"]
    llm_params = nn.unbox(model.init(jax.random.PRNGKey(2), jnp.zeros((1, 4), jnp.int32), **init_kwargs)["params"])
    return prefix_params, jax.tree.map(lambda x: x * 4.0, llm_params)

  return (*init(audio, audio_mask), model)


@pytest.fixture(scope="module")
def random_speech_llm():
  """(model config, params, audio [2, T], audio_mask, prefix, prefix_mask, LLaMA module): random weights,
  vocab 13 (BOS 11, EOS 12)."""
  cfg = config_lib.load(SPEC, []).model
  cfg.llm.vocab_size = 13
  audio = jax.random.normal(jax.random.PRNGKey(0), (2, 16000)) * 0.3
  audio_mask = jnp.arange(16000)[None] < jnp.array([[16000], [11000]])
  prefix_params, llm_params, model = _random_prefix_and_llm(cfg, audio, audio_mask)
  prefix, prefix_mask = jax.jit(speech_llm.AudioPrefix(ml_collections.FrozenConfigDict(cfg)).apply)(
      {"params": prefix_params}, audio, audio_mask)
  return cfg, {"prefix": prefix_params, "llm": llm_params}, audio, audio_mask, prefix, prefix_mask, model


TEXT_IDS = speech_llm.TextIds(11, 12, 13)


def test_cached_greedy_decoding_equals_full_recomputation(random_speech_llm):
  cfg, params, audio, audio_mask, prefix, prefix_mask, model = random_speech_llm
  ids = speech_llm.greedy_decode(cfg, params, audio, audio_mask, 8, TEXT_IDS)
  mask = jnp.concatenate([prefix_mask, jnp.ones((2, 9), bool)], axis=1)
  logits_of = jax.jit(lambda tokens: model.apply({"params": params["llm"]}, tokens, prefix=prefix, mask=mask))
  tokens = jnp.zeros((2, 9), jnp.int32).at[:, 0].set(11)   # BOS = 10 + 1
  for i in range(8):   # no cache: the whole sequence again at every step (causal: the zeros after i are unseen)
    logits = logits_of(tokens)[:, -9:]   # the text positions (the audio prefix's come first)
    tokens = tokens.at[:, i + 1].set(jnp.argmax(logits[:, i], -1).astype(jnp.int32))
  full = np.asarray(tokens[:, 1:])
  for row, reference in zip(np.asarray(ids), full):   # after EOS (12) the cached path writes 0
    end = list(reference).index(12) + 1 if 12 in reference else 8
    np.testing.assert_array_equal(row[:end], reference[:end])
  assert len(set(full.ravel())) > 2
  beam_one = speech_llm.beam_decode(cfg, params, audio, audio_mask, 8, TEXT_IDS, beam=1)
  np.testing.assert_array_equal(beam_one, ids)


def test_beam_search_as_wide_as_all_prefixes_finds_the_best_transcript(random_speech_llm):
  """With beam = V^(L-1) no prefix is ever pruned, so the beam's answer must be the exhaustive argmax of
  log P(sequence) / length over every sequence of at most L tokens (ending at its first EOS), each scored
  without a cache."""
  cfg, params, audio, audio_mask, prefix, prefix_mask, model = random_speech_llm
  vocab, length, eos = 13, 3, TEXT_IDS.eos
  seqs = np.array(list(itertools.product(range(vocab), repeat=length)))         # [N, L]
  beam = speech_llm.beam_decode(cfg, params, audio, audio_mask, length, TEXT_IDS, beam=vocab ** (length - 1))
  is_eos = seqs == eos
  ends = np.where(is_eos.any(1), is_eos.argmax(1) + 1, length)                   # tokens up to the first EOS
  logits_of = jax.jit(lambda inputs, prefix, mask: model.apply({"params": params["llm"]}, inputs,
                                                                prefix=prefix, mask=mask))
  for b in range(2):
    inputs = np.concatenate([np.full((len(seqs), 1), TEXT_IDS.bos), seqs[:, :-1]], axis=1)
    rows = lambda x: jnp.repeat(x[b:b + 1], len(seqs), axis=0)
    mask = jnp.concatenate([rows(prefix_mask), jnp.ones(inputs.shape, bool)], axis=1)
    logits = logits_of(jnp.asarray(inputs), rows(prefix), mask)
    log_probs = np.asarray(jax.nn.log_softmax(logits[:, -length:], -1))            # after the prefix
    token_lp = np.take_along_axis(log_probs, seqs[..., None], -1)[..., 0]
    scores = np.cumsum(token_lp, 1)[np.arange(len(seqs)), ends - 1] / ends
    best = int(np.argmax(scores))
    expected = np.where(np.arange(length) < ends[best], seqs[best], 0)
    np.testing.assert_array_equal(beam[b], expected)


def test_full_mode_learns_and_eval_writes_cer_wer(synth_records, tmp_path):
  cfg = _config(synth_records, "--config.train.num_steps=20", "--config.checkpoint.save_every=20",
                "--config.data.max_sample_size=64000", "--config.data.bucket_boundaries=(32000,64000)",
                "--config.data.max_target_length=96")
  trainer.train(cfg, str(tmp_path))
  rows = harness.read_metrics(str(tmp_path))
  assert rows[20]["train/loss"] < rows[5]["train/loss"] - 0.5, (rows[5], rows[20])   # measured: 3.22 → 2.40
  assert rows[20]["train/token_accuracy"] > rows[5]["train/token_accuracy"]
  scores = transcribe.transcribe(str(tmp_path), beam=3, out=str(tmp_path / "eval"))
  assert scores["utterances"] > 0 and {"greedy_cer", "greedy_wer", "beam_cer", "beam_wer"} <= set(scores)
  total = records.read_meta(synth_records).splits["test"].num_examples   # longer transcripts: counted
  assert scores["utterances"] + scores["skipped_too_long"] + scores["skipped_unknown_symbol"] == total


def test_lora_mode_trains_adapters_and_leaves_the_llm_alone(synth_records, tmp_path):
  """LoRA: only the adapters, the projection and the (new) multi-token head train; the LLM's own weights are
  bitwise unchanged and have no optimizer state."""
  cfg = _config(synth_records, "--config.task.llm_mode=lora", "--config.task.freeze_encoder=True",
                "--config.train.num_steps=3", "--config.checkpoint.save_every=3",
                "--config.optim.warmup_steps=1", "--config.model.llm.mtp_heads=1")
  t = trainer.Trainer(cfg, str(tmp_path))
  before = harness.flat_params(t.state.params)
  t.run()
  after = harness.flat_params(t.state.params)
  changed = {k for k in before if not np.array_equal(before[k], after[k])}
  trained = ("lora/", "prefix/projection/", "llm/mtp_1/")
  assert changed and all(k.startswith(trained) for k in changed), sorted(changed)[:5]
  assert any(k.startswith("lora/") and k.endswith("/b") for k in changed) and "llm/mtp_1/kernel" in changed
  moments = [x for x in jax.tree.leaves(t.state.opt_state) if hasattr(x, "shape") and x.ndim > 0]
  adapted = sum(v.size for k, v in after.items() if k.startswith(trained))
  assert sum(m.size for m in moments) == 2 * adapted   # Adam's two moments for the trained params only


def test_text_lm_run_warm_starts_the_llm(synth_records, tmp_path):
  """configs/llama.py trains the LLM on the transcripts; `llm_init` puts it into a Speech-LLaMA, whose
  architecture must match (the error names the field)."""
  lm = config_lib.load(f"{harness.REPO}/configs/llama.py:tiny", [
      f"--config.data.path={synth_records}", "--config.train.num_steps=30", "--config.optim.warmup_steps=5",
      "--config.data.batch_size=8", "--config.train.log_every=10", "--config.train.eval_every=0",
      "--config.checkpoint.save_every=30", "--config.checkpoint.async_save=False"])
  trainer.train(lm, str(tmp_path / "lm"))
  rows = harness.read_metrics(str(tmp_path / "lm"))
  assert rows[30]["train/loss"] < rows[10]["train/loss"]
  cfg = _config(synth_records, f"--config.llm_init={tmp_path / 'lm'}", "--config.task.llm_mode=lora")
  t = trainer.Trainer(cfg, str(tmp_path / "speech_llm"))
  _, _, text_lm = speechjax.load(str(tmp_path / "lm"))
  loaded = harness.flat_params(t.state.params["llm"])
  for name, value in harness.flat_params(text_lm).items():
    np.testing.assert_array_equal(loaded[name], value, err_msg=name)
  bad = _config(synth_records, f"--config.llm_init={tmp_path / 'lm'}", "--config.model.llm.hidden_size=64")
  with pytest.raises(ValueError, match="model.llm.hidden_size"):
    trainer.Trainer(bad, str(tmp_path / "bad"))
  tokenizer = str(tmp_path / "bpe.json")   # subword ids: a vocabulary the character LM's table does not have
  assert cli.main(["bpe", "--data", synth_records, "--vocab-size", "60", "--out", tokenizer]) == 0
  other_text = _config(synth_records, f"--config.llm_init={tmp_path / 'lm'}",
                       f"--config.data.text_tokenizer={tokenizer}")
  with pytest.raises(ValueError, match="model.llm.vocab_size"):
    trainer.Trainer(other_text, str(tmp_path / "other_text"))


def test_multi_token_decoding_equals_greedy_and_needs_fewer_calls_when_drafts_agree():
  cfg = config_lib.load(SPEC, ["--config.model.llm.mtp_heads=3"]).model
  cfg.llm.vocab_size = 13
  ids = speech_llm.TextIds(11, 12, 13)
  audio = jax.random.normal(jax.random.PRNGKey(0), (1, 16000)) * 0.3
  audio_mask = jnp.ones((1, 16000), bool)
  prefix_params, llm_params, _ = _random_prefix_and_llm(cfg, audio, audio_mask, all_heads=True)
  params = {"prefix": prefix_params, "llm": llm_params}
  greedy = np.asarray(speech_llm.greedy_decode(cfg, params, audio, audio_mask, 24, ids))[0]
  mtp, calls = speech_llm.multi_token_decode(cfg, params, audio, audio_mask, 24, ids)
  np.testing.assert_array_equal(np.asarray(mtp)[:23], greedy[:23])
  produced = int((np.asarray(mtp) > 0).sum())
  assert 1 <= int(calls) <= produced
  # an LLM that always writes token 5 (every token embeds to ones, every layer is zero, so the residual
  # stream stays ones; the head picks 5): every draft is accepted, k + 1 tokens per call
  constant = jax.tree.map(jnp.zeros_like, llm_params)
  constant["embed_tokens"]["embedding"] = jnp.ones_like(llm_params["embed_tokens"]["embedding"])
  constant["norm"]["scale"] = jnp.ones_like(llm_params["norm"]["scale"])
  head = jnp.zeros_like(llm_params["lm_head"]["kernel"]).at[:, 5].set(1.0)
  constant["lm_head"]["kernel"] = head
  for j in range(1, 4):
    constant[f"mtp_{j}"]["kernel"] = jnp.eye(head.shape[0])
  params = {"prefix": prefix_params, "llm": constant}   # attention is zero: the audio cannot matter
  out, calls = speech_llm.multi_token_decode(cfg, params, audio, audio_mask, 24, ids)
  assert int(calls) == 1 + -(-23 // 4) and list(np.asarray(out)) == [5] * 24


def test_text_outputs_do_not_change_when_the_audio_is_empty_or_fully_masked(random_speech_llm):
  """No audio (a [B, 0, D] prefix) gives exactly the text-only logits; an audio prefix whose mask is all
  False (audio_mask all False: zero audio frames) gives them too, within float error (RoPE positions shift,
  and only relative positions matter)."""
  cfg, params, audio, _, _, _, model = random_speech_llm
  tokens = jnp.asarray(np.random.default_rng(0).integers(1, 11, (2, 9)), jnp.int32)
  text_mask = jnp.ones(tokens.shape, bool)
  plain = model.apply({"params": params["llm"]}, tokens, mask=text_mask)
  empty = model.apply({"params": params["llm"]}, tokens, prefix=jnp.zeros((2, 0, cfg.llm.hidden_size)),
                      mask=text_mask)
  np.testing.assert_array_equal(empty, plain)
  silent = jnp.zeros(audio.shape, bool)
  prefix, prefix_mask = speech_llm.AudioPrefix(ml_collections.FrozenConfigDict(cfg)).apply(
      {"params": params["prefix"]}, audio, silent)
  assert prefix.shape[1] > 0 and not prefix_mask.any()
  masked = model.apply({"params": params["llm"]}, tokens, prefix=prefix,
                       mask=jnp.concatenate([prefix_mask, text_mask], axis=1))
  np.testing.assert_allclose(masked[:, prefix.shape[1]:], plain, atol=1e-4, rtol=1e-4)
