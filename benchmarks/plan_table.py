"""The mesh-choice table of docs/scaling.md §4: `speechjax plan` (bf16) for Base / Large / X-Large at batch 64
and 512 on v4 and v5e slices, with the least rematerialisation that fits (none, then dots, then full).

    python benchmarks/plan_table.py > /tmp/table.md
"""
from speechjax import config as config_lib
from speechjax.launch import plan

MODELS = (("wav2vec 2.0 Base", "configs/wav2vec2.py:base"), ("wav2vec 2.0 Large", "configs/wav2vec2.py:large"),
          ("HuBERT Large", "configs/hubert.py:large"), ("HuBERT X-Large", "configs/hubert.py:xlarge"))
SLICES = ("v4-8", "v4-32", "v4-64", "v5e-8", "v5e-64", "v5e-256")


def row(name, spec, batch, topology):
  base = ["--config.model.dtype=bfloat16", f"--config.data.batch_size={batch}"]
  facts = plan.model_facts(config_lib.load(spec, base))
  for remat in ("none", "dots", "full"):
    p = plan.make_plan(config_lib.load(spec, base + [f"--config.model.remat_policy={remat}"]), spec, topology,
                       facts=facts)
    total = p.chosen.memory["total"]
    fits = total <= plan.HEADROOM * p.topology.device_hbm
    if fits or remat == "full":
      break
  gib = f"{total / plan.GiB:.1f}" + ("" if fits else " (does not fit)")
  return (f"| {name} | {facts.num_params / 1e6:.0f}M | {batch} | {topology} | {p.chosen.mesh} | "
          f"{p.chosen.examples_per_device:g} | {remat} | {gib} | {p.step_time * 1e3:.0f} ms |")


def main():
  print("| model | params | batch | slice | mesh (data, fsdp, tensor) | examples/device | remat | GiB/device "
        "| step (MFU 0.5) |")
  print("|---|---|---|---|---|---|---|---|---|")
  for name, spec in MODELS:
    for batch in (64, 512):
      for topology in SLICES:
        print(row(name, spec, batch, topology), flush=True)


if __name__ == "__main__":
  main()
