"""Codec speed, same run, same machine: SoundStream (16 kHz preset) vs HF transformers' EncodecModel, and the
residual-VQ training step vs vector-quantize-pytorch's ResidualVQ.

    taskset -c 0 python benchmarks/codec.py --seconds 10        # one core: the real-time question
    python benchmarks/codec.py --seconds 10                     # all cores

Rows (median of --repeats timed calls after one warm-up / compile, batch 1 unless stated):
  encode / decode real-time factor (compute seconds per audio second; < 1 is faster than real time) of
    speechjax SoundStream `16khz` (C=32, strides 2·4·5·8 = 320, D=256, 12 × 1024 codes, random weights) and
    HF EncodecModel configured alike (16 kHz, 32 filters, ratios 8·5·4·2, D=256, 12 × 1024 codes at 6 kbps;
    EnCodec adds a 2-layer LSTM in encoder and decoder, which SoundStream has not), twice: with EnCodec's
    own residual block (3.5× fewer FLOPs than SoundStream's) and with SoundStream's (FLOPs matched);
    FLOPs: speechjax from `soundstream.forward_flops` (convs), torch from its FlopCounterMode;
  RVQ step: quantize [8, frames, 256] with 12 × 1024 codes and update the EMA codebooks (speechjax
    `nn.rvq.ResidualVQ` with train=True; `vector_quantize_pytorch.ResidualVQ` in train mode, decay 0.99).
Parameter counts are printed beside. audiolm-pytorch's SoundStream training step is not measured: the
package imports torchaudio, which has no build for the torch this project pins (see README).
Both frameworks use the cores the process may use (torch.set_num_threads = len(os.sched_getaffinity(0))).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from speechjax.models import soundstream
from speechjax.nn import rvq

RATE = 16000


def timed(fn, repeats: int) -> float:
  fn()                                      # warm-up (compile)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def speechjax_codec(audio: np.ndarray, repeats: int) -> dict:
  cfg = soundstream.model_config("16khz")
  model = soundstream.from_config(cfg)
  variables = jax.jit(lambda a: soundstream.init_variables(model, jax.random.PRNGKey(0), a))(audio)
  encode = jax.jit(lambda v, a: model.apply(v, a, cfg.num_quantizers, method="encode"))
  decode = jax.jit(lambda v, c: model.apply(v, c, method="decode"))
  x = jnp.asarray(audio)
  codes = encode(variables, x)
  return {"params": sum(np.size(p) for p in jax.tree.leaves(variables["params"])),
          "flops": soundstream.forward_flops(cfg, audio.shape[-1]),
          "encode": timed(lambda: encode(variables, x).block_until_ready(), repeats),
          "decode": timed(lambda: decode(variables, codes).block_until_ready(), repeats)}


# HF EncodecModel settings beside its defaults: "default" is EnCodec's own block (1 residual unit, kernel 3,
# channel compression 2, conv shortcut); "soundstream-shaped" has SoundStream's residual units (3 per block,
# kernel 7, dilations 1·3·9, no compression, identity skip), so both codecs do about the same FLOPs.
ENCODEC_SHAPES = {
    "default": {},
    "soundstream-shaped": dict(num_residual_layers=3, residual_kernel_size=7, dilation_growth_rate=3,
                               compress=1, use_conv_shortcut=False),
}


def encodec(audio: np.ndarray, repeats: int, shape: str) -> dict:
  import torch
  from torch.nn.utils import parametrize
  from torch.utils.flop_counter import FlopCounterMode
  from transformers import EncodecConfig, EncodecModel
  cfg = EncodecConfig(sampling_rate=RATE, num_filters=32, upsampling_ratios=[8, 5, 4, 2], hidden_size=256,
                      codebook_size=1024, codebook_dim=256, target_bandwidths=[6.0], normalize=False,
                      **ENCODEC_SHAPES[shape])
  model = EncodecModel(cfg).eval()
  for module in model.modules():     # fold weight norm into the weights: inference needs no recompute
    if parametrize.is_parametrized(module):
      parametrize.remove_parametrizations(module, "weight")
  x = torch.from_numpy(audio)[:, None]     # [B, 1, T]
  with torch.inference_mode():
    with FlopCounterMode(display=False) as counter:
      out = model.encode(x, bandwidth=6.0)
      model.decode(out.audio_codes, out.audio_scales)
    assert out.audio_codes.shape[2] == 12, out.audio_codes.shape   # 12 codebooks at 6 kbps, 50 Hz
    return {"params": sum(p.numel() for p in model.parameters()), "flops": counter.get_total_flops(),
            "encode": timed(lambda: model.encode(x, bandwidth=6.0), repeats),
            "decode": timed(lambda: model.decode(out.audio_codes, out.audio_scales), repeats)}


def speechjax_rvq(x: np.ndarray, repeats: int) -> float:
  quantizer = rvq.ResidualVQ(12, 1024, 256, kmeans_iters=0)
  mask = jnp.ones(x.shape[:2], bool)
  active = jnp.full(x.shape[:1], 12, jnp.int32)
  variables = quantizer.init({"params": jax.random.PRNGKey(0)}, jnp.asarray(x), mask, active)

  @jax.jit
  def step(stats, x, rng):
    out, updated = quantizer.apply({"vq_stats": stats}, x, mask, active, train=True, rngs={"vq": rng},
                                   mutable=["vq_stats"])
    return out["codes"], updated["vq_stats"]
  stats = {**variables["vq_stats"], "initialized": jnp.ones([], bool)}   # timed: steady-state steps
  x = jnp.asarray(x)
  return timed(lambda: jax.block_until_ready(step(stats, x, jax.random.PRNGKey(1))), repeats)


def pytorch_rvq(x: np.ndarray, repeats: int) -> float:
  import torch
  from vector_quantize_pytorch import ResidualVQ
  quantizer = ResidualVQ(dim=256, num_quantizers=12, codebook_size=1024, decay=0.99, kmeans_init=False).train()
  xt = torch.from_numpy(x)
  with torch.no_grad():
    return timed(lambda: quantizer(xt), repeats)


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--seconds", type=float, default=10.0)
  parser.add_argument("--frames", type=int, default=500, help="RVQ step: frames per example (batch 8)")
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  import torch
  cores = len(os.sched_getaffinity(0))
  torch.set_num_threads(cores)
  samples = int(args.seconds * RATE) // 320 * 320
  audio = (0.1 * np.random.default_rng(0).standard_normal((1, samples))).astype(np.float32)
  seconds = samples / RATE
  ours = speechjax_codec(audio, args.repeats)
  print(f"{cores} core(s), {seconds:.1f} s of audio, jax {jax.__version__}, torch {torch.__version__}")
  for shape in ENCODEC_SHAPES:
    theirs = encodec(audio, args.repeats, shape)
    print(f"\n| row | speechjax SoundStream | HF EncodecModel ({shape}) | speed-up |")
    print("|---|---|---|---|")
    print(f"| parameters | {ours['params'] / 1e6:.2f} M | {theirs['params'] / 1e6:.2f} M | |")
    for name in ("encode", "decode"):
      print(f"| {name} RTF | {ours[name] / seconds:.4f} | {theirs[name] / seconds:.4f} | "
            f"{theirs[name] / ours[name]:.2f}× |")
    both, peer = ours["encode"] + ours["decode"], theirs["encode"] + theirs["decode"]
    print(f"| encode + decode RTF | {both / seconds:.4f} | {peer / seconds:.4f} | {peer / both:.2f}× |")
    print(f"| encode + decode GFLOP, GFLOP/s | {ours['flops'] / 1e9:.1f}, {ours['flops'] / both / 1e9:.0f} | "
          f"{theirs['flops'] / 1e9:.1f}, {theirs['flops'] / peer / 1e9:.0f} | |")
  x = np.random.default_rng(1).standard_normal((8, args.frames, 256)).astype(np.float32)
  mine, peer = speechjax_rvq(x, args.repeats), pytorch_rvq(x, args.repeats)
  print(f"\n| RVQ step [8, {args.frames}, 256], 12 × 1024, EMA update | speechjax | vector-quantize-pytorch | "
        f"speed-up |\n|---|---|---|---|\n| ms per step | {mine * 1e3:.1f} | {peer * 1e3:.1f} | "
        f"{peer / mine:.2f}× |")


if __name__ == "__main__":
  main()
