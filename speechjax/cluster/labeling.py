"""Cluster labels: apply k-means centroids to dumped features, write them into records, measure quality.

`write_labeled_records` copies a prepared data set and adds `labels/<name>` to every record (the serialized
tf.train.Example is extended in place, audio bytes untouched), so the pretraining pipeline crops labels with
the audio. Label frame i of an MFCC dump covers samples [160 i, 160 i + 400) — the same window as model
frame t = i / 2 — so labels are stored at the dump's rate (100 or 50 Hz) and padded with −1 to
num_samples // hop frames, as the record format requires. Utterances without features get all −1 (counted).
"""
from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from speechjax.cluster import features as feature_lib
from speechjax.cluster import kmeans, quality
from speechjax.data import labels as km_files
from speechjax.data import records


def assign_split(feature_dir: str, split: str, centroids: np.ndarray) -> tuple[dict, int]:
  """{utterance id: cluster ids [frames] int32} over every shard of a split, and the label rate."""
  out, rate = {}, None
  for shard in feature_lib.shards(feature_dir, split):
    rate = shard.info["rate"]
    ids = kmeans.assign(shard.features, centroids) if len(shard.features) else np.zeros(0, np.int32)
    for i, uid in enumerate(shard.ids):
      out[uid] = ids[shard.offsets[i]:shard.offsets[i + 1]]
  return out, rate


def _with_labels(serialized: bytes, name: str, labels_by_id: dict, hop: int) -> tuple[bytes, bool]:
  example = tf.train.Example.FromString(serialized)
  feats = example.features.feature
  uid = feats["id"].bytes_list.value[0].decode()
  frames = feats["num_samples"].int64_list.value[0] // hop
  values = np.full(frames, -1, np.int64)
  found = uid in labels_by_id
  if found:
    ids = labels_by_id[uid][:frames]
    values[:len(ids)] = ids
  feats[f"labels/{name}"].int64_list.value[:] = values.tolist()
  return example.SerializeToString(), found


def write_labeled_records(data_dir: str, out_dir: str, name: str, labels_by_split: dict, rate: int,
                          num_classes: int) -> dict:
  """Copies `data_dir` to `out_dir` adding `labels/<name>`; writes fairseq `<split>.km` + `dict.<name>.txt`.
  Returns {split: number of utterances that had no features (labelled −1)}."""
  meta = records.read_meta(data_dir)
  hop = records.SAMPLE_RATE // rate
  missing, splits = {}, {}
  for split, info in meta.splits.items():
    labels_by_id = labels_by_split.get(split, {})
    missing[split] = 0
    ordered = []
    with records.ShardedWriter(out_dir, split, len(info.shards)) as writer:
      for shard in info.shards:
        for serialized in tf.data.TFRecordDataset(os.path.join(data_dir, shard)).as_numpy_iterator():
          record, found = _with_labels(serialized, name, labels_by_id, hop)
          missing[split] += not found
          example = tf.train.Example.FromString(record)
          values = np.asarray(example.features.feature[f"labels/{name}"].int64_list.value)
          ordered.append(values[values >= 0])   # .km lines hold the real frames only
          writer.write(record, example.features.feature["num_samples"].int64_list.value[0])
    splits[split] = writer.info
    km_files.write_km(os.path.join(out_dir, f"{split}.{name}"), ordered)
  km_files.write_dict(os.path.join(out_dir, f"dict.{name}.txt"), num_classes)
  labels = dict(meta.labels)
  labels[name] = records.LabelSet(frame_rate=rate, num_classes=num_classes)
  records.write_meta(out_dir, records.DatasetMeta(splits=splits, labels=labels,
                                                  source=f"{meta.source} + {name} labels"))
  return missing


def split_quality(data_dir: str, split: str, labels_by_id: dict, rate: int,
                  phone_label: str = "phone_10ms") -> quality.ClusterQuality:
  """Phone purity, cluster purity and PNMI of `labels_by_id` against the split's 100 Hz alignment."""
  meta = records.read_meta(data_dir)
  if phone_label not in meta.labels:
    raise ValueError(f"{data_dir} has no {phone_label!r} alignment to measure cluster quality against")
  phones, clusters = [], []
  for utt in feature_lib.utterances(data_dir, split, labels=(phone_label,)):
    if utt["id"] in labels_by_id:
      phones.append(utt[f"labels/{phone_label}"])
      clusters.append(labels_by_id[utt["id"]])
  return quality.cluster_quality(phones, clusters, upsample=meta.labels[phone_label].frame_rate // rate)
