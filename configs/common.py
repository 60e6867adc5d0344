"""The skeleton of a run config, shared by the files in configs/.

A config file imports it as `from speechjax.configs import common` (setup.py installs configs/ as
`speechjax.configs`), starts from `common.base_config(model, task)` and sets only what its presets change.
"""
from ml_collections import ConfigDict

from speechjax.config import ConfigError
from speechjax.data import pipeline
from speechjax.parallel import mesh
from speechjax.train import optim, trainer


# Presets sized for TPU slices draw their step's random bits (dropout, masks) from the TPU's hardware
# generator: HuBERT Base's train step compiles for a v4-8 in 70 s instead of 146 s with threefry (docs/scaling.md
# §0). The CPU presets keep threefry, whose bits are the same on every backend and mesh.
TPU_RNG_IMPL = "rbg"


def base_config(model: ConfigDict, task: ConfigDict) -> ConfigDict:
  """A run config of `model` and `task`, its other sections (data, optim, train, mesh, checkpoint) at the
  defaults of their modules, in the order of speechjax.config.SECTIONS."""
  cfg = ConfigDict()
  cfg.model = model
  cfg.task = task
  cfg.data = pipeline.default_config()
  cfg.optim = optim.default_config()
  cfg.train = trainer.default_train_config()
  cfg.mesh = mesh.default_config()
  cfg.checkpoint = trainer.default_checkpoint_config()
  return cfg


def check_preset(file: str, preset: str, presets) -> str:
  """Returns `preset` if it is one of `presets`, else raises ConfigError (a ValueError) naming the file."""
  if preset not in presets:
    raise ConfigError(f"configs/{file}.py: unknown preset {preset!r} (have {list(presets)})")
  return preset
