"""`speechjax train --config configs/X.py:preset --workdir DIR [--config.a.b=v ...]`.

Resumes from the workdir's latest checkpoint when there is one."""
from __future__ import annotations

import json


def add_arguments(parser):
  parser.add_argument("--config", required=True, help="configs/<family>.py[:preset]")
  parser.add_argument("--workdir", required=True)
  from speechjax.parallel import mesh
  mesh.add_distributed_arguments(parser)


def run(args) -> int:
  from speechjax.parallel import mesh
  mesh.maybe_init_distributed(args.coordinator, args.num_processes, args.process_id)
  from speechjax import config
  from speechjax.train import trainer
  cfg = config.load(args.config, args.overrides)
  final = trainer.train(cfg, args.workdir)
  print(json.dumps({k: round(v, 6) for k, v in final.items()}))
  return 0
