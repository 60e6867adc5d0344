"""Input pipeline: static shapes, masks, label/audio crop consistency, host sharding, exact resume.

Tests taking the `in_memory` fixture run on both training pipelines: tf.data and `data.memory` (its own
tests: tests/data/test_memory.py)."""
import itertools

import numpy as np
import pytest

from speechjax.data import memory, pipeline, records

from tests.helpers import toy_data


@pytest.fixture(params=[False, True], ids=["tfdata", "in_memory"])
def in_memory(request):
  return request.param


def _pipe(path, in_memory=False, **kw):
  args = dict(batch_size=4, max_sample_size=9600, labels=("phone_20ms",), seed=3)
  args.update(kw)
  if in_memory:
    return memory.InMemoryPipeline(pipeline.PipelineSpec(path, "train", **args))
  return pipeline.make_pipeline(path, "train", **args)


def test_batch_shapes_and_masks(tone_data, in_memory):
  batch = next(_pipe(tone_data, in_memory))
  assert batch["audio"].shape == (4, 9600) and batch["audio"].dtype == np.float32
  assert batch["audio_mask"].shape == (4, 9600) and batch["audio_mask"].dtype == bool
  assert batch["labels/phone_20ms"].shape == (4, 30)
  lengths = batch["audio_mask"].sum(1)
  for row, n in enumerate(lengths):
    assert batch["audio_mask"][row, :n].all() and not batch["audio_mask"][row, n:].any()
    assert not batch["audio"][row, n:].any()
    frames = batch["labels_mask/phone_20ms"][row]
    assert frames.sum() == n // 320
    assert (batch["labels/phone_20ms"][row][~frames] == -1).all()
    assert (batch["labels/phone_20ms"][row][frames] >= 0).all()


def test_labels_cropped_consistently_with_audio(tone_data, in_memory):
  """Re-deriving each frame's tone from the cropped audio must give the cropped labels."""
  freqs = 200.0 * 2 ** (np.arange(toy_data.NUM_TONES) / 2)
  checked = 0
  for batch in itertools.islice(_pipe(tone_data, in_memory), 4):
    for audio, labels, mask in zip(batch["audio"], batch["labels/phone_20ms"],
                                   batch["labels_mask/phone_20ms"]):
      for f in np.flatnonzero(mask)[1:-1]:
        frame = audio[f * 320:(f + 1) * 320] * np.hanning(320)
        spectrum = np.abs(np.fft.rfft(frame, 16000))
        energy = [spectrum[int(fr) - 5:int(fr) + 6].sum() for fr in freqs]
        if labels[f] == labels[f - 1] == labels[f + 1]:   # skip frames on a tone change
          assert int(np.argmax(energy)) == labels[f]
          checked += 1
  assert checked > 100


def test_random_crops_differ_between_epochs_but_not_between_runs(tone_data, in_memory):
  a = [next(_pipe(tone_data, in_memory, shuffle_buffer=0))["audio"] for _ in range(2)]
  np.testing.assert_array_equal(a[0], a[1])
  p = _pipe(tone_data, in_memory, shuffle_buffer=0, batch_size=8)
  epoch0 = next(p)["audio"]
  for _ in range(20):   # run into the next epoch
    batch = next(p)
    if p.epoch == 1:
      break
  assert p.epoch == 1 and not np.array_equal(epoch0, batch["audio"])


def _ids(pipe, num_batches):
  return [i for b in itertools.islice(pipe, num_batches) for i in b["id"]]


@pytest.mark.parametrize("num_shards", [4, 3])
def test_hosts_see_disjoint_complete_shards(tmp_path, num_shards):
  path = toy_data.write_tone_dataset(str(tmp_path), num_train=24, num_test=4, num_shards=num_shards)
  seen = []
  for host in range(2):
    p = pipeline.make_pipeline(path, "train", 1, 9600, process_index=host, process_count=2,
                               shuffle_buffer=0, repeat=False)
    seen.append(_ids(p, 100))
  assert not set(seen[0]) & set(seen[1])
  assert sorted(seen[0] + seen[1]) == sorted(f"train-{i:04d}".encode() for i in range(24))


def test_eval_pass_covers_every_utterance_once_with_static_shapes(tone_data):
  p = pipeline.make_pipeline(tone_data, "test", 5, 9600, shuffle_buffer=0, random_crop=False,
                             repeat=False, labels=("phone_20ms",))
  batches = list(p)
  assert all(b["audio"].shape == (5, 9600) for b in batches)
  ids = [i for b in batches for i, m in zip(b["id"], b["audio_mask"].any(1)) if m]
  assert sorted(ids) == sorted(f"test-{i:04d}".encode() for i in range(16))


@pytest.mark.parametrize("kind", ["tfdata", "bucketed", "in_memory"])
def test_resume_equals_uninterrupted(tone_data, kind):
  kw = dict(bucket_boundaries=(4800, 9600)) if kind == "bucketed" else dict(in_memory=kind == "in_memory")
  straight = list(itertools.islice(_pipe(tone_data, **kw), 40))   # > 1 epoch
  first = _pipe(tone_data, **kw)
  head = list(itertools.islice(first, 17))
  resumed = _pipe(tone_data, **kw)
  resumed.restore(first.position)
  tail = list(itertools.islice(resumed, 23))
  for a, b in zip(straight, head + tail):
    assert a.keys() == b.keys()
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])


def test_bucketing_gives_few_static_shapes(tone_data):
  p = _pipe(tone_data, bucket_boundaries=(4800, 9600), batch_size=4)
  shapes = {b["audio"].shape for b in itertools.islice(p, 30)}
  assert shapes <= {(8, 4800), (4, 9600)}
  assert (4, 9600) in shapes


def test_too_short_utterances_are_counted(tone_data):
  p = _pipe(tone_data, min_sample_size=16000, shuffle_buffer=0, repeat=False)
  kept = sum(int(b["audio_mask"].any(1).sum()) for b in p)
  dropped = int(p.num_too_short.numpy())
  assert dropped > 0 and kept + dropped == records.read_meta(tone_data).splits["train"].num_examples


def test_bad_requests_name_the_field(tone_data):
  with pytest.raises(ValueError, match="data.labels"):
    _pipe(tone_data, labels=("nope",))
  with pytest.raises(ValueError, match="data.max_sample_size"):
    _pipe(tone_data, max_sample_size=1000)
  with pytest.raises(ValueError, match="data.split"):
    pipeline.make_pipeline(tone_data, "dev", 2, 9600)
  with pytest.raises(FileNotFoundError, match="prepare"):
    pipeline.make_pipeline(tone_data + "/nowhere", "train", 2, 9600)
