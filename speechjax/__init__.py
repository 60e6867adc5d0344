"""speechjax: JAX/Flax, TPU-first pretraining of speech and audio foundation models."""
__version__ = "0.1.0"


def load(path: str, step: int | None = None):
  """Rebuilds (config, model, params) from a checkpoint directory; see `speechjax.train.checkpoint`."""
  from speechjax.train.checkpoint import load_model
  return load_model(path, step)
