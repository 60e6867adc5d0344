"""Tests for speechjax.audio.io: decoding, checks, downmix and resampling."""
import io

import numpy as np
import pytest
import soundfile as sf

from speechjax.audio import io as audio_io
from speechjax.audio.io import BadInput, Waveform


def _tone(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
  """[T] float32 sine."""
  t = np.arange(int(seconds * rate)) / rate
  return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _encode(samples: np.ndarray, rate: int, fmt: str = "WAV", subtype: str | None = None) -> bytes:
  buf = io.BytesIO()
  sf.write(buf, samples, rate, format=fmt, subtype=subtype)
  return buf.getvalue()


def _peak_hz(audio: np.ndarray, rate: int) -> float:
  spectrum = np.abs(np.fft.rfft(audio))
  return np.argmax(spectrum) * rate / len(audio)


def _reason(fn, *args, **kwargs) -> str:
  with pytest.raises(BadInput) as e:
    fn(*args, **kwargs)
  return e.value.reason


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("OGG", "VORBIS")])
def test_decode_reads_each_format(fmt, subtype):
  x = _tone(440, 0.25, 22050)
  wave = audio_io.decode(_encode(x, 22050, fmt, subtype))
  assert wave.sample_rate == 22050
  assert wave.samples.shape == (len(x), 1)
  assert wave.samples.dtype == np.float32
  assert np.abs(wave.samples[:, 0] - x).max() < (1e-3 if subtype == "PCM_16" else 0.1)


def test_decode_keeps_channels():
  x = np.stack([_tone(300, 0.1, 16000), _tone(500, 0.1, 16000)], axis=1)
  wave = audio_io.decode(_encode(x, 16000, "FLAC"))
  assert wave.samples.shape == (1600, 2)


def test_decode_empty_file():
  assert _reason(audio_io.decode, b"") == "empty file"


def test_decode_garbage_is_undecodable():
  assert _reason(audio_io.decode, b"this is not audio at all" * 20) == "undecodable"


@pytest.mark.parametrize("fmt", ["WAV", "FLAC"])
def test_decode_truncated_file(fmt):
  noise = np.random.default_rng(0).uniform(-0.5, 0.5, 16000).astype(np.float32)
  data = _encode(noise, 16000, fmt, "PCM_16")
  assert len(audio_io.decode(data).samples) == 16000
  assert _reason(audio_io.decode, data[:len(data) // 2]) == "truncated"


def test_decode_streamed_wav_with_unknown_length_is_not_truncated():
  data = bytearray(_encode(_tone(440, 0.1, 16000), 16000, "WAV", "PCM_16"))
  data[40:44] = (0xFFFFFFFF).to_bytes(4, "little")  # the data chunk size of a PCM_16 WAV
  assert len(audio_io.decode(bytes(data)).samples) == 1600


def test_decode_falls_back_to_librosa(monkeypatch):
  calls = []

  def fake_load(path, sr, mono):
    calls.append((sr, mono))
    return np.array([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]], np.float32), 22050

  monkeypatch.setattr(audio_io.librosa, "load", fake_load)
  wave = audio_io.decode(b"bytes libsndfile does not know" * 4)
  assert calls == [(None, False)]
  assert wave.sample_rate == 22050
  np.testing.assert_allclose(wave.samples, [[0.1, 0.3], [0.2, 0.2], [0.3, 0.1]])


@pytest.mark.parametrize("rate,freq", [(8000, 440.0), (44100, 1000.0)])
def test_conform_resamples_keeping_frequency(rate, freq):
  x = _tone(freq, 0.5, rate)
  clip = audio_io.conform(Waveform(x[:, None], rate), 16000)
  assert len(clip.audio) == int(np.ceil(len(x) * 16000 / rate))
  assert abs(_peak_hz(clip.audio, 16000) - freq) <= 2.0
  assert clip.fixes == {"resampled": f"{rate} Hz to 16000 Hz"}


def test_conform_downmixes_to_the_mean():
  left, right = _tone(300, 0.2, 16000), _tone(700, 0.2, 16000, amp=0.2)
  clip = audio_io.conform(Waveform(np.stack([left, right], axis=1), 16000), 16000)
  np.testing.assert_allclose(clip.audio, (left + right) / 2, atol=1e-7)
  assert list(clip.fixes) == ["downmixed"]


def test_conform_leaves_conforming_audio_alone():
  x = _tone(440, 0.2, 16000)
  clip = audio_io.conform(Waveform(x[:, None], 16000), 16000, min_samples=1600,
                          expected_frames=3200)
  np.testing.assert_array_equal(clip.audio, x)
  assert clip.fixes == {}


def test_conform_notes_clipping():
  clip = audio_io.conform(Waveform(np.array([[0.5], [1.5], [-2.0], [0.0]], np.float32), 16000),
                          16000)
  assert clip.fixes == {"clipped": "2 samples beyond full scale"}


@pytest.mark.parametrize("samples,kwargs,reason", [
    (np.zeros((0, 1), np.float32), {}, "zero-length audio"),
    (np.array([[0.1], [np.nan], [0.2]], np.float32), {}, "non-finite samples"),
    (np.array([[0.1], [np.inf], [0.2]], np.float32), {}, "non-finite samples"),
    (np.zeros((1599, 1), np.float32), {"min_samples": 1600}, "too short"),
    (np.zeros((1600, 1), np.float32), {"expected_frames": 1700}, "length mismatch"),
])
def test_conform_rejects(samples, kwargs, reason):
  assert _reason(audio_io.conform, Waveform(samples, 16000), 16000, **kwargs) == reason


def test_too_short_is_judged_after_resampling():
  wave = Waveform(np.zeros((900, 1), np.float32), 8000)  # 0.1125 s
  assert len(audio_io.conform(wave, 16000, min_samples=1600).audio) == 1800
  assert _reason(audio_io.conform, wave, 16000, min_samples=1900) == "too short"


def test_load_clip_returns_problems_instead_of_raising():
  problem = audio_io.load_clip(b"", None, rate=16000, min_samples=0)
  assert isinstance(problem, BadInput) and problem.reason == "empty file"
  clip = audio_io.load_clip(_encode(_tone(440, 0.1, 8000), 8000), 800, rate=16000, min_samples=0)
  assert len(clip.audio) == 1600 and "resampled" in clip.fixes


def test_bad_input_text():
  assert str(BadInput("too short", "0.05 s < 0.1 s")) == "too short (0.05 s < 0.1 s)"
  assert str(BadInput("empty file")) == "empty file"
