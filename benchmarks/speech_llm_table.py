"""The Speech-LLaMA table (README, docs/speech_llm.md) from the `speechjax eval` outputs of
benchmarks/speech_llm_multilingual.sh: CER / WER per run and decoder, overall and per language.

    python benchmarks/speech_llm_table.py --runs workdir/speech_llm_ml --corpus data/synth-ml
"""
from __future__ import annotations

import argparse
import json
import os

from speechjax.eval import error_rate
from speechjax.text import WORD_BOUNDARY

RUNS = {  # name: what it is (benchmarks/speech_llm_multilingual.sh)
    "ctc": "(a) CTC on the encoder, STEPS: the Speech-LLaMA runs' encoder",
    "ctc_long": "(a) CTC, 2 × STEPS: the total budget of a Speech-LLaMA run",
    "frozen_ssl_encoder": "(b) text LM frozen, on the self-supervised encoder (no CTC stage)",
    "frozen": "(b) text LM frozen",
    "lora": "(c) LoRA on the text LM",
    "lora_random_llm": "(d) as (c), LLM randomly initialised",
    "lora_160ms": "(c) at 160 ms per embedding",
    "lora_320ms": "(c) at 320 ms per embedding",
    "lora_960ms": "(c) at 960 ms per embedding",
    "lora_mtp3": "(c) with 3 multi-token heads",
}


def _read_hyps(path: str) -> dict[str, tuple[str, str]]:
  rows = {}
  with open(path, encoding="utf-8") as f:
    for line in f:
      uid, ref, hyp = line.rstrip("\n").split("\t")
      rows[uid] = (ref.replace(WORD_BOUNDARY, " ").strip(), hyp.replace(WORD_BOUNDARY, " ").strip())
  return rows


def _eval_ce(run_dir: str) -> str:
  """The run's last held-out teacher-forced cross-entropy (nats per token; Speech-LLaMA runs only)."""
  path = os.path.join(run_dir, "metrics.jsonl")
  if not os.path.exists(path):
    return "–"
  with open(path, encoding="utf-8") as f:
    values = [row["eval/ce"] for row in map(json.loads, f) if "eval/ce" in row]
  return f"{values[-1]:.3f}" if values else "–"


def _languages(corpus: str) -> dict[str, str]:
  with open(os.path.join(corpus, "test.jsonl"), encoding="utf-8") as f:
    return {row["id"]: row["language"] for row in map(json.loads, f)}


def table(runs_dir: str, corpus: str) -> str:
  language_of = _languages(corpus)
  languages = sorted(set(language_of.values()))
  head = ["run", "decoder", "CER", "WER", *(f"WER {lang}" for lang in languages), "utterances",
          "teacher-forced CE"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for name, label in RUNS.items():
    for decoder in ("greedy", "beam"):
      path = os.path.join(runs_dir, name, "eval", f"hyp_{decoder}.tsv")
      if not os.path.exists(path):
        continue
      rows = _read_hyps(path)
      refs, hyps = zip(*rows.values())
      per_language = []
      for lang in languages:
        pairs = [rows[u] for u in rows if language_of[u] == lang]
        per_language.append(f"{error_rate.wer(*zip(*pairs)):.3f}" if pairs else "–")
      lines.append(f"| {label} | {decoder} | {error_rate.cer(list(refs), list(hyps)):.3f} | "
                   f"{error_rate.wer(list(refs), list(hyps)):.3f} | " + " | ".join(per_language) +
                   f" | {len(rows)} | {_eval_ce(os.path.join(runs_dir, name))} |")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--runs", required=True)
  parser.add_argument("--corpus", required=True, help="the synth directory (its test.jsonl has languages)")
  args = parser.parse_args()
  print(table(args.runs, args.corpus))


if __name__ == "__main__":
  main()
