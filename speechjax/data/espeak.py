"""eSpeak NG text-to-speech through ctypes, with per-phoneme timing.

Uses the shared library and the data directory shipped by the `espeakng-loader` wheel, so no
system package is needed. eSpeak NG keeps global state inside the library (synthesis position,
wave generator phase, pitch flutter, ...) that `espeak_Terminate` does not reset, so the same
request would give slightly different audio depending on what was spoken before; and it seeds
its random source (breath noise) from the clock. To make every call a pure function of its
arguments, `synthesize` loads the library, seeds it, speaks one text and unloads it again (about
1 ms). The library is not thread-safe; a lock serialises calls in a process.

    samples, events = synthesize("hello world", voice="en+f3", rate=175, pitch=50)
    # samples: [T] int16 at `native_sample_rate()` (22050 Hz)
    # events:  [Event(sample=264, kind="phoneme", name="h"), ...]
"""
from __future__ import annotations

import _ctypes
import ctypes
import dataclasses
import functools
import os
import threading

import espeakng_loader
import numpy as np

# Constants of espeak-ng/speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EE_OK = 0
_PARAMETERS = {"rate": 1, "pitch": 3, "pitch_range": 4}  # espeakRATE, espeakPITCH, espeakRANGE
_EVENT_KINDS = {1: "word", 5: "end", 7: "phoneme"}  # espeakEVENT_WORD, _END, _PHONEME
_EVENT_LIST_TERMINATED = 0


class _EventId(ctypes.Union):
  _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
  """`espeak_EVENT`. For phoneme events `id.string` holds the mnemonic (up to 8 bytes)."""
  _fields_ = [
      ("type", ctypes.c_int),
      ("unique_identifier", ctypes.c_uint),
      ("text_position", ctypes.c_int),
      ("length", ctypes.c_int),
      ("audio_position", ctypes.c_int),  # ms since the start of the message
      ("sample", ctypes.c_int),          # samples since the start of the message
      ("user_data", ctypes.c_void_p),
      ("id", _EventId),
  ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclasses.dataclass(frozen=True)
class Event:
  """Something that happens at `sample` (index into the returned samples)."""
  sample: int
  kind: str   # "phoneme", "word" (start of a word) or "end" (end of a sentence or clause)
  name: str   # eSpeak phoneme mnemonic for "phoneme" events ("_:" etc. are pauses), else ""


class _Collector:
  """Receives audio blocks and events from the synth callback of one `espeak_Synth` call."""

  def __init__(self):
    self.blocks: list[np.ndarray] = []
    self.events: list[Event] = []

  def __call__(self, wav, num_samples, events) -> int:
    if wav and num_samples > 0:
      self.blocks.append(np.ctypeslib.as_array(wav, (num_samples,)).copy())
    i = 0
    while events[i].type != _EVENT_LIST_TERMINATED:
      self._add_event(events[i])
      i += 1
    return 0  # continue synthesis

  def _add_event(self, event: _Event) -> None:
    kind = _EVENT_KINDS.get(event.type)
    if kind is None:
      return
    name = event.id.string.decode("utf-8", "replace") if kind == "phoneme" else ""
    self.events.append(Event(sample=event.sample, kind=kind, name=name))

  def samples(self) -> np.ndarray:
    """All audio received so far, [T] int16."""
    if not self.blocks:
      return np.zeros([0], np.int16)
    return np.concatenate(self.blocks).astype(np.int16)


_LOCK = threading.Lock()
_COLLECTOR: _Collector | None = None


@_SynthCallback
def _on_synth(wav, num_samples, events):
  return _COLLECTOR(wav, num_samples, events)


def data_path() -> str:
  """The espeak-ng-data directory of the installed `espeakng-loader` wheel."""
  return espeakng_loader.get_data_path()


def voice_variants() -> list[str]:
  """Names of the voice variants shipped in the data directory (usable as "en+<name>")."""
  return sorted(os.listdir(os.path.join(data_path(), "voices", "!v")))


def languages() -> list[str]:
  """Language codes that have a pronunciation dictionary in the data directory."""
  suffix = "_dict"
  return sorted(n[:-len(suffix)] for n in os.listdir(data_path()) if n.endswith(suffix))


# Argument types of the library functions used here (all return int or nothing).
_SIGNATURES = {
    "espeak_Initialize": [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int],
    "espeak_SetSynthCallback": [_SynthCallback],
    "espeak_SetVoiceByName": [ctypes.c_char_p],
    "espeak_SetParameter": [ctypes.c_int, ctypes.c_int, ctypes.c_int],
    "espeak_ng_SetRandSeed": [ctypes.c_long],
    "espeak_Synth": [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p],
    "espeak_Terminate": [],
}
_RANGES = {"rate": (80, 450), "pitch": (0, 100), "pitch_range": (0, 100)}


class _Library:
  """The loaded and initialised library; unloaded on exit so that no state survives."""

  def __enter__(self) -> "_Library":
    self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
    for name, argtypes in _SIGNATURES.items():
      getattr(self.lib, name).argtypes = argtypes
    self.sample_rate = self.lib.espeak_Initialize(
        _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path().encode(), _INITIALIZE_PHONEME_EVENTS)
    if self.sample_rate <= 0:
      self._unload()
      raise RuntimeError(f"espeak_Initialize failed with data directory {data_path()!r}")
    self.lib.espeak_SetSynthCallback(_on_synth)
    return self

  def __exit__(self, *exc) -> None:
    self.lib.espeak_Terminate()
    self._unload()

  def _unload(self) -> None:
    _ctypes.dlclose(self.lib._handle)  # pylint: disable=protected-access


def _check(code: int, what: str) -> None:
  if code != _EE_OK:
    raise ValueError(f"eSpeak NG rejected {what} (error {code})")


def _check_request(voice: str, settings: dict[str, int]) -> None:
  """Errors that eSpeak would not report: it ignores unknown variants and clamps values."""
  variant = voice.partition("+")[2]
  if variant and variant not in voice_variants():
    raise ValueError(f"voice {voice!r}: unknown variant {variant!r}; see voice_variants()")
  for name, value in settings.items():
    low, high = _RANGES[name]
    if not low <= value <= high:
      raise ValueError(f"{name}: {value} is outside [{low}, {high}]")


@functools.cache
def native_sample_rate() -> int:
  """The sample rate of the audio that `synthesize` returns."""
  with _LOCK, _Library() as engine:
    return engine.sample_rate


def synthesize(text: str, voice: str = "en", rate: int = 175, pitch: int = 50,
               pitch_range: int = 50, seed: int = 0) -> tuple[np.ndarray, list[Event]]:
  """Speaks `text`.

  Args:
    text: UTF-8 text; punctuation gives pauses.
    voice: eSpeak voice name, e.g. "en", "de" or "en+f3" (language + variant).
    rate: speaking rate in words per minute, 80..450.
    pitch: base pitch, 0..100 (50 = the voice's normal).
    pitch_range: pitch range, 0..100 (0 = monotone, 50 = normal).
    seed: seeds eSpeak's random source (breath noise of some voices), which eSpeak would
      otherwise seed from the clock.

  Returns:
    samples: [T] int16 at `native_sample_rate()`.
    events: phoneme / word / end events in time order, `sample` clipped to [0, T].
  """
  global _COLLECTOR
  settings = {"rate": int(rate), "pitch": int(pitch), "pitch_range": int(pitch_range)}
  _check_request(voice, settings)
  with _LOCK, _Library() as engine:
    _check(engine.lib.espeak_SetVoiceByName(voice.encode()), f"voice {voice!r}")
    for name, value in settings.items():
      _check(engine.lib.espeak_SetParameter(_PARAMETERS[name], value, 0), f"{name}={value}")
    engine.lib.espeak_ng_SetRandSeed(seed)
    _COLLECTOR = _Collector()
    data = text.encode("utf-8")
    _check(engine.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None,
                                   None), f"text {text!r}")
    samples, events = _COLLECTOR.samples(), _COLLECTOR.events
    _COLLECTOR = None
  return samples, [dataclasses.replace(e, sample=min(max(e.sample, 0), len(samples)))
                   for e in events]
