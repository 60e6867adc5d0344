"""`speechjax <verb>`: one entry point for every job.

    speechjax synth    --size tiny --seed 7 --out DIR          built-in synthetic speech corpus
    speechjax prepare  --source SRC --out DIR [--strict]       audio sources → sharded records
    speechjax stats    --data DIR [--split train]              iterate the input pipeline, print figures
    speechjax train    --config configs/X.py:preset --workdir DIR [--config.a.b=v ...]
    speechjax dump     --data DIR --out FEATS [--kind mfcc | --kind layer --ckpt WORKDIR --layer 6]
    speechjax kmeans   --features FEATS --k 100 --out km.npz
    speechjax label    --data DIR --features FEATS --kmeans km.npz --out LABELED
    speechjax tokenize --model hubert|soundstream|vq-wav2vec --ckpt W --data DIR --out TOKENS   token records
    speechjax loop     --workdir DIR [--config configs/hubert_loop.py:small]   HuBERT iterations
    speechjax convert  --from-hf HF_DIR --out CKPT | --to-hf ...                  HF transformers weights
    speechjax eval     --ckpt CTC_WORKDIR [--beam 8 --lm-order 3]                 decode, PER/CER/WER
    speechjax analyze  --ckpt WORKDIR [--random-init] --out DIR                    layer-wise PWCCA plot
    speechjax codec    encode|decode --ckpt CODEC_WORKDIR [--n_q 8] IN OUT          wav <-> codes (.npy)
    speechjax generate --prompt in.wav --seconds 3 --out out.wav --semantic W --coarse W --fine W \
                       --codec W --hubert W --layer 6 --kmeans km.npz              AudioLM continuation
    speechjax tpu      create|describe|setup|run|logs|stop|delete --pod NAME --zone Z [--dry-run]
    speechjax sweep    run --config configs/X.py:preset --sweep sweeps/Y.py --workdir DIR | report ...
    speechjax plan     --config configs/X.py:preset --topology v4-64      per-chip memory, step time
    speechjax compile  --config configs/X.py:preset --topology v5e-256    TPU compile here: memory, FLOPs, collectives

A bad config or input (ValueError, OSError) prints one line `error: ...` and exits 2; `--debug` anywhere on
the command line (or SPEECHJAX_DEBUG=1) shows the traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from speechjax.train import allocator

# verb → "module[:object]" whose add_arguments(parser) and run(args) -> int implement it
VERBS = {
    "synth": "speechjax.data.synth",
    "prepare": "speechjax.data.prepare",
    "stats": "speechjax.data.stats",
    "bpe": "speechjax.data.text_bpe",
    "train": "speechjax.train.cli",
    "dump": "speechjax.cluster.commands:Dump",
    "kmeans": "speechjax.cluster.commands:KMeans",
    "label": "speechjax.cluster.commands:Label",
    "tokenize": "speechjax.cluster.tokenize",
    "loop": "speechjax.launch.hubert_loop",
    "convert": "speechjax.interop.convert",
    "eval": "speechjax.eval.transcribe",
    "analyze": "speechjax.eval.analyze",
    "codec": "speechjax.eval.codec",
    "generate": "speechjax.eval.generate",
    "tpu": "speechjax.launch.tpu",
    "sweep": "speechjax.launch.sweep",
    "plan": "speechjax.launch.plan",
    "compile": "speechjax.launch.compile",
}
# the verbs that take `--config.a.b=v` overrides after their own flags (passed on as `args.overrides`)
OVERRIDE_VERBS = frozenset({"train", "loop", "tpu", "sweep", "plan", "compile"})


def _load(target: str):
  module_name, _, attr = target.partition(":")
  module = importlib.import_module(module_name)
  return getattr(module, attr) if attr else module


def main(argv: list[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  debug = "--debug" in argv or os.environ.get("SPEECHJAX_DEBUG", "") not in ("", "0")
  argv = [a for a in argv if a != "--debug"]
  parser = argparse.ArgumentParser(prog="speechjax", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="verb", required=True)
  modules = {}
  verb = argv[0] if argv and argv[0] in VERBS else None
  for name, target in VERBS.items():
    p = sub.add_parser(name)
    if name == verb:   # import only the module that runs: keeps `speechjax synth` free of jax
      modules[name] = _load(target)
      modules[name].add_arguments(p)
  args, rest = parser.parse_known_args(argv)
  if rest and args.verb not in OVERRIDE_VERBS:
    parser.error(f"unrecognized arguments: {' '.join(rest)}")
  args.overrides = rest
  allocator.reuse_freed_memory()
  try:
    return int(modules[args.verb].run(args) or 0)
  except (ValueError, OSError) as e:   # config and input errors: their messages name the field or file
    if debug:
      raise
    print(f"error: {e}", file=sys.stderr)
    return 2


def entry() -> None:
  """The `speechjax` command: `main` under tcmalloc where it is installed (speechjax.train.allocator)."""
  allocator.exec_with_tcmalloc()
  sys.exit(main())


if __name__ == "__main__":
  entry()
