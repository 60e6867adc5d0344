"""`speechjax plan`: topologies, exact parameter/optimizer bytes per chip, activation model, step time."""
import math

import pytest

from speechjax.launch import plan
from speechjax import cli
from speechjax import config as config_lib
from speechjax.models import wav2vec2
from speechjax.parallel import mesh as mesh_lib
from speechjax.train import metrics

W2V2 = "configs/wav2vec2.py"


@pytest.mark.parametrize("name, generation, chips, hosts", [
    ("v4-8", "v4", 4, 1), ("v4-64", "v4", 32, 8), ("v5e-256", "v5e", 256, 64), ("v5litepod-8", "v5e", 8, 1),
    ("v5p-128", "v5p", 64, 16), ("v6e-8", "v6e", 8, 1), ("v6e-256", "v6e", 256, 64),
])
def test_topologies(name, generation, chips, hosts):
  top = plan.parse_topology(name)
  assert (top.generation, top.chips, top.hosts) == (generation, chips, hosts)


@pytest.mark.parametrize("name", ["v3-8", "v4-3", "v5e", "tpu-64"])
def test_bad_topology_names_the_flag(name):
  with pytest.raises(plan.PlanError, match="--topology"):
    plan.parse_topology(name)


def test_chip_table_agrees_with_the_mfu_table():
  for chip in plan.CHIPS.values():
    assert metrics.PEAK_FLOPS[chip.name] == chip.peak_flops
  assert plan.CHIPS["v5e"].hbm_bytes == 16 * plan.GiB and plan.CHIPS["v5p"].hbm_bytes == 95 * plan.GiB


def test_shard_fraction_follows_the_mesh_rules():
  rules = mesh_lib.DEFAULT_RULES
  mesh = {"data": 2, "fsdp": 4, "tensor": 2}
  assert plan.shard_fraction((64, 128), ("embed", "mlp"), rules, mesh) == 1 / 8
  assert plan.shard_fraction((63, 128), ("embed", "mlp"), rules, mesh) == 1 / 2    # 63 % 4: stays whole
  assert plan.shard_fraction((64,), (None,), rules, mesh) == 1.0
  assert plan.shard_fraction((64, 128), None, rules, mesh) == 1.0                  # unboxed: replicated


@pytest.fixture(scope="module")
def tiny():
  cfg = config_lib.load(f"{W2V2}:tiny", ["--config.optim.warmup_steps=1"])
  return cfg, plan.model_facts(cfg)


def test_param_count_of_the_frame_classifier_by_hand():
  facts = plan.model_facts(config_lib.load("configs/frame_classifier.py:tiny"))
  conv = 10 * 1 * 32 + 8 * 32 * 32 + 2 * (4 * 32 * 32)          # no conv bias
  norms = 2 * 32 + 2 * 32                                        # group norm (layer 0), feature norm
  dense = (32 * 32 + 32) + (32 * 64 + 64) + (64 * 64 + 64)       # proj, mlp_in, head (64 classes)
  assert facts.num_params == conv + norms + dense


def test_param_and_optimizer_bytes_are_exact(tiny):
  cfg, facts = tiny
  one_chip = plan.state_bytes(facts, mesh_lib.rules(cfg.mesh), {"data": 1, "fsdp": 1, "tensor": 1})
  param_bytes = 4 * facts.num_params
  assert one_chip["params"] == one_chip["gradients"] == param_bytes
  assert 2 * param_bytes <= one_chip["optimizer"] < 2 * param_bytes + 1024   # mu + nu (+ counters)
  fsdp = plan.state_bytes(facts, mesh_lib.rules(cfg.mesh), {"data": 1, "fsdp": 4, "tensor": 1})
  assert param_bytes / 4 < fsdp["params"] < param_bytes / 2   # most arrays split 4 ways, norms/biases not
  assert fsdp["optimizer"] == pytest.approx(2 * fsdp["params"], rel=0.01)


def test_accumulation_and_ema_add_state(tiny):
  cfg, facts = tiny
  cfg2 = config_lib.load(f"{W2V2}:tiny", ["--config.optim.warmup_steps=1", "--config.optim.ema_decay=0.999",
                                          "--config.optim.grad_accum_steps=2"])
  facts2 = plan.model_facts(cfg2)
  mesh = {"data": 1, "fsdp": 1, "tensor": 1}
  a, b = (plan.state_bytes(f, mesh_lib.rules(cfg.mesh), mesh) for f in (facts, facts2))
  assert b["ema"] == a["params"] and b["optimizer"] >= a["optimizer"] + a["params"]   # + acc_grads


def test_activation_model(tiny):
  cfg, _ = tiny
  terms = plan.activation_terms(cfg.model, 32000)
  assert terms["frames"] == 99 and terms["layers"] == 2
  none, dots, full = (plan.activation_bytes(terms, r) for r in ("none", "dots", "full"))
  assert none > dots > full > terms["input"] + terms["conv"]
  d, i, h, f = 64, 128, 4, 99
  masks = 2 * d   # hidden dropout after attention and FFN (1 B each); no activation dropout
  # per head and frame pair: float32 logits and softmax (ATTENTION_PAIR_BYTES = 8) and the weights in the
  # compute dtype (4 B); attention dropout's mask and dropped copy are recomputed (threefry: no kept draws)
  assert plan.ATTENTION_PAIR_BYTES == 8
  assert terms["layer"]["none"] == f * ((9 * d + 2 * i) * 4 + masks) + h * f * f * 12
  rbg = plan.activation_terms(cfg.model, 32000, rng_impl="rbg")   # + the kept 16-bit draws, any remat
  assert rbg["layer"]["none"] - terms["layer"]["none"] == rbg["layer"]["dots"] - terms["layer"]["dots"] == \
      h * f * f * 2
  assert terms["layer"]["dots"] == f * (6 * d + i) * 4 and terms["layer"]["full"] == f * d * 4
  split = plan.activation_terms(cfg.model, 32000, tensor=2)
  assert split["layer"]["none"] < terms["layer"]["none"] and split["conv"] == terms["conv"] / 2
  bf16 = cfg.model.copy_and_resolve_references()
  bf16.dtype = "bfloat16"
  half = plan.activation_terms(bf16, 32000)
  assert half["layer"]["none"] == f * ((9 * d + 2 * i) * 2 + masks) + h * f * f * (8 + 2)


def test_plan_step_time_and_mesh_choice(tiny):
  cfg, facts = tiny
  p = plan.make_plan(cfg, f"{W2V2}:tiny", "v4-8", mfu=0.4, facts=facts)
  # v4-8 = 4 chips = 8 devices (one per TensorCore, as the TPU compiler sees it), batch 8
  assert p.topology.devices == 8 and p.topology.device_hbm == 16 * plan.GiB
  assert p.chosen.mesh == (8, 1, 1) and p.chosen.examples_per_device == 1
  forward = wav2vec2.forward_flops(cfg.model, cfg.data.max_sample_size)
  assert facts.forward_flops == forward
  assert p.step_time == pytest.approx(3 * forward * 8 / (4 * 275e12 * 0.4))
  assert {c.mesh for c in p.candidates} >= {(8, 1, 1), (4, 2, 1), (2, 4, 1), (1, 8, 1), (4, 1, 2), (2, 1, 4)}
  assert all(8 % (d * f) == 0 for d, f, _ in (c.mesh for c in p.candidates))
  fsdp = plan.make_plan(cfg, "x", "v4-8", mesh="(1,-1,1)", facts=facts)
  assert fsdp.chosen.mesh == (1, 8, 1) and fsdp.chosen.memory["params"] < p.chosen.memory["params"]
  with pytest.raises(plan.PlanError, match="--mesh"):
    plan.make_plan(cfg, "x", "v4-8", mesh="(3,1,1)", facts=facts)


def test_large_model_fits_or_not(capsys):
  """wav2vec 2.0 Large: 317M params; batch 64 × 20 s replicated on 4 v5e chips does not fit, FSDP over
  more chips does."""
  overrides = ["--config.model.dtype=bfloat16"]
  cfg = config_lib.load(f"{W2V2}:large", overrides)
  facts = plan.model_facts(cfg)
  assert math.isclose(facts.num_params, 317.4e6, rel_tol=1e-3)
  small = plan.make_plan(cfg, "x", "v5e-4", mesh="(4,1,1)", facts=facts)
  assert small.chosen.memory["total"] > 16 * plan.GiB
  assert "DOES NOT FIT" in plan.format_plan(small)
  big = plan.make_plan(cfg, "x", "v5e-64", facts=facts)
  assert big.chosen.memory["total"] <= plan.HEADROOM * 16 * plan.GiB
  assert big.chosen.mesh[2] == 1   # no tensor parallelism needed
  remat = plan.make_plan(config_lib.load(f"{W2V2}:large", overrides + ["--config.model.remat_policy=full"]),
                         "x", "v5e-64", facts=facts)
  assert remat.chosen.memory["activations"] < big.chosen.memory["activations"] / 3


def test_cli_prints_the_derivation(capsys):
  code = cli.main(["plan", "--config", f"{W2V2}:tiny", "--topology", "v5e-8", "--mfu", "0.3",
                   "--config.data.batch_size=16"])
  out = capsys.readouterr().out
  assert code == 0
  for text in ("TPU v5e: 16 GiB HBM, 197 TFLOP/s", "v5e-8 = 8 chips, 1 host", "jax.eval_shape",
               "(data, fsdp, tensor) = (8, 1, 1)", "2 examples per device", "AdamW: 2 moments",
               "one layer, remat dots", "MFU 0.30", "→ fits", "meshes that split data.batch_size=16"):
    assert text in out, text
  assert cli.main(["plan", "--config", f"{W2V2}:tiny", "--topology", "v9-8"]) == 2
  assert "--topology" in capsys.readouterr().err
  assert cli.main(["plan", "--config", f"{W2V2}:tiny", "--topology", "v4-8", "--config.model.nope=1"]) == 2
