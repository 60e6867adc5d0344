"""What `pip install speechjax` installs (issue 20, item 8): no top-level `launch` package, the run configs
shipped inside the package and found from any directory, one table of the CLI verbs that take overrides."""
import os
import types

import pytest

from speechjax import cli, config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_setup_installs_only_the_speechjax_namespace(monkeypatch):
  import setuptools  # noqa: F401  (first: provides distutils)
  from distutils.core import run_setup
  monkeypatch.chdir(REPO)   # setup.py's find_packages looks in the current directory
  dist = run_setup("setup.py", stop_after="init")
  assert {p.split(".")[0] for p in dist.packages} == {"speechjax"}
  assert {"speechjax.launch", "speechjax.configs"} <= set(dist.packages)
  assert dist.package_dir == {"speechjax.configs": "configs"}


def test_configs_load_from_any_directory(monkeypatch, tmp_path):
  monkeypatch.chdir(tmp_path)
  assert config.load("configs/hubert.py:tiny", ["--config.train.num_steps=3"]).train.num_steps == 3
  with pytest.raises(config.ConfigError, match="not found"):
    config.load_file("configs/no_such_family.py:tiny")


@pytest.mark.parametrize("verb", sorted(cli.VERBS))
def test_only_the_override_verbs_take_config_overrides(monkeypatch, capsys, verb):
  seen = {}
  stub = types.SimpleNamespace(add_arguments=lambda parser: None, run=lambda args: seen.update(vars(args)))
  monkeypatch.setattr(cli, "_load", lambda target: stub)
  if verb in cli.OVERRIDE_VERBS:
    assert cli.main([verb, "--config.x=1"]) == 0 and seen["overrides"] == ["--config.x=1"]
  else:
    with pytest.raises(SystemExit):
      cli.main([verb, "--config.x=1"])
    assert "unrecognized arguments: --config.x=1" in capsys.readouterr().err and not seen


def test_override_verbs_are_verbs():
  assert cli.OVERRIDE_VERBS <= set(cli.VERBS)
