"""Workdir files go through tf.io.gfile, so gs:// workdirs work: here TensorFlow's in-memory `ram://`
filesystem, which plain `open`/`os` cannot reach, stands in for GCS."""
import json
import os

import numpy as np
import tensorflow as tf

from speechjax.launch import hubert_loop
from speechjax import config
from speechjax.cluster import kmeans
from speechjax.data import labels, records
from speechjax.train import metrics

LOOP_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                           "hubert_loop.py") + ":tiny"


def test_metrics_writer():
  writer = metrics.Writer("ram://run")
  writer.write(1, {"loss": 2.5})
  writer.write(2, {"loss": np.float32(1.5)})
  writer.close()
  with tf.io.gfile.GFile("ram://run/metrics.jsonl") as f:
    rows = [json.loads(line) for line in f]
  assert rows == [{"step": 1, "train/loss": 2.5}, {"step": 2, "train/loss": 1.5}]
  assert any(n.startswith("events.out.tfevents") for n in tf.io.gfile.listdir("ram://run"))


def test_hubert_loop_clustering_stage(synth_records):
  cfg = config.load(LOOP_CONFIG, [f"--config.data={synth_records}"])
  loop = hubert_loop.Loop(cfg, "ram://loop")
  assert loop.cluster(1, cfg.iterations[0]) == {"features": "mfcc", "rate": 100}
  for part in ("features/DONE", "kmeans.npz", "quality.json", "records/meta.json", "records/dict.km.txt"):
    assert tf.io.gfile.exists(loop.iter_dir(1, part)), part
  result, meta = kmeans.load(loop.iter_dir(1, "kmeans.npz"))
  assert result.centroids.shape == (20, 39) and meta["kind"] == "mfcc"
  train = labels.read_km(loop.iter_dir(1, "records", "train.km"))
  assert len(train) == records.read_meta(synth_records).splits["train"].num_examples
  assert all(0 <= ids.min() and ids.max() < 20 for ids in train)
