"""Cloud TPU VMs and pods: the gcloud commands around a speechjax run.

    speechjax tpu create   --pod NAME --zone Z --type v4-64 [--queued] [--spot | --reserved]
    speechjax tpu describe --pod NAME --zone Z [--queued]
    speechjax tpu setup    --pod NAME --zone Z [--source pip --package SPEC]
    speechjax tpu run      --pod NAME --zone Z --config configs/X.py:preset --workdir gs://B/RUN \\
                           [--data gs://B/records] [--config.a.b=v ...]
    speechjax tpu run      --pod NAME --zone Z --loop --config configs/hubert_loop.py:base \\
                           --workdir gs://B/LOOP
    speechjax tpu logs     --pod NAME --zone Z [--worker 0]
    speechjax tpu stop     --pod NAME --zone Z
    speechjax tpu delete   --pod NAME --zone Z [--queued]

Every subcommand takes `--dry-run`: print each command it would run (one per line, shell-quoted) and run
nothing. `--project P` is passed on to gcloud when given.

  create    `gcloud compute tpus tpu-vm create`, or with --queued a queued resource (waits for capacity;
            `describe --queued` shows its state). The runtime image follows the generation (--version).
  setup     packs this checkout (tracked and untracked files; not data/, workdir*/, .git), copies it to
            every worker (`tpu-vm scp --worker=all`) and pip-installs it there with jax[tpu]; with
            `--source pip --package SPEC` installs SPEC instead and copies only configs/ and sweeps/.
            Also installs tcmalloc (`libtcmalloc-minimal4`, best effort: a worker without apt access
            goes on without it).
  run       on every worker (`tpu-vm ssh --worker=all`): `speechjax train` (or `loop`) from the copied
            checkout with SPEECHJAX_DISTRIBUTED=1 (jax.distributed auto-detects the pod); the command
            preloads tcmalloc itself where setup installed it (libtpu's compiler spends ~13 % of its time
            in glibc's malloc; with tcmalloc HuBERT Base compiles for a v4-8 9 % faster, SoundStream
            17–21 %; speechjax.train.allocator, docs/scaling.md), detached with nohup; output to
            ~/speechjax-run.log, pid in ~/speechjax-run.pid (--attach: in the foreground).
            Workers share no disk, so the workdir and the data must be gs:// paths: a local path is an
            error naming its flag (--single-host allows local paths on a one-host TPU VM).
  logs      streams ~/speechjax-run.log of one worker (default 0, the one that logs).
  stop      SIGTERM to the run on every worker: the trainer saves a checkpoint and exits; `run` again
            resumes from it.

Commands are built by small pure functions (`*_commands(...) -> list[list[str]]`) and executed by one.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys


# The checkout that `setup` packs: the repository root, two levels above this package.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GCLOUD = ("gcloud", "compute", "tpus")
REMOTE_DIR = "$HOME/speechjax"             # shell text: expanded on the worker, never quoted
REMOTE_TARBALL = "speechjax-src.tar.gz"    # relative to the ssh/scp home directory
LOG_FILE = "$HOME/speechjax-run.log"
PID_FILE = "$HOME/speechjax-run.pid"
# The jax range of setup.py, with the TPU runtime (libtpu).
JAX_TPU = "jax[tpu]>=0.10,<0.11"
# The `speechjax` command preloads it where `setup` installed it (speechjax.train.allocator).
INSTALL_TCMALLOC = ("{ sudo apt-get install -y -q libtcmalloc-minimal4 > /dev/null 2>&1 || "
                    "echo 'speechjax: tcmalloc not installed; runs use glibc malloc' >&2; }")
# Never packed by `setup`: data, run outputs, VCS and build leftovers (mirrors .gitignore).
PACK_EXCLUDES = ("./data", "./workdir*", "./build", "./.venv", "__pycache__", "*.egg-info",
                 ".pytest_cache", "./notebooks")
# Cloud TPU runtime images for JAX by generation (cloud.google.com/tpu/docs/runtimes).
RUNTIME_VERSIONS = {"v4": "tpu-ubuntu2204-base", "v5e": "v2-alpha-tpuv5-lite", "v5p": "v2-alpha-tpuv5",
                    "v6e": "v2-alpha-tpuv6e"}
# gcloud's accelerator-type prefix per generation (v5e slices are called "v5litepod-N").
ACCELERATOR_PREFIX = {"v4": "v4", "v5e": "v5litepod", "v5p": "v5p", "v6e": "v6e"}


class LaunchError(ValueError):
  """A bad launcher argument; the message names the flag."""


# ----------------------------------------------------------------------------------------------
# Pure command builders


def _gcloud(*args, zone: str, project: str = "") -> list[str]:
  cmd = [*GCLOUD, *args, f"--zone={zone}"]
  if project:
    cmd.append(f"--project={project}")
  return cmd


def accelerator_type(topology: str) -> tuple[str, str]:
  """`v4-64` / `v5e-256` / `v5litepod-16` / `v5p-128` / `v6e-8` → (gcloud accelerator type, generation)."""
  name, _, size = topology.partition("-")
  generation = "v5e" if name == "v5litepod" else name
  if generation not in ACCELERATOR_PREFIX or not size.isdigit() or int(size) < 1:
    raise LaunchError(f"--type={topology!r}: expected <generation>-<size> with generation one of "
                      f"{sorted(ACCELERATOR_PREFIX)} (e.g. v4-64, v5e-256)")
  return f"{ACCELERATOR_PREFIX[generation]}-{size}", generation


def create_commands(pod: str, zone: str, topology: str, version: str = "", queued: bool = False,
                    spot: bool = False, reserved: bool = False, project: str = "") -> list[list[str]]:
  accelerator, generation = accelerator_type(topology)
  version = version or RUNTIME_VERSIONS[generation]
  if spot and reserved:
    raise LaunchError("--spot and --reserved exclude each other")
  if queued:
    cmd = _gcloud("queued-resources", "create", pod, f"--node-id={pod}", zone=zone, project=project)
    cmd += [f"--accelerator-type={accelerator}", f"--runtime-version={version}"]
  else:
    if reserved:
      raise LaunchError("--reserved needs --queued (reservations are requested through queued resources)")
    cmd = _gcloud("tpu-vm", "create", pod, zone=zone, project=project)
    cmd += [f"--accelerator-type={accelerator}", f"--version={version}"]
  cmd += ["--spot"] * spot + ["--reserved"] * reserved
  return [cmd]


def describe_commands(pod: str, zone: str, queued: bool = False, project: str = "") -> list[list[str]]:
  kind = "queued-resources" if queued else "tpu-vm"
  return [_gcloud(kind, "describe", pod, zone=zone, project=project)]


def delete_commands(pod: str, zone: str, queued: bool = False, project: str = "") -> list[list[str]]:
  if queued:   # --force also deletes the TPU VM the queued resource created
    return [_gcloud("queued-resources", "delete", pod, zone=zone, project=project) + ["--force", "--quiet"]]
  return [_gcloud("tpu-vm", "delete", pod, zone=zone, project=project) + ["--quiet"]]


def ssh_command(pod: str, zone: str, command: str, worker: str = "all", project: str = "") -> list[str]:
  return _gcloud("tpu-vm", "ssh", pod, zone=zone, project=project) + [f"--worker={worker}",
                                                                       f"--command={command}"]


def scp_command(pod: str, zone: str, local: str, remote: str, project: str = "") -> list[str]:
  return _gcloud("tpu-vm", "scp", local, f"{pod}:{remote}", zone=zone, project=project) + ["--worker=all"]


def pack_command(tarball: str, paths: tuple[str, ...] = (".",), repo: str = REPO) -> list[str]:
  """tar of `paths` (relative to the repo) without data, run outputs and VCS files."""
  return (["tar", "-czf", tarball, "--exclude-vcs"] + [f"--exclude={p}" for p in PACK_EXCLUDES]
          + ["-C", repo, *paths])


def setup_commands(pod: str, zone: str, source: str = "local", package: str = "", jax_spec: str = JAX_TPU,
                   tarball: str = "", project: str = "") -> list[list[str]]:
  """Pack → copy to every worker → unpack into ~/speechjax → pip install the checkout (or `package`)."""
  if source not in ("local", "pip"):
    raise LaunchError(f"--source={source!r}: expected 'local' or 'pip'")
  if source == "pip" and not package:
    raise LaunchError("--source=pip needs --package SPEC (e.g. git+https://github.com/ORG/speechjax@TAG)")
  tarball = tarball or f"/tmp/speechjax-src-{pod}.tar.gz"
  paths = (".",) if source == "local" else ("configs", "sweeps")
  install = f'-e "{REMOTE_DIR}"' if source == "local" else shlex.quote(package)
  remote = (f'rm -rf "{REMOTE_DIR}" && mkdir -p "{REMOTE_DIR}" && '
            f'tar -xzf "$HOME/{REMOTE_TARBALL}" -C "{REMOTE_DIR}" && '
            f"python3 -m pip install -q -U {shlex.quote(jax_spec)} {install} && {INSTALL_TCMALLOC}")
  return [pack_command(tarball, paths), scp_command(pod, zone, tarball, REMOTE_TARBALL, project),
          ssh_command(pod, zone, remote, "all", project)]


def remote_config_path(spec: str, repo: str = REPO) -> str:
  """`configs/X.py:preset` relative to the checkout (the workers run from their copy of it)."""
  path, sep, arg = spec.partition(":")
  full = os.path.abspath(path if os.path.isabs(path) else os.path.join(repo, path))
  rel = os.path.relpath(full, repo)
  if rel.startswith(os.pardir) or not os.path.exists(full):
    raise LaunchError(f"--config={spec!r}: must be a file inside the speechjax checkout ({repo}) that "
                      "`speechjax tpu setup` copies to the workers")
  return rel + sep + arg


def check_gcs(flag: str, path: str) -> None:
  if not str(path).startswith("gs://"):
    raise LaunchError(f"{flag}={path!r}: a TPU pod's workers share no local disk; use a gs:// path "
                      "(or --single-host on a one-host TPU VM)")


def train_argv(config: str, workdir: str, overrides=(), loop: bool = False) -> list[str]:
  """The speechjax command line each worker runs."""
  return ["speechjax", "loop" if loop else "train", "--config", config, "--workdir", workdir, *overrides]


def run_remote_command(argv: list[str], attach: bool = False) -> str:
  """Shell text for the workers: from the checkout, with the pod's distributed init; detached (nohup,
  log and pid files in $HOME) unless `attach`."""
  prefix = f'cd "{REMOTE_DIR}" && export PATH="$HOME/.local/bin:$PATH" SPEECHJAX_DISTRIBUTED=1 && '
  if attach:
    return prefix + shlex.join(argv)
  return (prefix + f'{{ nohup {shlex.join(argv)} > "{LOG_FILE}" 2>&1 < /dev/null & '
          f'echo $! > "{PID_FILE}"; }}')


def run_commands(pod: str, zone: str, argv: list[str], attach: bool = False,
                 project: str = "") -> list[list[str]]:
  return [ssh_command(pod, zone, run_remote_command(argv, attach), "all", project)]


def logs_commands(pod: str, zone: str, worker: str = "0", project: str = "") -> list[list[str]]:
  return [ssh_command(pod, zone, f'tail -n +1 -F "{LOG_FILE}"', worker, project)]


def stop_commands(pod: str, zone: str, project: str = "") -> list[list[str]]:
  """SIGTERM the detached run on every worker (the trainer checkpoints and exits 0)."""
  remote = (f'if [ -f "{PID_FILE}" ]; then kill -TERM "$(cat "{PID_FILE}")"; rm -f "{PID_FILE}"; '
            f'else echo "no speechjax run on $(hostname)"; fi')
  return [ssh_command(pod, zone, remote, "all", project)]


# ----------------------------------------------------------------------------------------------
# Checks that need the config


def run_paths(config: str, overrides=(), loop: bool = False) -> dict[str, str]:
  """{flag: path} of the paths a run reads or writes besides its workdir, from the resolved config."""
  from speechjax import config as config_lib
  cfg = config_lib.load(os.path.join(REPO, config), list(overrides))
  if loop:
    return {"--config.data": cfg.data}
  return {"--config.data.path": cfg.data.path}


def build_run(args) -> list[str]:
  """Checks `tpu run`'s arguments; returns the worker command line."""
  overrides = list(getattr(args, "overrides", None) or [])
  if args.data:
    overrides.append(f"--config.{'data' if args.loop else 'data.path'}={args.data}")
  config = remote_config_path(args.config)
  if not args.single_host:
    check_gcs("--workdir", args.workdir)
    for flag, path in run_paths(config, overrides, args.loop).items():
      check_gcs("--data" if args.data else flag, path)
  return train_argv(config, args.workdir, overrides, args.loop)


# ----------------------------------------------------------------------------------------------
# CLI


def execute(commands: list[list[str]], dry_run: bool, out=None) -> int:
  out = out or sys.stdout
  for cmd in commands:
    if dry_run:
      print(shlex.join(cmd), file=out)
      continue
    print("+ " + shlex.join(cmd), file=sys.stderr)
    result = subprocess.run(cmd, check=False)
    if result.returncode:
      return result.returncode
  return 0


def _common(p):
  p.add_argument("--pod", "--name", dest="pod", required=True, help="TPU VM / queued resource name")
  p.add_argument("--zone", required=True, help="e.g. us-central2-b (v4), us-west4-a (v5e)")
  p.add_argument("--project", default="", help="Google Cloud project (default: gcloud's)")
  p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")


def add_arguments(parser):
  sub = parser.add_subparsers(dest="action", required=True)
  p = sub.add_parser("create", help="create a TPU VM or queued resource")
  _common(p)
  p.add_argument("--type", required=True,
                 help="accelerator: v4-64, v5e-256 (= v5litepod-256), v5p-128, v6e-8")
  p.add_argument("--version", default="", help="runtime image (default by generation: "
                 + ", ".join(f"{k}: {v}" for k, v in RUNTIME_VERSIONS.items()) + ")")
  p.add_argument("--queued", action="store_true", help="a queued resource (waits for capacity)")
  p.add_argument("--spot", action="store_true")
  p.add_argument("--reserved", action="store_true", help="use a reservation (with --queued)")
  for action in ("describe", "delete"):
    p = sub.add_parser(action)
    _common(p)
    p.add_argument("--queued", action="store_true")
  p = sub.add_parser("setup", help="copy/install speechjax on every worker")
  _common(p)
  p.add_argument("--source", default="local", choices=("local", "pip"))
  p.add_argument("--package", default="", help="pip spec for --source=pip")
  p.add_argument("--jax", default=JAX_TPU, help="pip spec of jax with the TPU runtime")
  p.add_argument("--tarball", default="", help="local path of the packed checkout")
  p = sub.add_parser("run", help="start `speechjax train` (or `loop`) on every worker")
  _common(p)
  p.add_argument("--config", required=True, help="configs/<family>.py[:preset] (train) or a loop config")
  p.add_argument("--workdir", required=True, help="gs://BUCKET/PATH")
  p.add_argument("--data", default="",
                 help="gs:// records (sets config.data.path, or config.data with --loop)")
  p.add_argument("--loop", action="store_true", help="run the HuBERT loop instead of one training run")
  p.add_argument("--attach", action="store_true", help="stay in the foreground (no nohup/log file)")
  p.add_argument("--single-host", action="store_true", help="allow local paths (one-host TPU VM)")
  p = sub.add_parser("logs", help="stream the run's log from one worker")
  _common(p)
  p.add_argument("--worker", default="0")
  p = sub.add_parser("stop", help="SIGTERM the run on every worker (it checkpoints and exits)")
  _common(p)


def commands_for(args) -> list[list[str]]:
  common = dict(pod=args.pod, zone=args.zone, project=args.project)
  if args.action != "run" and getattr(args, "overrides", None):
    raise LaunchError(f"`tpu {args.action}` takes no --config.* overrides (only `tpu run` does)")
  if args.action == "create":
    return create_commands(topology=args.type, version=args.version, queued=args.queued, spot=args.spot,
                           reserved=args.reserved, **common)
  if args.action == "describe":
    return describe_commands(queued=args.queued, **common)
  if args.action == "delete":
    return delete_commands(queued=args.queued, **common)
  if args.action == "setup":
    return setup_commands(source=args.source, package=args.package, jax_spec=args.jax,
                          tarball=args.tarball, **common)
  if args.action == "run":
    return run_commands(argv=build_run(args), attach=args.attach, **common)
  if args.action == "logs":
    return logs_commands(worker=args.worker, **common)
  return stop_commands(**common)


def run(args) -> int:
  try:
    commands = commands_for(args)
  except ValueError as e:   # LaunchError, or a ConfigError from the run's config
    print(f"speechjax tpu {args.action}: {e}", file=sys.stderr)
    return 2
  return execute(commands, args.dry_run)
