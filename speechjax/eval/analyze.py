"""`speechjax analyze`: layer-wise PWCCA of an encoder's frame representations against phone labels (Pasad
et al. 2021–2023), for one or more checkpoints and optionally a random-init twin of the first.

    speechjax analyze --ckpt W2V2_WORKDIR [--ckpt OTHER ...] [--random-init] --out DIR \
        [--data data/synth-small/records --split test --label phone_20ms --max-frames 20000]

Writes `DIR/layerwise_pwcca.json` ({model name: [score of hidden state 0 (transformer input) .. L]}) and
`DIR/layerwise_pwcca.png` (score by layer, one line per model). Frames are the real 50 Hz encoder frames of
the first utterances of the split (in shard order), each paired with its 20 ms phone label.
"""
from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

import speechjax
from speechjax.data import pipeline as pipeline_lib
from speechjax.data import records
from speechjax.eval import cca


def hidden_states(model, params):
  """A jitted `(audio [B, T], audio_mask [B, T]) → (hidden states [L+1, B, F, D], frame_mask [B, F])` as
  numpy; state 0 is the transformer input, state l the output of layer l."""
  @jax.jit
  def forward(audio, audio_mask):
    out = model.apply({"params": params}, audio, audio_mask, output_hidden_states=True)
    return jnp.stack(out["hidden_states"]), out["frame_mask"]
  return lambda audio, audio_mask: jax.device_get(forward(audio, audio_mask))


def collect(model, params, data_dir, split, label, max_frames, batch_size=8, max_samples=112000):
  """(per hidden state [N, D] float32 arrays, labels [N] int) over the first `max_frames` real frames."""
  data = pipeline_lib.make_pipeline(data_dir, split, batch_size, max_samples, labels=(label,),
                                    shuffle_buffer=0, random_crop=False, repeat=False)
  forward = hidden_states(model, params)
  layers, labels, total = None, [], 0
  for batch in data:
    hidden, frame_mask = forward(batch["audio"], batch["audio_mask"])   # [L+1, B, F, D], [B, F]
    frames = min(hidden.shape[2], batch[f"labels/{label}"].shape[1])
    keep = frame_mask[:, :frames] & batch[f"labels_mask/{label}"][:, :frames]
    if layers is None:
      layers = [[] for _ in range(hidden.shape[0])]
    for i, h in enumerate(hidden):
      layers[i].append(h[:, :frames][keep])
    labels.append(batch[f"labels/{label}"][:, :frames][keep])
    total += int(keep.sum())
    if total >= max_frames:
      break
  return ([np.concatenate(l)[:max_frames] for l in layers],
          np.concatenate(labels)[:max_frames])


def random_twin(config, model, seed=0):
  """Params of `model` at random init (same architecture as the checkpoint)."""
  from speechjax.train import checkpoint
  from flax import linen as nn
  batch = checkpoint.example_batch(config, 1)
  return nn.unbox(model.init(jax.random.PRNGKey(seed), batch["audio"], batch["audio_mask"])["params"])


def analyze(ckpts, out, data_dir, split="test", label="phone_20ms", max_frames=20000,
            random_init=False, names=None) -> dict:
  num_classes = records.read_meta(data_dir).labels[label].num_classes
  names = list(names or [os.path.basename(os.path.normpath(c)) for c in ckpts])
  models = []
  for name, path in zip(names, ckpts):
    config, model, params = speechjax.load(path)
    models.append((name, model, params))
    if random_init and len(models) == 1:
      models.append((f"{name} (random init)", model, random_twin(config, model)))
  scores = {}
  for name, model, params in models:
    layers, labels = collect(model, params, data_dir, split, label, max_frames)
    scores[name] = [float(s) for s in cca.layerwise_pwcca(layers, labels, num_classes)]
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, "layerwise_pwcca.json"), "w") as f:
    json.dump({"label": label, "split": split, "frames": int(len(labels)), "pwcca": scores}, f, indent=1)
  plot(scores, label, os.path.join(out, "layerwise_pwcca.png"))
  return scores


def plot(scores: dict, label: str, path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt
  fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
  for name, values in scores.items():
    ax.plot(range(len(values)), values, marker="o", label=name)
  ax.set_xticks(range(max(len(v) for v in scores.values())))
  ax.set_xlabel("hidden state (0 = transformer input)")
  ax.set_ylabel(f"PWCCA with {label} one-hot")
  ax.set_ylim(0, 1)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def add_arguments(parser):
  parser.add_argument("--ckpt", action="append", required=True, help="workdir or checkpoint (repeatable)")
  parser.add_argument("--name", action="append", default=None, help="legend name per --ckpt")
  parser.add_argument("--random-init", action="store_true", help="add a random-init twin of the first")
  parser.add_argument("--data", default="data/synth-small/records")
  parser.add_argument("--split", default="test")
  parser.add_argument("--label", default="phone_20ms", help="a 50 Hz frame-label set of the records")
  parser.add_argument("--max-frames", type=int, default=20000)
  parser.add_argument("--out", required=True)


def run(args) -> int:
  scores = analyze(args.ckpt, args.out, args.data, args.split, args.label, args.max_frames,
                   args.random_init, args.name)
  print(json.dumps(scores, indent=1))
  return 0
