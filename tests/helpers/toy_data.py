"""A tiny learnable data set for trainer tests: tone sequences whose 20 ms frames are labelled by pitch."""
import numpy as np

from speechjax.data import records

NUM_TONES = 8


def tone_utterance(rng: np.random.Generator, num_samples: int):
  """Audio [T] made of 80 ms tone segments, and the tone id of each 20 ms frame [T // 320]."""
  seg = 1280
  ids = rng.integers(0, NUM_TONES, size=num_samples // seg + 1)
  t = np.arange(num_samples) / records.SAMPLE_RATE
  freqs = 200.0 * 2 ** (ids[np.arange(num_samples) // seg] / 2)
  audio = 0.5 * np.sin(2 * np.pi * np.cumsum(freqs) / records.SAMPLE_RATE) + 0.01 * rng.standard_normal(t.size)
  frame_ids = ids[(np.arange(num_samples // 320) * 320 + 160) // seg]
  return audio.astype(np.float32), frame_ids


def write_tone_dataset(out_dir: str, num_train: int = 64, num_test: int = 16, num_shards: int = 4,
                       seed: int = 0) -> str:
  rng = np.random.default_rng(seed)
  splits = {}
  for split, n in (("train", num_train), ("test", num_test)):
    with records.ShardedWriter(out_dir, split, num_shards) as w:
      for i in range(n):
        length = int(rng.integers(8000, 24000))
        audio, frame_ids = tone_utterance(rng, length)
        w.write(records.encode_example(f"{split}-{i:04d}", audio, {"phone_20ms": frame_ids},
                                       speaker=f"spk{i % 3}"), length)
    splits[split] = w.info
  meta = records.DatasetMeta(splits=splits, labels={
      "phone_20ms": records.LabelSet(frame_rate=50, num_classes=NUM_TONES)}, source="tones")
  records.write_meta(out_dir, meta)
  return out_dir
