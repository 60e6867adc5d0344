"""`speechjax codec`: encode wav files to SoundStream codes and decode them back, from a codec checkpoint.

    speechjax codec encode --ckpt WORKDIR --n_q 8 in.wav codes.npy     # codes [frames, n_q] int32
    speechjax codec decode --ckpt WORKDIR codes.npy out.wav            # n_q = the codes' last dim

Both print the bitrate n_q · log2 N · frame rate. In Python:

    codec = load_codec(workdir)              # a speechjax.models.codec.Codec
    codes = codec.encode(audio, n_q=4)       # audio [T] or [B, T] float at codec.sample_rate
    audio = codec.decode(codes)              # [F · hop] or [B, F · hop]

Objective metrics for codec evaluation live here too: `si_sdr`, `mel_distance`.
"""
from __future__ import annotations

import numpy as np

from speechjax.audio import spectral
from speechjax.models.codec import Codec
from speechjax.tasks import pretrained


def load_codec(ckpt: str, step: int | None = None) -> Codec:
  """The codec of a SoundStream workdir (or its checkpoints/ directory) on one device."""
  return Codec(*pretrained.load_model(ckpt, step))


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
  """Scale-invariant SDR in dB of 1-D signals: 10·log10(‖αs‖² / ‖αs − ŝ‖²), α = ⟨ŝ, s⟩ / ‖s‖²."""
  reference, estimate = np.asarray(reference, np.float64), np.asarray(estimate, np.float64)
  target = reference * np.dot(estimate, reference) / max(np.dot(reference, reference), 1e-12)
  return float(10 * np.log10(max(np.dot(target, target), 1e-12) /
                             max(np.sum((target - estimate) ** 2), 1e-12)))


def mel_distance(reference: np.ndarray, estimate: np.ndarray, sample_rate: int,
                 windows=(512, 1024, 2048)) -> float:
  """Mean L1 distance of log10 mel spectrograms (64 bins, hop window / 4) over the windows (DAC-style)."""
  pair = np.stack([reference, estimate]).astype(np.float32)
  total = 0.0
  for window in windows:
    mels = np.log10(np.maximum(np.asarray(spectral.mel_spectrogram(pair, sample_rate, window)), 1e-5))
    total += float(np.abs(mels[0] - mels[1]).mean())
  return total / len(windows)


# --- CLI ----------------------------------------------------------------------------------------


def add_arguments(parser):
  parser.add_argument("action", choices=("encode", "decode"))
  parser.add_argument("input", help="encode: a wav (any rate, mono or not); decode: a .npy of codes")
  parser.add_argument("output", help="encode: the .npy of codes [frames, n_q]; decode: a wav")
  parser.add_argument("--ckpt", required=True, help="a codec workdir (or its checkpoints/ directory)")
  parser.add_argument("--n_q", type=int, default=0, help="encode: codebooks to use (0 = all)")
  parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")


def run(args) -> int:
  import soundfile as sf
  from speechjax.audio import io
  codec = load_codec(args.ckpt, args.step)
  if args.action == "encode":
    n_q = args.n_q or codec.config.model.num_quantizers
    with open(args.input, "rb") as f:
      audio = io.conform(io.decode(f.read()), codec.sample_rate).audio
    codes = codec.encode(audio, n_q)
    np.save(args.output, codes)
    seconds = len(audio) / codec.sample_rate
  else:
    codes = np.load(args.input)
    audio = codec.decode(codes)
    sf.write(args.output, audio, codec.sample_rate)
    seconds = len(audio) / codec.sample_rate
  n_q = codes.shape[-1]
  print(f"{args.action}d {seconds:.2f} s: {codes.shape[0]} frames x {n_q} codebooks, bitrate "
        f"{n_q} x log2({codec.config.model.codebook_size}) x {codec.sample_rate / codec.hop:g} Hz = "
        f"{codec.bitrate(n_q):.0f} bps")
  return 0
