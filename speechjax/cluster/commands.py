"""CLI verbs of the clustering stage: `speechjax dump | kmeans | label`.

    speechjax dump   --data DIR --split train --out FEATS [--kind mfcc | --ckpt WORKDIR --layer 6]
    speechjax kmeans --features FEATS --split train --k 100 --out km.npz [--percent 0.1]
    speechjax label  --data DIR --features FEATS --kmeans km.npz --out LABELED [--name km]

When JAX runs several processes (`speechjax loop` on several hosts), each one dumps its own shard of
the records, k-means reads each process's share of the dumped shards and reduces across all of them,
and process 0 alone writes the centroids and the labelled records; every process returns only once
they are written. Paths may be on GCS (gs://); the feature shards must be readable by every process.
"""
from __future__ import annotations

import json

import jax


class Dump:

  @staticmethod
  def add_arguments(parser):
    parser.add_argument("--data", required=True, help="a prepared data set")
    parser.add_argument("--split", action="append", help="splits to dump (default: all)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--kind", default="mfcc", choices=("mfcc", "layer"))
    parser.add_argument("--ckpt", default="", help="workdir or checkpoint dir (kind=layer)")
    parser.add_argument("--layer", type=int, default=6, help="1-based transformer layer (kind=layer)")
    parser.add_argument("--batch-size", type=int, default=8)

  @staticmethod
  def run(args) -> int:
    from speechjax.cluster import features
    from speechjax.data import records
    extractor, rate = features.make_extractor(args.kind, args.ckpt, args.layer)
    for split in args.split or sorted(records.read_meta(args.data).splits):
      summary = features.dump(args.data, split, args.out, extractor, rate, args.kind,
                              jax.process_index(), jax.process_count(), args.batch_size)
      print(json.dumps({"split": split, **summary}))
    return 0


class KMeans:

  @staticmethod
  def add_arguments(parser):
    parser.add_argument("--features", required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--k", type=int, required=True)
    parser.add_argument("--out", required=True, help="centroids file (.npz)")
    parser.add_argument("--percent", type=float, default=-1, help="fraction of utterances (≤0: all)")
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init", default="k-means++", choices=("k-means++", "sample-lloyd"),
                        help="sample-lloyd: refine k-means++ by Lloyd on a sample first (fewer full passes)")
    parser.add_argument("--restarts", type=int, default=1,
                        help="whole fits with seeds seed, seed+1, ...; keeps the lowest inertia")

  @staticmethod
  def run(args) -> int:
    fit_and_save(args.features, args.split, args.k, args.out, args.percent, args.iters, args.seed, args.init,
                 args.restarts)
    return 0


def fit_and_save(feature_dir, split, k, out, percent=-1.0, iters=50, seed=0, init="k-means++", restarts=1):
  """Fits k-means on the dumped features of `split` (each process its share) and saves it to `out`
  (the best of `restarts` whole fits)."""
  from speechjax.cluster import features, kmeans
  from speechjax.parallel import mesh
  shards = features.shards(feature_dir, split)
  source = features.sample_source(shards, percent, seed, jax.process_index(), jax.process_count())
  result = kmeans.fit(source, k, iters=iters, seed=seed, init=init, restarts=restarts)
  mesh.on_process_zero(f"kmeans {out}", lambda: kmeans.save(out, result, {
      "features": feature_dir, "split": split, "percent": percent, "init": init, "restarts": restarts,
      "rate": shards[0].info["rate"], "kind": shards[0].info["kind"]}))
  if jax.process_index() == 0:
    print(json.dumps({"k": k, "inertia": result.inertia, "iterations": result.iterations,
                      "points": result.num_points}))
  return result


def label(data_dir, feature_dir, centroids, out, name="km") -> None:
  """Process 0 assigns the features of every split to `centroids` and writes `data_dir` with
  `labels/<name>` added to `out`."""
  from speechjax.cluster import labeling
  from speechjax.data import records
  from speechjax.parallel import mesh

  def write():
    by_split, rate = {}, None
    for split in records.read_meta(data_dir).splits:
      by_split[split], rate = labeling.assign_split(feature_dir, split, centroids)
    missing = labeling.write_labeled_records(
        data_dir, out, [labeling.LabelStream(name, by_split, rate, len(centroids))])
    print(json.dumps({"out": out, "rate": rate, "k": len(centroids),
                      "utterances_without_features": missing}))
  mesh.on_process_zero(f"label {out}", write)


class Label:

  @staticmethod
  def add_arguments(parser):
    parser.add_argument("--data", required=True)
    parser.add_argument("--features", required=True)
    parser.add_argument("--kmeans", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--name", default="km")

  @staticmethod
  def run(args) -> int:
    from speechjax.cluster import kmeans
    label(args.data, args.features, kmeans.load(args.kmeans)[0].centroids, args.out, args.name)
    return 0
