"""The HuBERT loop's dump → k-means → label stage on two `jax.distributed` processes (2 CPU devices each)
equals one process: each process dumps its half of the utterances, k-means reduces over both, and the
centroids, labels and cluster quality are those of one process clustering the same two feature shards.

(One process dumping all utterances at once batches them differently, which changes the MFCCs in their
last bits; the reference therefore dumps the two halves itself, in this process.)
"""
import json
import os
import subprocess

import numpy as np
import pytest

from speechjax.launch import hubert_loop
from speechjax import config
from speechjax.cluster import features, kmeans
from speechjax.data import records

from tests.cluster import multihost_worker
from tests.helpers import harness


def _reference(data, workdir):
  """This process: the MFCCs of both halves of the utterances, then the loop's k-means and labels."""
  cfg = config.load(multihost_worker.LOOP_CONFIG, [f"--config.data={data}"])
  loop = hubert_loop.Loop(cfg, workdir)
  extractor, rate = features.mfcc_extractor()
  for split in (cfg.train_split, cfg.eval_split):
    for rank in range(2):
      features.dump(data, split, loop.iter_dir(1, "features"), extractor, rate, "mfcc", rank, 2)
  records.write_atomic(loop.iter_dir(1, "features", "DONE"),
                       json.dumps({"features": "mfcc", "rate": rate}).encode())
  loop.cluster(1, cfg.iterations[0])


@pytest.fixture(scope="module")
def runs(synth_records, tmp_path_factory):
  """{"multi": iter1 dir of the 2-process run, "single": of the reference}."""
  root = tmp_path_factory.mktemp("multihost")
  port = harness.free_port()
  procs = [subprocess.Popen(harness.worker_command("tests.cluster.multihost_worker", synth_records,
                                                   str(root / "multi"), str(i), "2", str(port)),
                            cwd=harness.REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for i in range(2)]
  _reference(synth_records, str(root / "single"))
  for p in procs:
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-3000:]
  return {name: str(root / name / "iter1") for name in ("single", "multi")}


def _by_id(feature_dir, split):
  return {uid: np.asarray(shard.utterance(i)) for shard in features.shards(feature_dir, split)
          for i, uid in enumerate(shard.ids)}


def test_each_process_dumps_its_half(runs, synth_records):
  names = sorted(n for n in os.listdir(os.path.join(runs["multi"], "features")) if n.endswith(".json"))
  assert names == ["test_0_2.json", "test_1_2.json", "train_0_2.json", "train_1_2.json"]
  for split, info in records.read_meta(synth_records).splits.items():
    multi, single = (_by_id(os.path.join(runs[n], "features"), split) for n in ("multi", "single"))
    assert len(multi) == info.num_examples and multi.keys() == single.keys()
    for uid, frames in single.items():
      np.testing.assert_array_equal(multi[uid], frames)


def test_kmeans_reduces_over_both_processes(runs):
  (single, _), (multi, _) = (kmeans.load(os.path.join(runs[n], "kmeans.npz")) for n in ("single", "multi"))
  frames = sum(len(s.features) for s in features.shards(os.path.join(runs["multi"], "features"), "train"))
  assert multi.num_points == single.num_points == frames
  np.testing.assert_allclose(multi.centroids, single.centroids, rtol=1e-5, atol=1e-4)
  np.testing.assert_array_equal(multi.counts, single.counts)
  assert multi.inertia == pytest.approx(single.inertia, rel=1e-5)


def test_labels_and_quality_equal_one_process(runs):
  for name in ("train.km", "test.km", "dict.km.txt", "meta.json"):
    texts = [open(os.path.join(runs[n], "records", name)).read() for n in ("single", "multi")]
    assert texts[0] == texts[1], name
  quality = [json.load(open(os.path.join(runs[n], "quality.json"))) for n in ("single", "multi")]
  assert quality[1] == pytest.approx(quality[0], rel=1e-6)


def test_percent_picks_the_same_utterances_however_the_dump_is_sharded(runs):
  shards = features.shards(os.path.join(runs["multi"], "features"), "train")
  alone = {c.tobytes() for c in features.sample_source(shards, 0.5, seed=3)()}
  split = {c.tobytes() for rank in range(2)
           for c in features.sample_source(shards[::-1], 0.5, seed=3, rank=rank, count=2)()}
  assert alone == split and len(alone) == np.ceil(0.5 * sum(len(s.ids) for s in shards))
