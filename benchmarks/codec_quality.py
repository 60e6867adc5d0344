"""Codec quality vs bitrate: a SoundStream checkpoint at several n_q, and Opus at the same bitrates.

    python benchmarks/codec_quality.py --ckpt /tmp/codec_tiny --data data/synth-small/records \
        --n_q 1 2 4 8 --utterances 40 --seconds 3

Utterances come from the data set's `test` split (held-out voices in the synthetic corpus), the first
`--seconds` of each. Per codec setting, the mean over utterances of: mel distance (mean L1 of log10 mel,
lower is better), SI-SDR (dB), wide-band PESQ (`pesq`, 1–4.5) and STOI (`pystoi`, 0–1). Opus rows use
`opuslib` (libopus, VoIP mode, 20 ms frames, CBR) at `--opus_kbps`; their bitrate is measured from the
packet sizes. libopus is not usable below about 6 kbps (at a 400 bps target it sends 1-byte packets that
decode to silence; at 3.2 kbps it clips), so its rows start at 6 kbps. Prints a Markdown table.
"""
from __future__ import annotations

import argparse

import numpy as np
from pesq import pesq
from pystoi import stoi

from speechjax.data import pipeline
from speechjax.eval.codec import Codec, mel_distance, si_sdr

RATE = 16000


def load_utterances(data: str, count: int, seconds: float) -> list[np.ndarray]:
  samples = int(seconds * RATE)
  data = pipeline.make_pipeline(data, "test", count, samples, min_sample_size=samples, shuffle_buffer=0,
                                random_crop=False, repeat=False)
  batch = next(iter(data))
  return [a for a, m in zip(batch["audio"], batch["audio_mask"]) if m.all()]


def scores(reference: np.ndarray, decoded: np.ndarray) -> dict:
  decoded = decoded[:len(reference)]
  return {"mel_distance": mel_distance(reference, decoded, RATE), "si_sdr": si_sdr(reference, decoded),
          "pesq": pesq(RATE, reference, decoded, "wb"), "stoi": stoi(reference, decoded, RATE)}


def opus_roundtrip(audio: np.ndarray, bitrate: int) -> tuple[np.ndarray, float]:
  """(decoded audio, measured bits per second) of libopus at a target `bitrate`."""
  import opuslib
  frame = RATE // 50
  encoder = opuslib.Encoder(RATE, 1, opuslib.APPLICATION_VOIP)
  encoder.bitrate, encoder.vbr = bitrate, 0
  decoder = opuslib.Decoder(RATE, 1)
  pcm = (np.clip(np.pad(audio, (0, -len(audio) % frame)), -1, 1) * 32767).astype("<i2")
  out, bits = [], 0
  for start in range(0, len(pcm), frame):
    packet = encoder.encode(pcm[start:start + frame].tobytes(), frame)
    bits += 8 * len(packet)
    out.append(np.frombuffer(decoder.decode(packet, frame), "<i2"))
  delay = encoder.lookahead
  decoded = np.concatenate(out + [np.zeros(delay, "<i2")])[delay:delay + len(audio)]
  return decoded.astype(np.float32) / 32768, bits / (len(pcm) / RATE)


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--ckpt", required=True)
  parser.add_argument("--data", default="data/synth-small/records")
  parser.add_argument("--n_q", type=int, nargs="+", default=[1, 2, 4, 8])
  parser.add_argument("--utterances", type=int, default=40)
  parser.add_argument("--seconds", type=float, default=3.0)
  parser.add_argument("--opus_kbps", type=float, nargs="*", default=[6, 8, 12])
  args = parser.parse_args()
  codec = Codec.load(args.ckpt)
  if codec.sample_rate != RATE:
    raise SystemExit(f"the checkpoint's codec runs at {codec.sample_rate} Hz; this benchmark is 16 kHz")
  utterances = load_utterances(args.data, args.utterances, args.seconds)
  batch = np.stack(utterances)
  rows = []
  for n_q in args.n_q:
    decoded = codec.decode(codec.encode(batch, n_q))
    rows.append((f"SoundStream n_q={n_q}", codec.bitrate(n_q), [scores(r, d) for r, d in zip(batch, decoded)]))
  try:
    import opuslib  # noqa: F401  pip install opuslib; needs the libopus shared library (apt libopus0)
  except (ImportError, OSError) as e:
    print(f"no Opus rows: {e}")
    args.opus_kbps = []
  for kbps in args.opus_kbps:
    results = [opus_roundtrip(r, int(kbps * 1000)) for r in batch]
    rows.append(("Opus", float(np.mean([b for _, b in results])),
                 [scores(r, d) for r, (d, _) in zip(batch, results)]))
  print(f"{len(batch)} test utterances x {args.seconds:g} s\n")
  print("| codec | kbps | mel distance ↓ | SI-SDR (dB) ↑ | PESQ-wb ↑ | STOI ↑ |")
  print("|---|---|---|---|---|---|")
  for name, bps, per_utt in rows:
    mean = {k: float(np.mean([s[k] for s in per_utt])) for k in per_utt[0]}
    print(f"| {name} | {bps / 1000:.2f} | {mean['mel_distance']:.3f} | {mean['si_sdr']:.2f} | "
          f"{mean['pesq']:.2f} | {mean['stoi']:.3f} |")


if __name__ == "__main__":
  main()
