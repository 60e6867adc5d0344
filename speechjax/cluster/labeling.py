"""Cluster labels: apply k-means centroids to dumped features, write them into records, measure quality.

`write_labeled_records` copies a prepared data set and adds `labels/<name>` of one or more label streams to
every record (the serialized tf.train.Example is extended in place, audio bytes untouched), so the
pretraining pipeline crops labels with the audio. Label frame i of an MFCC dump covers samples [160 i, 160 i + 400) — the same window as model
frame t = i / 2 — so labels are stored at the dump's rate (100 or 50 Hz) and padded with −1 to
num_samples // hop frames, as the record format requires. Utterances without features get all −1 (counted).
"""
from __future__ import annotations

import dataclasses
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


def _add_labels(example, name: str, labels_by_id: dict, hop: int) -> tuple[np.ndarray, bool]:
  """Sets `labels/<name>` of a tf.train.Example in place (−1 past the utterance's labels); returns the
  values written and whether the utterance had labels."""
  feats = example.features.feature
  uid = feats["id"].bytes_list.value[0].decode()
  values = np.full(feats["num_samples"].int64_list.value[0] // hop, -1, np.int64)
  found = uid in labels_by_id
  if found:
    ids = labels_by_id[uid][:len(values)]
    values[:len(ids)] = ids
  feats[f"labels/{name}"].int64_list.value[:] = values.tolist()
  return values, found


@dataclasses.dataclass(frozen=True)
class LabelStream:
  """One label set to add to records: `labels/<name>` at `rate` Hz, ids in [0, num_classes)."""
  name: str
  by_split: dict        # {split: {utterance id: ids [frames] int}}
  rate: int
  num_classes: int


def write_labeled_records(data_dir: str, out_dir: str, streams: list[LabelStream]) -> dict:
  """Copies `data_dir` to `out_dir` adding `labels/<name>` of every stream; writes fairseq `<split>.<name>`
  + `dict.<name>.txt` per stream. Returns {split: utterances without labels (labelled −1), over streams}."""
  meta = records.read_meta(data_dir)
  missing, splits = {}, {}
  ordered = {s.name: {} for s in streams}   # .km lines hold the real frames only, in record order
  for split, info in meta.splits.items():
    missing[split] = 0
    with records.ShardedWriter(out_dir, split, len(info.shards)) as writer:
      for shard in info.shards:
        for serialized in tf.data.TFRecordDataset(os.path.join(data_dir, shard)).as_numpy_iterator():
          example = tf.train.Example.FromString(serialized)
          for stream in streams:
            values, found = _add_labels(example, stream.name, stream.by_split.get(split, {}),
                                        records.SAMPLE_RATE // stream.rate)
            missing[split] += not found
            ordered[stream.name].setdefault(split, []).append(values[values >= 0])
          writer.write(example.SerializeToString(), example.features.feature["num_samples"].int64_list.value[0])
    splits[split] = writer.info
  labels = dict(meta.labels)
  for stream in streams:
    for split, lines in ordered[stream.name].items():
      km_files.write_km(os.path.join(out_dir, f"{split}.{stream.name}"), lines)
    km_files.write_dict(os.path.join(out_dir, f"dict.{stream.name}.txt"), stream.num_classes)
    labels[stream.name] = records.LabelSet(frame_rate=stream.rate, num_classes=stream.num_classes)
  names = " + ".join(s.name for s in streams)
  records.write_meta(out_dir, records.DatasetMeta(splits=splits, labels=labels,
                                                  source=f"{meta.source} + {names} labels"))
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
