"""HuBERT's cluster-then-retrain loop (docs/design.md, Data flow: the HuBERT loop), automated and resumable.

    speechjax loop --workdir workdir/hubert_loop [--config configs/hubert_loop.py:small] [--config.x=y ...]

Per iteration n (stages listed in the loop config), everything under `<workdir>/iter<n>/`:
    features/   MFCC (iteration 1) or layer-L features of iteration n−1's model; L = "auto" picks the layer
                whose k-means clusters have the highest PNMI on the evaluation split
    kmeans.npz  centroids fitted on the train split (fraction `percent` of utterances)
    quality.json  phone purity, cluster purity, PNMI of the clusters on the evaluation split
    records/    the data set with `labels/km` added
    train/      the HuBERT training run (resumes from its last checkpoint when killed)
Each stage leaves its output (or a DONE marker) only when complete; a re-run skips finished stages.
At the end a table: iteration, features, K, phone purity, cluster purity, PNMI, final loss, wall time. With
`cluster_last_model`, a last row "N+1 (clusters only)" clusters the final model's layer like a next
iteration would (its records are ready to train on), so the table shows every model's cluster quality.

Multi-host (`--coordinator ...`, or `SPEECHJAX_DISTRIBUTED=1` on a TPU pod): every process dumps its shard
of the records and k-means reduces over all of them (see `speechjax.cluster.commands`); process 0 writes
the markers, quality and labelled records; training runs on all processes. The workdir may be on GCS.
"""
from __future__ import annotations

import json
import os
import time

import jax
import ml_collections
import tensorflow as tf
from jax.experimental import multihost_utils

from speechjax import config as config_lib
from speechjax.cluster import commands, features, kmeans, labeling
from speechjax.data import records
from speechjax.parallel import mesh
from speechjax.train import trainer


def _done(path: str) -> bool:
  return tf.io.gfile.exists(path)


def _write(path: str, payload: dict) -> None:
  records.write_atomic(path, json.dumps(payload, indent=1).encode())


def _mark(path: str, payload: dict) -> None:
  """Writes a marker (process 0) once every process has got here."""
  mesh.on_process_zero(path, lambda: _write(path, payload))


def _read(path: str) -> dict:
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def _dump(data: str, split: str, out: str, extractor, rate: int, kind: str) -> None:
  """This process's shard of the features of `split`."""
  features.dump(data, split, out, extractor, rate, kind, jax.process_index(), jax.process_count())


class Loop:

  def __init__(self, cfg, workdir: str):
    self.cfg, self.workdir = cfg, workdir
    tf.io.gfile.makedirs(workdir)
    meta = records.read_meta(cfg.data)
    for split in (cfg.train_split, cfg.eval_split):
      config_lib.require(split in meta.splits, "train_split/eval_split", split,
                         f"not in {cfg.data} (has {sorted(meta.splits)})")
    self.check_same_recipe()

  def check_same_recipe(self) -> None:
    """Finished stages are skipped on a re-run, so a workdir must keep one recipe: the first run writes
    `loop_config.json`; a later run may append iterations or change `cluster_last_model`, nothing else."""
    recipe = json.loads(self.cfg.to_json())
    del recipe["cluster_last_model"]
    path = os.path.join(self.workdir, "loop_config.json")
    if not _done(path):
      _mark(path, recipe)
      return
    saved = _read(path)
    changed = sorted(k for k in set(saved) | set(recipe) if k != "iterations" and saved.get(k) != recipe.get(k))
    old_stages, new_stages = saved.get("iterations", []), recipe["iterations"]
    changed += [f"iterations[{i}]" for i, (a, b) in enumerate(zip(old_stages, new_stages)) if a != b]
    if len(new_stages) < len(old_stages):
      changed.append("iterations (fewer than before)")
    if changed:
      raise config_lib.ConfigError(
          f"{self.workdir} was run with another loop recipe ({path}); changed: {', '.join(changed)}. "
          "Finished stages would be reused silently: use a new --workdir (or restore the old config).")

  def iter_dir(self, n: int, *parts) -> str:
    return os.path.join(self.workdir, f"iter{n}", *parts)

  # --- stages -------------------------------------------------------------------------------
  def extractor(self, n: int, stage):
    if stage.features == "mfcc":
      return features.mfcc_extractor() + ("mfcc",)
    layer = self.choose_layer(n, stage) if stage.layer == "auto" else int(stage.layer)
    extractor, rate = features.layer_extractor(self.iter_dir(n - 1, "train"), layer)
    return extractor, rate, f"layer{layer}"

  def choose_layer(self, n: int, stage) -> int:
    """The layer of iteration n−1's model whose clusters have the highest PNMI (evaluation split)."""
    marker = self.iter_dir(n, "layer_choice.json")
    if _done(marker):
      return _read(marker)["layer"]
    num_layers = config_lib.load(self.cfg.train_config).model.num_hidden_layers
    scores = {}
    for layer in range(1, num_layers + 1):
      extractor, rate = features.layer_extractor(self.iter_dir(n - 1, "train"), layer)
      out = self.iter_dir(n, "probe", f"layer{layer}")
      _dump(self.cfg.data, self.cfg.eval_split, out, extractor, rate, "layer")
      multihost_utils.sync_global_devices(f"{out} dumped")
      source = features.sample_source(features.shards(out, self.cfg.eval_split), -1,
                                      rank=jax.process_index(), count=jax.process_count())
      result = kmeans.fit(source, stage.k, iters=stage.kmeans_iters)
      labels, _ = labeling.assign_split(out, self.cfg.eval_split, result.centroids)
      scores[layer] = labeling.split_quality(self.cfg.data, self.cfg.eval_split, labels, rate).pnmi
    best = max(scores, key=scores.get)
    _mark(marker, {"layer": best, "pnmi_by_layer": scores})
    return best

  def cluster(self, n: int, stage) -> dict:
    """Features → k-means → quality + labelled records of iteration n; returns the features marker
    {"features", "rate"}."""
    feats_dir, km_path = self.iter_dir(n, "features"), self.iter_dir(n, "kmeans.npz")
    feats_marker = os.path.join(feats_dir, "DONE")
    if not _done(feats_marker):
      extractor, rate, name = self.extractor(n, stage)
      for split in (self.cfg.train_split, self.cfg.eval_split):
        _dump(self.cfg.data, split, feats_dir, extractor, rate, name)
      _mark(feats_marker, {"features": name, "rate": rate})
    if not _done(km_path):
      commands.fit_and_save(feats_dir, self.cfg.train_split, stage.k, km_path, stage.percent,
                            stage.kmeans_iters)
    if not (_done(self.iter_dir(n, "quality.json")) and _done(self.iter_dir(n, "records", "meta.json"))):
      mesh.on_process_zero(f"label iter{n}", lambda: self.label(n, stage, _read(feats_marker)["rate"]))
    return _read(feats_marker)

  def label(self, n: int, stage, rate: int) -> None:
    """Cluster quality on the evaluation split and the labelled records (process 0)."""
    feats_dir = self.iter_dir(n, "features")
    centroids = kmeans.load(self.iter_dir(n, "kmeans.npz"))[0].centroids
    by_split = {s: labeling.assign_split(feats_dir, s, centroids)[0]
                for s in (self.cfg.train_split, self.cfg.eval_split)}
    q = labeling.split_quality(self.cfg.data, self.cfg.eval_split, by_split[self.cfg.eval_split], rate)
    _write(self.iter_dir(n, "quality.json"),
           {"phone_purity": q.phone_purity, "cluster_purity": q.cluster_purity, "pnmi": q.pnmi})
    labeling.write_labeled_records(self.cfg.data, self.iter_dir(n, "records"),
                                   [labeling.LabelStream("km", by_split, rate, stage.k)])

  def run_iteration(self, n: int, stage, train: bool = True) -> dict:
    """Clusters (and, if `train`, trains) iteration n; returns its table row."""
    start = time.time()
    feats_info = self.cluster(n, stage)
    labeled = self.iter_dir(n, "records")
    train_marker = self.iter_dir(n, "train", "DONE")
    if train and not _done(train_marker):
      final = trainer.train(self.train_config(labeled, feats_info["rate"], stage), self.iter_dir(n, "train"))
      _mark(train_marker, final)
    row = {"iteration": n if train else f"{n} (clusters only)", "features": feats_info["features"],
           "k": stage.k, **_read(self.iter_dir(n, "quality.json")),
           "final_loss": _read(train_marker).get("loss") if train else None}
    timing_path = self.iter_dir(n, "timing.json")
    if not _done(timing_path):   # wall time of the run that finished the iteration
      _mark(timing_path, {"wall_s": time.time() - start})
    return {**row, "wall_s": _read(timing_path)["wall_s"]}

  def train_config(self, labeled: str, rate: int, stage):
    cfg = config_lib.load(self.cfg.train_config, list(self.cfg.train_overrides))
    cfg.data.path, cfg.data.labels = labeled, ("km",)
    cfg.data.train_split, cfg.data.eval_split = self.cfg.train_split, self.cfg.eval_split
    cfg.task.labels, cfg.task.label_rates, cfg.model.num_classes = ("km",), (rate,), (stage.k,)
    cfg.train.num_steps = stage.steps
    return cfg

  def run(self) -> list[dict]:
    rows = [self.run_iteration(n, stage) for n, stage in enumerate(self.cfg.iterations, start=1)]
    if self.cfg.cluster_last_model:   # how good are the last model's clusters? (iteration N+1's labels)
      last = self.cfg.iterations[-1]
      stage = {**last.to_dict(), "features": "layer", "layer": last.layer if last.features == "layer" else "auto"}
      rows.append(self.run_iteration(len(rows) + 1, ml_collections.ConfigDict(stage), train=False))
    table = format_table(rows)
    if jax.process_index() == 0:
      print(table)
      records.write_atomic(os.path.join(self.workdir, "results.md"), (table + "\n").encode())
    return rows


def format_table(rows: list[dict]) -> str:
  head = "| iteration | features | K | phone purity | cluster purity | PNMI | final loss | wall time |"
  lines = [head, "|---|---|---|---|---|---|---|---|"]
  for r in rows:
    loss = "" if r["final_loss"] is None else f"{r['final_loss']:.3f}"
    lines.append(f"| {r['iteration']} | {r['features']} | {r['k']} | {r['phone_purity']:.3f} | "
                 f"{r['cluster_purity']:.3f} | {r['pnmi']:.3f} | {loss} | {r['wall_s'] / 60:.1f} min |")
  return "\n".join(lines)


def add_arguments(parser):
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--config", default="configs/hubert_loop.py:small")
  mesh.add_distributed_arguments(parser)


def cache_compiled_programs(workdir: str) -> None:
  """Iterations compile the same programs again (iteration 2's train step is iteration 1's; every
  iteration's layer dumps and k-means steps): a persistent XLA cache under the workdir compiles each once.
  Left alone when a cache is already set (JAX_COMPILATION_CACHE_DIR) or the workdir is remote."""
  if jax.config.jax_compilation_cache_dir or "://" in workdir:
    return
  jax.config.update("jax_compilation_cache_dir", os.path.join(os.path.abspath(workdir), "xla_cache"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def run(args) -> int:
  mesh.maybe_init_distributed(args.coordinator, args.num_processes, args.process_id)
  cache_compiled_programs(args.workdir)
  cfg = config_lib.load(args.config, args.overrides)
  Loop(cfg, args.workdir).run()
  return 0
