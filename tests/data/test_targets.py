"""CTC targets from the records' text fields; labelled subsets."""
import numpy as np
import pytest

from speechjax import text
from speechjax.data import pipeline, records, vocab


def _eval_pipe(data, **kw):
  return pipeline.make_pipeline(data, "train", 4, 112000, shuffle_buffer=0, random_crop=False,
                                repeat=False, **kw)


def test_phone_targets_round_trip(synth_records):
  symbols = vocab.scan(synth_records, "train", "phones")
  pipe = _eval_pipe(synth_records, targets="phones", target_vocab=tuple(symbols), max_target_length=96)
  seen = 0
  for batch in pipe:
    for i in np.flatnonzero(batch["audio_mask"].any(-1)):
      ids = batch["targets"][i][batch["targets_mask"][i]]
      assert (ids > 0).all() and not batch["targets"][i][~batch["targets_mask"][i]].any()
      assert " ".join(vocab.decode(ids, symbols)) == batch["phones"][i].decode()
      seen += 1
  assert seen == records.read_meta(synth_records).splits["train"].num_examples
  assert int(pipe.num_too_long.numpy()) == 0 and int(pipe.num_unknown_symbol.numpy()) == 0


def test_character_targets_use_word_boundaries():
  assert text.symbols_of("transcript", " Hi you ") == ["h", "i", "|", "y", "o", "u"]
  with pytest.raises(ValueError, match="data.targets"):
    text.symbols_of("language", "x")


def test_too_long_and_unknown_symbols_are_counted_not_crashed(synth_records):
  symbols = vocab.scan(synth_records, "train", "phones")
  total = records.read_meta(synth_records).splits["train"].num_examples
  short = _eval_pipe(synth_records, targets="phones", target_vocab=tuple(symbols), max_target_length=20)
  kept = sum(int(b["targets_mask"].any(-1).sum()) for b in short)
  assert kept + int(short.num_too_long.numpy()) == total and kept < total
  partial = _eval_pipe(synth_records, targets="phones", target_vocab=tuple(symbols[1:]),
                       max_target_length=96)
  kept = sum(int(b["targets_mask"].any(-1).sum()) for b in partial)
  assert kept + int(partial.num_unknown_symbol.numpy()) == total and kept < total


def test_subset_is_a_fixed_prefix_within_the_budget(synth_records):
  meta = records.read_meta(synth_records)
  budget = meta.splits["train"].num_samples / 16000 / 3
  pipe = pipeline.make_pipeline(synth_records, "train", 2, 112000, max_seconds=budget, seed=3)
  seen = set()
  for _ in range(40):
    seen.update(next(pipe)["id"].tolist())
  prefix, total = set(), 0
  for utt, n in _lengths(synth_records):   # shard order
    total += n
    if total > budget * 16000:
      break
    prefix.add(utt)
  assert seen == prefix and 0 < len(prefix) < meta.splits["train"].num_examples


def _lengths(data):
  import tensorflow as tf
  meta = records.read_meta(data)
  files = [f"{data}/{s}" for s in meta.splits["train"].shards]
  spec = {"id": tf.io.FixedLenFeature([], tf.string), "num_samples": tf.io.FixedLenFeature([], tf.int64)}
  for r in tf.data.TFRecordDataset(files).map(lambda r: tf.io.parse_single_example(r, spec)):
    yield r["id"].numpy(), int(r["num_samples"].numpy())
