"""`speechjax codec`: encode wav files to SoundStream codes and decode them back, from a codec checkpoint.

    speechjax codec encode --ckpt WORKDIR --n_q 8 in.wav codes.npy     # codes [frames, n_q] int32
    speechjax codec decode --ckpt WORKDIR codes.npy out.wav            # n_q = the codes' last dim

Both print the bitrate n_q · log2 N · frame rate. In Python:

    codec = Codec.load(workdir)
    codes = codec.encode(audio, n_q=4)       # audio [T] or [B, T] float at codec.sample_rate
    audio = codec.decode(codes)              # [F · hop] or [B, F · hop]

Audio is padded with zeros to a multiple of the hop; decoding returns the padded length.
Objective metrics for codec evaluation live here too: `si_sdr`, `mel_distance`.
"""
from __future__ import annotations

import functools

import jax
import numpy as np

from speechjax.audio import spectral
from speechjax.models import soundstream


class Codec:
  """A trained SoundStream on one device, with jitted encode/decode."""

  def __init__(self, config, model, params):
    self.config, self.model = config, model
    self.variables = {"params": params["generator"], "vq_stats": params["vq_stats"]}
    self.sample_rate = config.model.sample_rate
    self.hop = soundstream.hop_length(config.model)

  @classmethod
  def load(cls, ckpt: str, step: int | None = None) -> "Codec":
    from speechjax.train import checkpoint
    return cls(*checkpoint.load_model(ckpt, step))

  def bitrate(self, n_q: int) -> float:
    return soundstream.bitrate(self.config.model, n_q)

  @functools.partial(jax.jit, static_argnums=(0, 3))
  def _encode(self, variables, audio, n_q):
    return self.model.apply(variables, audio, n_q, method="encode")

  @functools.partial(jax.jit, static_argnums=0)
  def _decode(self, variables, codes):
    return self.model.apply(variables, codes, method="decode")

  def encode(self, audio: np.ndarray, n_q: int) -> np.ndarray:
    """audio [T] or [B, T] → codes [F, n_q] or [B, F, n_q] int32, F = ceil(T / hop)."""
    batch = np.atleast_2d(np.asarray(audio, np.float32))
    batch = np.pad(batch, ((0, 0), (0, -batch.shape[1] % self.hop)))
    codes = np.asarray(self._encode(self.variables, batch, n_q))
    return codes if np.ndim(audio) == 2 else codes[0]

  def decode(self, codes: np.ndarray) -> np.ndarray:
    """codes [F, n_q] or [B, F, n_q] → audio [F · hop] or [B, F · hop] float32."""
    batch = np.asarray(codes, np.int32)
    audio = np.asarray(self._decode(self.variables, batch if batch.ndim == 3 else batch[None]))
    return audio if batch.ndim == 3 else audio[0]


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
  codec = Codec.load(args.ckpt, args.step)
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
