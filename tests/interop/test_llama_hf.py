"""LLaMA parity with HF transformers' `LlamaForCausalLM` (random weights, odd sizes, grouped-query attention,
a right-padded batch; nothing downloaded): logits, greedy generation, the weight/config converters."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from speechjax.interop import hf_llama
from speechjax.models import llama

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.fast_compile

TOLERANCE = 1e-4
# odd sizes: vocab 97, head_dim 12, 6 query heads over 2 kv heads, FFN 100
ODD = dict(vocab_size=97, hidden_size=72, num_attention_heads=6, num_key_value_heads=2, intermediate_size=100,
           num_hidden_layers=3, max_position_embeddings=128)
VARIANTS = {
    "gqa": {},
    "tied_llama3_scan": dict(tie_word_embeddings=True, rope_type="llama3", rope_factor=8.0, rope_theta=500000.0,
                             rope_original_max_position=16, scan_layers=True),
    "bias_linear_mha": dict(attention_bias=True, mlp_bias=True, num_key_value_heads=6, rope_type="linear",
                            rope_factor=2.0),
}


def _models(variant):
  cfg = llama.model_config("tiny")
  cfg.update(ODD, **VARIANTS[variant])
  torch.manual_seed(0)
  model = transformers.LlamaForCausalLM(hf_llama.hf_config(cfg)).eval()
  with torch.no_grad():
    for name, p in model.named_parameters():
      if "norm" in name or "bias" in name:
        p.add_(0.2 * torch.randn_like(p))
  return cfg, model, hf_llama.from_hf(model.state_dict(), cfg)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_logits_match_hf_on_a_padded_batch(variant):
  cfg, model, params = _models(variant)
  tokens = np.random.default_rng(0).integers(0, cfg.vocab_size, (2, 40))
  mask = np.arange(40)[None] < np.array([[40], [27]])
  with torch.no_grad():
    theirs = model(torch.from_numpy(tokens), attention_mask=torch.from_numpy(mask.astype(np.int64))).logits
  ours = llama.from_config(cfg).apply({"params": params}, jnp.asarray(tokens), mask=jnp.asarray(mask))
  error = float(np.abs(np.where(mask[..., None], np.asarray(ours) - theirs.numpy(), 0)).max())
  print(f"llama/{variant}: max abs logit error {error:.1e}")
  assert error <= TOLERANCE


@pytest.mark.parametrize("variant", ["gqa", "tied_llama3_scan"])
def test_greedy_generation_matches_hf_for_32_tokens(variant):
  cfg, model, params = _models(variant)
  prompt = np.random.default_rng(1).integers(0, cfg.vocab_size, (1, 7))
  with torch.no_grad():
    theirs = model.generate(torch.from_numpy(prompt), attention_mask=torch.ones_like(torch.from_numpy(prompt)),
                            max_new_tokens=32, do_sample=False, eos_token_id=None, pad_token_id=0)
  keys = jax.random.split(jax.random.PRNGKey(0), 1)
  run = jax.jit(lambda p, x: llama.generate(cfg, p, x, jnp.array([7]), keys, 7 + 32, temperature=0.0))
  ours = run(params, jnp.asarray(prompt, jnp.int32))
  np.testing.assert_array_equal(np.asarray(ours), theirs.numpy())


def test_state_dict_and_config_round_trip():
  cfg, model, params = _models("tied_llama3_scan")
  exported = hf_llama.to_hf(params, cfg)
  original = {k: v.numpy() for k, v in model.state_dict().items()
              if not k.endswith("inv_freq") and k != "lm_head.weight"}   # tied: the embedding
  assert set(exported) == set(original)
  for key, value in original.items():
    np.testing.assert_array_equal(exported[key], value, err_msg=key)
  back = hf_llama.config_from_hf(hf_llama.hf_config(cfg))
  for field in hf_llama.SAME_NAME + ("rope_theta", "rope_type", "rope_factor", "rope_original_max_position"):
    assert back[field] == cfg[field], field
  v5 = {**hf_llama.hf_config(cfg).to_dict(), "rope_scaling": None,
        "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                            "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                            "original_max_position_embeddings": 16}}
  assert hf_llama.config_from_hf(v5).rope_factor == 8.0


def test_unsupported_rope_and_mismatched_weights_are_refused():
  cfg, model, _ = _models("gqa")
  with pytest.raises(Exception, match="rope type 'yarn'"):
    yarn = {"rope_type": "yarn", "factor": 2.0}
    hf_llama.config_from_hf({**hf_llama.hf_config(cfg).to_dict(), "rope_scaling": yarn})
  state_dict = model.state_dict()
  del state_dict["model.norm.weight"]
  with pytest.raises(ValueError, match="missing.*model.norm.weight"):
    hf_llama.from_hf(state_dict, cfg)


def test_convert_a_saved_llama_directory_both_ways(tmp_path, capsys):
  from tests.interop import hf_parity
  cfg, model, _ = _models("tied_llama3_scan")
  model.save_pretrained(tmp_path / "hf")
  assert hf_parity.run_convert("--from-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "ckpt")) == 0
  assert "llama" in capsys.readouterr().out
  assert hf_parity.run_convert("--to-hf", str(tmp_path / "ckpt"), "--out", str(tmp_path / "back")) == 0
  assert "LlamaForCausalLM" in capsys.readouterr().out
  back = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "back", local_files_only=True).eval()
  tokens = torch.from_numpy(np.random.default_rng(0).integers(0, cfg.vocab_size, (1, 9)))
  with torch.no_grad():
    np.testing.assert_array_equal(back(tokens).logits.numpy(), model(tokens).logits.numpy())


def test_convert_refuses_a_missing_or_mismatched_config_json(tmp_path, capsys):
  from tests.interop import hf_parity
  _, model, _ = _models("gqa")
  model.save_pretrained(tmp_path / "hf")
  config_path = tmp_path / "hf" / "config.json"
  config = json.loads(config_path.read_text())
  config_path.unlink()
  assert hf_parity.run_convert("--from-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "a")) == 1
  assert "no config.json next to the weights" in capsys.readouterr().err
  config_path.write_text(json.dumps({**config, "intermediate_size": config["intermediate_size"] + 4}))
  assert hf_parity.run_convert("--from-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "b")) == 1
  err = capsys.readouterr().err
  assert "mlp.gate_proj.weight" in err and "intermediate_size" in err
  assert not (tmp_path / "a").exists() and not (tmp_path / "b" / "checkpoints").exists()
