"""Wall time of each clustering stage of the HuBERT loop, alone, on a finished loop workdir.

    python benchmarks/loop_stages.py --workdir workdir/hubert_loop [--data data/synth-small/records] [--k 100]

Runs, into a scratch directory: MFCC dump (train + test), k-means on it (30 Lloyd passes, as the loop),
assignment, cluster quality, labelled records; then layer 1 of iteration 1's model: checkpoint load, dump
(train + test, and test alone as the layer choice does), k-means on both. Prints one JSON line of seconds.
"""
import argparse
import json
import os
import tempfile
import time

from speechjax.cluster import commands, features, kmeans, labeling
from speechjax.train import allocator


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True, help="a finished `speechjax loop` workdir")
  parser.add_argument("--data", default="data/synth-small/records")
  parser.add_argument("--k", type=int, default=100)
  args = parser.parse_args()
  allocator.reuse_freed_memory()   # as every `speechjax` command does
  out, data, seconds = tempfile.mkdtemp(prefix="loop_stages_"), args.data, {}

  def timed(name, fn):
    start = time.perf_counter()
    result = fn()
    seconds[name] = round(time.perf_counter() - start, 1)
    return result

  def dump(feats_dir, extractor, rate, kind, splits=("train", "test")):
    for split in splits:
      features.dump(data, split, feats_dir, extractor, rate, kind)

  mfcc, rate = features.mfcc_extractor()
  timed("mfcc_dump", lambda: dump(f"{out}/mfcc", mfcc, rate, "mfcc"))
  fit = timed("kmeans_mfcc", lambda: commands.fit_and_save(f"{out}/mfcc", "train", args.k, f"{out}/km.npz",
                                                           iters=30))
  by_split = timed("assign", lambda: {s: labeling.assign_split(f"{out}/mfcc", s, fit.centroids)[0]
                                      for s in ("train", "test")})
  timed("quality", lambda: labeling.split_quality(data, "test", by_split["test"], rate))
  timed("labelled_records", lambda: labeling.write_labeled_records(
      data, f"{out}/records", [labeling.LabelStream("km", by_split, rate, args.k)]))
  layer, rate = timed("load_checkpoint", lambda: features.layer_extractor(
      os.path.join(args.workdir, "iter1", "train"), 1))
  timed("layer_dump", lambda: dump(f"{out}/layer", layer, rate, "layer"))
  timed("layer_dump_test", lambda: dump(f"{out}/layer_test", layer, rate, "layer", ("test",)))
  timed("kmeans_layer", lambda: commands.fit_and_save(f"{out}/layer", "train", args.k, f"{out}/km1.npz",
                                                      iters=30))
  timed("kmeans_layer_test", lambda: kmeans.fit(
      features.sample_source(features.shards(f"{out}/layer_test", "test"), -1), args.k, iters=30))
  print(json.dumps(seconds))


if __name__ == "__main__":
  main()
