"""PNMI of k-means on every hidden state of a checkpoint, and on MFCC at 100 Hz and 50 Hz, over one split.

    python benchmarks/layer_pnmi.py --ckpt WORKDIR --data data/synth-small/records [--split test --k 100]

k-means is fitted on the split itself (all frames), so every row uses the same protocol; cluster quality is
measured against the split's 10 ms phone alignment (`speechjax.cluster.quality`). Prints one line per row.
"""
import argparse

import jax
import numpy as np

import speechjax
from speechjax.audio import features as audio_features
from speechjax.cluster import features, kmeans, quality


def pnmi(frames, phones, upsample, k):
  """frames: per-utterance [F, D] arrays → cluster quality of k-means(k) fitted on all of them."""
  x = np.concatenate(frames)
  labels = kmeans.assign(x, kmeans.fit(x, k, iters=30).centroids)
  return quality.cluster_quality(phones, np.split(labels, np.cumsum([len(f) for f in frames])[:-1]),
                                 upsample=upsample)


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--ckpt", required=True)
  parser.add_argument("--data", default="data/synth-small/records")
  parser.add_argument("--split", default="test")
  parser.add_argument("--k", type=int, default=100)
  args = parser.parse_args()
  config, model, params = speechjax.load(args.ckpt)

  @jax.jit
  def forward(audio, mask):
    out = model.apply({"params": params}, audio, mask, output_hidden_states=True)
    return out["hidden_states"], out["frame_mask"].sum(-1)

  utts = list(features.utterances(args.data, args.split, labels=("phone_10ms",)))
  phones = [u["labels/phone_10ms"] for u in utts]
  layers = [[] for _ in range(config.model.num_hidden_layers + 1)]
  mfcc = []
  for _, audio, lengths in features.padded_batches(iter(utts), 8, 32000):
    states, counts = forward(audio, np.arange(audio.shape[1])[None] < lengths[:, None])
    feats, mfcc_counts = audio_features.mfcc(audio, lengths)
    for row in range(len(lengths)):
      for layer, state in enumerate(states):
        layers[layer].append(np.asarray(state[row, :int(counts[row])]))
      mfcc.append(np.asarray(feats[row, :int(mfcc_counts[row])]))
  rows = [(f"hidden state {i}", frames, 2) for i, frames in enumerate(layers)]
  rows += [("MFCC 100 Hz", mfcc, 1), ("MFCC 50 Hz (every 2nd frame)", [f[::2] for f in mfcc], 2)]
  for name, frames, upsample in rows:
    q = pnmi(frames, phones, upsample, args.k)
    print(f"{name}: PNMI {q.pnmi:.3f}  phone purity {q.phone_purity:.3f}  "
          f"cluster purity {q.cluster_purity:.3f}", flush=True)


if __name__ == "__main__":
  main()
