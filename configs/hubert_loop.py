"""The HuBERT iterative loop (speechjax/launch/hubert_loop.py): cluster → train → cluster the new model's layer → …

    speechjax loop --workdir workdir/hubert_loop --config configs/hubert_loop.py:small

Presets: `small` (the README's main job: tiny HuBERT on the 2 h synthetic corpus: MFCC → k=100 → train;
best layer (by PNMI) → k=100 → train, 4000 steps each; then the final model's clusters), `tiny` (tests: the 10 min corpus, few steps), `base` (the paper's
Base recipe: MFCC k=100 250k steps; layer 6 k=500 400k steps; on LibriSpeech records).
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


def get_config(arg=None):
  preset = common.check_preset("hubert_loop", arg or "small", ["small", "tiny", "base"])
  cfg = ml_collections.ConfigDict()
  cfg.train_split = "train"
  cfg.eval_split = "test"
  cfg.train_overrides = ()
  cfg.cluster_last_model = preset != "base"   # a last table row: clusters of the final model's layer
  if preset == "small":
    cfg.data = "data/synth-small/records"
    cfg.train_config = "configs/hubert.py:tiny"
    cfg.iterations = [iteration("mfcc", 100, 4000), iteration("layer", 100, 4000)]
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
