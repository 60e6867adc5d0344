"""Input pipeline and synthesis speed on this machine.

    python benchmarks/input_pipeline.py [--size tiny] [--workdir /tmp/bench_data]

Prints: eSpeak corpus synthesis speed (audio-s/s, 1 and 2 workers), `prepare` speed, and audio-seconds
per second delivered by the tf.data pipeline cropping to 4 s (batch 8), in total and per core with
tf.data limited to one thread. Target: >= 200 audio-s/s per core, so input never limits training.
"""
import argparse
import json
import os
import shutil
import time

from speechjax.data import pipeline, prepare, records, stats, synth


def timed(fn):
  start = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - start


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--size", default="tiny")
  parser.add_argument("--workdir", default="/tmp/speechjax_bench_data")
  parser.add_argument("--num-batches", type=int, default=200)
  args = parser.parse_args()
  results = {"cpu_count": os.cpu_count()}
  for workers in (1, 2):
    out = os.path.join(args.workdir, f"synth-w{workers}")
    shutil.rmtree(out, ignore_errors=True)
    _, seconds = timed(lambda: synth.generate(out, size=args.size, seed=0, workers=workers))
    audio = sum(json.loads(l)["num_samples"] for s in ("train", "test")
                for l in open(os.path.join(out, f"{s}.jsonl"))) / records.SAMPLE_RATE
    results[f"synthesis_audio_s_per_s_{workers}_workers"] = round(audio / seconds, 1)
  recs = os.path.join(args.workdir, "records")
  shutil.rmtree(recs, ignore_errors=True)
  _, seconds = timed(lambda: prepare.prepare(os.path.join(args.workdir, "synth-w1"), recs))
  results["prepare_audio_s_per_s"] = round(audio / seconds, 1)
  pipe = pipeline.make_pipeline(recs, "train", 8, 64000, labels=("phone_20ms",), min_sample_size=0)
  results["pipeline_all_threads"] = stats.measure(pipe, args.num_batches)["audio_seconds_per_s"]
  pipe = pipeline.make_pipeline(recs, "train", 8, 64000, labels=("phone_20ms",), min_sample_size=0,
                                num_threads=1)
  results["pipeline_one_thread"] = stats.measure(pipe, args.num_batches)["audio_seconds_per_s"]
  print(json.dumps(results, indent=1))


if __name__ == "__main__":
  main()
