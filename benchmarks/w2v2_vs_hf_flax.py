"""wav2vec 2.0 pretraining step: speechjax vs HF transformers' FlaxWav2Vec2ForPreTraining, same run.

    python benchmarks/w2v2_vs_hf_flax.py --preset tiny --batch 2 --seconds 4
    python benchmarks/w2v2_vs_hf_flax.py --preset base --batch 2 --seconds 4
    python benchmarks/w2v2_vs_hf_flax.py --preset base --peer torch   # the real Base against HF PyTorch

`--peer torch`: the preset as it is (Base: group-norm extractor, post-LN, dropout 0.1, LayerDrop 0.05),
against `transformers.Wav2Vec2ForPreTraining` with the same config (HF's conversion of ours), batch, mask
and 100 negatives, AdamW, torch's intra-op threads = this machine's cores; HF Flax cannot build that variant.

HF's Flax model supports only the layer-norm extractor with pre-LN layers, so both sides run the preset
with `extractor_mode=layer_norm, do_stable_layer_norm=True, conv_bias=True` (a "large-style" variant at the
preset's size), dropout off, the same batch, crop, 100 negatives, mask_prob 0.65, AdamW. The peer's loss is
the contrastive + diversity loss of HF's Flax pretraining example (gather of [B, F, K, D] negatives).
MFU: FLOPs from each compiled step's own cost analysis, over a matmul-measured peak.
"""
import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import train_throughput  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from speechjax.interop import hf
from speechjax.train import allocator, metrics

PEER_STYLE = ["--config.model.extractor_mode=layer_norm", "--config.model.do_stable_layer_norm=True",
              "--config.model.conv_bias=True", "--config.model.hidden_dropout=0.0",
              "--config.model.attention_dropout=0.0", "--config.model.feat_proj_dropout=0.0",
              "--config.model.feat_quantizer_dropout=0.0", "--config.model.layerdrop=0.0",
              "--config.task.num_negatives=100", "--config.model.mask_prob=0.65"]


def peer_loss(model, params, audio, mask, negatives, rngs, num_codes, temperature=0.1):
  out = model(audio, mask_time_indices=mask, params=params, dropout_rng=rngs[0], gumbel_rng=rngs[1],
              train=True, gumbel_temperature=2.0)
  q, c = out.projected_quantized_states, out.projected_states
  b, f, d = q.shape
  neg = q.reshape(-1, d)[negatives.reshape(-1)].reshape(b, f, -1, d)
  targets = jnp.concatenate([q[:, :, None], neg], 2)
  cos = optax.cosine_similarity(c[:, :, None], targets) / temperature
  same = jnp.all(neg == q[:, :, None], -1)
  logits = cos.at[:, :, 1:].set(jnp.where(same, -jnp.inf, cos[:, :, 1:]))
  ce = -jax.nn.log_softmax(logits, -1)[..., 0]
  num_masked = mask.sum()
  diversity = (num_codes - out.codevector_perplexity) / num_codes
  return (jnp.where(mask, ce, 0).sum() + 0.1 * diversity * num_masked) / num_masked


def measure_peer(cfg, batch_size, seconds, steps, peak):
  from transformers import FlaxWav2Vec2ForPreTraining
  from transformers.models.wav2vec2.modeling_flax_wav2vec2 import (_compute_mask_indices,
                                                                    _sample_negative_indices)
  hf_cfg = hf.hf_config(cfg.model)
  model = FlaxWav2Vec2ForPreTraining(hf_cfg, seed=0)
  samples = int(seconds * 16000)
  frames = int(model._get_feat_extract_output_lengths(samples))
  audio = jnp.asarray(0.1 * np.random.default_rng(0).standard_normal((batch_size, samples)), jnp.float32)
  mask = _compute_mask_indices((batch_size, frames), 0.65, 10, min_masks=2)
  negatives = _sample_negative_indices((batch_size, frames, hf_cfg.proj_codevector_dim), 100)
  tx = optax.adamw(5e-4, b2=0.98, eps=1e-6, weight_decay=0.01)
  num_codes = hf_cfg.num_codevector_groups * hf_cfg.num_codevectors_per_group

  def step(params, opt_state, rng):
    rngs = jax.random.split(rng)
    loss, grads = jax.value_and_grad(lambda p: peer_loss(model, p, audio, mask, negatives, rngs,
                                                         num_codes))(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  params = model.params
  opt_state = tx.init(params)
  step = jax.jit(step, donate_argnums=(0, 1))
  rng = jax.random.PRNGKey(0)
  xla_flops = float(step.lower(params, opt_state, rng).compile().cost_analysis().get("flops", 0.0))
  params, opt_state, loss = step(params, opt_state, rng)
  jax.block_until_ready(loss)
  start = time.perf_counter()
  for _ in range(steps):
    params, opt_state, loss = step(params, opt_state, rng)
  jax.block_until_ready(loss)
  step_time = (time.perf_counter() - start) / steps
  return {"side": "hf_flax_peer", "step_time_s": round(step_time, 4),
          "audio_seconds_per_s": round(batch_size * seconds / step_time, 2),
          "xla_gflop_per_step": round(xla_flops / 1e9, 3),
          "mfu_xla": round(xla_flops / step_time / (peak * jax.device_count()), 4)}


def measure_torch_peer(cfg, batch_size, seconds, steps):
  import torch
  from transformers import Wav2Vec2ForPreTraining
  from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices, _sample_negative_indices
  torch.manual_seed(0)
  hf_cfg = hf.hf_config(cfg.model)
  model = Wav2Vec2ForPreTraining(hf_cfg).train()
  samples = int(seconds * 16000)
  frames = int(model._get_feat_extract_output_lengths(samples))
  audio = torch.tensor(0.1 * np.random.default_rng(0).standard_normal((batch_size, samples)), dtype=torch.float32)
  mask = _compute_mask_indices((batch_size, frames), hf_cfg.mask_time_prob, hf_cfg.mask_time_length, min_masks=2)
  negatives = torch.tensor(_sample_negative_indices((batch_size, frames), 100, mask_time_indices=mask))
  mask = torch.tensor(mask)
  opt = torch.optim.AdamW(model.parameters(), lr=5e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)

  def step():
    loss = model(audio, mask_time_indices=mask, sampled_negative_indices=negatives).loss
    opt.zero_grad()
    loss.backward()
    opt.step()
  step()
  start = time.perf_counter()
  for _ in range(steps):
    step()
  step_time = (time.perf_counter() - start) / steps
  return {"side": "hf_torch_peer", "torch_threads": torch.get_num_threads(), "step_time_s": round(step_time, 4),
          "audio_seconds_per_s": round(batch_size * seconds / step_time, 2)}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--preset", default="tiny")
  parser.add_argument("--batch", type=int, default=2)
  parser.add_argument("--seconds", type=float, default=4.0)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--peer", default="flax", choices=("flax", "torch"))
  args = parser.parse_args()
  allocator.reuse_freed_memory()   # as every `speechjax` command does
  peak = metrics.measure_matmul_flops(2048, repeats=5)
  spec = f"configs/wav2vec2.py:{args.preset}"
  overrides = PEER_STYLE if args.peer == "flax" else ["--config.task.num_negatives=100"]
  ours = train_throughput.measure(spec, overrides, args.batch, args.seconds, args.steps, peak)
  cfg = train_throughput.load_config(spec, overrides, args.batch, args.seconds)
  if args.peer == "flax":
    peer = measure_peer(cfg, args.batch, args.seconds, args.steps, peak)
  else:
    peer = measure_torch_peer(cfg, args.batch, args.seconds, args.steps)
  ours["side"] = "speechjax"
  print(json.dumps(ours))
  print(json.dumps(peer))
  print(json.dumps({"speedup_audio_seconds_per_s": round(ours["audio_seconds_per_s"]
                                                         / peer["audio_seconds_per_s"], 2)}))


if __name__ == "__main__":
  main()
