"""`speechjax compile`: the trainer's step compiled by the real TPU compiler (libtpu) on this CPU, and the
HLO / jaxpr readers behind its report."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from speechjax.launch import compile as compile_lib
from speechjax.launch import hlo_stats
from speechjax import config as config_lib

# 0.5 s crops: what these tests check (memory fields, FLOPs, collectives) does not depend on the crop, and
# XLA:TPU's compile time grows with it (the presets' own crops are compiled in benchmarks/compiles_presets).
SHORT_CROPS = ("--config.data.max_sample_size=8000", "--config.data.min_sample_size=8000")


def _libtpu_or_skip():
  try:
    import libtpu  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
  except ImportError:
    pytest.skip('libtpu is not installed (pip install "speechjax[tpu]"): no TPU compiler to run')


@pytest.mark.parametrize("generation,chips,expected", [
    ("v5e", 4, "2x2"), ("v5e", 8, "2x4"), ("v5e", 256, "16x16"), ("v6e", 16, "4x4"),
    ("v4", 4, "2x2x1"), ("v4", 32, "2x4x4"), ("v5p", 64, "4x4x4"), ("v4", 128, "4x4x8")])
def test_physical_layout(generation, chips, expected):
  assert compile_lib.physical_layout(generation, chips) == expected


def test_slices_below_four_chips_are_refused():
  with pytest.raises(compile_lib.CompileError, match="2x2 slice or larger"):
    compile_lib.physical_layout("v5e", 2)


def test_jaxpr_flops_multiply_scan_bodies_out():
  w = jnp.ones((12, 64, 64))
  x = jnp.ones((8, 64))

  def stack(x, w):
    return jax.lax.scan(lambda h, wi: (h @ wi, None), x, w)[0].sum()
  one_layer = 2 * 8 * 64 * 64
  assert hlo_stats.jaxpr_flops(stack, x, w) == 12 * one_layer
  # the gradient: forward + two matmuls per layer backward (input and weight gradients)
  assert hlo_stats.jaxpr_flops(jax.grad(stack, argnums=1), x, w) == 3 * 12 * one_layer


def test_jaxpr_flops_of_a_grouped_conv():
  x, k = jnp.ones((2, 50, 32)), jnp.ones((5, 8, 32))
  conv = lambda x, k: jax.lax.conv_general_dilated(x, k, (1,), "SAME", dimension_numbers=("NWC", "WIO", "NWC"),
                                                   feature_group_count=4)
  assert hlo_stats.jaxpr_flops(conv, x, k) == 2 * 2 * 50 * 32 * (5 * 8)


HLO = """HloModule m

%body (p: (s32[], f32[4,8])) -> (s32[], f32[4,8]) {
  %ag = bf16[16,8]{1,0} all-gather(bf16[4,8]{1,0} %x), replica_groups={{0,1,2,3}}, dimensions={0}
  ROOT %t = (s32[], f32[4,8]) tuple(%i, %y)
}

%cond (p: (s32[], f32[4,8])) -> pred[] {
  ROOT %lt = pred[] compare(%i, %n), direction=LT
}

ENTRY %main.1 (a: f32[4,8]) -> f32[4,8] {
  %w = (s32[], f32[4,8]) while(%init), condition=%cond, body=%body, backend_config={"known_trip_count":{"n":"12"}}
  %ar = f32[4,8]{1,0} all-reduce(f32[4,8]{1,0} %a), replica_groups={{0,1}}, to_apply=%add
  %rs = (f32[2,8]{1,0}, f32[1,8]{1,0}) reduce-scatter(f32[8,8]{1,0} %b, f32[4,8]{1,0} %c), dimensions={0}
  ROOT %r = f32[4,8] copy(%ar)
}
"""


def test_collectives_count_loop_bodies_times_their_trips():
  out = hlo_stats.collectives(HLO)
  assert out["all-gather"] == {"count": 12, "bytes": 12 * 16 * 8 * 2, "largest": 16 * 8 * 2}
  assert out["all-reduce"]["count"] == 1 and out["all-reduce"]["bytes"] == 4 * 8 * 4
  assert out["reduce-scatter"]["bytes"] == (2 * 8 + 1 * 8) * 4


def test_xla_tpu_fused_reduce_scatter_counts_as_a_reduce_scatter_of_the_shard():
  """XLA:TPU's optimised HLO writes an FSDP gradient's reduce-scatter as an `all-reduce-scatter` fusion:
  an all-reduce over the fsdp group and the dynamic-slice of this device's shard."""
  hlo = ("%all-reduce-scatter.3.clone.1 (input.13: bf16[1280,5120]) -> bf16[80,5120] {\n"
         "  %input.13 = bf16[1280,5120]{1,0} parameter(0)\n"
         "  %all-reduce.7 = bf16[1280,5120]{1,0} all-reduce(%input.13), channel_id=3, "
         "replica_groups={{0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15},{16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31}}, "
         "to_apply=%add\n"
         "  ROOT %ds = bf16[80,5120]{1,0} dynamic-slice(%all-reduce.7, %o, %z), dynamic_slice_sizes={80,5120}\n"
         "}\n\n"
         "ENTRY %main.3 (g: bf16[1280,5120]) -> bf16[80,5120] {\n"
         "  %ar = f32[64]{0} all-reduce(f32[64]{0} %n), replica_groups=[2,16]<=[32], to_apply=%add\n"
         "  ROOT %f = bf16[80,5120]{1,0} fusion(%g), kind=kCustom, calls=%all-reduce-scatter.3.clone.1\n"
         "}\n")
  out = hlo_stats.collectives(hlo)
  assert out["reduce-scatter"] == {"count": 1, "bytes": 80 * 5120 * 2, "largest": 80 * 5120 * 2}
  assert out["all-reduce"] == {"count": 1, "bytes": 64 * 4, "largest": 64 * 4}


def test_hbm_overflow_message():
  message = ("RESOURCE_EXHAUSTED: XLA:TPU compile permanent error. Ran out of memory in memory space hbm. "
             "Used 37.05G of 15.25G hbm. Exceeded hbm capacity by 21.80G.\n"
             "Total hbm usage >= 37.30G:\n"
             "Largest program allocations in hbm:\n\n"
             "  1. Size: 4.50G\n     Operator: op_name=\"jit(train_step)/softmax\"\n"
             "     Shape: f32[12,8,12,781,781]{4,3,2,1,0}\n\n"
             "  2. Size: 1.13G\n     XLA label: fusion.12 = fusion(...)\n     Shape: bf16[8,12,781,781]\n")
  out = hlo_stats.hbm_overflow(message)
  assert out["required"] == pytest.approx(37.05 * 2**30) and out["available"] == pytest.approx(15.25 * 2**30)
  assert [b["shape"] for b in out["largest"]] == ["f32[12,8,12,781,781]{4,3,2,1,0}", "bf16[8,12,781,781]"]
  assert out["largest"][0]["size"] == pytest.approx(4.5 * 2**30)
  assert hlo_stats.hbm_overflow("INVALID_ARGUMENT: something else") is None


def test_batch_shapes_match_the_pipeline(synth_records):
  from speechjax.data import pipeline, records
  cfg = config_lib.load("configs/hubert.py:tiny", [f"--config.data.path={synth_records}",
                                                    "--config.data.batch_size=2"])
  meta = records.read_meta(synth_records)
  batch = next(pipeline.from_config(cfg.data, True))
  shapes = pipeline.batch_shapes(cfg.data, 2, {n: meta.labels[n].hop for n in cfg.data.labels})
  assert {k: (v.shape, str(v.dtype)) for k, v in batch.items() if k in shapes} == shapes
  assert set(shapes) == {k for k in batch if k not in pipeline.HOST_FIELDS}
  assert compile_lib.label_hops(cfg) == {n: meta.labels[n].hop for n in cfg.data.labels}


@pytest.mark.parametrize("topology,devices,mesh", [("v5e-4", 4, "(-1,1,1)"), ("v4-8", 8, "(2,-1,1)")])
def test_hubert_tiny_train_step_compiles_for_tpu(topology, devices, mesh, tmp_path):
  """The real train step for a v5e 2x2 and a v4 2x2x1 slice: memory fields, FLOPs and the collectives
  of data parallelism (gradient all-reduce) and of FSDP (weights all-gathered, gradients reduce-scattered)."""
  _libtpu_or_skip()
  cfg = config_lib.load("configs/hubert.py:tiny", [f"--config.mesh.shape={mesh}",
                                                    "--config.model.dtype=bfloat16", *SHORT_CROPS,
                                                    "--config.data.path=/nonexistent"])
  report = compile_lib.compile_config(cfg, "hubert tiny", topology)
  assert report.devices == devices and report.device_kind.startswith("TPU v")
  (step,) = report.steps
  m = step.memory
  assert step.fits and m["temporaries"] > 0 and m["arguments"] > 0
  assert m["aliases"] > 0                                   # the donated state is updated in place
  assert m["peak"] == m["arguments"] + m["outputs"] + m["temporaries"] - m["aliases"]
  assert step.flops > 0 and step.bytes_accessed > 0 and step.step_seconds > 0
  assert "all-reduce" in step.collectives
  if "2," in mesh:
    assert "all-gather" in step.collectives and "reduce-scatter" in step.collectives
  text = compile_lib.format_report(report)
  assert "fits" in text and "estimate" in text
  json.loads(compile_lib.to_json(report))


def test_a_step_that_does_not_fit_reports_the_compilers_numbers():
  """A real out-of-memory compile (AudioLM's semantic stage without remat, 8 × 30 s per v4 core): the
  report carries XLA:TPU's required and available HBM, parsed from the compiler's own message."""
  _libtpu_or_skip()
  cfg = config_lib.load("configs/token_lm.py:semantic", ["--config.model.dtype=bfloat16",
                                                        "--config.model.remat_policy=none",
                                                        "--config.data.path=/nonexistent"])
  report = compile_lib.compile_config(cfg, "semantic", "v4-32")
  (step,) = report.steps
  assert not step.fits and not step.memory
  o = step.overflow
  assert o["required"] > o["available"] > 14 * 2**30
  assert all(b["size"] > 0 and b["shape"] for b in o["largest"])
  assert "DOES NOT FIT" in compile_lib.format_report(report)


def test_cli_without_a_topology_it_knows(capsys):
  from speechjax import cli
  assert cli.main(["compile", "--config", "configs/hubert.py:tiny", "--topology", "v9-8"]) == 2
  assert "--topology" in capsys.readouterr().err


def test_trip_count_from_the_loop_condition():
  """XLA:TPU's optimised HLO has no known_trip_count; the condition `i < 6` gives it."""
  hlo = HLO.replace(', backend_config={"known_trip_count":{"n":"12"}}', "").replace(
      "  ROOT %lt = pred[] compare(%i, %n), direction=LT",
      "  %n = s32[]{:T(128)} constant(6)\n  ROOT %lt = pred[] compare(%i, %n), direction=LT")
  assert hlo_stats.collectives(hlo)["all-gather"]["count"] == 6


def test_async_collective_permute_bytes_skip_the_sync_flags():
  """XLA:TPU's collective matmuls rotate weights with async collective-permutes whose tuple is
  (operand, result, u32[] flag, u32[] flag): the bytes are the result's."""
  hlo = ("ENTRY %main.2 (a: bf16[1,128,4096]) -> bf16[1,128,4096] {\n"
         "  %cp = (bf16[1,128,4096]{2,1,0:T(8,128)(2,1)S(1)}, bf16[1,128,4096]{2,1,0:T(8,128)(2,1)S(1)}, "
         "u32[]{:S(2)}, u32[]{:S(2)}) collective-permute-start(%a), channel_id=3, "
         "source_target_pairs={{0,1},{1,0}}\n}\n")
  assert hlo_stats.collectives(hlo)["collective-permute"] == {
      "count": 1, "bytes": 128 * 4096 * 2, "largest": 128 * 4096 * 2}


@pytest.mark.parametrize("shape,expected", [((1, 256, 1), 1), ((16, 16, 1), 0)])
def test_subtile_shards_on_a_v5e_256(shape, expected):
  """X-Large's [1280, 5120] kernel over fsdp = 256 is 5 rows per chip (below the (8, 128) tile);
  over fsdp = 16 it is 80."""
  _libtpu_or_skip()
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
  devices = compile_lib.tpu_devices(compile_lib.plan_lib.parse_topology("v5e-256"))
  mesh = Mesh(np.asarray(devices).reshape(shape), ("data", "fsdp", "tensor"))
  params = {"w": jax.ShapeDtypeStruct((1280, 5120), jnp.float32, sharding=NamedSharding(mesh, P("fsdp"))),
            "b": jax.ShapeDtypeStruct((5120,), jnp.float32, sharding=NamedSharding(mesh, P())),
            # named over a size-1 axis: not split, whatever its size
            "k": jax.ShapeDtypeStruct((12, 12, 64), jnp.float32, sharding=NamedSharding(mesh, P("tensor")))}
  found = compile_lib.subtile_shards(params)
  assert len(found) == expected
  if expected:
    assert "[1280, 5120] → [5, 5120]" in found[0]


@pytest.mark.parametrize("start,limit", [(2, 37), (64, 5), (8, 8)])
def test_search_brackets_the_largest_batch_that_fits(monkeypatch, start, limit):
  """With a stand-in compiler whose peak grows non-linearly in the examples per device, the search
  returns exactly the largest fitting batch, in few compiles."""
  compiled = []

  def fake_compile(cfg, spec, topology, steps, budget_bytes):
    n = cfg.data.batch_size // 4
    compiled.append(n)
    peak = 1e6 + 3e4 * n + 50 * n ** 2
    fits = n <= limit
    step = compile_lib.StepReport("train", 1.0, fits, {"peak": peak}, 1e6 + 3e4 * limit + 50 * limit ** 2 + 1,
                                  0, 0, 0, {}, 0, "compute")
    return compile_lib.Report(spec, topology, 4, "TPU", {"data": 4, "fsdp": 1, "tensor": 1}, "bfloat16",
                              cfg.data.batch_size, 32000, 0, [step])

  _libtpu_or_skip()
  monkeypatch.setattr(compile_lib, "compile_config", fake_compile)
  cfg = config_lib.load("configs/hubert.py:tiny", [f"--config.data.batch_size={4 * start}",
                                                    "--config.mesh.shape=(-1,1,1)"])
  batch, reports = compile_lib.search_batch(cfg, "tiny", "v5e-4", max_compiles=12)
  assert batch == 4 * limit
  assert len(compiled) == len(set(compiled)) <= 12 and len(reports) == len(compiled)
  short, _ = compile_lib.search_batch(cfg, "tiny", "v5e-4", max_compiles=3)   # out of compiles: still fits
  assert short <= 4 * limit


def test_wav2vec2_conformer_train_step_compiles_for_tpu():
  """The conformer stack (scanned, FSDP over 4 of a v4-8's TensorCores, bf16) through the TPU compiler."""
  _libtpu_or_skip()
  cfg = config_lib.load("configs/wav2vec2_conformer.py:tiny", ["--config.mesh.shape=(2,-1,1)",
                                                                "--config.model.dtype=bfloat16", *SHORT_CROPS,
                                                                "--config.model.scan_layers=True",
                                                                "--config.data.path=/nonexistent"])
  (step,) = compile_lib.compile_config(cfg, "wav2vec2_conformer tiny", "v4-8").steps
  assert step.fits and step.memory["temporaries"] > 0 and step.flops > 0
  assert "all-gather" in step.collectives and "all-reduce" in step.collectives


def test_w2v_bert_train_step_compiles_for_tpu():
  """w2v-BERT (fbank front end, relative-key conformer, contrastive + MLM heads) for a v5e-4 slice."""
  _libtpu_or_skip()
  cfg = config_lib.load("configs/w2v_bert.py:tiny", ["--config.model.dtype=bfloat16", *SHORT_CROPS,
                                                      "--config.model.scan_layers=True",
                                                      "--config.data.path=/nonexistent"])
  (step,) = compile_lib.compile_config(cfg, "w2v_bert tiny", "v5e-4").steps
  assert step.fits and step.memory["temporaries"] > 0 and step.flops > 0
  assert "all-reduce" in step.collectives


def test_speech_llm_lora_train_step_compiles_for_tpu():
  """Speech-LLaMA (encoder + LLaMA with GQA + LoRA merged in the step) with FSDP over a v4-8's cores."""
  _libtpu_or_skip()
  cfg = config_lib.load("configs/speech_llm.py:tiny", [
      "--config.mesh.shape=(2,-1,1)", "--config.model.llm.dtype=bfloat16", *SHORT_CROPS,
      "--config.model.encoder.dtype=bfloat16", "--config.task.llm_mode=lora",
      "--config.data.path=/nonexistent", "--config.data.target_vocab=('a','b','c','|')"])
  (step,) = compile_lib.compile_config(cfg, "speech_llm tiny", "v4-8").steps
  assert step.fits and step.memory["temporaries"] > 0 and step.flops > 0
  assert "all-gather" in step.collectives


def test_token_lm_and_llama_sampling_loops_compile_for_tpu():
  """`--step generate`: the KV-cache sampling loop with FSDP-sharded params (gathered inside the loop)."""
  _libtpu_or_skip()
  for spec, extra in (("configs/token_lm.py:semantic_tiny", []),
                      ("configs/llama.py:tiny", ["--config.data.target_vocab=('a','b','c','|')"])):
    cfg = config_lib.load(spec, ["--config.mesh.shape=(1,-1,1)", "--config.model.dtype=bfloat16",
                                 "--config.data.path=/nonexistent", *extra])
    (step,) = compile_lib.compile_config(cfg, spec, "v5e-4", ("generate",)).steps
    assert step.step == "generate" and step.fits and step.flops > 0, spec
    assert "all-gather" in step.collectives, (spec, step.collectives)
  hubert = config_lib.load("configs/hubert.py:tiny", ["--config.data.path=/nonexistent"])
  with pytest.raises(compile_lib.CompileError, match="model_type='hubert' has no sampling loop"):
    compile_lib.compile_config(hubert, "hubert tiny", "v5e-4", ("generate",))
