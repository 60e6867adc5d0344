"""Audio file helpers: decode bytes, check the audio, downmix and resample it.

Only numpy, soundfile and librosa are used here (no TensorFlow), so that `load_clip` can run in
worker processes that start quickly.

Every way an input can be unusable is raised as `BadInput`, whose `reason` is a short category
that callers count ("too short") and whose `detail` says what was found ("0.050 s < 0.100 s").
"""
from __future__ import annotations

import dataclasses
import io
import tempfile
import warnings

import librosa
import numpy as np
import soundfile as sf

_UNKNOWN_WAV_SIZE = 0xFFFFFFFF  # data chunk size written by streaming encoders that cannot seek


class BadInput(ValueError):
  """An input that cannot be used: `reason` is its category, `detail` what was found."""

  def __init__(self, reason: str, detail: str = ""):
    super().__init__(reason, detail)
    self.reason, self.detail = reason, detail

  def __str__(self) -> str:
    return f"{self.reason} ({self.detail})" if self.detail else self.reason


@dataclasses.dataclass
class Waveform:
  """Decoded audio at its own rate. `samples`: [time, channels] float32, nominally in [-1, 1]."""
  samples: np.ndarray
  sample_rate: int


@dataclasses.dataclass
class Clip:
  """Audio ready for a record. `audio`: [time] float32 mono at the target rate.

  `fixes` maps what was changed to get there ("resampled", "downmixed", "clipped") to a detail.
  """
  audio: np.ndarray
  fixes: dict[str, str]


def decode(data: bytes) -> Waveform:
  """Decodes an audio file held in memory; soundfile first, librosa for what it cannot open."""
  if not data:
    raise BadInput("empty file", "0 bytes")
  try:
    sound = sf.SoundFile(io.BytesIO(data))
  except sf.LibsndfileError as e:
    return _decode_with_librosa(data, e.error_string)
  with sound:
    wave = Waveform(_read_all(sound), sound.samplerate)
  missing = _wav_missing_bytes(data)
  if missing:
    raise BadInput("truncated", f"the WAV header promises {missing} more bytes of audio")
  return wave


def _read_all(sound: sf.SoundFile) -> np.ndarray:
  """All frames of an open file, [time, channels]; a file that ends early is `truncated`."""
  declared = sound.frames
  try:
    samples = sound.read(dtype="float32", always_2d=True)
  except sf.LibsndfileError as e:
    raise BadInput("truncated", f"decoding stopped before {declared} frames: {e.error_string}")
  if len(samples) < declared:
    raise BadInput("truncated", f"decoded {len(samples)} of {declared} frames")
  return samples


def _wav_missing_bytes(data: bytes) -> int:
  """How many bytes a RIFF/WAVE data chunk declares beyond the end of `data` (0 if not WAV)."""
  if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
    return 0
  pos = 12
  while pos + 8 <= len(data):
    size = int.from_bytes(data[pos + 4:pos + 8], "little")
    if data[pos:pos + 4] == b"data":
      return 0 if size == _UNKNOWN_WAV_SIZE else max(0, size - (len(data) - pos - 8))
    pos += 8 + size + size % 2  # chunks are padded to an even size
  return 0


def _decode_with_librosa(data: bytes, soundfile_error: str) -> Waveform:
  """Decodes through librosa's audioread fallback, which needs a file on disk."""
  with tempfile.NamedTemporaryFile() as f:
    f.write(data)
    f.flush()
    try:
      with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns that soundfile failed, then deprecations
        samples, rate = librosa.load(f.name, sr=None, mono=False)
    except Exception as e:  # pylint: disable=broad-except  # any decoder failure means "unusable"
      detail = f"soundfile: {soundfile_error} librosa: {type(e).__name__}"
      raise BadInput("undecodable", detail) from e
  return Waveform(np.ascontiguousarray(np.atleast_2d(samples).T, np.float32), int(rate))


def conform(wave: Waveform, rate: int, *, min_samples: int = 0,
            expected_frames: int | None = None) -> Clip:
  """Checks `wave` and turns it into mono audio at `rate` Hz.

  Args:
    wave: decoded audio, [time, channels].
    rate: target sample rate.
    min_samples: shortest acceptable result, in samples at `rate`.
    expected_frames: length a listing promised (frames at the file's own rate), or None.
  Returns:
    the clip; its `fixes` say what was changed.
  Raises:
    BadInput: empty, non-finite, not the promised length, or too short.
  """
  _check(wave, expected_frames)
  fixes = {}
  audio = _downmix(wave.samples, fixes)
  audio = _resample(audio, wave.sample_rate, rate, fixes)
  if len(audio) < min_samples:
    raise BadInput("too short", f"{len(audio) / rate:.3f} s < {min_samples / rate:.3f} s")
  over = int(np.count_nonzero(np.abs(audio) > 1.0))
  if over:
    fixes["clipped"] = f"{over} samples beyond full scale"
  return Clip(audio, fixes)


def _check(wave: Waveform, expected_frames: int | None) -> None:
  """Raises `BadInput` for audio no fix can save. `wave.samples`: [time, channels]."""
  frames = len(wave.samples)
  if frames == 0:
    raise BadInput("zero-length audio", f"0 frames at {wave.sample_rate} Hz")
  bad = int(np.count_nonzero(~np.isfinite(wave.samples)))
  if bad:
    raise BadInput("non-finite samples", f"{bad} NaN/inf values")
  if expected_frames is not None and expected_frames != frames:
    raise BadInput("length mismatch", f"listed {expected_frames} frames, decoded {frames}")


def _downmix(samples: np.ndarray, fixes: dict[str, str]) -> np.ndarray:
  """[time, channels] → [time], the mean of the channels."""
  channels = samples.shape[1]
  if channels == 1:
    return samples[:, 0]
  fixes["downmixed"] = f"{channels} channels to mono"
  return samples.mean(axis=1, dtype=np.float32)


def _resample(audio: np.ndarray, rate: int, target: int, fixes: dict[str, str]) -> np.ndarray:
  """[time] at `rate` → [ceil(time * target / rate)] at `target`."""
  if rate == target:
    return audio
  fixes["resampled"] = f"{rate} Hz to {target} Hz"
  return librosa.resample(audio, orig_sr=rate, target_sr=target, res_type="soxr_hq")


def load_clip(payload: bytes | Waveform, expected_frames: int | None, *, rate: int,
              min_samples: int) -> Clip | BadInput:
  """`decode` (unless already decoded) then `conform`.

  Returns the `BadInput` instead of raising it, so that a process pool hands it back in order
  with the other results.
  """
  try:
    wave = payload if isinstance(payload, Waveform) else decode(payload)
    return conform(wave, rate, min_samples=min_samples, expected_frames=expected_frames)
  except BadInput as e:
    return e
