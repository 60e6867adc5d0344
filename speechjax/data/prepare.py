"""`speechjax prepare`: turn a source of audio into sharded records (the format of records.py).

    speechjax prepare --source SRC --out DIR [--strict] [--num-shards N] [--split NAME]
                      [--workers N] [--min-seconds S] [--tfds-data-dir D]

SRC is a folder of audio files, a fairseq manifest, a LibriSpeech tree, `tfds:NAME[:SPLIT]` or a
synthetic corpus (see sources.py). Every input is either written, possibly after a fix (resampled
to 16 kHz, downmixed to mono, clipped to full scale), or skipped; each fix and each skip is a line
`path<TAB>note` of DIR/report.tsv and is counted in the `Summary`. meta.json is written last, so
a folder without it is not a finished data set.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import itertools
import math
import multiprocessing
import os
import sys
from typing import Callable, Iterable, Iterator

import tensorflow as tf

from speechjax.audio import io as audio_io
from speechjax.audio.io import BadInput, Clip
from speechjax.data.records import (SAMPLE_RATE, DatasetMeta, LabelSet, ShardedWriter, SplitInfo,
                                    encode_example, write_atomic, write_meta)
from speechjax.data.sources import Item, PrepareError, Split, open_source, read_bytes

MAX_SHARDS = 256
MIN_SHARDS = 32  # so that every host of the usual multi-host slices reads at least one shard
PROBE_RECORDS = 256  # records held back to estimate a split's hours before its shards open...
PROBE_SAMPLES = 3600 * SAMPLE_RATE  # ...or this much audio, whichever comes first
IN_FLIGHT_PER_WORKER = 4  # decoded clips waiting per worker: bounds memory, keeps workers busy
REPORT = "report.tsv"

Record = tuple[bytes, int]  # (serialised example, num_samples)


@dataclasses.dataclass
class Summary:
  """What became of the inputs; `inputs == written + sum(skipped.values())` always."""
  inputs: int = 0
  written: int = 0
  fixed: int = 0  # written inputs that needed at least one fix
  fixes: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  notes: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (path, note)

  def skip(self, path: str, problem: BadInput) -> None:
    self.skipped[problem.reason] += 1
    self.notes.append((path, f"skipped: {problem}"))

  def write(self, path: str, fixes: dict[str, str]) -> None:
    self.written += 1
    self.fixed += bool(fixes)
    self.fixes.update(fixes.keys())
    self.notes.extend((path, f"fixed: {kind} ({detail})") for kind, detail in fixes.items())

  def report_tsv(self) -> str:
    return "".join(f"{_tsv_field(path)}\t{_tsv_field(note)}\n" for path, note in self.notes)

  def counts(self) -> str:
    """E.g. "inputs 5, written 4, fixed 1 (resampled 1), skipped 1 (too short 1)"."""
    return (f"inputs {self.inputs}, written {self.written}, "
            f"fixed {self.fixed}{_breakdown(self.fixes)}, "
            f"skipped {sum(self.skipped.values())}{_breakdown(self.skipped)}")


def _breakdown(counter: collections.Counter) -> str:
  return f" ({', '.join(f'{k} {n}' for k, n in sorted(counter.items()))})" if counter else ""


def _tsv_field(text: str) -> str:
  return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def prepare(source: str, out_dir: str, *, strict: bool = False, num_shards: int | None = None,
            split: str | None = None, workers: int | None = None, min_seconds: float = 0.1,
            tfds_data_dir: str | None = None, summary: Summary | None = None) -> DatasetMeta:
  """Writes the utterances of `source` as sharded records into `out_dir`.

  Args:
    source: what to read (see sources.open_source).
    out_dir: local or GCS folder; must not hold a finished data set (meta.json) already.
    strict: raise on the first input that must be skipped instead of skipping it.
    num_shards: shards per split; default from the split's hours (see `default_num_shards`).
    split: output name of the source's split, for sources that have only one.
    workers: processes that decode and resample; None or 1 decodes in this process. More need
      the usual `if __name__ == "__main__":` guard in the calling script (forkserver start).
    min_seconds: shorter inputs are skipped.
    tfds_data_dir: where prepared TFDS data sets are (default: $TFDS_DATA_DIR, else
      ~/tensorflow_datasets).
    summary: filled in with the counts when given (the CLI prints them).
  Returns:
    what meta.json says.
  Raises:
    PrepareError: bad arguments, an unusable source, a split left without any usable input, or
      with `strict`, an input that had to be skipped.
  """
  _check_arguments(out_dir, num_shards, workers, min_seconds)
  src = open_source(source, split=split, tfds_data_dir=tfds_data_dir)
  summary = Summary() if summary is None else summary
  loader = functools.partial(audio_io.load_clip, rate=SAMPLE_RATE,
                             min_samples=round(min_seconds * SAMPLE_RATE))
  infos = {}
  for s in src.splits:
    records = _records(s, src.labels, loader, workers or 1, strict, summary)
    infos[s.name] = _write_split(out_dir, s, records, num_shards)
  write_atomic(os.path.join(out_dir, REPORT), summary.report_tsv().encode("utf-8"))
  empty = [name for name, info in infos.items() if info.num_examples == 0]
  if empty:
    raise PrepareError(f"no usable input in split(s) {empty}: see {os.path.join(out_dir, REPORT)}")
  meta = DatasetMeta(splits=infos, labels=src.labels, source=src.description)
  write_meta(out_dir, meta)
  return meta


def _check_arguments(out_dir: str, num_shards: int | None, workers: int | None,
                     min_seconds: float) -> None:
  for name, value in (("--num-shards", num_shards), ("--workers", workers)):
    if value is not None and value < 1:
      raise PrepareError(f"{name} must be at least 1, got {value}")
  if min_seconds < 0:
    raise PrepareError(f"--min-seconds must not be negative, got {min_seconds}")
  if tf.io.gfile.exists(os.path.join(out_dir, "meta.json")):
    raise PrepareError(f"{out_dir} already holds a prepared data set (meta.json): remove it or"
                       " choose another --out")


def _write_split(out_dir: str, split: Split, records: Iterator[Record],
                 num_shards: int | None) -> SplitInfo:
  """Writes `records` round-robin into the split's shards; the count is fixed after a probe."""
  probe, complete = _take_probe(records)
  num_items = len(probe) if complete else split.size
  count = num_shards or default_num_shards(_estimated_hours(probe, num_items), num_items)
  with ShardedWriter(out_dir, split.name, count) as writer:
    for record, num_samples in itertools.chain(probe, records):
      writer.write(record, num_samples)
  return writer.info


def _take_probe(records: Iterator[Record]) -> tuple[list[Record], bool]:
  """The first PROBE_RECORDS records (fewer if they reach PROBE_SAMPLES); whether that is all."""
  probe, samples = [], 0
  for record in records:
    probe.append(record)
    samples += record[1]
    if len(probe) >= PROBE_RECORDS or samples >= PROBE_SAMPLES:
      return probe, False
  return probe, True


def _estimated_hours(probe: list[Record], num_items: int) -> float:
  """Hours of `num_items` utterances as long on average as those of `probe`."""
  mean = sum(n for _, n in probe) / max(1, len(probe))
  return mean * num_items / SAMPLE_RATE / 3600


def default_num_shards(hours: float, num_items: int) -> int:
  """ceil(hours), at least MIN_SHARDS, at most MAX_SHARDS, and no more shards than items."""
  return max(1, min(num_items, MAX_SHARDS, max(MIN_SHARDS, math.ceil(hours))))


def _records(split: Split, labels: dict[str, LabelSet], loader: Callable, workers: int,
             strict: bool, summary: Summary) -> Iterator[Record]:
  """Yields the records of the usable items of `split`, in order; counts every item."""
  for item, outcome in _outcomes(loader, _jobs(split.items), workers):
    summary.inputs += 1
    try:
      clip = _accepted(item, outcome, labels)
    except BadInput as problem:
      if strict:
        raise PrepareError(f"{item.path}: {problem} (--strict stops at the first input that"
                           " would be skipped)") from problem
      summary.skip(item.path, problem)
      continue
    summary.write(item.path, clip.fixes)
    yield encode_example(item.uid, clip.audio, item.labels, **item.text), len(clip.audio)


def _jobs(items: Iterable[Item]) -> Iterator[tuple[Item, tuple | BadInput]]:
  """Pairs each item with the loader's arguments, or with why it is unusable before decoding."""
  seen = set()
  for item in items:
    yield item, _loader_args(item, seen)


def _loader_args(item: Item, seen: set[str]) -> tuple | BadInput:
  """(payload, expected_frames) for `audio_io.load_clip`; marks `item.uid` as seen."""
  if item.problem:
    return item.problem
  if item.uid in seen:
    return BadInput("duplicate id", item.uid)
  seen.add(item.uid)
  try:
    payload = read_bytes(item.path) if item.payload is None else item.payload
  except BadInput as problem:
    return problem
  return payload, item.expected_frames


def _outcomes(fn: Callable, jobs: Iterable[tuple[Item, tuple | BadInput]],
              workers: int) -> Iterator[tuple[Item, Clip | BadInput]]:
  """Yields (item, fn(*args)) in the order of `jobs`, with `workers` processes.

  A job whose args is a `BadInput` yields it unchanged. At most IN_FLIGHT_PER_WORKER jobs per
  worker are pending at once, so memory stays bounded however long the source is.
  """
  if workers == 1:
    for item, args in jobs:
      yield item, args if isinstance(args, BadInput) else fn(*args)
    return
  # forkserver: workers do not inherit this process's TensorFlow threads.
  with multiprocessing.get_context("forkserver").Pool(workers) as pool:
    pending = collections.deque()
    for item, args in jobs:
      pending.append((item, args if isinstance(args, BadInput) else pool.apply_async(fn, args)))
      if len(pending) > IN_FLIGHT_PER_WORKER * workers:
        yield _resolved(*pending.popleft())
    while pending:
      yield _resolved(*pending.popleft())


def _resolved(item: Item, pending) -> tuple[Item, Clip | BadInput]:
  return item, pending if isinstance(pending, BadInput) else pending.get()


def _accepted(item: Item, outcome: Clip | BadInput, labels: dict[str, LabelSet]) -> Clip:
  """The clip, if it and the item's labels are usable; raises `BadInput` otherwise."""
  if isinstance(outcome, BadInput):
    raise outcome
  _check_labels(item.labels, labels, len(outcome.audio))
  return outcome


def _check_labels(values: dict, labels: dict[str, LabelSet], num_samples: int) -> None:
  """Each label stream must have num_samples // hop frames of ids in [0, num_classes)."""
  for name, frames in values.items():
    spec = labels[name]
    want = num_samples // spec.hop
    if len(frames) != want:
      raise BadInput("label length mismatch",
                     f"{name}: {len(frames)} frames, {num_samples} samples need {want}")
    if len(frames) and (frames.min() < 0 or frames.max() >= spec.num_classes):
      raise BadInput("label out of range", f"{name}: ids must be in [0, {spec.num_classes})")


def describe(meta: DatasetMeta, summary: Summary, out_dir: str) -> str:
  """The summary the CLI prints: one line per split, the counts, where the details are."""
  lines = [f"prepared {meta.source} into {out_dir}"]
  for name, info in meta.splits.items():
    lines.append(f"  {name}: {info.num_examples} utterances, {info.hours:.2f} h,"
                 f" {len(info.shards)} shards")
  lines.append(summary.counts())
  lines.append(f"fixes and skips: {os.path.join(out_dir, REPORT)}")
  return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--source", required=True,
                      help="audio folder, fairseq .tsv, LibriSpeech tree, synth dir or tfds:NAME")
  parser.add_argument("--out", required=True, help="output folder (local or gs://)")
  parser.add_argument("--strict", action="store_true",
                      help="fail on the first input that would be skipped")
  parser.add_argument("--num-shards", type=int, help="shards per split (default: from hours)")
  parser.add_argument("--split", help="name of the output split (one-split sources)")
  parser.add_argument("--workers", type=int, help="decoding processes (default: 1)")
  parser.add_argument("--min-seconds", type=float, default=0.1,
                      help="skip shorter inputs (default: 0.1)")
  parser.add_argument("--tfds-data-dir", help="where prepared TFDS data sets are")


def run(args: argparse.Namespace) -> int:
  summary = Summary()
  try:
    meta = prepare(args.source, args.out, strict=args.strict, num_shards=args.num_shards,
                   split=args.split, workers=args.workers, min_seconds=args.min_seconds,
                   tfds_data_dir=args.tfds_data_dir, summary=summary)
  except PrepareError as e:
    print(f"prepare: error: {e}", file=sys.stderr)
    if summary.inputs:
      print(summary.counts(), file=sys.stderr)
    return 1
  print(describe(meta, summary, args.out))
  return 0
