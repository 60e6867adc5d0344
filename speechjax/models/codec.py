"""A trained SoundStream on one device: wav ↔ codes with jitted encode/decode.

    codec = Codec(config, model, params)     # e.g. from speechjax.load(workdir)
    codes = codec.encode(audio, n_q=4)       # audio [T] or [B, T] float at codec.sample_rate
    audio = codec.decode(codes)              # [F · hop] or [B, F · hop]

Audio is padded with zeros to a multiple of the hop; decoding returns the padded length.
`speechjax.eval.codec.load_codec(workdir)` loads one from a checkpoint.
"""
from __future__ import annotations

import functools

import jax
import numpy as np

from speechjax.models import soundstream


class Codec:
  """A trained SoundStream on one device, with jitted encode/decode."""

  def __init__(self, config, model, params):
    self.config, self.model = config, model
    self.variables = {"params": params["generator"], "vq_stats": params["vq_stats"]}
    self.sample_rate = config.model.sample_rate
    self.hop = soundstream.hop_length(config.model)

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
