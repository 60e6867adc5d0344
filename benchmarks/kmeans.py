"""k-means and MFCC speed of ours vs sklearn (fairseq settings), faiss, kaldi-native-fbank, librosa.

    python benchmarks/kmeans.py [--small] [--corpus data/synth-small] [--workdir DIR]
                                [--methods ours-lloyd,ours-warm,ours-minibatch,sklearn,faiss] [--no-mfcc]
                                [--cases a,b] [--lloyd-tol 1e-4] [--seed 0] [--restarts 1]
                                [--features FEATURE_DIR --features-k 100]

Prints a table of
  * MFCC extraction speed (audio seconds per second) on eSpeak speech from the synthetic corpus:
    ours (jitted JAX, batched and per utterance), kaldi-native-fbank, librosa (closest settings; not
    Kaldi-identical features);
  * k-means wall time (including JIT compilation) and final inertia (mean squared distance of a
    point to its nearest centroid, measured the same way for every method) for
    (a) N × 39 MFCC frames, K=100: real MFCCs of the corpus (frames at offsets 0 and 80 samples)
        when it has enough of them, else a Gaussian mixture; PNMI against the corpus' 10 ms phone
        alignments when real frames are used;
    (b) N × 768 Gaussian-mixture frames, K=500 (the shape of HuBERT layer features);
    (c) with --features: the train split of features dumped by `speechjax dump` or the HuBERT loop
        (e.g. a trained model's layer: `workdir/hubert_loop/iter3/features`), K = --features-k.
    Every method's first fit is timed from cold in-process caches (`jax.clear_caches()` before it), so
    one method's compiled programs do not shorten the next one's first fit; `--warm` times ours again.
    Methods: ours full-batch Lloyd, ours Lloyd warm-started on a 10% sample, ours mini-batch (fairseq's batch size and n_init), sklearn
    MiniBatchKMeans exactly as fairseq's learn_kmeans.py, faiss-cpu Kmeans (defaults; skipped when
    faiss is not installed).
If the corpus is missing, a micro corpus is synthesised into the workdir (MFCC speed only).
"""
import argparse
import dataclasses
import functools
import json
import os
import time

import jax
import numpy as np
import soundfile

from speechjax.audio import features
from speechjax.cluster import kmeans, quality
from speechjax.data import synth
from speechjax.train import allocator


@dataclasses.dataclass
class Case:
  name: str
  n: int
  dim: int
  k: int
  lloyd_iters: int
  minibatch_iters: int


FULL = (Case("a", 1_000_000, 39, 100, 100, 100), Case("b", 200_000, 768, 500, 20, 10))
SMALL = (Case("a", 100_000, 39, 100, 100, 100), Case("b", 20_000, 768, 100, 20, 10))
FAIRSEQ_MINIBATCH = dict(init="k-means++", max_iter=100, batch_size=10000, tol=0.0,
                         max_no_improvement=100, n_init=20, reassignment_ratio=0.0)
MFCC_SPEED_SECONDS = {"ours": 600.0, "kaldi-native-fbank": 120.0, "librosa": 60.0}
SEGMENT = 10 * features.SAMPLE_RATE   # batched MFCC: 10 s rows


def timed(fn):
  start = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - start


# ----------------------------------------------------------------------------- corpus


def load_corpus(corpus: str) -> list[tuple[np.ndarray, np.ndarray]]:
  """(audio [T] float32, phone ids per 10 ms [T // 160]) of every utterance, train then test."""
  utterances = []
  for split in synth.SPLITS:
    with open(os.path.join(corpus, f"{split}.jsonl"), encoding="utf-8") as f:
      for line in f:
        rec = json.loads(line)
        audio, _ = soundfile.read(os.path.join(corpus, rec["path"]), dtype="float32")
        utterances.append((audio, np.asarray(rec["align_10ms"])))
  return utterances


def first_seconds(utterances, seconds: float) -> list[np.ndarray]:
  """Audio of the first utterances adding up to about `seconds`."""
  out, total = [], 0.0
  for audio, _ in utterances:
    if total >= seconds:
      break
    out.append(audio)
    total += len(audio) / features.SAMPLE_RATE
  return out


# ----------------------------------------------------------------------------- MFCC speed


# Each extractor returns the number of samples it processed.


def ours_batched(audios) -> int:
  """10 s rows of the concatenated audio, 16 rows per call (one compiled shape)."""
  flat = np.concatenate(audios)
  batches = flat[:len(flat) // (16 * SEGMENT) * 16 * SEGMENT].reshape(-1, 16, SEGMENT)
  for batch in batches:
    np.asarray(features.mfcc(batch)[0])
  return batches.size


def ours_per_utterance(audios) -> int:
  for audio in audios:
    features.mfcc_utterance(audio)
  return sum(len(a) for a in audios)


def kaldi_native_fbank(audios) -> int:
  import kaldi_native_fbank as knf
  opts = knf.MfccOptions()
  opts.frame_opts.dither = 0.0
  opts.use_energy = False
  for audio in audios:
    extractor = knf.OnlineMfcc(opts)
    extractor.accept_waveform(features.SAMPLE_RATE, audio)
    extractor.input_finished()
    ceps = np.stack([extractor.get_frame(i) for i in range(extractor.num_frames_ready)])
    knf.compute_deltas(knf.DeltaOptions(order=2, window=2), ceps)
  return sum(len(a) for a in audios)


def librosa_mfcc(audios) -> int:
  import librosa
  for audio in audios:
    ceps = librosa.feature.mfcc(y=audio, sr=features.SAMPLE_RATE, n_mfcc=13, n_fft=512,
                                win_length=400, hop_length=160, n_mels=23, fmin=20, center=False)
    np.concatenate([ceps, librosa.feature.delta(ceps, width=5),
                    librosa.feature.delta(ceps, width=5, order=2)])
  return sum(len(a) for a in audios)


def mfcc_speed(utterances) -> list[dict]:
  """Audio-s/s of each extractor, timing a second run over the same audio (the first compiles,
  imports and warms caches)."""
  rows = []
  for name, fn, budget in (("ours, batched 16 × 10 s", ours_batched, "ours"),
                           ("ours, per utterance", ours_per_utterance, "ours"),
                           ("kaldi-native-fbank", kaldi_native_fbank, "kaldi-native-fbank"),
                           ("librosa (not Kaldi-identical)", librosa_mfcc, "librosa")):
    audios = first_seconds(utterances, MFCC_SPEED_SECONDS[budget])
    fn(audios)
    samples, seconds = timed(lambda: fn(audios))
    total = samples / features.SAMPLE_RATE
    rows.append({"mfcc": name, "audio_s": round(total), "audio_s_per_s": round(total / seconds, 1)})
  return rows


# ----------------------------------------------------------------------------- k-means data


def corpus_frames(utterances, n: int):
  """Up to n MFCC frames: every utterance at sample offsets 0 and 80 (half a hop). Also returns the
  offset-0 frames per utterance with their phone alignments, for PNMI."""
  aligned = [(features.mfcc_utterance(audio), phones) for audio, phones in utterances]
  shifted = [features.mfcc_utterance(audio[80:]) for audio, _ in utterances]
  frames = np.concatenate([f for f, _ in aligned] + shifted)
  return frames[np.random.default_rng(0).permutation(len(frames))[:n]], aligned


def mixture(n: int, dim: int, components: int, seed: int = 0) -> np.ndarray:
  """[n, dim] float32 from a Gaussian mixture with unequal weights and per-dimension spreads."""
  rng = np.random.default_rng(seed)
  means = rng.normal(size=(components, dim)) * 3.0
  spreads = rng.uniform(0.5, 2.0, size=(components, dim))
  z = rng.choice(components, n, p=rng.dirichlet(np.ones(components)))
  out = np.empty((n, dim), np.float32)
  for start in range(0, n, 100_000):
    part = z[start:start + 100_000]
    out[start:start + len(part)] = means[part] + rng.normal(size=(len(part), dim)) * spreads[part]
  return out


def mean_sq_distance(data: np.ndarray, centroids: np.ndarray) -> float:
  labels = kmeans.assign(data, centroids)
  total = 0.0
  for start in range(0, len(data), 100_000):
    diff = data[start:start + 100_000] - centroids[labels[start:start + 100_000]]
    total += float(np.sum(diff.astype(np.float64) ** 2))
  return total / len(data)


# ----------------------------------------------------------------------------- k-means methods


def ours_lloyd(data, case, tol: float, seed: int):
  """tol: stop when a pass improves the inertia by at most tol (relative)."""
  return kmeans.fit(data, case.k, iters=case.lloyd_iters, seed=seed, tol=tol).centroids


def ours_warm_start(data, case, tol: float, seed: int):
  """init="sample-lloyd" on a 10% uniform sample (k-means++, then Lloyd on the sample to tol 1e-4),
  then Lloyd passes over all the data (faiss-style subsample training, refined on everything)."""
  return kmeans.fit(data, case.k, iters=case.lloyd_iters, seed=seed, init="sample-lloyd",
                    init_sample=len(data) // 10, tol=tol).centroids


def ours_minibatch(data, case, seed: int, restarts: int = 1):
  return kmeans.fit(data, case.k, iters=case.minibatch_iters, batch_size=10000, n_init=20, tol=0.0,
                    seed=seed, restarts=restarts).centroids


def sklearn_fairseq(data, case):
  from sklearn.cluster import MiniBatchKMeans
  settings = dict(FAIRSEQ_MINIBATCH, max_iter=case.minibatch_iters)
  return MiniBatchKMeans(case.k, random_state=0, **settings).fit(data).cluster_centers_


def faiss_kmeans(data, case):
  import faiss
  km = faiss.Kmeans(case.dim, case.k, niter=25, seed=0)
  km.train(np.ascontiguousarray(data))
  return km.centroids


def has_faiss() -> bool:
  try:
    import faiss  # noqa: F401
  except ImportError:
    return False
  return True


def methods(case: Case, chosen: list[str], lloyd_tol: float, seed: int = 0, restarts: int = 1) -> dict:
  """Display name → function, for the chosen method keys (faiss only when it is installed); `seed` is
  that of ours, `restarts` that of ours mini-batch."""
  available = {
      "ours-lloyd": (f"ours Lloyd (≤{case.lloyd_iters} it, tol {lloyd_tol:g})",
                     functools.partial(ours_lloyd, tol=lloyd_tol, seed=seed)),
      "ours-warm": (f"ours Lloyd on a 10% sample, then on all (tol {lloyd_tol:g})",
                    functools.partial(ours_warm_start, tol=lloyd_tol, seed=seed)),
      "ours-minibatch": (f"ours mini-batch 10000, n_init 20 (≤{case.minibatch_iters} passes), seed {seed}"
                         + (f", best of {restarts} fits" if restarts > 1 else ""),
                         functools.partial(ours_minibatch, seed=seed, restarts=restarts)),
      "sklearn": (f"sklearn MiniBatchKMeans, fairseq settings (max_iter {case.minibatch_iters})",
                  sklearn_fairseq),
      "faiss": ("faiss Kmeans (niter 25, defaults)", faiss_kmeans)}
  unknown = set(chosen) - set(available)
  if unknown:
    raise SystemExit(f"unknown methods {sorted(unknown)}; choose from {sorted(available)}")
  return dict(available[m] for m in chosen if m != "faiss" or has_faiss())


def run_case(case: Case, data: np.ndarray, aligned, chosen: list[str], lloyd_tol: float,
             seed: int = 0, restarts: int = 1, warm: bool = False) -> list[dict]:
  """One row per method, each first fit compiled from scratch. `warm`: ours run a second time, its wall
  time (programs already compiled in this process) reported as `warm_s`."""
  rows = []
  for name, fn in methods(case, chosen, lloyd_tol, seed, restarts).items():
    jax.clear_caches()   # an earlier method's programs (same block shapes) would make this fit partly warm
    centroids, seconds = timed(lambda: fn(data, case))
    row = {"case": f"({case.name}) {len(data)}×{case.dim}, K={case.k}", "method": name,
           "wall_s": round(seconds, 1), "inertia": round(mean_sq_distance(data, centroids), 4)}
    if warm and name.startswith("ours"):
      row["warm_s"] = round(timed(lambda: fn(data, case))[1], 2)
    if aligned:
      labels = [kmeans.assign(f, centroids) for f, _ in aligned]
      row["pnmi"] = round(quality.cluster_quality([p for _, p in aligned], labels).pnmi, 4)
    rows.append(row)
    print(json.dumps(row), flush=True)
  return rows


def case_data(case: Case, utterances):
  """(data, aligned frames for PNMI or None, description)."""
  if case.dim == 39 and utterances:
    frames, aligned = corpus_frames(utterances, case.n)
    if len(frames) >= case.n // 2:
      return frames, aligned, f"real MFCC of synthetic speech ({len(frames)} frames)"
  return mixture(case.n, case.dim, 2 * case.k), None, "Gaussian mixture"


def dumped_features(feature_dir: str, k: int) -> tuple[Case, np.ndarray]:
  """Case (c): every train-split frame of a feature dump."""
  from speechjax.cluster import features as feature_lib
  data = np.concatenate([shard.features for shard in feature_lib.shards(feature_dir, "train")])
  return Case("c", len(data), data.shape[1], k, 100, 100), np.ascontiguousarray(data, np.float32)


def print_table(rows: list[dict]) -> None:
  keys = list(dict.fromkeys(k for row in rows for k in row))
  print("| " + " | ".join(keys) + " |")
  print("|" + "---|" * len(keys))
  for row in rows:
    print("| " + " | ".join(str(row.get(k, "")) for k in keys) + " |")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--small", action="store_true", help="small sizes for a quick run")
  parser.add_argument("--corpus", default="data/synth-small", help="synthetic corpus directory")
  parser.add_argument("--workdir", default="/tmp/speechjax_bench_kmeans")
  parser.add_argument("--methods", default="ours-lloyd,ours-warm,ours-minibatch,sklearn,faiss",
                      help="k-means methods, comma-separated (sklearn takes ~50 min for (b))")
  parser.add_argument("--no-mfcc", action="store_true", help="skip the MFCC speed table")
  parser.add_argument("--cases", default="a,b", help="k-means cases to run, comma-separated")
  parser.add_argument("--lloyd-tol", type=float, default=1e-4, help="relative inertia tolerance of ours Lloyd")
  parser.add_argument("--seed", type=int, default=0, help="seed of our methods (init sample, k-means++, shuffle)")
  parser.add_argument("--restarts", type=int, default=1, help="ours mini-batch: best of this many whole fits")
  parser.add_argument("--features", default="", help="case (c): a feature dump directory (train split)")
  parser.add_argument("--features-k", type=int, default=100, help="case (c): K")
  parser.add_argument("--warm", action="store_true", help="time ours a second time, compiled (warm_s)")
  args = parser.parse_args()
  allocator.reuse_freed_memory()   # as every `speechjax` command does
  corpus = args.corpus
  if not os.path.exists(os.path.join(corpus, "synth.json")):
    corpus = synth.generate(os.path.join(args.workdir, "synth-micro"), size="micro", seed=0)
  utterances = load_corpus(corpus)
  print(f"corpus {corpus}: {len(utterances)} utterances, cpu_count {os.cpu_count()}", flush=True)
  if not args.no_mfcc:
    print_table(mfcc_speed(utterances))
  rows = []
  for case in (c for c in (SMALL if args.small else FULL) if c.name in args.cases.split(",")):
    data, aligned, description = case_data(case, utterances)
    print(f"case ({case.name}): {description}", flush=True)
    rows += run_case(case, data, aligned, args.methods.split(","), args.lloyd_tol, args.seed, args.restarts,
                     args.warm)
  if args.features:
    case, data = dumped_features(args.features, args.features_k)
    print(f"case (c): {args.features}, {len(data)} × {data.shape[1]}", flush=True)
    rows += run_case(case, data, None, args.methods.split(","), args.lloyd_tol, args.seed, args.restarts,
                     args.warm)
  print_table(rows)


if __name__ == "__main__":
  main()
