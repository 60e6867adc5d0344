"""Checkpoints of every part AudioLM generation needs (random weights, micro sizes), saved without training:
shared by tests/eval/test_generate.py and tests/test_notebook.py."""
import jax
import numpy as np

from speechjax import config
from speechjax.cluster import kmeans
from speechjax.tasks import get_task
from speechjax.train import checkpoint

from tests.helpers import harness

CODEC = ["--config.model.channels=2", "--config.model.embedding_dim=8", "--config.model.num_quantizers=4",
         "--config.model.codebook_size=16"]
LM = ["--config.model.hidden_size=16", "--config.model.num_layers=1", "--config.model.num_heads=2",
      "--config.model.intermediate_size=32", "--config.task.semantic_vocab=8", "--config.task.codebook_size=16",
      "--config.task.levels=4", "--config.task.coarse_levels=2"]
VOCAB = {"semantic": 9, "coarse": 41, "fine": 73}            # 1 + 8 + levels · 16
MAX_LENGTH = {"semantic": 64, "coarse": 256, "fine": 41}      # fine: chunks of (41 − 1) / 4 = 10 frames
CROP = {"semantic": 16000, "coarse": 16000, "fine": 3200}


def save_initial(config_path: str, overrides: list, workdir: str) -> str:
  """`workdir` holding a step-0 checkpoint of `configs/<config_path>` (random weights)."""
  # No data: the tasks check label sets against a data set's meta.json only where there is one (not the
  # checkout's data/synth-tiny, which a CLI run may have written).
  cfg = config.load(f"{harness.REPO}/configs/{config_path}",
                    overrides + [f"--config.data.path={workdir}/no-data"])
  task = get_task(cfg)
  state = jax.jit(task.init_state)(jax.random.PRNGKey(0), checkpoint.example_batch(cfg, 1))
  saver = checkpoint.Checkpointer(workdir, cfg.checkpoint, config.to_json(cfg))
  saver.save(0, state, {"epoch": 0, "batch": 0}, force=True)
  saver.close()
  return workdir


def build(root) -> dict:
  """{semantic, coarse, fine, codec, hubert: workdir, kmeans: path} under `root` (a pathlib.Path)."""
  out = {"codec": save_initial("soundstream.py:tiny", CODEC, str(root / "codec")),
         "hubert": save_initial("hubert.py:tiny", [], str(root / "hubert"))}
  for stage in VOCAB:
    out[stage] = save_initial(f"token_lm.py:{stage}_tiny", LM + [
        f"--config.model.vocab_size={VOCAB[stage]}", f"--config.model.max_length={MAX_LENGTH[stage]}",
        f"--config.data.max_sample_size={CROP[stage]}", "--config.data.min_sample_size=0"],
                               str(root / stage))
  hidden = config.load(f"{harness.REPO}/configs/hubert.py:tiny", []).model.hidden_size
  centroids = np.random.default_rng(0).normal(size=(8, hidden)).astype(np.float32)
  out["kmeans"] = str(root / "km.npz")
  kmeans.save(out["kmeans"], kmeans.KMeansResult(centroids, np.ones(8, np.int64), 1.0, [1.0], 8, 1, True, 0))
  return out
