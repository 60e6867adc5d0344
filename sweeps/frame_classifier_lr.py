"""Learning-rate sweep of the frame classifier (configs/frame_classifier.py).

    speechjax sweep run --config configs/frame_classifier.py:small --sweep sweeps/frame_classifier_lr.py \
        --workdir workdir/sweep_fc_lr
    speechjax sweep report --workdir workdir/sweep_fc_lr --metric eval/accuracy --mode max

Default: a grid of 4 peak learning rates (2× steps around the small preset's 2e-3). `:random`: 8 trials of
random search, log-uniform learning rate in [3e-4, 1e-2] and warmup 10 or 100 steps.
"""
from speechjax.launch.sweep import grid, log_uniform, random


def get_sweep(arg=None):
  if arg == "random":
    return random(8, seed=0, **{"optim.lr": log_uniform(3e-4, 1e-2), "optim.warmup_steps": [10, 100]})
  if arg not in (None, "grid"):
    raise ValueError(f"sweeps/frame_classifier_lr.py: unknown arg {arg!r} (grid, random)")
  return grid(**{"optim.lr": [5e-4, 1e-3, 2e-3, 4e-3]})
