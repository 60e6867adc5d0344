"""Bad label configs fail at start-up with a ConfigError naming the field (issue 20, item 1); none reaches JAX.

The `micro` synthetic corpus stores `phone_10ms` (100 Hz) and `phone_20ms` (50 Hz), ~55 phone classes."""
import pytest

from speechjax import config as config_lib
from speechjax.config import ConfigError
from speechjax.tasks import get_task, pretrain_hubert


def _hubert(records, *overrides):
  return config_lib.load("configs/hubert.py:tiny", [f"--config.data.path={records}", *overrides])


@pytest.mark.parametrize("overrides,field,why", [
    # the data's phone_20ms is at 50 Hz, not 100 Hz: frames would be read at twice the label rate
    (["--config.task.label_rates=(100,)"], "task.label_rates", "is at 50 Hz"),
    (["--config.task.label_rates=(75,)"], "task.label_rates", "divisor of 16000"),
    (["--config.task.labels=('phone_20ms','phone_10ms')"], "task.label_rates", "one entry per"),
    (["--config.task.labels=('phone_20ms','phone_10ms')", "--config.task.label_rates=(50,100)"],
     "model.num_classes", "one entry per"),
    (["--config.task.labels=('phone_10ms',)"], "data.labels", "must include task.labels='phone_10ms'"),
    (["--config.task.labels=('km',)", "--config.data.labels=('km',)"], "task.labels", "no label set 'km'"),
    (["--config.model.num_classes=(40,)"], "model.num_classes", r"has \d+ classes"),
])
def test_hubert_label_configs_are_checked_against_the_data(synth_records, overrides, field, why):
  with pytest.raises(ConfigError, match=f"config.{field}=.*{why}"):
    get_task(_hubert(synth_records, *overrides))


def test_hubert_label_rates_must_be_whole_multiples_of_the_frame_rate():
  """Without records (ahead-of-time compiles) the config is checked on its own: 25 Hz labels cannot be
  read from 50 Hz frames by striding."""
  cfg = _hubert("/nonexistent", "--config.task.label_rates=(25,)")
  with pytest.raises(ConfigError, match=r"config.task.label_rates=25: 25 Hz labels do not align .* 50 Hz"):
    get_task(cfg)


def test_hubert_100hz_labels_pair_every_second_label_with_a_frame(synth_records):
  """100 Hz labels with a 50 Hz model pass the checks and are strided by 2 (fairseq's feat2tar_ratio)."""
  cfg = _hubert(synth_records, "--config.task.labels=('phone_10ms',)", "--config.task.label_rates=(100,)",
                "--config.data.labels=('phone_10ms',)")
  get_task(cfg)
  assert pretrain_hubert.model_frame_rate(cfg.model) == 50
  import numpy as np
  labels = np.arange(10)[None]
  np.testing.assert_array_equal(pretrain_hubert.frame_labels(labels, 6, 100, 50), [[0, 2, 4, 6, 8, -1]])


def test_frame_classifier_needs_labels_at_its_frame_rate(synth_records):
  cfg = config_lib.load("configs/frame_classifier.py:tiny", [
      f"--config.data.path={synth_records}", "--config.task.label=phone_10ms",
      "--config.data.labels=('phone_10ms',)"])
  with pytest.raises(ConfigError, match="config.data.labels='phone_10ms': 100 Hz labels: this task pairs"):
    get_task(cfg)


def test_cli_prints_one_line_and_exits_2(synth_records, capsys):
  from speechjax import cli
  argv = ["train", "--config", "configs/hubert.py:tiny", "--workdir", "/tmp/unused",
          f"--config.data.path={synth_records}", "--config.task.label_rates=(100,)"]
  assert cli.main(argv) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert err[-1].startswith("error: config.task.label_rates=100: label set 'phone_20ms'")
  assert not any("Traceback" in line for line in err)
  with pytest.raises(ConfigError):
    cli.main(argv + ["--debug"])
