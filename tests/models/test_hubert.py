"""HuBERT model: prediction heads (cosine logits per label set), optional projection LN, FLOPs, counts."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from speechjax.config import ConfigError
from speechjax.models import hubert

from tests.models.model_testing import (audio_batch, forward_matmul_flops, param_counts, random_params,
                                        tiny_model)

pytestmark = pytest.mark.fast_compile

B, T, CLASSES = 2, 8000, (5, 3)


def _setup(**overrides):
  cfg, model = tiny_model(hubert, num_classes=CLASSES, **overrides)
  return cfg, model, *audio_batch(T, 5000, zero_padding=False)


def test_logits_are_scaled_cosines_against_each_label_set():
  cfg, model, audio, audio_mask = _setup()
  params = random_params(model, audio, audio_mask)
  out = jax.jit(lambda p: model.apply({"params": p}, audio, audio_mask))(params)
  frames = out["frame_mask"].shape[1]
  assert isinstance(out["logits"], tuple) and len(out["logits"]) == len(CLASSES)
  chex.assert_shape(list(out["logits"]), [(B, frames, k) for k in CLASSES])
  embs = np.asarray(params["label_embs"])
  assert embs.shape == (sum(CLASSES), cfg.final_dim)
  proj = np.asarray(out["last_hidden_state"]) @ np.asarray(params["final_proj"]["kernel"])
  proj += np.asarray(params["final_proj"]["bias"])
  for i, (lo, hi) in enumerate([(0, 5), (5, 8)]):
    chunk = proj[..., i * cfg.final_dim:(i + 1) * cfg.final_dim]
    cos = (chunk / np.linalg.norm(chunk, axis=-1, keepdims=True)) @ (
        embs[lo:hi] / np.linalg.norm(embs[lo:hi], axis=-1, keepdims=True)).T
    np.testing.assert_allclose(out["logits"][i], cos / cfg.logit_temp, atol=1e-4)
    assert out["logits"][i].dtype == jnp.float32
  assert "quantizer" not in params and "feature_projection" in params["hubert"]


def test_projection_layer_norm_is_optional():
  _, model, audio, audio_mask = _setup(feat_proj_layer_norm=False)
  shapes = nn.unbox(jax.eval_shape(model.init, jax.random.PRNGKey(0), audio, audio_mask))["params"]
  assert "layer_norm" not in shapes["hubert"]["feature_projection"]
  assert "projection" in shapes["hubert"]["feature_projection"]


def test_forward_flops_equal_the_matmuls_in_the_graph():
  cfg, model, audio, audio_mask = _setup()
  params = random_params(model, audio, audio_mask)
  assert hubert.forward_flops(cfg, T) == pytest.approx(forward_matmul_flops(model, params, T), rel=1e-9)


@pytest.mark.parametrize("preset,total", [("base", 94.7e6), ("large", 316e6), ("xlarge", 963e6)])
def test_parameter_counts(preset, total):
  full, _ = param_counts(hubert, preset)   # km500 head
  assert full == pytest.approx(total, rel=0.005)


def test_bad_num_classes_names_the_field():
  cfg = hubert.model_config("tiny")
  cfg.num_classes = ()
  with pytest.raises(ConfigError, match="num_classes"):
    hubert.from_config(cfg)
