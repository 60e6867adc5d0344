"""Codec quality vs bitrate: a SoundStream checkpoint at several n_q, and Opus at the same bitrates.

    python benchmarks/codec_quality.py --ckpt /tmp/codec_tiny --data data/synth-small/records \
        --n_q 1 2 4 8 --utterances 40 --seconds 3

Utterances come from the data set's `test` split (held-out voices in the synthetic corpus), the first
`--seconds` of each. Per codec setting, the mean over utterances of: mel distance (mean L1 of log10 mel,
lower is better), SI-SDR (dB), wide-band PESQ (`pesq`, 1–4.5) and STOI (`pystoi`, 0–1). Opus rows use
libopus through PyAV (VoIP mode, 20 ms frames, CBR) at `--opus_kbps`; their bitrate is measured from the
packet sizes. libopus is not usable below about 6 kbps (at a 400 bps target it sends 1-byte packets that
decode to silence; at 3.2 kbps it clips), so its rows start at 6 kbps. Prints a Markdown table.
"""
from __future__ import annotations

import argparse

import numpy as np
from pesq import pesq
from pystoi import stoi

from speechjax.data import pipeline
from speechjax.eval.codec import load_codec, mel_distance, si_sdr

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
  """(decoded audio, measured bits per second) of libopus at a target `bitrate`: VoIP mode, 20 ms frames,
  CBR, through PyAV (whose wheels bundle libopus). The decoder runs at 48 kHz and drops Opus' pre-skip
  itself (checked: the round trip of a chirp has lag 0 at 8–24 kbps); its output is resampled to 16 kHz."""
  import av
  from scipy.signal import resample_poly
  encoder = av.CodecContext.create("libopus", "w")
  encoder.sample_rate, encoder.layout, encoder.format, encoder.bit_rate = RATE, "mono", "s16", bitrate
  encoder.options = {"application": "voip", "vbr": "off", "frame_duration": "20"}
  encoder.open()
  frame = encoder.frame_size
  pcm = (np.clip(np.pad(audio, (0, -len(audio) % frame)), -1, 1) * 32767).astype(np.int16)
  packets = []
  for start in range(0, len(pcm), frame):
    chunk = av.AudioFrame.from_ndarray(pcm[None, start:start + frame], format="s16", layout="mono")
    chunk.sample_rate, chunk.pts = RATE, start
    packets += encoder.encode(chunk)
  packets += encoder.encode(None)
  decoder = av.CodecContext.create("libopus", "r")
  decoder.extradata = encoder.extradata
  frames = [f for p in packets for f in decoder.decode(p)]
  decoded = np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float32) / 32768
  decoded = resample_poly(decoded, RATE, frames[0].sample_rate)[:len(audio)]
  return np.pad(decoded, (0, len(audio) - len(decoded))), sum(8 * p.size for p in packets) / (len(audio) / RATE)


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--ckpt", required=True)
  parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
  parser.add_argument("--data", default="data/synth-small/records")
  parser.add_argument("--n_q", type=int, nargs="+", default=[1, 2, 4, 8])
  parser.add_argument("--utterances", type=int, default=40)
  parser.add_argument("--seconds", type=float, default=3.0)
  parser.add_argument("--opus_kbps", type=float, nargs="*", default=[6, 8, 12])
  args = parser.parse_args()
  codec = load_codec(args.ckpt, args.step)
  if codec.sample_rate != RATE:
    raise SystemExit(f"the checkpoint's codec runs at {codec.sample_rate} Hz; this benchmark is 16 kHz")
  utterances = load_utterances(args.data, args.utterances, args.seconds)
  batch = np.stack(utterances)
  rows = []
  for n_q in args.n_q:
    decoded = codec.decode(codec.encode(batch, n_q))
    rows.append((f"SoundStream n_q={n_q}", codec.bitrate(n_q), [scores(r, d) for r, d in zip(batch, decoded)]))
  try:
    import av  # noqa: F401  in the codec extra
  except ImportError as e:
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
