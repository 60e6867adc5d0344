"""`speechjax eval`: transcribe a split with a CTC or Speech-LLaMA checkpoint, score it, write hypotheses and
scores.

    speechjax eval --ckpt WORKDIR [--split test] [--beam 8 [--lm-order 3 --lm-weight 0.5]] [--out DIR]

Writes `DIR/hyp_greedy.tsv` (and `hyp_beam.tsv`: id, reference, hypothesis) and `DIR/scores.json`: the error
rate of each decoder (PER for phone targets; CER and WER for transcripts, words split at "|"), the number
of scored utterances and of skipped ones (too long, unknown symbols) — nothing is dropped silently.
The optional LM is a symbol n-gram fitted on the train split's targets (`CharNgramLM`), applied in the CTC
beam. A Speech-LLaMA checkpoint decodes with its KV cache: greedy, and `--beam K` beam search
(`speechjax.models.speech_llm.beam_decode`; no n-gram fusion: the decoder is itself a LM).
"""
from __future__ import annotations

import json
import os

import jax
import numpy as np

import speechjax
from speechjax import text as text_lib
from speechjax.data import pipeline as pipeline_lib
from speechjax.data import vocab
from speechjax.eval import ctc_decode, error_rate


def _rates(field: str, pairs) -> dict:
  """{name: ErrorRate} over (reference symbols, hypothesis symbols) pairs."""
  rates = {"per" if field == "phones" else "cer": error_rate.ErrorRate()}
  if field == "transcript":
    rates["wer"] = error_rate.ErrorRate()
  for ref, hyp in pairs:
    if field == "phones":
      rates["per"].add(ref, hyp)
    else:
      rates["cer"].add(list(" ".join(_words(ref))), list(" ".join(_words(hyp))))
      rates["wer"].add(_words(ref), _words(hyp))
  return rates


def _words(symbols) -> list[str]:
  return "".join(symbols).replace(text_lib.WORD_BOUNDARY, " ").split()


def fit_lm(config, order: int) -> ctc_decode.CharNgramLM:
  """Symbol n-gram over the train split's targets (token ids, as the decoder emits them)."""
  data = config.data
  ids = {s: i + 1 for i, s in enumerate(data.target_vocab)}
  texts = vocab.read_field(data.path, data.train_split, data.targets)
  lm = ctc_decode.CharNgramLM(order, len(data.target_vocab) + 1)
  lm.fit([[ids[s] for s in text_lib.symbols_of(data.targets, t) if s in ids] for t in texts])
  return lm


def transcribe(ckpt: str, split: str | None = None, beam: int = 0, lm_order: int = 0,
               lm_weight: float = 0.0, out: str | None = None, step: int | None = None) -> dict:
  config, model, params = speechjax.load(ckpt, step)
  data_cfg = config.data.copy_and_resolve_references()
  if split:
    data_cfg.eval_split = split
  symbols = list(data_cfg.target_vocab)
  data = pipeline_lib.from_config(data_cfg, train=False)
  forward = jax.jit(lambda p, a, m: model.apply({"params": p}, a, m))
  llm = config.model.get("model_type") == "speech_llm"
  if llm:   # a decoder LLM writes the transcript (greedy, and beam search with --beam)
    from speechjax.tasks import speech_llm   # pylint: disable=import-outside-toplevel
    llm_transcribe, to_symbols = speech_llm.transcriber(config, params)
  else:
    to_symbols = lambda ids: vocab.decode(ids, symbols)
  lm = fit_lm(config, lm_order) if beam and lm_order else None
  decoders = {"greedy": None, "beam": beam} if beam else {"greedy": None}
  rows = {name: [] for name in decoders}
  for batch in data:
    keep = batch["targets_mask"].any(-1)
    if llm:
      hyps = {name: llm_transcribe(batch["audio"], batch["audio_mask"], width or 0)
              for name, width in decoders.items()}
    else:
      result = jax.device_get(forward(params, batch["audio"], batch["audio_mask"]))
      hyps = {"greedy": ctc_decode.greedy_decode(result["logits"], result["frame_mask"].sum(-1))}
    if beam and not llm:
      log_probs = jax.nn.log_softmax(result["logits"], -1)
      hyps["beam"] = ctc_decode.beam_search_batch(np.asarray(log_probs), result["frame_mask"].sum(-1),
                                                  beam_size=beam, lm=lm, lm_weight=lm_weight)
    for i in np.flatnonzero(keep):
      ref = to_symbols(batch["targets"][i][batch["targets_mask"][i]])
      for name in decoders:
        rows[name].append((batch["id"][i].decode(), ref, to_symbols(hyps[name][i])))
  scores = {"ckpt": ckpt, "split": data_cfg.eval_split, "targets": data_cfg.targets,
            "utterances": len(rows["greedy"]),
            "skipped_too_long": int(data.num_too_long.numpy()),
            "skipped_unknown_symbol": int(data.num_unknown_symbol.numpy()),
            "beam": beam, "lm_order": lm_order, "lm_weight": lm_weight}
  for name, triples in rows.items():
    for metric, rate in _rates(data_cfg.targets, [(r, h) for _, r, h in triples]).items():
      scores[f"{name}_{metric}"] = rate.rate
  if out:
    os.makedirs(out, exist_ok=True)
    sep = " " if data_cfg.targets == "phones" else ""
    for name, triples in rows.items():
      with open(os.path.join(out, f"hyp_{name}.tsv"), "w") as f:
        f.writelines(f"{u}\t{sep.join(r)}\t{sep.join(h)}\n" for u, r, h in triples)
    with open(os.path.join(out, "scores.json"), "w") as f:
      json.dump(scores, f, indent=1)
  return scores


def add_arguments(parser):
  parser.add_argument("--ckpt", required=True, help="a CTC fine-tuning workdir or checkpoint directory")
  parser.add_argument("--split", default=None, help="default: the run's eval split")
  parser.add_argument("--beam", type=int, default=0, help="prefix beam width (0 = greedy only)")
  parser.add_argument("--lm-order", type=int, default=0, help="symbol n-gram LM order (0 = none)")
  parser.add_argument("--lm-weight", type=float, default=0.5)
  parser.add_argument("--step", type=int, default=None)
  parser.add_argument("--out", default=None, help="default: <ckpt>/eval_<split>")


def run(args) -> int:
  out = args.out or os.path.join(args.ckpt, f"eval_{args.split or 'default'}")
  scores = transcribe(args.ckpt, args.split, args.beam, args.lm_order, args.lm_weight, out, args.step)
  print(json.dumps(scores, indent=1))
  return 0
