"""Decode speed of a Speech-LLaMA checkpoint with the KV cache, with and without multi-token prediction.

One utterance at a time (B = 1: the verification decoder's accepted counts differ per row), the first
`--utterances` of the eval split; every decoder runs once over them to compile (one program per audio
bucket), then once timed. Prints tokens/s (transcript tokens + EOS over wall time), decoder calls per token,
whether the multi-token decoder's transcripts equal greedy's (they must), and CER / WER of both.

    python benchmarks/speech_llm_decode.py --ckpt workdir/speech_llm_ml/lora_mtp3
"""
from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

import speechjax
from speechjax.data import pipeline as pipeline_lib
from speechjax.eval import error_rate
from speechjax.models import speech_llm
from speechjax.tasks import speech_llm as speech_llm_task
from speechjax.text import WORD_BOUNDARY


def _utterances(config, count: int) -> list[dict]:
  data_cfg = config.data.copy_and_resolve_references()
  data_cfg.batch_size = 1
  out = []
  for batch in pipeline_lib.from_config(data_cfg, train=False):
    if batch["targets_mask"].any():
      out.append(batch)
    if len(out) == count:
      break
  return out


def _tokens(ids, eos: int) -> list[int]:
  ids = [int(i) for i in np.asarray(ids).ravel()]
  return ids[:ids.index(eos) + 1] if eos in ids else [i for i in ids if i > 0]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--ckpt", required=True)
  parser.add_argument("--utterances", type=int, default=100)
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  config, _, params = speechjax.load(args.ckpt)
  task = speech_llm_task.Task(config)
  merged, text, length = task.model_params(params, False), task.text, config.data.max_target_length + 1
  _, to_symbols = speech_llm_task.transcriber(config, params)
  decoders = {"greedy": jax.jit(lambda a, m: (speech_llm.greedy_decode(config.model, merged, a, m, length, text),
                                               length))}
  if config.model.llm.mtp_heads:
    decoders["multi_token"] = jax.jit(
        lambda a, m: speech_llm.multi_token_decode(config.model, merged, a, m, length, text))
  batches = _utterances(config, args.utterances)
  figures = {"ckpt": args.ckpt, "utterances": len(batches), "mtp_heads": config.model.llm.mtp_heads,
             "device": jax.devices()[0].device_kind}
  refs = [" ".join("".join(to_symbols(b["targets"][0][b["targets_mask"][0]])).split(WORD_BOUNDARY))
          for b in batches]
  outputs = {}
  for name, decode in decoders.items():
    for batch in batches:   # compile every bucket shape
      jax.block_until_ready(decode(batch["audio"], batch["audio_mask"]))
    start, calls, results = time.perf_counter(), 0, []
    for batch in batches:
      ids, used = jax.block_until_ready(decode(batch["audio"], batch["audio_mask"]))
      results.append(_tokens(ids, text.eos))
      calls += int(used) if name == "multi_token" else len(results[-1])
    wall = time.perf_counter() - start
    tokens = sum(len(r) for r in results)
    outputs[name] = results
    hyps = [" ".join("".join(to_symbols([i for i in r if i != text.eos])).split(WORD_BOUNDARY)) for r in results]
    figures[name] = {"tokens": tokens, "seconds": wall, "tokens_per_s": tokens / wall,
                     "calls_per_token": calls / tokens, "cer": error_rate.cer(refs, hyps),
                     "wer": error_rate.wer(refs, hyps)}
  if "multi_token" in outputs:
    figures["identical_transcripts"] = sum(a == b for a, b in zip(outputs["greedy"], outputs["multi_token"]))
    figures["speed_up"] = figures["multi_token"]["tokens_per_s"] / figures["greedy"]["tokens_per_s"]
  print(json.dumps(figures, indent=1))
  if args.out:
    with open(args.out, "w", encoding="utf-8") as f:
      json.dump(figures, f, indent=1)


if __name__ == "__main__":
  main()
