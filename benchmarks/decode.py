"""Decoding speed of the token models (random weights: speed only).

    python benchmarks/decode.py [--batch 2] [--lengths 256,1024] [--seconds 3] [--repeats 1] [--skip-stages]

(1) Token LM (`token_lm.model_config("tiny")`, vocab 1024): tokens/s of `generate` with the KV cache vs
    recomputing the whole sequence at every step, 1-token prompts, `--lengths` tokens, top-k 50 sampling.
(2) The acoustic stages for `--seconds` of audio at 50 Hz with the tiny presets' 4 RVQ levels × 64 codes
    (`configs/token_lm.py`): AudioLM stage 2 (semantic at 25 Hz, prompt; 2 coarse levels sampled) +
    stage 3 (2 fine levels sampled given the coarse), both KV-cached, vs SoundStorm's parallel decoding
    (16 iterations for level 1 + 1 greedy pass per further level) of all 4 levels.
Each function is compiled ahead of time (not timed); the time is the median of `--repeats` runs. One JSON
line per measurement; `--skip-stages` leaves out (2).
"""
import argparse
import json
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
from flax import linen as nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs import token_lm as presets   # noqa: E402
from speechjax.models import audiolm, soundstorm, token_lm   # noqa: E402


def timed(fn, args, repeats: int) -> float:
  """Median seconds of `repeats` calls of the jitted `fn(*args)`, compiled ahead (not timed)."""
  compiled = fn.lower(*args).compile()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def lm_generate(cfg, batch, length, prompt_length, **kwargs):
  """(jitted generate of a randomly initialised model, its arguments); prompts of `prompt_length`."""
  params = nn.unbox(token_lm.from_config(cfg).init(jax.random.PRNGKey(0), jnp.zeros([1, 8], jnp.int32))[
      "params"])
  prompt = jax.random.randint(jax.random.PRNGKey(1), [batch, prompt_length], 1, cfg.vocab_size)
  lengths = jnp.full([batch], prompt_length)
  rngs = jax.random.split(jax.random.PRNGKey(2), batch)
  fn = jax.jit(lambda p, r: token_lm.generate(cfg, params, p, lengths, r, length, top_k=50, **kwargs))
  return fn, (prompt, rngs)


def cache_vs_recompute(batch, lengths, repeats):
  for length in lengths:
    cfg = token_lm.model_config("tiny", vocab_size=1024)
    cfg.max_length = length
    row = {"bench": "token_lm_sampling", "length": length, "batch": batch}
    for name, use_cache in (("cached", True), ("recompute", False)):
      seconds = timed(*lm_generate(cfg, batch, length, 1, use_cache=use_cache), repeats)
      row[f"{name}_tokens_per_s"] = round(batch * (length - 1) / seconds, 1)
      print(json.dumps(row), flush=True)   # partial row: the recompute run is long
    row["speedup"] = round(row["cached_tokens_per_s"] / row["recompute_tokens_per_s"], 1)
    print(json.dumps(row), flush=True)


def acoustic_stages(batch, seconds, repeats):
  frames = int(seconds * 50)
  semantic_frames = frames // 2                     # 25 Hz semantic tokens, as AudioLM
  row = {"bench": "acoustic_stages", "seconds": seconds, "frames": frames, "batch": batch}
  total = 0.0
  for stage in ("coarse", "fine"):
    task = presets.get_config(f"{stage}_tiny").task
    vocab = audiolm.Vocab(task.semantic_vocab, task.codebook_size, task.levels, task.coarse_levels)
    prompt = 1 + (semantic_frames if stage == "coarse" else frames * task.coarse_levels)
    length = audiolm.sequence_length(stage, vocab, semantic_frames, frames)
    cfg = token_lm.model_config("tiny", vocab.size(stage))
    cfg.max_length = length
    row[f"{stage}_tokens"] = length - prompt
    row[f"{stage}_s"] = round(timed(*lm_generate(cfg, batch, length, prompt, temperature=0.8), repeats), 3)
    total += row[f"{stage}_s"]
  cfg = soundstorm.model_config("tiny")
  semantic = jax.random.randint(jax.random.PRNGKey(3), [batch, frames], 0, cfg.semantic_vocab)
  frame_mask = jnp.ones([batch, frames], bool)
  params = nn.unbox(soundstorm.from_config(cfg).init(
      jax.random.PRNGKey(0), jnp.zeros([1, 8, cfg.levels], jnp.int32), jnp.zeros([1, 8], jnp.int32),
      jnp.ones([1, 8], bool))["params"])
  fn = jax.jit(lambda s, rng: soundstorm.generate(cfg, params, s, frame_mask, rng, steps=16))
  row["soundstorm_s"] = round(timed(fn, (semantic, jax.random.PRNGKey(4)), repeats), 3)
  row["autoregressive_s"] = round(total, 3)
  row["speedup"] = round(total / row["soundstorm_s"], 1)
  print(json.dumps(row), flush=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--batch", type=int, default=2)
  parser.add_argument("--lengths", default="256,1024")
  parser.add_argument("--seconds", type=float, default=3.0)
  parser.add_argument("--repeats", type=int, default=1)
  parser.add_argument("--skip-stages", action="store_true")
  args = parser.parse_args()
  cache_vs_recompute(args.batch, [int(n) for n in args.lengths.split(",") if n], args.repeats)
  if not args.skip_stages:
    acoustic_stages(args.batch, args.seconds, args.repeats)


if __name__ == "__main__":
  main()
