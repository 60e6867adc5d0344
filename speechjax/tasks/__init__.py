"""Objectives around models. `config.task.name` names the module `speechjax.tasks.<name>`, whose `Task`
class implements the contract of `speechjax.tasks.base`."""
import importlib


def get_task(config):
  name = config.task.name
  try:
    module = importlib.import_module(f"speechjax.tasks.{name}")
  except ModuleNotFoundError as e:
    if e.name != f"speechjax.tasks.{name}":
      raise
    raise ValueError(f"config.task.name={name!r}: no module speechjax/tasks/{name}.py") from None
  return module.Task(config)
