"""The run configs in configs/ (issue 20, item 11): every file loads its default preset from the shared
skeleton (configs/common.py) and rejects an unknown preset by name."""
import os

import pytest

from speechjax import config
from speechjax.configs import common
from speechjax.data import pipeline
from speechjax.parallel import mesh
from speechjax.train import optim, trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = sorted(name[:-3] for name in os.listdir(os.path.join(REPO, "configs"))
               if name.endswith(".py") and name not in ("__init__.py", "common.py"))
NOT_RUN_CONFIGS = {"hubert_loop"}   # the loop's own config: it names a run config in train_config


@pytest.mark.parametrize("name", FILES)
def test_default_preset_loads_and_unknown_presets_are_refused(name):
  cfg = config.load(f"configs/{name}.py")
  if name not in NOT_RUN_CONFIGS:
    config.check_sections(cfg)
  with pytest.raises(ValueError, match=f"configs/{name}.py: unknown preset 'nope'"):
    config.load(f"configs/{name}.py:nope")


def test_base_config_holds_every_section_at_its_default():
  cfg = common.base_config(model=None, task=None)
  assert set(cfg.keys()) == set(config.SECTIONS)
  assert cfg.data == pipeline.default_config() and cfg.optim == optim.default_config()
  assert cfg.train == trainer.default_train_config() and cfg.mesh == mesh.default_config()
  assert cfg.checkpoint == trainer.default_checkpoint_config()


@pytest.mark.parametrize("stage,tokens", [("semantic", 1 + 30 * 25), ("coarse", 1 + 10 * 25 + 10 * 50 * 4),
                                          ("fine", 1 + 3 * 50 * 12), ("soundstorm", None)])
def test_audiolm_presets_build_their_tasks_at_the_papers_lengths(stage, tokens):
  """AudioLM's stages (30 / 10 / 3 s crops, 25 Hz semantic and 50 Hz × 12-level acoustic tokens) and
  SoundStorm pass their tasks' start-up checks; each LM's context is exactly one crop's tokens."""
  from speechjax.tasks import get_task
  cfg = config.load(f"configs/token_lm.py:{stage}", ["--config.data.path=/nonexistent"])
  get_task(cfg)
  assert cfg.train.rng_impl == common.TPU_RNG_IMPL
  if tokens:
    assert cfg.model.max_length == tokens
