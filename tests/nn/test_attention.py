"""Attention core: the flash kernel (Pallas TPU interpret mode on CPU) equals the XLA form, forward and
gradients; dropout and unknown implementations are refused; ahead of time for TPU the flash backward keeps
no [B, H, F, F] array."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental.pallas import tpu as pltpu
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from speechjax.nn import attention, transformer

pytestmark = pytest.mark.fast_compile

H, DH = 2, 16


def _inputs(frames, lengths, bias_shape=None, seed=0):
  rng = np.random.default_rng(seed)
  b = len(lengths)
  q, k, v, weights = (jnp.asarray(rng.standard_normal((b, frames, H, DH)), jnp.float32) for _ in range(4))
  mask = jnp.arange(frames)[None, :] < jnp.asarray(lengths)[:, None]
  bias = None if bias_shape is None else jnp.asarray(rng.standard_normal(bias_shape), jnp.float32)
  return (q, k, v, bias), mask, weights


def _loss_and_grads(implementation, args, mask, weights):
  """(loss, (output [B, F, H, Dh], grads of q, k, v, bias)): loss weights every row, padded ones too."""
  def loss(q, k, v, bias):
    y = attention.dot_product_attention(q, k, v, mask, bias, implementation=implementation)
    return jnp.sum(y * weights), y
  argnums = (0, 1, 2) if args[3] is None else (0, 1, 2, 3)
  return jax.jit(jax.value_and_grad(loss, argnums, has_aux=True))(*args)


def _flash(args, mask, weights):
  with pltpu.force_tpu_interpret_mode():
    return _loss_and_grads("flash", args, mask, weights)


@pytest.mark.parametrize("frames, lengths, bias_shape, mesh", [
    (13, [13, 9], None, False),                # one key block (128)
    (13, [13, 9], (H, 13, 13), False),         # WavLM's ungated [H, F, F]
    (300, [300, 171], (2, H, 300, 300), True),  # three key blocks, gated [B, H, F, F], in shard_map
    (1000, [1000, 700], None, False),           # two key blocks of 512
])
def test_flash_equals_xla(frames, lengths, bias_shape, mesh):
  args, mask, weights = _inputs(frames, lengths, bias_shape)
  (ref_loss, ref_out), ref_grads = _loss_and_grads("xla", args, mask, weights)
  if mesh:
    with jax.set_mesh(Mesh(np.array(jax.devices()[:1]).reshape(1, 1, 1), ("data", "fsdp", "tensor"))):
      (loss, out), grads = _flash(args, mask, weights)
  else:
    (loss, out), grads = _flash(args, mask, weights)
  assert out.shape == ref_out.shape
  np.testing.assert_allclose(out, ref_out, atol=1e-5)
  np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
  assert len(grads) == len(ref_grads)
  for g, r in zip(grads, ref_grads):
    assert np.isfinite(g).all()
    np.testing.assert_allclose(g, r, atol=1e-5)


def test_fully_padded_rows_stay_finite():
  args, mask, weights = _inputs(13, [13, 0], (H, 13, 13))
  (_, out), grads = _flash(args, mask, weights)
  assert np.isfinite(out).all() and all(np.isfinite(g).all() for g in grads)
  (_, ref_out), _ = _loss_and_grads("xla", args, mask, weights)
  np.testing.assert_allclose(out[0], ref_out[0], atol=1e-5)


def test_self_attention_flash_equals_xla_with_gated_bias():
  x = jnp.asarray(np.random.default_rng(3).standard_normal((2, 11, 32)), jnp.float32)
  mask = jnp.arange(11)[None, :] < jnp.array([[11], [6]])
  bias = jnp.asarray(np.random.default_rng(4).standard_normal((4, 11, 11)), jnp.float32)
  xla = transformer.SelfAttention(4, gate_bias=True)
  params = xla.init(jax.random.PRNGKey(0), x, mask, bias=bias)
  flash = transformer.SelfAttention(4, gate_bias=True, attention_impl="flash")
  with pltpu.force_tpu_interpret_mode():
    out = jax.jit(flash.apply)(params, x, mask, bias=bias)
  np.testing.assert_allclose(out, jax.jit(xla.apply)(params, x, mask, bias=bias), atol=1e-5)


def test_flash_refuses_attention_dropout_in_training_only():
  (q, k, v, _), mask, _ = _inputs(13, [13, 9])
  with pytest.raises(ValueError, match="model.attention_dropout"):
    attention.dot_product_attention(q, k, v, mask, implementation="flash", dropout_rate=0.1,
                                    dropout_rng=jax.random.PRNGKey(0), deterministic=False)
  with pltpu.force_tpu_interpret_mode():
    out = attention.dot_product_attention(q, k, v, mask, implementation="flash", dropout_rate=0.1)
  np.testing.assert_allclose(out, attention.dot_product_attention(q, k, v, mask), atol=1e-5)


@pytest.mark.parametrize("impl", ["threefry2x32", "rbg"])
def test_attention_dropout_drops_its_rate_and_keeps_the_mean(impl):
  """Dropout on the weights from 16-bit draws: with v = identity rows the output is the dropped weights;
  the drop fraction is the rate within sampling error, and the kept weights are rescaled so the mean
  output equals the no-dropout output (unbiased, as flax's nn.Dropout)."""
  frames, heads = 64, 4
  q, k = (jax.random.normal(jax.random.PRNGKey(i), (8, frames, heads, 8)) for i in (1, 2))
  v = jnp.broadcast_to(jnp.eye(frames)[None, :, None, :], (8, frames, heads, frames))
  mask = jnp.ones((8, frames), bool)
  clean = attention.dot_product_attention(q, k, v, mask)
  dropped = attention.dot_product_attention(q, k, v, mask, dropout_rate=0.1, deterministic=False,
                                            dropout_rng=jax.random.key(3, impl=impl))
  n = dropped.size
  assert abs(float((dropped == 0).mean()) - 0.1) < 4 * (0.1 * 0.9 / n) ** 0.5
  np.testing.assert_allclose(float(dropped.mean()), float(clean.mean()), rtol=0.01)


def test_unknown_implementation_is_named():
  (q, k, v, _), mask, _ = _inputs(5, [5])
  with pytest.raises(ValueError, match="'cudnn'"):
    attention.dot_product_attention(q, k, v, mask, implementation="cudnn")


def _compile_for_tpu(mesh, implementation, batch, heads, frames):
  """Compiled fwd+bwd of attention on bf16 q, k, v [batch, frames, heads, 64], batch over data."""
  x = jax.ShapeDtypeStruct((batch, frames, heads, 64), jnp.bfloat16,
                           sharding=NamedSharding(mesh, P(("data", "fsdp"))))
  mask = jax.ShapeDtypeStruct((batch, frames), jnp.bool_, sharding=NamedSharding(mesh, P(("data", "fsdp"))))

  def loss(q, k, v, mask):
    y = attention.dot_product_attention(q, k, v, mask, implementation=implementation)
    return jnp.sum(jnp.square(y.astype(jnp.float32)))
  with jax.set_mesh(mesh):
    return jax.jit(jax.grad(loss, argnums=(0, 1, 2))).lower(x, x, x, mask).compile()


def test_flash_backward_keeps_no_score_matrix_on_tpu(tpu_mesh):
  batch, heads, frames = 16, 8, 1000   # per chip 4 × 8 × 1000² float32 scores: 122 MiB, beyond VMEM
  xla = _compile_for_tpu(tpu_mesh, "xla", batch, heads, frames)
  flash = _compile_for_tpu(tpu_mesh, "flash", batch, heads, frames)
  scores = re.compile(r"\[[\d,]*(1000|1024),(1000|1024)\]")
  assert scores.search(xla.as_text()) and not scores.search(flash.as_text())
  assert "tpu_custom_call" in flash.as_text()
  xla_temp = xla.memory_analysis().temp_size_in_bytes
  flash_temp = flash.memory_analysis().temp_size_in_bytes
  assert xla_temp > 100 * 2**20 and flash_temp < xla_temp / 2, (xla_temp, flash_temp)   # 126 vs 33 MiB


def test_model_config_switch_selects_flash():
  """`model.attention_impl="flash"` reaches every encoder layer: a tiny HuBERT equals its XLA twin;
  with attention dropout the config is refused naming the field."""
  from speechjax.config import ConfigError
  from speechjax.models import hubert
  cfg = hubert.model_config("tiny")
  cfg.attention_dropout = 0.0
  audio = jnp.asarray(np.random.default_rng(5).standard_normal((2, 4000)), jnp.float32)
  audio_mask = jnp.arange(4000)[None, :] < jnp.array([[4000], [2500]])
  xla = hubert.from_config(cfg, heads=False)
  params = xla.init(jax.random.PRNGKey(0), audio, audio_mask)
  cfg.attention_impl = "flash"
  flash = hubert.from_config(cfg, heads=False)
  with pltpu.force_tpu_interpret_mode():
    out = jax.jit(flash.apply)(params, audio, audio_mask)["last_hidden_state"]
  ref = jax.jit(xla.apply)(params, audio, audio_mask)["last_hidden_state"]
  real = np.asarray(xla.apply(params, audio, audio_mask)["frame_mask"])
  np.testing.assert_allclose(np.asarray(out)[real], np.asarray(ref)[real], atol=1e-4)
  cfg.attention_dropout = 0.1
  with pytest.raises(ConfigError, match="config.model.attention_impl='flash': the flash kernel has no"):
    hubert.from_config(cfg)
