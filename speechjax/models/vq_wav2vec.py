"""vq-wav2vec (Baevski et al. 2019) in Flax: wav2vec's encoder, a product quantizer, wav2vec's context network
and step projections (fairseq `Wav2VecModel` with `vq_type`). The context network reads the quantized
frames, and the predictions are scored against them.

    cfg = model_config("gumbel")
    model = from_config(cfg)
    out = model.apply({"params": params}, audio, audio_mask, train=True, temperature=2.0,
                      rngs={"gumbel": key})

Quantizers (`vq_type`), G = `vq_groups` groups of V = `vq_vars` codewords, each C/G wide (C = encoder width):
    "gumbel"  logits network Linear(C → 2C) → GELU [→ LayerNorm if `vq_input_norm`, not in fairseq; on
              in `tiny`] → Linear(2C → G·V) (fairseq vq_depth=2, weight_proj_factor=2), then
              speechjax.nn.quantizers.GumbelVectorQuantizer: hard Gumbel-softmax (straight-through) at
              `temperature` in training, argmax at evaluation. One codebook per group
              (the README's `--combine-groups` shares one; not implemented).
    "kmeans"  grouped 1×1 conv (G groups, no bias) → GroupNorm(G) per frame → nearest codeword per group
              (speechjax.nn.quantizers.KMeansVectorQuantizer, straight-through, codebook loss with `vq_gamma`;
              codebook init N(0, `vq_codebook_init_std`²), fairseq 0.01).
              fairseq's GroupNorm also pools over time (non-causal); here it normalises each frame.

Outputs: those of speechjax.models.wav2vec (`targets` = the quantized frames) plus
    codes [B, F, G] int32, code_perplexity f32 [] (hard code counts over real frames), and
    prob_perplexity f32 [] (gumbel: soft, for an optional diversity loss) or vq_loss f32 [] (kmeans).
"""
from __future__ import annotations

import jax.numpy as jnp
import ml_collections
from flax import linen as nn

from speechjax.config import ConfigError, require
from speechjax.models import wav2vec
from speechjax.models.family import Family
from speechjax.nn.activations import gelu
from speechjax.nn.partitioning import gathered_conv, logical, norm_inits
from speechjax.nn.quantizers import GumbelVectorQuantizer, KMeansVectorQuantizer
from speechjax.nn.transformer import linear_inits

VQ_TYPES = ("gumbel", "kmeans")
_VQ = dict(model_type="vq_wav2vec", vq_type="gumbel", vq_groups=2, vq_vars=320, vq_gamma=0.25,
           vq_input_norm=False, vq_codebook_init_std=0.01)

# preset → (wav2vec preset of the network, quantizer overrides)
_PRESETS = {
    "tiny": ("tiny", dict(vq_vars=32, vq_input_norm=True)),   # docs/wav2vec.md: without it, no learning
    "tiny_kmeans": ("tiny", dict(vq_vars=32, vq_type="kmeans", vq_codebook_init_std=1.0)),   # docs/wav2vec.md
    "gumbel": ("large", {}),
    "kmeans": ("large", dict(vq_type="kmeans")),
}


def model_config(preset: str = "gumbel") -> ml_collections.ConfigDict:
  """`tiny` / `tiny_kmeans` (CPU tests), `gumbel` / `kmeans` (the paper's models on wav2vec large's
  network)."""
  if preset not in _PRESETS:
    raise ConfigError(f"vq_wav2vec model preset {preset!r}: expected one of {sorted(_PRESETS)}")
  network, quantizer = _PRESETS[preset]
  cfg = wav2vec.model_config(network)
  cfg.update({**_VQ, **quantizer})
  return cfg


def validate(cfg) -> None:
  """Raises ConfigError naming the field for settings the model cannot build."""
  wav2vec.validate(cfg)
  require(cfg.vq_type in VQ_TYPES, "model.vq_type", cfg.vq_type, f"expected one of {VQ_TYPES}")
  require(cfg.vq_groups >= 1 and cfg.vq_vars >= 2, "model.vq_vars", (cfg.vq_groups, cfg.vq_vars),
          "need vq_groups ≥ 1 and vq_vars ≥ 2")
  width = wav2vec.conv_layers(cfg)[-1][0]
  require(width % cfg.vq_groups == 0, "model.vq_groups", cfg.vq_groups,
          f"must divide the encoder width {width}")


def quantize(cfg, z, frame_mask, train: bool, temperature):
  """Inside a parent's compact `__call__`: the configured quantizer over `z` [B, F, C] → its output dict
  (quantized [B, F, C], codes, code_perplexity, prob_perplexity or loss). Creates submodule `quantizer`
  (and `vq_input` in front of it)."""
  dtype, width = jnp.dtype(cfg.dtype), z.shape[-1]
  if cfg.vq_type == "gumbel":
    hidden = nn.Dense(2 * width, dtype=dtype, name="vq_input", **linear_inits("conv_in", "conv_out", width))
    h = gelu(hidden(z))
    if cfg.vq_input_norm:   # unit-scale input to the N(0, 1) logits projection: logits ≫ Gumbel noise
      h = nn.LayerNorm(dtype=dtype, name="vq_input_norm", **norm_inits("conv_out"))(h)
    return GumbelVectorQuantizer(cfg.vq_groups, cfg.vq_vars, width, dtype, name="quantizer")(
        h, frame_mask, temperature, train)
  ze = nn.Conv(width, (1,), use_bias=False, feature_group_count=cfg.vq_groups, dtype=dtype, name="vq_input",
               conv_general_dilated=gathered_conv,
               kernel_init=logical(nn.initializers.lecun_normal(), None, "conv_in", "conv_out"))(z)
  ze = nn.GroupNorm(num_groups=cfg.vq_groups, epsilon=1e-5, dtype=dtype, name="vq_norm",
                    **norm_inits("conv_out"))(ze.reshape(-1, width)).reshape(ze.shape)
  return KMeansVectorQuantizer(cfg.vq_groups, cfg.vq_vars, cfg.vq_gamma, cfg.vq_codebook_init_std,
                               name="quantizer")(ze, frame_mask)


class VqWav2Vec(nn.Module):
  """Encoder → quantizer → context network + step projections (see the module docstring)."""
  config: ml_collections.FrozenConfigDict

  @nn.compact
  def __call__(self, audio, audio_mask, *, train: bool = False, temperature=2.0):
    c = self.config
    z, frame_mask = wav2vec.encode(c, audio, audio_mask)
    q = quantize(c, z, frame_mask, train, temperature)
    context, predictions = wav2vec.predict(c, q["quantized"])
    extra = ({"prob_perplexity": q["prob_perplexity"]} if c.vq_type == "gumbel"
             else {"vq_loss": q["loss"]})
    return {"frame_mask": frame_mask, "features": z, "targets": q["quantized"], "context": context,
            "predictions": predictions, "codes": q["codes"], "code_perplexity": q["code_perplexity"],
            **extra}


def from_config(cfg) -> nn.Module:
  validate(cfg)
  return VqWav2Vec(ml_collections.FrozenConfigDict(cfg))


def quantizer_flops_per_frame(cfg) -> float:
  """Matmul FLOPs of the quantizer on one frame, codeword lookup (a one-hot matmul) included."""
  width, codes = wav2vec.conv_layers(cfg)[-1][0], cfg.vq_groups * cfg.vq_vars
  lookup = 2 * codes * (width // cfg.vq_groups)
  if cfg.vq_type == "gumbel":
    return 2 * width * 2 * width + 2 * 2 * width * codes + lookup
  return 2 * width * width // cfg.vq_groups + 2 * lookup   # grouped 1×1 conv, distances, lookup


def forward_flops(cfg, num_samples: int) -> float:
  """Matmul FLOPs of one `VqWav2Vec` forward pass over `num_samples` samples."""
  return wav2vec.network_flops(cfg, num_samples, quantizer_flops_per_frame(cfg))


FAMILY = Family("vq_wav2vec", model_config, from_config, forward_flops)
