"""wav2vec2-conformer parity with HF transformers' `Wav2Vec2ConformerModel` (random weights, odd sizes,
nothing downloaded), both position variants, a padded batch, and the weight/config converters.

HF's conv module takes no padding mask, so in a padded batch its padded frames leak into real ones from
the second layer on; ours zeroes them (speechjax.nn.conformer). The padded utterance is therefore compared
with HF run on that utterance alone, and HF's own padded output is shown to differ."""
import functools

import jax
import numpy as np
import pytest

from speechjax.interop import hf, hf_conformer
from speechjax.models import wav2vec2_conformer

from tests.interop import hf_parity

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.fast_compile

B, T, REAL = 2, 16000, 11000
TOLERANCE = 1e-4
# odd sizes: head_dim 12, FFN 100, kernel 7; the layer-norm extractor (per frame) so that a padded
# utterance's conv features equal its unpadded ones
ODD = dict(hidden_size=36, num_attention_heads=3, intermediate_size=100, num_hidden_layers=3,
           conv_depthwise_kernel_size=7, conv_norm="batch_norm", extractor_mode="layer_norm", conv_bias=True)


def _config(position, **overrides):
  cfg = wav2vec2_conformer.model_config("tiny")
  cfg.update(ODD, position_embeddings_type=position, **overrides)
  return cfg


@functools.lru_cache(maxsize=None)
def _hf_model(position):
  """(our config, HF Wav2Vec2ConformerModel in eval mode): norms, biases and BN statistics perturbed."""
  cfg = _config(position)
  model = hf_parity.perturbed_hf_model(transformers.Wav2Vec2ConformerModel, cfg)
  with torch.no_grad():
    for name, buffer in model.named_buffers():
      if name.endswith("running_mean"):
        buffer.normal_(0.0, 0.3)
      elif name.endswith("running_var"):
        buffer.uniform_(0.5, 2.0)
  return cfg, model


def _hidden_states(model, audio, audio_mask, mask_time):
  return hf_parity.hf_outputs(model, audio, audio_mask, mask_time).hidden_states


@pytest.mark.parametrize("position", ["relative", "rotary"])
def test_hidden_states_match_hf_at_every_layer(position):
  cfg, model = _hf_model(position)
  params = hf.from_hf(model.state_dict(), cfg)
  module = wav2vec2_conformer.from_config(cfg, heads=False)
  audio, audio_mask = hf_parity.padded_batch(T, REAL)
  frames = _hidden_states(model, audio[:1], audio_mask[:1], None)[0].shape[1]
  real_frames = _hidden_states(model, audio[1:, :REAL], audio_mask[1:, :REAL], None)[0].shape[1]
  mask_time = hf_parity.time_mask(B, frames, [(0, 2, 9), (1, 20, 27)])
  ours = jax.jit(lambda p: module.apply({"params": p}, audio, audio_mask, mask_time=mask_time,
                                        output_hidden_states=True))(params)["hidden_states"]
  full = _hidden_states(model, audio[:1], audio_mask[:1], mask_time[:1])
  alone = _hidden_states(model, audio[1:, :REAL], audio_mask[1:, :REAL], mask_time[1:, :real_frames])
  errors_full = hf_parity.max_errors([h[:1] for h in ours], full)
  errors_padded = hf_parity.max_errors([h[1:, :real_frames] for h in ours], alone)
  print(f"conformer/{position}: max abs error per layer, full {['%.1e' % e for e in errors_full]}, "
        f"padded vs alone {['%.1e' % e for e in errors_padded]}")
  assert len(ours) == cfg.num_hidden_layers + 1
  assert max(errors_full + errors_padded) <= TOLERANCE
  # HF on the padded batch: its conv modules read padded frames, so the padded utterance differs
  hf_padded = _hidden_states(model, audio, audio_mask, mask_time)[-1][1:, :real_frames].numpy()
  assert np.abs(hf_padded - alone[-1].numpy()).max() > 1e-3


def test_padding_does_not_change_real_frames():
  """Our conformer on a padded utterance gives the frames of the utterance alone, for any padding."""
  cfg = _config("relative", conv_norm="layer_norm")
  module = wav2vec2_conformer.from_config(cfg, heads=False)
  audio, audio_mask = hf_parity.padded_batch(T, REAL)
  params = module.init(jax.random.PRNGKey(0), audio, audio_mask)["params"]
  padded = module.apply({"params": params}, audio, audio_mask)["last_hidden_state"]
  alone = module.apply({"params": params}, audio[1:, :REAL], audio_mask[1:, :REAL])["last_hidden_state"]
  np.testing.assert_allclose(padded[1, :alone.shape[1]], alone[0], atol=2e-5)
  noisy = np.where(audio_mask, audio, 5.0).astype(np.float32)   # garbage in the padding
  again = module.apply({"params": params}, noisy, audio_mask)["last_hidden_state"]
  np.testing.assert_allclose(again[1, :alone.shape[1]], alone[0], atol=2e-5)


def test_pretraining_state_dict_round_trip_and_config():
  cfg = _config("rotary", scan_layers=True)
  torch.manual_seed(0)
  model = transformers.Wav2Vec2ConformerForPreTraining(hf.hf_config(cfg))
  state_dict = hf_parity.state_dict(model)
  params = hf.from_hf(state_dict, cfg)
  assert set(params) == {"wav2vec2_conformer", "quantizer", "project_q", "project_hid"}
  exported = hf.to_hf(params, cfg)
  skipped = {k for k in state_dict if hf_conformer.IGNORED.search(k)}
  assert skipped and all(any(part in k for part in ("pos_conv_embed", "embed_positions", "num_batches_tracked"))
                         for k in skipped)
  hf_parity.assert_same_state_dict(exported, {k: v for k, v in state_dict.items() if k not in skipped})
  missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in exported.items()},
                                              strict=False)
  # torch's BatchNorm fills a missing num_batches_tracked itself
  assert not unexpected and set(missing) == {k for k in skipped if not k.endswith("num_batches_tracked")}
  back = hf.config_from_hf(hf.hf_config(cfg))
  for field in hf.CONFORMER_ONLY + ("hidden_size", "num_hidden_layers", "conv_norm"):
    assert back[field] == cfg[field], field


def test_layer_norm_conv_module_has_no_hf_counterpart():
  with pytest.raises(Exception, match="conv_norm"):
    hf.hf_config(_config("relative", conv_norm="layer_norm"))
