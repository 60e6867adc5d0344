"""speechjax: JAX/Flax, TPU-first pretraining of speech and audio foundation models."""
__version__ = "0.1.0"


def load(path: str, step: int | None = None, scan_layers: bool | None = None):
  """Rebuilds (config, model, params) from a checkpoint directory, the layers as saved or in the layout
  `scan_layers` asks for; see `speechjax.tasks.pretrained.load_model`."""
  from speechjax.tasks.pretrained import load_model
  return load_model(path, step, scan_layers)
