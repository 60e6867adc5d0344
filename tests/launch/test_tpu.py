"""`speechjax tpu`: the gcloud commands, checked through --dry-run only (nothing calls the service)."""
import os
import shlex
import subprocess
import tarfile

import pytest

from speechjax.launch import tpu
from speechjax import cli

POD = ["--pod", "sj-pod", "--zone", "us-central2-b"]
CONFIG = "configs/frame_classifier.py:tiny"


@pytest.fixture(autouse=True)
def _no_commands(monkeypatch):
  """--dry-run must never run gcloud (it is installed on some machines)."""
  real_run = subprocess.run

  def guarded(cmd, *args, **kwargs):
    assert "gcloud" not in (cmd if isinstance(cmd, str) else " ".join(map(str, cmd))), cmd
    return real_run(cmd, *args, **kwargs)
  monkeypatch.setattr(subprocess, "run", guarded)


def dry_run(capsys, *argv):
  code = cli.main(["tpu", *argv, "--dry-run"])
  out, err = capsys.readouterr()
  return code, [shlex.split(line) for line in out.splitlines()], err


def test_create_vm_and_queued_resource(capsys):
  code, cmds, _ = dry_run(capsys, "create", *POD, "--type", "v4-64")
  assert code == 0 and cmds == [["gcloud", "compute", "tpus", "tpu-vm", "create", "sj-pod",
                                 "--zone=us-central2-b", "--accelerator-type=v4-64",
                                 "--version=tpu-ubuntu2204-base"]]
  code, cmds, _ = dry_run(capsys, "create", *POD, "--type", "v5e-256", "--queued", "--spot",
                          "--project", "proj")
  assert code == 0 and cmds == [["gcloud", "compute", "tpus", "queued-resources", "create", "sj-pod",
                                 "--node-id=sj-pod", "--zone=us-central2-b", "--project=proj",
                                 "--accelerator-type=v5litepod-256", "--runtime-version=v2-alpha-tpuv5-lite",
                                 "--spot"]]


def test_describe_and_delete(capsys):
  assert dry_run(capsys, "describe", *POD)[1] == [
      ["gcloud", "compute", "tpus", "tpu-vm", "describe", "sj-pod", "--zone=us-central2-b"]]
  assert dry_run(capsys, "delete", *POD)[1] == [
      ["gcloud", "compute", "tpus", "tpu-vm", "delete", "sj-pod", "--zone=us-central2-b", "--quiet"]]
  assert dry_run(capsys, "delete", *POD, "--queued")[1] == [
      ["gcloud", "compute", "tpus", "queued-resources", "delete", "sj-pod", "--zone=us-central2-b",
       "--force", "--quiet"]]


@pytest.mark.parametrize("argv, message", [
    (["create", *POD, "--type", "v9-8"], "--type"),
    (["create", *POD, "--type", "v4-8", "--reserved"], "--reserved"),
    (["setup", *POD, "--source", "pip"], "--package"),
    (["logs", *POD, "--config.optim.lr=1"], "overrides"),
])
def test_bad_arguments_name_the_flag(capsys, argv, message):
  code, cmds, err = dry_run(capsys, *argv)
  assert code == 2 and not cmds and message in err


def test_setup_packs_copies_and_installs_on_every_worker(capsys):
  code, (pack, scp, ssh), _ = dry_run(capsys, "setup", *POD)
  assert code == 0 and pack[:2] == ["tar", "-czf"] and pack[-3:] == ["-C", tpu.REPO, "."]
  assert "--exclude=./data" in pack and "--exclude-vcs" in pack
  assert scp[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "scp"] and scp[5] == pack[2]
  assert scp[6] == "sj-pod:speechjax-src.tar.gz" and "--worker=all" in scp
  assert ssh[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "sj-pod"] and "--worker=all" in ssh
  remote = ssh[-1].removeprefix("--command=")
  assert "tar -xzf" in remote and "pip install" in remote and '-e "$HOME/speechjax"' in remote
  assert "'jax[tpu]>=0.10,<0.11'" in remote and "libtcmalloc-minimal4" in remote
  subprocess.check_call(["bash", "-n", "-c", remote])   # syntax check only: runs nothing
  _, (pack, _, ssh), _ = dry_run(capsys, "setup", *POD, "--source", "pip", "--package", "speechjax==0.1")
  assert pack[-2:] == ["configs", "sweeps"] and " speechjax==0.1 && " in ssh[-1]


def test_pack_command_leaves_out_data_outputs_and_vcs(tmp_path):
  repo = tmp_path / "repo"
  for path in ("configs/a.py", "speechjax/b.py", "data/big.wav", "workdir_x/m.jsonl", ".git/HEAD",
               "speechjax/__pycache__/b.pyc"):
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text("x")
  tarball = str(tmp_path / "src.tar.gz")
  subprocess.check_call(tpu.pack_command(tarball, repo=str(repo)))   # local tar only
  with tarfile.open(tarball) as t:
    files = sorted(m.name for m in t.getmembers() if m.isfile())
  assert files == ["./configs/a.py", "./speechjax/b.py"]


def test_run_starts_train_detached_on_every_worker(capsys):
  code, cmds, _ = dry_run(capsys, "run", *POD, "--config", CONFIG, "--workdir", "gs://bucket/run",
                          "--data", "gs://bucket/records", "--config.optim.lr=3e-4")
  assert code == 0 and len(cmds) == 1
  ssh = cmds[0]
  assert ssh[:7] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "sj-pod", "--zone=us-central2-b"]
  assert ssh[7] == "--worker=all"
  remote = ssh[8].removeprefix("--command=")
  assert ("speechjax train --config configs/frame_classifier.py:tiny --workdir gs://bucket/run "
          "--config.optim.lr=3e-4 --config.data.path=gs://bucket/records") in remote
  assert "SPEECHJAX_DISTRIBUTED=1" in remote and "nohup" in remote and tpu.PID_FILE in remote
  assert "LD_PRELOAD" not in remote   # `speechjax` preloads tcmalloc itself (test_allocator.py)
  subprocess.check_call(["bash", "-n", "-c", remote])   # syntax check only: runs nothing
  attached = dry_run(capsys, "run", *POD, "--config", CONFIG, "--workdir", "gs://b/r", "--data", "gs://b/d",
                     "--attach")[1][0][-1]
  assert "nohup" not in attached and attached.endswith("--config.data.path=gs://b/d")


def test_run_loop_and_absolute_config_path(capsys):
  config = os.path.join(tpu.REPO, "configs", "hubert_loop.py") + ":base"
  code, cmds, _ = dry_run(capsys, "run", *POD, "--loop", "--config", config, "--workdir", "gs://b/loop",
                          "--data", "gs://b/records")
  assert code == 0
  assert ("speechjax loop --config configs/hubert_loop.py:base --workdir gs://b/loop "
          "--config.data=gs://b/records") in cmds[0][-1]


@pytest.mark.parametrize("argv, flag", [
    (["--workdir", "/tmp/run", "--data", "gs://b/d"], "--workdir='/tmp/run'"),
    (["--workdir", "gs://b/run", "--data", "data/records"], "--data='data/records'"),
    (["--workdir", "gs://b/run"], "--config.data.path='data/synth-tiny/records'"),   # the config's own
    (["--workdir", "gs://b/run", "--config.data.path=/local/records"], "--config.data.path='/local/records'"),
])
def test_local_paths_on_a_pod_are_an_error_naming_the_flag(capsys, argv, flag):
  code, cmds, err = dry_run(capsys, "run", *POD, "--config", CONFIG, *argv)
  assert code == 2 and not cmds and flag in err and "gs://" in err


def test_single_host_allows_local_paths_and_bad_config_fails(capsys, tmp_path):
  code, cmds, _ = dry_run(capsys, "run", *POD, "--config", CONFIG, "--workdir", "/tmp/run", "--single-host")
  assert code == 0 and "--workdir /tmp/run" in cmds[0][-1]
  code, _, err = dry_run(capsys, "run", *POD, "--config", str(tmp_path / "x.py"), "--workdir", "gs://b/r")
  assert code == 2 and "--config=" in err
  code, _, err = dry_run(capsys, "run", *POD, "--config", CONFIG, "--workdir", "gs://b/r",
                         "--config.optim.nope=1")
  assert code == 2 and "optim.nope" in err


def test_logs_and_stop(capsys):
  (logs,) = dry_run(capsys, "logs", *POD)[1]
  assert "--worker=0" in logs and logs[-1] == f'--command=tail -n +1 -F "{tpu.LOG_FILE}"'
  (stop,) = dry_run(capsys, "stop", *POD)[1]
  remote = stop[-1].removeprefix("--command=")
  assert "--worker=all" in stop and "kill -TERM" in remote and tpu.PID_FILE in remote
  subprocess.check_call(["bash", "-n", "-c", remote])
