"""`data.in_memory`: what only the in-memory training pipeline has to prove (the batch contract, label/audio
consistency and exact resume run on both pipelines in test_pipeline.py)."""
import itertools

import numpy as np
import pytest
import tensorflow as tf

from speechjax.data import memory, pipeline, records

from tests.helpers import toy_data


def _spec(path, **kw):
  args = dict(batch_size=4, max_sample_size=9600, labels=("phone_20ms",), seed=3)
  args.update(kw)
  return pipeline.PipelineSpec(path, "train", **args)


def _utterances(path, split="train"):
  """{id: (int16 audio, labels)} read straight from the records."""
  meta = records.read_meta(path)
  out = {}
  for r in tf.data.TFRecordDataset(records.split_files(path, meta, split)).as_numpy_iterator():
    ex = tf.io.parse_single_example(r, records.feature_spec(("phone_20ms",)))
    audio = np.frombuffer(ex["audio"].numpy(), "<i2")
    out[ex["id"].numpy()] = (audio, tf.sparse.to_dense(ex["labels/phone_20ms"]).numpy())
  return out


def test_rows_are_label_aligned_crops_of_the_records(tone_data):
  source = _utterances(tone_data)
  for batch in itertools.islice(memory.InMemoryPipeline(_spec(tone_data)), 6):
    for uid, audio, mask, labels in zip(batch["id"], batch["audio"], batch["audio_mask"],
                                        batch["labels/phone_20ms"]):
      full, full_labels = source[uid]
      n = int(mask.sum())
      assert n == min(9600, len(full))
      starts = [s for s in range(0, len(full) - n + 1, 320)
                if np.array_equal(full[s:s + n] / np.float32(32768), audio[:n])]
      assert starts, "row is not a crop starting on a label frame"
      frames = n // 320
      np.testing.assert_array_equal(labels[:frames], full_labels[starts[0] // 320:][:frames])
      assert (labels[frames:] == -1).all()


def test_each_epoch_is_a_permutation_of_the_kept_utterances(tone_data):
  p = memory.InMemoryPipeline(_spec(tone_data, batch_size=8, min_sample_size=12000))
  kept = {uid for uid, (audio, _) in _utterances(tone_data).items() if len(audio) >= 12000}
  assert p.num_too_short == records.read_meta(tone_data).splits["train"].num_examples - len(kept) > 0
  epochs = {}
  for _ in range(3 * p.batches_per_epoch):
    epoch = p.epoch if p.batch_in_epoch < p.batches_per_epoch else p.epoch + 1
    epochs.setdefault(epoch, []).extend(next(p)["id"])
  for ids in epochs.values():
    assert len(ids) == len(set(ids)) == p.batches_per_epoch * 8 and set(ids) <= kept
  assert epochs[0] != epochs[1]


def test_hosts_hold_disjoint_shards(tmp_path):
  path = toy_data.write_tone_dataset(str(tmp_path), num_train=24, num_test=4, num_shards=3)
  held = [set(memory.InMemoryPipeline(_spec(path, batch_size=1, process_index=i, process_count=2)).host["id"])
          for i in range(2)]
  assert not held[0] & held[1]
  assert held[0] | held[1] == {f"train-{i:04d}".encode() for i in range(24)}


@pytest.mark.parametrize("field, kw", [
    ("data.bucket_boundaries", dict(bucket_boundaries=(4800, 9600))),
    ("data.targets", dict(targets="phones", max_target_length=10)),
    ("data.train_subset_seconds", dict(max_seconds=10.0)),
    ("data.in_memory=True is for training", dict(repeat=False)),
    ("data.min_sample_size", dict(min_sample_size=10**6)),
    ("data.batch_size", dict(batch_size=1000)),
])
def test_unsupported_settings_name_the_field(tone_data, field, kw):
  with pytest.raises(ValueError, match=field):
    memory.InMemoryPipeline(_spec(tone_data, **kw))


def test_from_config_picks_it_for_training_only(tone_data):
  cfg = pipeline.default_config()
  cfg.path, cfg.labels, cfg.max_sample_size, cfg.in_memory = tone_data, ("phone_20ms",), 9600, True
  assert isinstance(pipeline.from_config(cfg, train=True), memory.InMemoryPipeline)
  assert isinstance(pipeline.from_config(cfg, train=False), pipeline.Pipeline)
