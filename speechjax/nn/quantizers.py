"""Vector quantizers.

`GumbelVectorQuantizer`: wav2vec 2.0's product quantizer (fairseq `GumbelVectorQuantizer`, HF
`Wav2Vec2GumbelVectorQuantizer`). G groups of V codewords each; a Dense layer gives G·V logits per frame;
training picks one codeword per group with hard (straight-through) Gumbel-softmax at a temperature passed
in by the caller (rng stream "gumbel"), evaluation takes the argmax. The output concatenates the G chosen
codewords (codevector_dim / G each).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from speechjax.nn.partitioning import logical


def perplexity(probs, mask):
  """Σ_g exp(entropy of the mean distribution of group g over the selected frames).

  `probs` [B, F, G, V] float32, `mask` [B, F] bool → scalar in [G, G·V] (G·V when uniform)."""
  weights = mask[..., None, None].astype(jnp.float32)
  marginal = (probs * weights).sum((0, 1)) / jnp.maximum(weights.sum(), 1.0)
  entropy = -jnp.sum(marginal * jnp.log(marginal + 1e-7), axis=-1)
  return jnp.exp(entropy).sum()


def hard_gumbel_softmax(rng, logits, temperature):
  """One-hot samples [..., V] whose gradient is that of softmax((logits + Gumbel noise) / temperature)."""
  soft = jax.nn.softmax((logits + jax.random.gumbel(rng, logits.shape)) / temperature, axis=-1)
  hard = jax.nn.one_hot(jnp.argmax(soft, axis=-1), logits.shape[-1], dtype=soft.dtype)
  return hard + soft - jax.lax.stop_gradient(soft)


class GumbelVectorQuantizer(nn.Module):
  """`x` [B, F, C], `mask` [B, F] bool (frames the perplexities average over) → dict:
      quantized [B, F, codevector_dim], codes [B, F, G] int32,
      prob_perplexity (soft, for the diversity loss), code_perplexity (hard): float32 scalars.

  Parameters: `weight_proj` Dense C → G·V (N(0, 1) init), `codevectors` [G, V, codevector_dim / G]
  (U(0, 1) init; one codebook per group)."""
  num_groups: int
  num_vars: int
  codevector_dim: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, mask, temperature: float = 2.0, train: bool = False):
    if self.codevector_dim % self.num_groups:
      raise ValueError(f"codevector_dim={self.codevector_dim} is not divisible by "
                       f"num_codevector_groups={self.num_groups}")
    codevectors = self.param(
        "codevectors", logical(nn.initializers.uniform(1.0), None, "codebook", None),
        (self.num_groups, self.num_vars, self.codevector_dim // self.num_groups))
    logits = nn.Dense(self.num_groups * self.num_vars, dtype=self.dtype, name="weight_proj",
                      kernel_init=logical(nn.initializers.normal(1.0), "conv_out", "codebook"),
                      bias_init=logical(nn.initializers.zeros, "codebook"))(x)
    logits = logits.astype(jnp.float32).reshape(*x.shape[:-1], self.num_groups, self.num_vars)
    if train:
      onehot = hard_gumbel_softmax(self.make_rng("gumbel"), logits, temperature)
    else:
      onehot = jax.nn.one_hot(jnp.argmax(logits, axis=-1), self.num_vars, dtype=jnp.float32)
    quantized = jnp.einsum("bfgv,gvd->bfgd", onehot.astype(self.dtype), codevectors.astype(self.dtype))
    return {"quantized": quantized.reshape(*x.shape[:-1], self.codevector_dim),
            "codes": jnp.argmax(onehot, axis=-1).astype(jnp.int32),
            "prob_perplexity": perplexity(jax.nn.softmax(logits, axis=-1), mask),
            "code_perplexity": perplexity(jax.lax.stop_gradient(onehot), mask)}


class KMeansVectorQuantizer(nn.Module):
  """vq-wav2vec's k-means product quantizer (fairseq `KmeansVectorQuantizer`, without its input projection).

  `x` [B, F, C], `mask` [B, F] bool (frames the loss and perplexity average over) → dict:
      quantized [B, F, C]   the nearest codeword per group, concatenated; straight-through: the forward value
                            is the codeword, the gradient w.r.t. `x` is the identity
      codes [B, F, G] int32
      loss f32 []           mean over selected frames and channels of (sg(z) − ẑ)² + gamma·(z − sg(ẑ))²:
                            the codebook term trains the codewords, the commitment term the encoder
      code_perplexity f32 [] of the hard code counts

  Each group's C/G channels are matched to that group's codebook by Euclidean distance, computed as
  ‖z‖² − 2 z·e + ‖e‖² (one matmul). Parameter `codebook` [G, V, C/G], N(0, init_std²) init (fairseq: 0.01)."""
  num_groups: int
  num_vars: int
  gamma: float = 0.25
  init_std: float = 0.01

  @nn.compact
  def __call__(self, x, mask):
    channels = x.shape[-1]
    if channels % self.num_groups:
      raise ValueError(f"input channels {channels} are not divisible by vq_groups={self.num_groups}")
    codebook = self.param("codebook", logical(nn.initializers.normal(self.init_std), None, "codebook", None),
                          (self.num_groups, self.num_vars, channels // self.num_groups))
    z = x.astype(jnp.float32).reshape(*x.shape[:-1], self.num_groups, -1)                  # [B, F, G, d]
    distances = (jnp.sum(z * z, -1, keepdims=True) - 2 * jnp.einsum("bfgd,gvd->bfgv", z, codebook)
                 + jnp.sum(codebook * codebook, -1))
    codes = jnp.argmin(distances, axis=-1)
    onehot = jax.nn.one_hot(codes, self.num_vars, dtype=jnp.float32)
    nearest = jnp.einsum("bfgv,gvd->bfgd", onehot, codebook)
    weights = mask[..., None, None].astype(jnp.float32)
    count = jnp.maximum(weights.sum() * channels, 1.0)
    codebook_loss = jnp.sum(jnp.square(jax.lax.stop_gradient(z) - nearest) * weights) / count
    commitment = jnp.sum(jnp.square(z - jax.lax.stop_gradient(nearest)) * weights) / count
    quantized = z + jax.lax.stop_gradient(nearest - z)
    return {"quantized": quantized.reshape(x.shape).astype(x.dtype), "codes": codes.astype(jnp.int32),
            "loss": codebook_loss + self.gamma * commitment,
            "code_perplexity": perplexity(onehot, mask)}
