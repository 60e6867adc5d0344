"""LoRA as a params transform (speechjax.nn.lora) against the paper's equation applied to HF's PyTorch
LLaMA: W' = W + (α/r)·B·A on q, k, v, o."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from speechjax.interop import hf_llama
from speechjax.models import llama
from speechjax.nn import lora

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.fast_compile


def _setup(scan):
  cfg = llama.model_config("tiny")
  cfg.update(vocab_size=61, hidden_size=48, num_attention_heads=4, num_key_value_heads=2, intermediate_size=80,
             num_hidden_layers=2, scan_layers=scan)
  torch.manual_seed(0)
  model = transformers.LlamaForCausalLM(hf_llama.hf_config(cfg)).eval()
  return cfg, model, hf_llama.from_hf(model.state_dict(), cfg)


@pytest.mark.parametrize("scan", [False, True])
def test_merged_model_equals_torch_with_the_low_rank_update(scan):
  cfg, model, params = _setup(scan)
  rank, alpha = 4, 8.0
  adapters = lora.init(jax.random.PRNGKey(0), params, lora.LLAMA_ATTENTION, rank)
  assert len(adapters) == (4 if scan else 8)
  tokens = np.random.default_rng(0).integers(0, cfg.vocab_size, (2, 12))
  apply = llama.from_config(cfg).apply
  base = apply({"params": params}, jnp.asarray(tokens))
  np.testing.assert_array_equal(apply({"params": lora.merge(params, adapters, alpha)}, jnp.asarray(tokens)),
                                base)   # b = 0: no change
  adapters = jax.tree.map(lambda x: x + 0.05 * jax.random.normal(jax.random.PRNGKey(1), x.shape), adapters)
  ours = apply({"params": lora.merge(params, adapters, alpha)}, jnp.asarray(tokens))
  with torch.no_grad():   # W_torch [out, in] += (α/r) · B [out, r] @ A [r, in], B = bᵀ, A = aᵀ
    for name, ab in adapters.items():
      parts = name.split("/")
      for layer in range(cfg.num_hidden_layers):
        if not scan and parts[0] != f"layers_{layer}":
          continue
        a, b = (np.asarray(ab[k][layer] if scan else ab[k]) for k in ("a", "b"))
        weight = model.model.layers[layer].self_attn.get_submodule(parts[-2]).weight
        weight.add_(torch.from_numpy((alpha / rank) * (b.T @ a.T)))
    theirs = model(torch.from_numpy(tokens)).logits.numpy()
  assert np.abs(np.asarray(ours) - theirs).max() < 1e-4
  assert np.abs(np.asarray(ours) - np.asarray(base)).max() > 1e-3


def test_gradient_reaches_only_the_adapters_and_bad_targets_are_named():
  cfg, _, params = _setup(False)
  adapters = lora.init(jax.random.PRNGKey(0), params, lora.LLAMA_ATTENTION, 2)
  tokens = jnp.ones((1, 5), jnp.int32)
  apply = llama.from_config(cfg).apply
  grads = jax.grad(lambda ad: apply({"params": lora.merge(params, ad, 4.0)}, tokens).sum())(adapters)
  assert set(grads) == set(adapters)
  assert all(float(jnp.abs(g["a"]).max()) == 0 for g in grads.values())   # b = 0 → da = 0 at init
  assert all(float(jnp.abs(g["b"]).max()) > 0 for g in grads.values())
  with pytest.raises(ValueError, match="match no param"):
    lora.init(jax.random.PRNGKey(0), params, {".*/nonexistent/kernel": 1}, 2)
