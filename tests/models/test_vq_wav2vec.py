"""vq-wav2vec: k-means VQ (loss formula, nearest codes, straight-through), Gumbel straight-through inside the
model, output contract, causality with the k-means input norm, gradients reach every parameter, FLOPs."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from speechjax import config
from speechjax.config import ConfigError
from speechjax.models import vq_wav2vec
from speechjax.nn import conv_encoder, quantizers
from speechjax.tasks import get_task

from tests.helpers import harness
from tests.models.model_testing import audio_batch, forward_matmul_flops, random_params

pytestmark = pytest.mark.fast_compile

B, T = 2, 4000
GAMMA = 0.25


def _inputs():
  return audio_batch(T, 3000)


@jax.jit
def _kmeans_apply(codebook, x, mask):
  return quantizers.KMeansVectorQuantizer(codebook.shape[0], codebook.shape[1], GAMMA).apply(
      {"params": {"codebook": codebook}}, x, mask)


def test_kmeans_loss_formula_on_a_toy_case():
  codebook = jnp.array([[[0.0, 0.0], [2.0, 0.0]]])                   # G=1, V=2, d=2
  x = jnp.array([[[0.5, 0.5], [1.5, -0.5], [9.0, 9.0]]])             # the third frame is masked out
  mask = jnp.array([[True, True, False]])
  out = _kmeans_apply(codebook, x, mask)
  np.testing.assert_array_equal(out["codes"][0, :, 0], [0, 1, 1])
  np.testing.assert_allclose(out["quantized"][0], [[0, 0], [2, 0], [2, 0]], atol=1e-6)   # hard codewords
  # each selected frame is 0.5 (squared) from its codeword; mean over 2 frames × 2 channels = 0.25
  np.testing.assert_allclose(out["loss"], 0.25 * (1 + GAMMA), rtol=1e-6)
  grad_x, grad_book = jax.jit(jax.grad(lambda x, b: _kmeans_apply(b, x, mask)["loss"], argnums=(0, 1)))(
      x, codebook)
  # commitment: gamma · 2 (z − ẑ) / 4 moves the input; codebook term: 2 (ẑ − z) / 4 moves the codewords
  np.testing.assert_allclose(grad_x[0], [[0.0625, 0.0625], [-0.0625, -0.0625], [0, 0]], atol=1e-7)
  np.testing.assert_allclose(grad_book[0], [[-0.25, -0.25], [0.25, 0.25]], atol=1e-7)
  assert float(out["code_perplexity"]) == pytest.approx(2.0, rel=1e-5)   # both codes used equally


def test_kmeans_picks_the_nearest_codeword_per_group_with_identity_gradient():
  rng = np.random.default_rng(3)
  g, v, d = 2, 5, 3
  codebook = jnp.asarray(rng.standard_normal((g, v, d)), jnp.float32)
  x = jnp.asarray(rng.standard_normal((2, 7, g * d)), jnp.float32)
  mask = jnp.ones((2, 7), bool)
  out = _kmeans_apply(codebook, x, mask)
  groups = np.asarray(x).reshape(2, 7, g, 1, d)
  expected = np.argmin(((groups - np.asarray(codebook)[None, None]) ** 2).sum(-1), -1)
  np.testing.assert_array_equal(out["codes"], expected)
  hard = np.stack([np.asarray(codebook)[i][expected[..., i]] for i in range(g)], -2).reshape(x.shape)
  np.testing.assert_allclose(out["quantized"], hard, rtol=1e-6)
  weights = jnp.asarray(rng.standard_normal(x.shape), jnp.float32)
  grad = jax.jit(jax.grad(lambda x: jnp.sum(_kmeans_apply(codebook, x, mask)["quantized"] * weights)))(x)
  np.testing.assert_allclose(grad, weights, rtol=1e-6)   # straight-through: identity


@functools.lru_cache(maxsize=None)
def _task(preset):
  return get_task(config.load(f"{harness.REPO}/configs/vq_wav2vec.py:{preset}", []))


@functools.lru_cache(maxsize=None)
def _train_pass(preset):
  """(outputs of a training forward pass, gradient of the task loss) with random params: one compile."""
  task = _task(preset)
  audio, mask = _inputs()
  params = random_params(task.model, audio, mask)
  rng = jax.random.PRNGKey(4)

  def run(p):
    outputs = task.model.apply({"params": p}, audio, mask, train=True, temperature=0.7,
                               rngs={"gumbel": jax.random.split(rng)[1]})
    grads = jax.grad(lambda q: task.loss(q, {"audio": audio, "audio_mask": mask}, rng, True,
                                         jnp.int32(0))[0])(p)
    return outputs, grads
  return params, *jax.jit(run)(params)


@pytest.mark.parametrize("preset", ["tiny", "tiny_kmeans"])
def test_outputs_follow_the_contract(preset):
  cfg = _task(preset).config.model
  params, out, _ = _train_pass(preset)
  frames = conv_encoder.output_length(T, tuple(tuple(l) for l in cfg.conv_layers))
  width, g, v = cfg.conv_layers[-1][0], cfg.vq_groups, cfg.vq_vars
  assert out["targets"].shape == out["features"].shape == (B, frames, width)
  assert out["predictions"].shape == (B, frames, cfg.prediction_steps, width)
  assert out["codes"].shape == (B, frames, g) and out["codes"].dtype == jnp.int32
  assert g <= float(out["code_perplexity"]) <= g * v
  assert ("vq_loss" in out) == (cfg.vq_type == "kmeans") and ("prob_perplexity" in out) == (cfg.vq_type == "gumbel")
  # forward value = the hard codewords of the codes (straight-through for both quantizers)
  book = params["quantizer"]["codevectors" if cfg.vq_type == "gumbel" else "codebook"]
  codes = np.asarray(out["codes"])
  hard = np.concatenate([np.asarray(book)[i][codes[..., i]] for i in range(g)], -1)
  np.testing.assert_allclose(out["targets"], hard, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("preset", ["tiny", "tiny_kmeans"])
def test_gradient_reaches_every_parameter(preset):
  """Through the straight-through codes: the Gumbel logits network gets the soft gradient, the encoder
  gets the k-means identity gradient plus the commitment term."""
  _, _, grads = _train_pass(preset)
  flat = jax.tree_util.tree_flatten_with_path(grads)[0]
  dead = [jax.tree_util.keystr(path) for path, g in flat if not float(jnp.abs(g).max()) > 0]
  assert not dead, dead
  assert "vq_input" in grads and "feature_extractor" in grads


def test_kmeans_model_is_causal():
  task = _task("tiny_kmeans")
  audio, mask = _inputs()
  params = random_params(task.model, audio, mask)
  cut = 2000
  noisy = audio.at[:, cut:].set(0.0)
  run = jax.jit(lambda a: task.model.apply({"params": params}, a, mask))
  before, after = run(audio), run(noisy)
  untouched = (cut - 465) // 160 + 1
  for name in ("targets", "codes", "predictions"):
    np.testing.assert_array_equal(before[name][:, :untouched], after[name][:, :untouched], err_msg=name)


@pytest.mark.parametrize("preset", ["tiny", "tiny_kmeans"])
def test_forward_flops_equal_the_matmuls_in_the_graph(preset):
  task = _task(preset)
  params = _train_pass(preset)[0]
  assert vq_wav2vec.forward_flops(task.config.model, T) == pytest.approx(
      forward_matmul_flops(task.model, params, T), rel=1e-9)


def test_paper_presets_and_bad_config():
  for preset, vq_type in (("gumbel", "gumbel"), ("kmeans", "kmeans")):
    cfg = vq_wav2vec.model_config(preset)
    assert (cfg.vq_type, cfg.vq_groups, cfg.vq_vars, cfg.vq_gamma) == (vq_type, 2, 320, 0.25)
  assert config.load(f"{harness.REPO}/configs/vq_wav2vec.py:gumbel", []).task.gumbel_temperature == (
      2.0, 0.5, 0.999995)
  cfg = vq_wav2vec.model_config("tiny")
  cfg.vq_groups = 3
  with pytest.raises(ConfigError, match="vq_groups"):
    vq_wav2vec.from_config(cfg)
  cfg = vq_wav2vec.model_config("tiny")
  cfg.vq_type = "rvq"
  with pytest.raises(ConfigError, match="vq_type"):
    vq_wav2vec.from_config(cfg)
