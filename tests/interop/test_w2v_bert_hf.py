"""w2v-BERT 2.0 encoder parity with HF transformers' `Wav2Vec2BertModel` (random weights, odd sizes, a
padded batch, nothing downloaded), from its input features and end to end from audio through
`SeamlessM4TFeatureExtractor`; and the weight/config converters."""
import functools

import jax
import numpy as np
import pytest

from speechjax.interop import hf
from speechjax.models import w2v_bert

from tests.interop import hf_parity

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.fast_compile

TOLERANCE = 1e-4
# odd sizes; distances clipped to [-5, 3] so that 40 frames reach both clips
ODD = dict(hidden_size=36, num_attention_heads=3, intermediate_size=100, num_hidden_layers=3,
           contrastive_layers=1, conv_depthwise_kernel_size=7, left_max_position_embeddings=5,
           right_max_position_embeddings=3)


def _config(**overrides):
  cfg = w2v_bert.model_config("tiny")
  cfg.update(ODD, **overrides)
  return cfg


@functools.lru_cache(maxsize=None)
def _hf_model():
  cfg = _config()
  return cfg, hf_parity.perturbed_hf_model(transformers.Wav2Vec2BertModel, cfg,
                                           hf_parity.PERTURBED + ("distance_embedding",))


def _hf_hidden_states(model, features, mask, mask_time=None):
  kwargs = {} if mask_time is None else {"mask_time_indices": torch.from_numpy(mask_time)}
  with torch.no_grad():
    return model(torch.from_numpy(features), attention_mask=torch.from_numpy(mask.astype(np.int64)),
                 output_hidden_states=True, **kwargs).hidden_states


def test_hidden_states_match_hf_from_features_on_a_padded_batch():
  cfg, model = _hf_model()
  params = hf.from_hf(model.state_dict(), cfg)
  module = w2v_bert.from_config(cfg, heads=False)
  rng = np.random.default_rng(0)
  features = rng.standard_normal((2, 40, 160)).astype(np.float32)
  mask = np.arange(40)[None] < np.array([[40], [29]])
  features = np.where(mask[..., None], features, 0).astype(np.float32)
  mask_time = hf_parity.time_mask(2, 40, [(0, 3, 9), (1, 20, 25)])
  for masked in (None, mask_time):
    ours = module.apply({"params": params}, features, mask, mask_time=masked,
                        output_hidden_states=True)["hidden_states"]
    theirs = _hf_hidden_states(model, features, mask, masked)
    errors = [float(np.abs(np.where(mask[..., None], np.asarray(a) - b.numpy(), 0)).max())
              for a, b in zip(ours, theirs)]
    print(f"w2v-bert ({'masked' if masked is not None else 'unmasked'}): max abs error per layer "
          f"{['%.1e' % e for e in errors]}")
    assert len(ours) == cfg.num_hidden_layers + 1 and max(errors) <= TOLERANCE


def test_audio_in_matches_hf_feature_extractor_then_model():
  """Our model on audio (its own fbank front end) against SeamlessM4TFeatureExtractor + HF model."""
  cfg, model = _hf_model()
  params = hf.from_hf(model.state_dict(), cfg)
  module = w2v_bert.from_config(cfg, heads=False)
  audio, audio_mask = hf_parity.padded_batch(16000, 11000)
  audio = audio + 0.01 * np.sin(np.arange(16000) / 7.0).astype(np.float32) * audio_mask
  extractor = transformers.SeamlessM4TFeatureExtractor()
  inputs = extractor([audio[0], audio[1, :11000]], sampling_rate=16000, padding=True, return_tensors="np")
  theirs = _hf_hidden_states(model, inputs["input_features"].astype(np.float32), inputs["attention_mask"])[-1]
  ours = module.apply({"params": params}, audio, audio_mask)
  frames = theirs.shape[1]
  real = ours["frame_mask"][:, :frames]
  np.testing.assert_array_equal(real, inputs["attention_mask"].astype(bool)[:, :ours["frame_mask"].shape[1]])
  error = np.abs(np.where(np.asarray(real)[..., None],
                          np.asarray(ours["last_hidden_state"][:, :frames]) - theirs.numpy(), 0)).max()
  print(f"w2v-bert from audio: max abs error {error:.1e}")
  assert error < 5e-4   # measured 1.9e-5: the fbank front ends differ by ~1e-4 (float32 here, float64 in HF)


def test_round_trip_and_config():
  cfg = _config(scan_layers=True)
  torch.manual_seed(0)
  model = transformers.Wav2Vec2BertModel(hf.hf_config(cfg))
  state_dict = hf_parity.state_dict(model)
  params = hf.from_hf(state_dict, cfg)
  hf_parity.assert_same_state_dict(hf.to_hf(params, cfg), state_dict)
  back = hf.config_from_hf(hf.hf_config(cfg))
  for field in hf.BERT_SAME_NAME:
    assert back[field] == cfg[field], field
  with pytest.raises(ValueError, match="export"):
    pretraining = w2v_bert.from_config(cfg)
    tree = jax.eval_shape(pretraining.init, jax.random.PRNGKey(0), np.zeros((1, 4, 160), np.float32),
                          np.ones((1, 4), bool))["params"]
    hf.to_hf(tree, cfg)
