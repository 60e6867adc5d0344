"""The built-in synthetic speech corpus: eSpeak NG voices reading random sentences.

`speechjax synth --size tiny --seed 7 --out DIR` (or `generate(DIR, "tiny", 7)`) writes

    DIR/synth.json        what is in it (written last: its presence means the corpus is complete)
    DIR/<split>.jsonl     one utterance per line, in id order (split in train, test)
    DIR/<split>/<id>.wav  16 kHz mono PCM_16

Each jsonl line: {"id", "path" (relative to DIR), "num_samples", "transcript", "phones" (phone
symbols in order, no silences), "align_10ms", "align_20ms" (phone id per 10 / 20 ms frame; frame i
covers samples [i*hop, (i+1)*hop) and carries the phone active at its centre), "speaker",
"language"}. Phone ids index `synth.json["phones"]`; id 0 is "sil" (before the first phone, after
the last one, and in pauses). Phone symbols are eSpeak mnemonics without stress marks.

Sentences (`text`): "zipf" (default) draws words from `wordfreq` word lists with frequency-proportional
(Zipf-like) sampling, with no syntax; "grammar" draws from a small grammar per language
(`speechjax.data.grammar`: agreement, word order, ~90 words), for text LMs (Speech-LLaMA).
A speaker is an eSpeak voice variant with its own base pitch, pitch range and rate; the test split
uses voice variants that no train speaker uses. All randomness comes from `seed` and the utterance
index, and every eSpeak call starts from a freshly loaded library, so the files are byte-identical
whatever the number of worker processes.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import glob
import json
import logging
import math
import multiprocessing
import os
import sys
import tempfile
import time

import numpy as np
import scipy.signal
import soundfile
import wordfreq

from speechjax.data import espeak, grammar

# Equal to records.SAMPLE_RATE; not imported from there, so that worker processes do not load
# TensorFlow.
SAMPLE_RATE = 16000
VERSION = 1
TEXTS = ("zipf", "grammar")
_IDENTITY_DEFAULTS = {"text": "zipf"}   # identity fields added after corpora were written without them
SPLITS = ("train", "test")
SILENCE = "sil"
HOPS = {"align_10ms": 160, "align_20ms": 320}  # samples per label frame at 16 kHz

# Voice variants (espeak-ng-data/voices/!v) that sound like one plain human voice: no echo,
# robot, whisper or novelty voices.
VOICE_VARIANTS = (
    "Alex", "Andrea", "Andy", "Annie", "Denis", "Diogo", "Gene", "Gene2", "Henrique", "Hugo",
    "Mario", "Michael", "Mike", "Nguyen", "adam", "anika", "antonio", "aunty", "belinda",
    "benjamin", "boris", "david", "ed", "edward", "edward2", "f1", "f2", "f3", "f4", "f5",
    "gustave", "iven", "klatt", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6", "linda", "m1",
    "m2", "m3", "m4", "m5", "m6", "m7", "m8", "marcelo", "max", "michel", "miguel", "paul",
    "pedro", "quincy", "rob", "robert", "sandro", "steph", "travis", "victor")

# Mean utterance length (seconds, including padding) measured on the default settings; used to
# turn a size's target duration into an utterance count.
MEAN_UTTERANCE_SECONDS = 2.85
TEST_FRACTION = 0.1
UTTERANCES_PER_WORKER = 100  # at least, when the number of workers is not given


@dataclasses.dataclass(frozen=True)
class Size:
  seconds: float       # target total duration
  train_speakers: int
  test_speakers: int
  test_variants: int   # voice variants reserved for the test split


SIZES = {
    "micro": Size(seconds=57, train_speakers=4, test_speakers=2, test_variants=2),  # for tests
    "tiny": Size(seconds=600, train_speakers=12, test_speakers=4, test_variants=4),
    "small": Size(seconds=7200, train_speakers=40, test_speakers=8, test_variants=8),
    "medium": Size(seconds=28800, train_speakers=80, test_speakers=12, test_variants=10),  # 4 × small
    "large": Size(seconds=72000, train_speakers=120, test_speakers=16, test_variants=12),
}

# Words and sentences.
TOP_WORDS = 5000
MIN_WORDS, MAX_WORDS = 4, 14
_SINGLE_LETTER_WORDS = {"en": ("a", "i")}
_LATIN_VOWELS = set("aeiouy")

# Random streams: each draw uses np.random.default_rng((seed, stream, ...)).
_VOICES, _SPEAKER, _UTTERANCE, _NOISE = 0, 1, 2, 3

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Speaker:
  name: str
  variant: str       # eSpeak voice variant
  language: str
  pitch: int         # eSpeak base pitch, 0..100
  pitch_range: int   # eSpeak pitch range, 0..100
  rate: int          # words per minute


@dataclasses.dataclass(frozen=True)
class Utterance:
  """Everything needed to render one utterance; fixed before any synthesis."""
  uid: str
  split: str
  text: str           # what eSpeak reads (with punctuation)
  transcript: str     # lower-case words separated by spaces
  speaker: Speaker
  rate: int
  pitch: int
  pad: tuple[int, int]     # silence before / after the speech, samples at 16 kHz
  peak: float              # peak amplitude of the speech in [0, 1]
  noise_snr_db: float | None
  noise_color: str         # "white" or "pink"
  noise_seed: tuple[int, ...]
  espeak_seed: int         # eSpeak's own random source (breath noise)


@dataclasses.dataclass(frozen=True)
class Rendered:
  """What a worker reports about an utterance it wrote."""
  num_samples: int
  phones: list[str]                   # phone symbols in order, no silences
  boundaries: list[tuple[int, str]]   # (first sample, phone or "sil"), in time order


# ----------------------------------------------------------------------------- arguments


def _check_arguments(size: str, seed: int, languages, workers, noise_snr_db,
                     text: str = "zipf") -> tuple[str, ...]:
  """Validates the arguments of `generate`; returns `languages` as a tuple."""
  if size not in SIZES:
    raise ValueError(f"size: unknown size {size!r}; expected one of {sorted(SIZES)}")
  if not isinstance(seed, int) or seed < 0:
    raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
  languages = tuple(languages)
  supported = sorted(set(wordfreq.available_languages()) & set(espeak.languages()))
  unknown = [lang for lang in languages if lang not in supported]
  if not languages or unknown:
    raise ValueError(f"languages: unsupported {unknown or languages!r}; supported (wordfreq word "
                     f"lists and eSpeak NG dictionaries): {supported}")
  if text not in TEXTS:
    raise ValueError(f"text: unknown {text!r}; expected one of {TEXTS}")
  if text == "grammar" and set(languages) - set(grammar.LANGUAGES):
    raise ValueError(f"languages: no grammar for {sorted(set(languages) - set(grammar.LANGUAGES))}; "
                     f"grammars exist for {list(grammar.LANGUAGES)}")
  if len(set(languages)) != len(languages):
    raise ValueError(f"languages: duplicates in {languages!r}")
  if workers is not None and (not isinstance(workers, int) or workers < 1):
    raise ValueError(f"workers: expected a positive integer or None, got {workers!r}")
  if noise_snr_db is not None and not math.isfinite(noise_snr_db):
    raise ValueError(f"noise_snr_db: expected a finite number or None, got {noise_snr_db!r}")
  return languages


def _identity(size: str, seed: int, noise_snr_db, languages, text: str) -> dict:
  """The fields of synth.json that decide whether an existing corpus can be reused."""
  return {"version": VERSION, "size": size, "seed": seed, "noise_snr_db": noise_snr_db,
          "languages": list(languages), "text": text}


# ----------------------------------------------------------------------------- text


def _speakable(word: str, language: str) -> bool:
  """False for words eSpeak would spell letter by letter (digits, symbols, abbreviations)."""
  if not word.isalpha():
    return False
  if len(word) == 1:
    return word in _SINGLE_LETTER_WORDS.get(language, ())
  return not word.isascii() or bool(_LATIN_VOWELS & set(word))


@functools.cache
def _lexicon(language: str) -> tuple[list[str], np.ndarray]:
  """The `TOP_WORDS` most frequent speakable words and their probabilities, [W]."""
  words = [w for w in wordfreq.top_n_list(language, TOP_WORDS) if _speakable(w, language)]
  freqs = np.array([wordfreq.word_frequency(w, language) for w in words])
  return words, freqs / freqs.sum()


def _sentence(rng: np.random.Generator, language: str) -> tuple[str, str]:
  """Draws a sentence; returns (text to speak, transcript)."""
  words, probs = _lexicon(language)
  count = int(rng.integers(MIN_WORDS, MAX_WORDS + 1))
  chosen = [words[i] for i in rng.choice(len(words), size=count, p=probs)]
  spoken = list(chosen)
  if count >= 6 and rng.random() < 0.3:
    spoken[int(rng.integers(2, count - 2))] += ","
  text = " ".join(spoken)
  text = text[0].upper() + text[1:] + ("?" if rng.random() < 0.15 else ".")
  return text, " ".join(chosen)


# ----------------------------------------------------------------------------- plan


def _voice_pool() -> list[str]:
  shipped = set(espeak.voice_variants())
  missing = [v for v in VOICE_VARIANTS if v not in shipped]
  if missing:
    log.warning("eSpeak data lacks voice variants %s; using the others", missing)
  return [v for v in VOICE_VARIANTS if v in shipped]


def _split_variants(size: Size, seed: int) -> dict[str, list[str]]:
  """Disjoint voice variants for the splits."""
  pool = _voice_pool()
  order = [pool[i] for i in np.random.default_rng((seed, _VOICES)).permutation(len(pool))]
  return {"train": order[size.test_variants:], "test": order[:size.test_variants]}


def _speakers(size: Size, seed: int, languages: tuple[str, ...]) -> dict[str, list[Speaker]]:
  """Speakers per split; a variant serves several speakers when there are more speakers."""
  variants = _split_variants(size, seed)
  counts = {"train": size.train_speakers, "test": size.test_speakers}
  speakers, number = {}, 0
  for split in SPLITS:
    speakers[split] = []
    for j in range(counts[split]):
      rng = np.random.default_rng((seed, _SPEAKER, number))
      speakers[split].append(Speaker(
          name=f"spk{number:03d}", variant=variants[split][j % len(variants[split])],
          language=languages[number % len(languages)], pitch=int(rng.integers(20, 81)),
          pitch_range=int(rng.integers(20, 81)), rate=int(rng.integers(140, 221))))
      number += 1
  return speakers


def _utterance(split: str, index: int, speaker: Speaker, seed: int,
               noise_snr_db: float | None, text_kind: str) -> Utterance:
  rng = np.random.default_rng((seed, _UTTERANCE, SPLITS.index(split), index))
  draw = grammar.sentence if text_kind == "grammar" else _sentence
  text, transcript = draw(rng, speaker.language)
  return Utterance(
      uid=f"{split}-{index:06d}", split=split, text=text, transcript=transcript, speaker=speaker,
      rate=int(round(speaker.rate * rng.uniform(0.92, 1.08))),
      pitch=int(np.clip(speaker.pitch + rng.integers(-5, 6), 0, 100)),
      pad=(int(rng.integers(1600, 6401)), int(rng.integers(1600, 6401))),
      peak=float(rng.uniform(0.3, 0.9)), noise_snr_db=noise_snr_db,
      noise_color=str(rng.choice(["white", "pink"])),
      noise_seed=(seed, _NOISE, SPLITS.index(split), index), espeak_seed=int(rng.integers(2 ** 31)))


def plan(size: str, seed: int, languages: tuple[str, ...] = ("en",),
         noise_snr_db: float | None = None, text: str = "zipf") -> list[Utterance]:
  """All utterances of a corpus, train then test, in id order."""
  preset = SIZES[size]
  total = max(round(preset.seconds / MEAN_UTTERANCE_SECONDS), 2 * preset.test_speakers)
  num_test = max(round(total * TEST_FRACTION), preset.test_speakers)
  counts = {"train": total - num_test, "test": num_test}
  speakers = _speakers(preset, seed, languages)
  return [_utterance(split, i, speakers[split][i % len(speakers[split])], seed, noise_snr_db, text)
          for split in SPLITS for i in range(counts[split])]


# ----------------------------------------------------------------------------- rendering


def _is_pause(mnemonic: str) -> bool:
  return mnemonic.startswith("_")


def _phone_symbol(mnemonic: str) -> str:
  """eSpeak mnemonic without its stress mark ("'oU" → "oU")."""
  return mnemonic.lstrip("',") or mnemonic


def _resample(samples: np.ndarray, rate: int) -> np.ndarray:
  """[T] int16 at `rate` → [T'] float64 in [-1, 1] at 16 kHz."""
  g = math.gcd(SAMPLE_RATE, rate)
  return scipy.signal.resample_poly(samples / 32768.0, SAMPLE_RATE // g, rate // g)


def _noise(rng: np.random.Generator, length: int, color: str) -> np.ndarray:
  """Unit-variance white or pink (1/f power) noise, [length]."""
  white = rng.standard_normal(length)
  if color == "white":
    return white
  spectrum = np.fft.rfft(white)
  spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
  pink = np.fft.irfft(spectrum, length)
  return pink / pink.std()


def _boundaries(events: list[espeak.Event], rate: int, offset: int,
                end: int) -> list[tuple[int, str]]:
  """Phone / silence boundaries at 16 kHz from eSpeak phoneme and end events."""
  bounds = []
  for e in events:
    if e.kind == "word":
      continue
    pause = e.kind == "end" or _is_pause(e.name)
    sample = offset + round(e.sample * SAMPLE_RATE / rate)
    bounds.append((min(sample, end), SILENCE if pause else _phone_symbol(e.name)))
  return bounds + [(end, SILENCE)]


def _waveform(speech: np.ndarray, utt: Utterance) -> np.ndarray:
  """Scales, pads and adds noise to the speech; returns [T] int16."""
  speech = speech * (utt.peak / np.abs(speech).max())
  audio = np.concatenate([np.zeros(utt.pad[0]), speech, np.zeros(utt.pad[1])])
  if utt.noise_snr_db is not None:
    noise = _noise(np.random.default_rng(utt.noise_seed), len(audio), utt.noise_color)
    audio += noise * math.sqrt(np.mean(speech ** 2) / 10 ** (utt.noise_snr_db / 10))
  return np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)


def render(out_dir: str, utt: Utterance) -> Rendered | str:
  """Synthesises `utt` into `out_dir/<split>/<id>.wav`; returns its description or why not."""
  samples, events = espeak.synthesize(utt.text, f"{utt.speaker.language}+{utt.speaker.variant}",
                                      utt.rate, utt.pitch, utt.speaker.pitch_range,
                                      utt.espeak_seed)
  if not any(e.kind == "phoneme" and not _is_pause(e.name) for e in events):
    return f"{utt.uid}: eSpeak gave no phonemes for {utt.text!r}"
  if not np.any(samples):
    return f"{utt.uid}: eSpeak gave silent audio for {utt.text!r}"
  rate = espeak.native_sample_rate()
  speech = _resample(samples, rate)
  audio = _waveform(speech, utt)
  soundfile.write(os.path.join(out_dir, utt.split, f"{utt.uid}.wav"), audio, SAMPLE_RATE,
                  subtype="PCM_16", format="WAV")
  bounds = _boundaries(events, rate, utt.pad[0], utt.pad[0] + len(speech))
  return Rendered(num_samples=len(audio), boundaries=bounds,
                  phones=[p for _, p in bounds if p != SILENCE])


def _render_job(job: tuple[str, Utterance]) -> Rendered | str:
  return render(*job)


def _default_workers(num_utterances: int) -> int:
  """All cores, but no more processes than there is work for (starting one costs ~2 s)."""
  return max(1, min(os.cpu_count() or 1, num_utterances // UTTERANCES_PER_WORKER))


def _render_all(out_dir: str, utterances: list[Utterance], workers: int) -> list[Rendered | str]:
  """Renders in `workers` processes (in this one when 1); results in input order."""
  jobs = [(out_dir, u) for u in utterances]
  workers = min(workers, len(jobs))
  if workers <= 1:
    return [_render_job(j) for j in jobs]
  with multiprocessing.get_context("spawn").Pool(workers) as pool:
    return pool.map(_render_job, jobs, chunksize=max(1, len(jobs) // (8 * workers)))


# ----------------------------------------------------------------------------- labels


def frame_labels(boundaries: list[tuple[int, str]], num_samples: int, hop: int,
                 ids: dict[str, int]) -> list[int]:
  """Phone id active at the centre of each frame, [num_samples // hop]; "sil" before the first
  boundary."""
  starts = np.array([s for s, _ in boundaries])
  labels = np.array([ids[p] for _, p in boundaries])
  centres = np.arange(num_samples // hop) * hop + hop // 2
  index = np.searchsorted(starts, centres, side="right") - 1
  return np.where(index >= 0, labels[np.maximum(index, 0)], ids[SILENCE]).tolist()


def _record(utt: Utterance, rendered: Rendered, ids: dict[str, int]) -> dict:
  """The jsonl line of one utterance."""
  record = {"id": utt.uid, "path": f"{utt.split}/{utt.uid}.wav",
            "num_samples": rendered.num_samples, "transcript": utt.transcript,
            "phones": rendered.phones}
  for name, hop in HOPS.items():
    record[name] = frame_labels(rendered.boundaries, rendered.num_samples, hop, ids)
  record.update(speaker=utt.speaker.name, language=utt.speaker.language)
  return record


# ----------------------------------------------------------------------------- files


def _write_atomic(path: str, text: str) -> None:
  with open(path + ".tmp", "w", encoding="utf-8") as f:
    f.write(text)
  os.replace(path + ".tmp", path)


def is_generated(out_dir: str, size: str = "tiny", seed: int = 0,
                 noise_snr_db: float | None = None, languages=("en",), text: str = "zipf") -> bool:
  """Whether `out_dir` holds a complete corpus made with these arguments."""
  meta_path = os.path.join(out_dir, "synth.json")
  if not os.path.exists(meta_path):
    return False
  with open(meta_path, encoding="utf-8") as f:
    meta = json.load(f)
  identity = _identity(size, seed, noise_snr_db, languages, text)
  if any(meta.get(k, _IDENTITY_DEFAULTS.get(k)) != v for k, v in identity.items()):
    return False
  for split in SPLITS:
    lines_path = os.path.join(out_dir, f"{split}.jsonl")
    if not os.path.exists(lines_path):
      return False
    with open(lines_path, encoding="utf-8") as f:
      if not all(os.path.exists(os.path.join(out_dir, json.loads(line)["path"])) for line in f):
        return False
  return True


def _clear(out_dir: str) -> None:
  """Removes this module's files from an earlier (other or unfinished) corpus in `out_dir`."""
  patterns = ["synth.json", *(f"{s}.jsonl" for s in SPLITS), *(f"{s}/{s}-*.wav" for s in SPLITS)]
  for pattern in patterns:
    for path in glob.glob(os.path.join(glob.escape(out_dir), pattern)):
      os.remove(path)


def _write_corpus(out_dir: str, identity: dict, utterances: list[Utterance],
                  results: list[Rendered | str]) -> None:
  """Writes the jsonl files of the rendered utterances and, last, synth.json."""
  kept = [(u, r) for u, r in zip(utterances, results) if isinstance(r, Rendered)]
  phones = [SILENCE] + sorted({p for _, r in kept for p in r.phones})
  ids = {p: i for i, p in enumerate(phones)}
  splits = {}
  for split in SPLITS:
    records = [_record(u, r, ids) for u, r in kept if u.split == split]
    _write_atomic(os.path.join(out_dir, f"{split}.jsonl"),
                  "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    splits[split] = {
        "num_utterances": len(records),
        "num_samples": sum(r["num_samples"] for r in records),
        "speakers": sorted({r["speaker"] for r in records}),
        "dropped": sum(u.split == split for u in utterances) - len(records)}
  meta = {**identity, "sample_rate": SAMPLE_RATE, "phones": phones, "splits": splits,
          "speakers": {u.speaker.name: dataclasses.asdict(u.speaker) for u in utterances}}
  _write_atomic(os.path.join(out_dir, "synth.json"), json.dumps(meta, indent=2, sort_keys=True))


def generate(out_dir: str, size: str = "tiny", seed: int = 0, workers: int | None = None,
             noise_snr_db: float | None = None, languages=("en",), text: str = "zipf") -> str:
  """Writes the synthetic corpus to `out_dir` (see the module docstring); returns `out_dir`.

  Reuses a complete corpus made with the same (size, seed, noise_snr_db, languages, text).
  `workers` processes synthesise in parallel (default: all cores, at most one per
  `UTTERANCES_PER_WORKER` utterances); the output does not depend on it. `languages`: a sequence of language codes, e.g. ("en", "de"); `text`: "zipf" or "grammar" (module docstring).
  """
  out_dir = os.fspath(out_dir)
  languages = _check_arguments(size, seed, languages, workers, noise_snr_db, text)
  if is_generated(out_dir, size, seed, noise_snr_db, languages, text):
    log.info("reusing the synthetic corpus in %s", out_dir)
    return out_dir
  _clear(out_dir)
  for split in SPLITS:
    os.makedirs(os.path.join(out_dir, split), exist_ok=True)
  utterances = plan(size, seed, languages, noise_snr_db, text)
  results = _render_all(out_dir, utterances, workers or _default_workers(len(utterances)))
  problems = [r for r in results if isinstance(r, str)]
  if problems:
    log.warning("dropped %d of %d utterances, e.g. %s", len(problems), len(results), problems[:3])
  _write_corpus(out_dir, _identity(size, seed, noise_snr_db, languages, text), utterances, results)
  return out_dir


def summary(out_dir: str) -> dict:
  """Counts of a generated corpus: per split utterances, seconds, speakers; and phones."""
  with open(os.path.join(out_dir, "synth.json"), encoding="utf-8") as f:
    meta = json.load(f)
  splits = {name: {"utterances": s["num_utterances"], "seconds": s["num_samples"] / SAMPLE_RATE,
                   "speakers": len(s["speakers"]), "dropped": s["dropped"]}
            for name, s in ((n, meta["splits"][n]) for n in SPLITS)}
  return {"splits": splits, "seconds": sum(s["seconds"] for s in splits.values()),
          "phones": len(meta["phones"]) - 1}


def synthesis_speed(workers: int = 1, size: str = "micro", seed: int = 0) -> float:
  """Audio seconds generated per wall-clock second, measured on a fresh corpus in a temp dir."""
  with tempfile.TemporaryDirectory() as tmp:
    start = time.perf_counter()
    generate(tmp, size=size, seed=seed, workers=workers)
    return summary(tmp)["seconds"] / (time.perf_counter() - start)


# ----------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--out", required=True, help="output directory")
  parser.add_argument("--size", default="small", choices=["tiny", "small", "medium", "large"],
                      help="tiny ≈ 10 min, small ≈ 2 h, medium ≈ 8 h, large ≈ 20 h of audio")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--workers", type=int, default=None,
                      help="processes (default: all cores, if there is enough work)")
  parser.add_argument("--noise-snr", type=float, default=None, dest="noise_snr",
                      help="add white/pink noise at this SNR in dB (default: clean)")
  parser.add_argument("--languages", default="en", help="comma-separated, e.g. en,de")
  parser.add_argument("--text", default="zipf", choices=TEXTS,
                      help="zipf: frequency-weighted word draws; grammar: sentences with syntax "
                           f"(languages {','.join(grammar.LANGUAGES)})")


def run(args: argparse.Namespace) -> int:
  try:
    config = dict(size=args.size, seed=args.seed, noise_snr_db=args.noise_snr, text=args.text,
                  languages=_check_arguments(args.size, args.seed, args.languages.split(","),
                                             args.workers, args.noise_snr, args.text))
    reused = is_generated(args.out, **config)
    start = time.perf_counter()
    generate(args.out, workers=args.workers, **config)
  except ValueError as e:
    print(f"synth: {e}", file=sys.stderr)
    return 2
  wall = time.perf_counter() - start
  info = summary(args.out)
  print(f"synthetic corpus in {args.out} (size {args.size}, seed {args.seed}, text {args.text})")
  for name, s in info["splits"].items():
    print(f"  {name}: {s['utterances']} utterances, {s['seconds'] / 3600:.2f} h, "
          f"{s['speakers']} speakers, {s['dropped']} dropped")
  print(f"  total: {info['seconds'] / 60:.1f} min; phones: {info['phones']} + sil")
  if reused:
    print("  reused an existing corpus")
  else:
    print(f"  speed: {info['seconds'] / wall:.0f} audio-s per s ({wall:.1f} s wall)")
  return 0
