"""The HuBERT iterative loop (speechjax/launch/hubert_loop.py): cluster → train → cluster the new model's layer → …

    speechjax loop --workdir workdir/hubert_loop --config configs/hubert_loop.py:small

Presets: `small` (the README's main job: tiny HuBERT on the 2 h synthetic corpus: MFCC → k=100 → train;
best layer (by PNMI) → k=100 → train, 4000 steps each; then the final model's clusters), `fast` (`small`
in 3000 steps without dropout), `tiny` (tests: the 10 min corpus, few steps), `base` (the paper's Base
recipe: MFCC k=100 250k steps; layer 6 k=500 400k steps; on LibriSpeech records).

`small` and `fast` train from the corpus held in memory (`data.in_memory`). `fast` runs in about 5 min
on a 2-core CPU; its last PNMI row came out 0.006–0.019 lower than `small`'s over two seeds
(docs/performance.md, "The main job").
"""
import ml_collections

from speechjax.configs import common


def iteration(features, k, steps, layer="auto", percent=-1.0, kmeans_iters=30):
  return ml_collections.ConfigDict(dict(
      features=features,
      layer=layer,
      k=k,
      steps=steps,
      percent=percent,
      kmeans_iters=kmeans_iters,
  ))


# Checkpoints every 1000 steps (the tiny preset saves every 300 for its 300-step runs).
SMALL_TRAIN_OVERRIDES = ("--config.data.in_memory=True", "--config.checkpoint.save_every=1000")
# Dropout costs tiny HuBERT's step 15 % on this CPU (attention dropout's random bits most).
NO_DROPOUT = ("--config.model.attention_dropout=0.0", "--config.model.hidden_dropout=0.0",
              "--config.model.feat_proj_dropout=0.0")


def get_config(arg=None):
  preset = common.check_preset("hubert_loop", arg or "small", ["small", "fast", "tiny", "base"])
  cfg = ml_collections.ConfigDict()
  cfg.train_split = "train"
  cfg.eval_split = "test"
  cfg.train_overrides = ()
  cfg.cluster_last_model = preset != "base"   # a last table row: clusters of the final model's layer
  if preset in ("small", "fast"):
    cfg.data = "data/synth-small/records"
    cfg.train_config = "configs/hubert.py:tiny"
    cfg.train_overrides = SMALL_TRAIN_OVERRIDES + (NO_DROPOUT if preset == "fast" else ())
    steps = 4000 if preset == "small" else 3000
    cfg.iterations = [iteration("mfcc", 100, steps), iteration("layer", 100, steps)]
  elif preset == "tiny":
    cfg.data = "data/synth-tiny/records"
    cfg.train_config = "configs/hubert.py:tiny"
    cfg.iterations = [iteration("mfcc", 20, 20, kmeans_iters=10),
                      iteration("layer", 20, 20, kmeans_iters=10)]
  else:
    cfg.data = "data/librispeech/records"
    cfg.train_config = "configs/hubert.py:base"
    cfg.iterations = [iteration("mfcc", 100, 250000, percent=0.1),
                      iteration("layer", 500, 400000, layer=6, percent=0.1)]
  return cfg
