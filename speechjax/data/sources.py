"""Readers that list the utterances of a data source, one reader per kind of source.

`open_source(spec)` tells the kind from what `spec` is:

    tfds:NAME[:SPLIT]   a prepared TFDS data set (NAME may hold a config and version)
    DIR/synth.json      the built-in synthetic corpus (see speechjax/data/synth.py)
    DIR/*/*/*.trans.txt a LibriSpeech split folder; DIR/*/*/*/*.trans.txt: a folder of them
    FILE.tsv            a fairseq manifest, transcripts from a sibling .wrd or .ltr
    DIR                 any other folder: every audio file below it

Files are listed and read through `tf.io.gfile`, so local and GCS paths both work. Readers do not
decode audio files; an entry a reader cannot use becomes an `Item` with a `problem`, to be counted.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Iterable

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from speechjax.audio.io import BadInput, Waveform
from speechjax.data.records import LabelSet

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".m4a", ".aac", ".aif", ".aiff")
SPEAKER_FEATURES = ("speaker_id", "speaker")  # TFDS features read as the speaker, first found
_SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_TFDS_SPEC = re.compile(r"tfds:(?P<name>[^:]+(?::\d+\.\d+\.\d+)?)(?::(?P<split>.+))?")


class PrepareError(RuntimeError):
  """A source that cannot be prepared, or (with --strict) an input that had to be skipped."""


@dataclasses.dataclass
class Item:
  """One utterance to prepare."""
  uid: str
  path: str                                  # where the audio is; names the input in reports
  text: dict[str, str] = dataclasses.field(default_factory=dict)  # records.TEXT_FIELDS but id
  labels: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # name → [frames]
  expected_frames: int | None = None         # length the source lists, checked when decoded
  payload: bytes | Waveform | None = None    # audio already in memory; None: read `path`
  problem: BadInput | None = None            # why the source's entry is unusable


@dataclasses.dataclass
class Split:
  name: str
  size: int              # number of items, before any are skipped
  items: Iterable[Item]  # in a deterministic order; iterated once


@dataclasses.dataclass
class Source:
  description: str
  splits: list[Split]
  labels: dict[str, LabelSet] = dataclasses.field(default_factory=dict)


def open_source(spec: str, *, split: str | None = None,
                tfds_data_dir: str | None = None) -> Source:
  """Opens `spec` (see the module docstring); `split` renames a source's only split."""
  source = _open(spec, tfds_data_dir)
  if split is not None:
    if len(source.splits) != 1:
      names = [s.name for s in source.splits]
      raise PrepareError(f"--split renames the only split of a one-split source; {spec} has"
                         f" {names}")
    source.splits[0].name = split
  for s in source.splits:
    if not _SPLIT_NAME.fullmatch(s.name):
      raise PrepareError(f"split name {s.name!r} is not usable in file names (use --split)")
  return source


def _open(spec: str, tfds_data_dir: str | None) -> Source:
  if spec.startswith("tfds:"):
    return tfds_source(spec, tfds_data_dir)
  if tf.io.gfile.isdir(spec):
    if tf.io.gfile.exists(os.path.join(spec, "synth.json")):
      return synth_source(spec)
    if _librispeech_split_dirs(spec):
      return librispeech_source(spec)
    return folder_source(spec)
  if spec.endswith(".tsv") and tf.io.gfile.exists(spec):
    return manifest_source(spec)
  raise PrepareError(f"{spec!r} is not a folder, an existing .tsv manifest, nor tfds:NAME")


def read_bytes(path: str) -> bytes:
  """The contents of a local or GCS file; `BadInput("unreadable")` if it cannot be read."""
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      return f.read()
  except (tf.errors.OpError, OSError) as e:
    raise BadInput("unreadable", f"{type(e).__name__}: {getattr(e, 'message', e)}") from e


def _read_text(path: str) -> str:
  """A listing or transcript file of the source; the source is unusable if it cannot be read."""
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      return f.read().decode("utf-8")
  except (tf.errors.OpError, OSError, UnicodeDecodeError) as e:
    raise PrepareError(f"cannot read {path}: {getattr(e, 'message', e)}") from e


def _malformed(where: str, reason: str, detail: str) -> Item:
  """An entry of a listing that cannot be used; `where` ("file:line") names it."""
  return Item(uid=where, path=where, problem=BadInput(reason, detail))


def _stem(relpath: str) -> str:
  """Strips the extension: a/b.flac → a/b."""
  return os.path.splitext(relpath)[0]


# ---------------------------------------------------------------------------------------------
# A folder of audio files.


def folder_source(root: str, split: str = "train") -> Source:
  """Every audio file below `root` (recursive), sorted by path; id = path without extension."""
  relpaths = sorted(_audio_files(root))
  if not relpaths:
    raise PrepareError(f"no audio files ({' '.join(AUDIO_EXTENSIONS)}) found under {root}")
  items = [Item(uid=_stem(rel), path=os.path.join(root, rel)) for rel in relpaths]
  return Source(f"folder:{root}", [Split(split, len(items), items)])


def _audio_files(root: str) -> list[str]:
  """Paths relative to `root` of the files below it with an audio extension."""
  prefix = len(root.rstrip("/")) + 1
  return [os.path.join(d, f)[prefix:]
          for d, _, files in tf.io.gfile.walk(root)
          for f in files if f.lower().endswith(AUDIO_EXTENSIONS)]


# ---------------------------------------------------------------------------------------------
# fairseq manifest: first line the root folder, then "relpath<TAB>num_samples" lines.


def manifest_source(path: str) -> Source:
  """A fairseq manifest; the split is its stem; transcripts from `<stem>.wrd` or `<stem>.ltr`."""
  lines = _read_text(path).splitlines()
  if not lines:
    raise PrepareError(f"{path}: empty manifest (its first line must be the audio root folder)")
  root, entries = lines[0].strip(), lines[1:]
  transcripts = _manifest_transcripts(path, len(entries))
  items = [_manifest_item(root, f"{path}:{n}", line, text)
           for n, (line, text) in enumerate(zip(entries, transcripts), start=2)]
  split = _stem(os.path.basename(path))
  return Source(f"manifest:{path}", [Split(split, len(items), items)])


def _manifest_item(root: str, where: str, line: str, transcript: str) -> Item:
  """One manifest line; `where` ("file:line") names it when the line is malformed."""
  fields = line.split("\t")
  if len(fields) != 2 or not fields[1].strip().isdigit():
    return _malformed(where, "bad manifest line", f"expected relpath<TAB>num_samples: {line!r}")
  rel = fields[0]
  return Item(uid=_stem(rel), path=os.path.join(root, rel), text={"transcript": transcript},
              expected_frames=int(fields[1]))


def _manifest_transcripts(manifest: str, count: int) -> list[str]:
  """One transcript per manifest entry from the sibling .wrd (words) or .ltr (letters) file."""
  stem = _stem(manifest)
  for ext, to_words in ((".wrd", str.strip), (".ltr", _letters_to_words)):
    if tf.io.gfile.exists(stem + ext):
      lines = _read_text(stem + ext).splitlines()
      if len(lines) != count:
        raise PrepareError(f"{stem + ext} has {len(lines)} lines, {manifest} has {count} entries")
      return [to_words(line) for line in lines]
  return [""] * count


def _letters_to_words(line: str) -> str:
  """fairseq letter targets "H I | T H E R E |" → "HI THERE"."""
  return " ".join(line.replace(" ", "").replace("|", " ").split())


# ---------------------------------------------------------------------------------------------
# LibriSpeech: <split>/<speaker>/<chapter>/<speaker>-<chapter>-<n>.flac, and the transcripts in
# <split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt as "<id> <TEXT>" lines.


def librispeech_source(root: str) -> Source:
  """One LibriSpeech split folder, or a folder of them; split = the split folder's name."""
  splits = [_librispeech_split(d) for d in _librispeech_split_dirs(root)]
  return Source(f"librispeech:{root}", splits)


def _librispeech_split_dirs(root: str) -> list[str]:
  """`[root]` if root is a split folder, else its split subfolders; [] if not LibriSpeech."""
  if tf.io.gfile.glob(os.path.join(root, "*", "*", "*.trans.txt")):
    return [root.rstrip("/")]
  found = tf.io.gfile.glob(os.path.join(root, "*", "*", "*", "*.trans.txt"))
  return sorted({os.path.dirname(os.path.dirname(os.path.dirname(f))) for f in found})


def _librispeech_split(split_dir: str) -> Split:
  """Every utterance that has a transcript line or a .flac file (or both), sorted by id."""
  transcripts = {}
  for trans in tf.io.gfile.glob(os.path.join(split_dir, "*", "*", "*.trans.txt")):
    for line in _read_text(trans).splitlines():
      uid, _, text = line.strip().partition(" ")
      transcripts[uid] = (os.path.dirname(trans), text.strip())
  audio = {_stem(os.path.basename(f)): f
           for f in tf.io.gfile.glob(os.path.join(split_dir, "*", "*", "*.flac"))}
  items = []
  for uid in sorted(set(transcripts) | set(audio)):
    folder, text = transcripts.get(uid, (None, ""))
    path = audio.get(uid) or os.path.join(folder, uid + ".flac")
    speaker = uid.split("-")[0]
    items.append(Item(uid=uid, path=path,
                      text={"transcript": text, "speaker": speaker, "language": "en"}))
  return Split(os.path.basename(split_dir), len(items), items)


# ---------------------------------------------------------------------------------------------
# The synthetic corpus written by `speechjax synth`.

SYNTH_LABELS = {"phone_10ms": ("align_10ms", 100), "phone_20ms": ("align_20ms", 50)}
_SYNTH_KEYS = ("id", "path", "num_samples", "transcript", "phones", "speaker", "language",
               "align_10ms", "align_20ms")


def synth_source(root: str) -> Source:
  """Both splits of a synthetic corpus, with phone labels at 10 ms and 20 ms."""
  info = _synth_info(root)
  phones = info["phones"]
  labels = {name: LabelSet(frame_rate=rate, num_classes=len(phones), vocab=list(phones))
            for name, (_, rate) in SYNTH_LABELS.items()}
  splits = []
  for name in info["splits"]:
    jsonl = os.path.join(root, f"{name}.jsonl")
    items = [_synth_item(root, f"{jsonl}:{n}", line)
             for n, line in enumerate(_read_text(jsonl).splitlines(), start=1)]
    splits.append(Split(name, len(items), items))
  return Source(f"synth:{root}", splits, labels)


def _synth_info(root: str) -> dict:
  path = os.path.join(root, "synth.json")
  try:
    info = json.loads(_read_text(path))
  except json.JSONDecodeError as e:
    raise PrepareError(f"{path}: not valid JSON ({e})") from e
  if info.get("version") != 1:
    raise PrepareError(f"{path}: version {info.get('version')!r} is not supported (expected 1)")
  if not info.get("phones") or not info.get("splits"):
    raise PrepareError(f"{path}: needs a non-empty 'phones' list and 'splits'")
  return info


def _synth_item(root: str, where: str, line: str) -> Item:
  """One jsonl line; `where` ("file:line") names it when the line is malformed."""
  try:
    entry = json.loads(line)
  except json.JSONDecodeError as e:
    return _malformed(where, "bad jsonl line", f"not JSON: {e}")
  if not isinstance(entry, dict) or not all(k in entry for k in _SYNTH_KEYS):
    return _malformed(where, "bad jsonl line", f"needs the keys {', '.join(_SYNTH_KEYS)}")
  text = {"transcript": entry["transcript"], "phones": " ".join(entry["phones"]),
          "speaker": entry["speaker"], "language": entry["language"]}
  labels = {name: np.asarray(entry[key], np.int64) for name, (key, _) in SYNTH_LABELS.items()}
  return Item(uid=entry["id"], path=os.path.join(root, entry["path"]), text=text, labels=labels,
              expected_frames=entry["num_samples"])


# ---------------------------------------------------------------------------------------------
# A TFDS data set that is already prepared under the TFDS data dir (never downloaded here).


def tfds_source(spec: str, data_dir: str | None) -> Source:
  """`tfds:NAME[:SPLIT]`: the first Audio feature, the first Text feature as transcript."""
  match = _TFDS_SPEC.fullmatch(spec)
  if not match:
    raise PrepareError(f"{spec!r}: expected tfds:NAME[/CONFIG][:VERSION][:SPLIT]")
  builder = _tfds_builder(match["name"], data_dir)
  features = builder.info.features
  audio_key = _first_feature(features, tfds.features.Audio)
  if audio_key is None:
    raise PrepareError(f"{spec}: the data set has no Audio feature")
  rate = features[audio_key].sample_rate
  if not rate:
    raise PrepareError(f"{spec}: Audio feature {audio_key!r} does not say its sample_rate")
  names = [match["split"]] if match["split"] else sorted(builder.info.splits.keys())
  splits = []
  for name in names:
    try:
      size = builder.info.splits[name].num_examples
    except ValueError as e:  # unknown split, or a bad slice like "train[:x]"
      raise PrepareError(f"{spec}: {e}") from e
    out_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")
    splits.append(Split(out_name, size, _tfds_items(builder, name, out_name, audio_key, rate)))
  return Source(f"tfds:{match['name']}", splits)


def _tfds_builder(name: str, data_dir: str | None):
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise PrepareError(f"TFDS data set {name!r} not found in {data_dir or 'the TFDS data dir'}"
                       " (set --tfds-data-dir or TFDS_DATA_DIR)") from e
  if not builder.is_prepared():
    raise PrepareError(f"TFDS data set {name!r} is not prepared in {builder.data_dir}; build it"
                       " first (e.g. `tfds build`): prepare never downloads")
  return builder


def _first_feature(features, kind) -> str | None:
  return next((key for key, feature in features.items() if isinstance(feature, kind)), None)


def _tfds_items(builder, split: str, out_name: str, audio_key: str, rate: int):
  """Yields the split's examples in file order as Items holding their audio."""
  features = builder.info.features
  text_key = _first_feature(features, tfds.features.Text)
  speaker_key = next((k for k in SPEAKER_FEATURES if k in features), None)
  dataset = builder.as_dataset(split=split, shuffle_files=False)
  for n, example in enumerate(tfds.as_numpy(dataset)):
    uid = _as_str(example["id"]) if "id" in features else f"{out_name}-{n:08d}"
    text = {"transcript": _as_str(example[text_key]) if text_key else "",
            "speaker": _as_str(example[speaker_key]) if speaker_key else ""}
    yield Item(uid=uid, path=f"tfds:{builder.name}/{split}/{uid}", text=text,
               payload=_tfds_audio(example[audio_key], rate))


def _tfds_audio(value, rate: int) -> bytes | Waveform:
  """An Audio feature's value: encoded bytes (lazy_decode) or samples; integers are 16-bit PCM."""
  if isinstance(value, bytes):
    return value
  samples = value.reshape(len(value), -1)
  if np.issubdtype(samples.dtype, np.integer):
    return Waveform((samples / 32768.0).astype(np.float32), rate)
  return Waveform(samples.astype(np.float32), rate)


def _as_str(value) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)

