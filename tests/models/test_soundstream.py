"""SoundStream model: preset shapes and bitrates, causal (streaming-equivalent) encoding, encode/decode."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from speechjax.config import ConfigError
from speechjax.models import soundstream
from speechjax.nn import rvq

pytestmark = pytest.mark.fast_compile


def micro_config(**overrides):
  cfg = soundstream.model_config("tiny")
  cfg.update({**dict(channels=2, strides=(2, 4), embedding_dim=8, num_quantizers=4, codebook_size=16,
                     kmeans_iters=2), **overrides})
  return cfg


@pytest.mark.parametrize("preset, rate, frame_rate, n_q, bps", [
    ("tiny", 16000, 50, 8, 3200), ("16khz", 16000, 50, 12, 6000), ("24khz", 24000, 75, 24, 18000)])
def test_presets_shapes_and_bitrates(preset, rate, frame_rate, n_q, bps):
  cfg = soundstream.model_config(preset)
  model = soundstream.from_config(cfg)
  assert cfg.sample_rate == rate and soundstream.frame_rate(cfg) == frame_rate
  assert soundstream.bitrate(cfg, cfg.num_quantizers) == bps
  audio = jax.ShapeDtypeStruct((2, rate), jnp.float32)
  variables = jax.eval_shape(lambda a: soundstream.init_variables(model, jax.random.PRNGKey(0), a), audio)
  book = variables[rvq.STATS]["quantizer"]["codebook"]
  assert book.shape == (n_q, cfg.codebook_size, cfg.embedding_dim)
  codes = jax.eval_shape(lambda v, a: model.apply(v, a, 3, method="encode"), variables, audio)
  assert codes.shape == (2, frame_rate, 3) and codes.dtype == jnp.int32
  decoded = jax.eval_shape(lambda v, c: model.apply(v, c, method="decode"), variables, codes)
  assert decoded.shape == (2, rate)


def test_paper_bitrate_table_at_24khz():
  cfg = soundstream.model_config("24khz")
  assert [soundstream.bitrate(cfg, n) / 1000 for n in (4, 8, 12, 16, 24)] == [3, 6, 9, 12, 18]


@pytest.fixture(scope="module")
def micro():
  cfg = micro_config()
  model = soundstream.from_config(cfg)
  hop = soundstream.hop_length(cfg)
  audio = jnp.asarray(np.random.default_rng(0).standard_normal((2, 24 * hop)) * 0.3, jnp.float32)
  return cfg, model, soundstream.init_variables(model, jax.random.PRNGKey(0), audio), audio


def test_chunked_encoding_equals_whole_utterance(micro):
  """Causal convs: chunks of 4 frames with `receptive_field` samples of left context give the codes
  and embeddings of the whole utterance."""
  cfg, model, variables, audio = micro
  hop = soundstream.hop_length(cfg)
  context = -(-soundstream.receptive_field(cfg) // hop) * hop
  encode = jax.jit(lambda a: model.apply(variables, a, cfg.num_quantizers, method="encode"))
  whole = np.asarray(encode(audio))
  chunks = []
  for start in range(0, audio.shape[1], 4 * hop):
    piece = audio[:, max(0, start - context):start + 4 * hop]
    chunks.append(np.asarray(encode(piece))[:, -4:])
  np.testing.assert_array_equal(np.concatenate(chunks, axis=1), whole)


def test_future_samples_change_neither_past_codes_nor_past_audio(micro):
  cfg, model, variables, audio = micro
  hop = soundstream.hop_length(cfg)
  changed = audio.at[:, 10 * hop:].set(0.9)
  codes = model.apply(variables, audio, 4, method="encode")
  codes_changed = model.apply(variables, changed, 4, method="encode")
  np.testing.assert_array_equal(codes[:, :10], codes_changed[:, :10])
  assert not np.array_equal(codes[:, 10:], codes_changed[:, 10:])
  decoded = model.apply(variables, codes, method="decode")
  prefix = model.apply(variables, codes[:, :10], method="decode")
  np.testing.assert_allclose(decoded[:, :10 * hop], prefix, atol=1e-5)


def test_encode_decode_any_n_q(micro):
  cfg, model, variables, audio = micro
  for n_q in (1, 2, cfg.num_quantizers):
    codes = model.apply(variables, audio, n_q, method="encode")
    assert codes.shape == (2, 24, n_q) and int(codes.max()) < cfg.codebook_size
    assert model.apply(variables, codes, method="decode").shape == audio.shape
  with pytest.raises(ValueError, match="n_q"):
    model.apply(variables, audio, cfg.num_quantizers + 1, method="encode")


def test_film_starts_as_identity():
  cfg = micro_config(film="encoder")
  model = soundstream.from_config(cfg)
  audio = jnp.ones([2, 8 * soundstream.hop_length(cfg)]) * 0.1
  variables = nn.unbox(soundstream.init_variables(model, jax.random.PRNGKey(0), audio))
  assert variables["params"]["film"]["gamma"].shape == (2, cfg.embedding_dim)
  mask, active = jnp.ones(audio.shape, bool), jnp.full([2], 4)
  plain = model.apply(variables, audio, mask, active, jnp.asarray([False, False]))["audio"]
  flagged = model.apply(variables, audio, mask, active, jnp.asarray([True, True]))["audio"]
  np.testing.assert_allclose(plain, flagged)


def test_config_errors_name_the_field():
  with pytest.raises(ConfigError, match="model.film"):
    soundstream.from_config(micro_config(film="both"))
  with pytest.raises(ConfigError, match="model.codebook_size"):
    soundstream.from_config(micro_config(codebook_size=1))


def test_lane_folded_codec_equals_unfolded():
  """model.lane_fold changes the layout only: same parameters → same audio, codes and gradients."""
  plain_cfg, folded_cfg = micro_config(channels=8), micro_config(channels=8, lane_fold=32)
  assert soundstream.stage_folds(folded_cfg) == (4, 2, 1)
  plain, folded = soundstream.from_config(plain_cfg), soundstream.from_config(folded_cfg)
  audio = jnp.asarray(np.random.default_rng(0).standard_normal((2, 16 * 8)) * 0.3, jnp.float32)
  variables = soundstream.init_variables(plain, jax.random.PRNGKey(0), audio)
  assert jax.tree.map(jnp.shape, soundstream.init_variables(folded, jax.random.PRNGKey(0), audio)) == \
      jax.tree.map(jnp.shape, variables)
  args = (audio, jnp.ones(audio.shape, bool), jnp.array([4, 2], jnp.int32))

  def loss(params, model):
    out = model.apply({**variables, "params": params}, *args)
    return jnp.mean(jnp.square(out["audio"] - audio)) + jnp.mean(jnp.square(out["quantized"])), out

  loss_and_grads = jax.jit(jax.value_and_grad(loss, has_aux=True), static_argnums=1)
  (plain_loss, plain_out), plain_grads = loss_and_grads(variables["params"], plain)
  (folded_loss, folded_out), folded_grads = loss_and_grads(variables["params"], folded)
  np.testing.assert_array_equal(folded_out["codes"], plain_out["codes"])
  np.testing.assert_allclose(folded_out["audio"], plain_out["audio"], atol=1e-5)
  np.testing.assert_allclose(folded_loss, plain_loss, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4 * np.abs(b).max()),
               folded_grads, plain_grads)


def test_lane_fold_that_does_not_line_up_is_refused():
  # tiny's 8 channels at 128 lanes fold by 16, 8, 4, 2: 2 × stride 5 is not a multiple of 4.
  cfg = soundstream.model_config("tiny")
  cfg.lane_fold = 128
  with pytest.raises(ConfigError, match="model.lane_fold.*stage folds"):
    soundstream.from_config(cfg)


def test_configs_saved_before_lane_folding_still_build():
  """Checkpoints of older runs carry configs without `lane_fold`: they load unfolded."""
  from speechjax.models import soundstream_disc
  cfg = soundstream.model_config("16khz")
  del cfg["lane_fold"]
  assert soundstream.stage_folds(soundstream.from_config(cfg).config) == (1, 1, 1, 1, 1)
  disc = soundstream_disc.disc_config("16khz")
  del disc["lane_fold"]
  assert soundstream_disc._wave_folds(soundstream_disc.from_config(disc).config) == (1,) * 5
