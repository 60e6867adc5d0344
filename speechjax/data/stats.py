"""`speechjax stats --data DIR`: iterate the input pipeline and print what it delivers.

Prints the data set summary, batch shapes, audio-seconds per second delivered (real samples, padding
excluded), padding fraction and dropped-too-short count. The main job's quick check of a prepared corpus.
"""
from __future__ import annotations

import itertools
import json
import time

import numpy as np

from speechjax.data import pipeline, records


def measure(pipe: pipeline.Pipeline, num_batches: int, warmup: int = 2) -> dict:
  """Throughput of `pipe` over `num_batches` batches after `warmup` batches."""
  for _ in itertools.islice(pipe, warmup):
    pass
  real = total = 0
  start = time.perf_counter()
  for batch in itertools.islice(pipe, num_batches):
    real += int(batch["audio_mask"].sum())
    total += batch["audio_mask"].size
  elapsed = time.perf_counter() - start
  return {"batches": num_batches, "seconds": round(elapsed, 3),
          "audio_seconds_per_s": round(real / records.SAMPLE_RATE / elapsed, 1),
          "padding_fraction": round(1 - real / max(total, 1), 4),
          "too_short_dropped": int(pipe.num_too_short.numpy()),
          "batch_shapes": {k: list(v.shape) for k, v in batch.items()}}


def add_arguments(parser):
  parser.add_argument("--data", required=True, help="a prepared data set (speechjax prepare --out)")
  parser.add_argument("--split", default="train")
  parser.add_argument("--batch-size", type=int, default=8)
  parser.add_argument("--max-sample-size", type=int, default=64000, help="crop length in samples")
  parser.add_argument("--labels", default="", help="comma-separated label sets to load")
  parser.add_argument("--num-batches", type=int, default=50)


def run(args) -> int:
  meta = records.read_meta(args.data)
  for name, split in meta.splits.items():
    print(f"{name}: {split.num_examples} utterances, {split.hours:.2f} h in {len(split.shards)} shards")
  for name, labels in meta.labels.items():
    print(f"labels/{name}: {labels.num_classes} classes at {labels.frame_rate} Hz")
  pipe = pipeline.make_pipeline(args.data, args.split, args.batch_size, args.max_sample_size,
                                labels=tuple(filter(None, args.labels.split(","))))
  print(json.dumps(measure(pipe, args.num_batches), indent=1))
  return 0
