"""Residual vector quantizer with EMA codebooks (SoundStream, Zeghidour et al. 2021, §3.3).

Layer q quantizes the residual left by layers 1..q-1 with its own codebook of N codes:

    r_1 = x,   c_q = argmin_k ‖r_q − e_{q,k}‖²,   r_{q+1} = r_q − e_{q,c_q},   x̂ = Σ_{q ≤ n_q} e_{q,c_q}

Only the first n_q layers count for an example; the rest of the stack is computed and ignored, so shapes
stay static for any n_q (quantizer dropout draws n_q per example, `dropout_num_quantizers`).

Codebooks are not parameters: they live with their EMA statistics in the "vq_stats" variable collection
and are updated, when `train=True` and the collection is mutable, as in VQ-VAE-2:

    N_k ← γ N_k + (1 − γ) n_k          n_k: frames assigned to code k in this batch (usage EMA)
    m_k ← γ m_k + (1 − γ) Σ_{c=k} r    e_k = m_k / Ñ_k  (Ñ: N Laplace-smoothed with ε)

with γ = `decay` (0.99). The first training batch initialises every codebook by k-means (layer by layer,
on the residuals of the layers before it). A code whose usage EMA N_k falls below `dead_code_threshold`
is replaced by a random frame of the batch (with N_k = threshold, m_k = threshold · frame).

Multi-device runs: the module runs under `jax.jit` on global (sharded) arrays, so every count and sum
above is a global reduction, and the replacement frames are drawn from the global batch with the "vq" rng,
which is the same on every device: all devices make the same update.

Gradients are straight-through (x̂ + x − stop_gradient(x)); the optional commitment loss
mean ‖r_q − stop_gradient(e_{q,c_q})‖² over the layers used is returned for the task to weigh. Distances
are matmuls (‖r‖² − 2 r·eᵀ + ‖e‖²), in float32 whatever the model's dtype.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

STATS = "vq_stats"
_HIGHEST = jax.lax.Precision.HIGHEST


def dropout_num_quantizers(rng, batch_size: int, num_quantizers: int) -> jax.Array:
  """Quantizer dropout: n_q per example, uniform in [1, num_quantizers]: `[batch]` int32."""
  return jax.random.randint(rng, (batch_size,), 1, num_quantizers + 1, jnp.int32)


def squared_distances(x, codebook):
  """‖x_m − e_k‖² for `x` [M, D] and `codebook` [N, D] → [M, N], as one matmul."""
  cross = jnp.matmul(x, codebook.T, precision=_HIGHEST)
  return jnp.sum(x * x, -1, keepdims=True) - 2.0 * cross + jnp.sum(codebook * codebook, -1)[None, :]


def target_platform() -> str:
  """The platform being compiled for: the current mesh's devices (so an ahead-of-time compile for a TPU
  slice from a CPU host says "tpu"), else the default backend."""
  device = jax.sharding.get_abstract_mesh().abstract_device
  return device.platform if device is not None else jax.default_backend()


def assignment_stats(x, codes, weights, size: int):
  """Per-code (weighted frame count [N], sum of the assigned frames [N, D]) of `x` [M, D]. On TPU a
  one-hot matmul (MXU); elsewhere a scatter-add, O(M·D) instead of O(M·N·D) (as speechjax.cluster.kmeans)."""
  if target_platform() == "tpu":
    onehot = jax.nn.one_hot(codes, size, dtype=x.dtype) * weights[:, None]
    return onehot.sum(0), jnp.matmul(onehot.T, x, precision=_HIGHEST)
  return (jax.ops.segment_sum(weights, codes, num_segments=size),
          jax.ops.segment_sum(x * weights[:, None], codes, num_segments=size))


def _sample_frames(rng, x, weights, num: int):
  """`num` rows of `x` [M, D] drawn with replacement among rows of positive weight (inverse-CDF
  sampling: O(M + num·log M), not the [num, M] Gumbel noise of `jax.random.categorical`)."""
  p = (weights > 0).astype(jnp.float32)
  return x[jax.random.choice(rng, x.shape[0], shape=(num,), p=p / jnp.maximum(p.sum(), 1.0))]


def kmeans(rng, x, weights, size: int, iters: int):
  """Lloyd's k-means of the rows of `x` [M, D] with positive `weights` [M]; starts from random rows.

  Returns (centroids [size, D], counts [size] of the last assignment); an empty cluster keeps its
  centroid."""
  def step(_, centroids):
    counts, sums = assignment_stats(x, jnp.argmin(squared_distances(x, centroids), -1), weights, size)
    return jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1e-9)[:, None], centroids)
  centroids = jax.lax.fori_loop(0, iters, step, _sample_frames(rng, x, weights, size))
  counts, _ = assignment_stats(x, jnp.argmin(squared_distances(x, centroids), -1), weights, size)
  return centroids, counts


def ema_update(cluster_size, embed_sum, counts, sums, decay: float, eps: float):
  """One EMA step of (usage N [N], sums m [N, D]) towards a batch's (counts, sums).

  Returns (N, m, codebook m / Laplace-smoothed N)."""
  cluster_size = decay * cluster_size + (1.0 - decay) * counts
  embed_sum = decay * embed_sum + (1.0 - decay) * sums
  total = cluster_size.sum()
  smoothed = (cluster_size + eps) / (total + cluster_size.shape[0] * eps) * total
  return cluster_size, embed_sum, embed_sum / jnp.maximum(smoothed, eps)[:, None]


def replace_dead_codes(rng, codebook, cluster_size, embed_sum, x, weights, threshold: float):
  """Codes with usage EMA < threshold → random frames of `x` [M, D] (positive `weights` only).

  Returns (codebook, cluster_size, embed_sum, number of codes replaced)."""
  dead = cluster_size < threshold
  frames = _sample_frames(rng, x, weights, codebook.shape[0])
  codebook = jnp.where(dead[:, None], frames, codebook)
  embed_sum = jnp.where(dead[:, None], frames * threshold, embed_sum)
  return codebook, jnp.where(dead, threshold, cluster_size), embed_sum, dead.sum()


def perplexity(counts):
  """exp(entropy) of the code distribution `counts` [N]: N when uniform, 1 when one code takes all."""
  probs = counts / jnp.maximum(counts.sum(), 1e-9)
  return jnp.exp(-jnp.sum(jnp.where(probs > 0, probs * jnp.log(jnp.maximum(probs, 1e-30)), 0.0)))


class ResidualVQ(nn.Module):
  """N_q layers of N codes of dimension D; codebooks and their EMA statistics in "vq_stats".

  Variables ("vq_stats"): codebook [N_q, N, D], cluster_size [N_q, N] (usage EMA), embed_sum
  [N_q, N, D], initialized bool [] (k-means done). Training updates them when called with
  `train=True, mutable=["vq_stats"]` and an rng stream "vq"."""
  num_quantizers: int
  codebook_size: int
  dim: int
  decay: float = 0.99
  dead_code_threshold: float = 2.0
  kmeans_iters: int = 10
  epsilon: float = 1e-5

  def setup(self):
    shape = (self.num_quantizers, self.codebook_size, self.dim)
    self.codebook = self.variable(STATS, "codebook",
                                  lambda: jax.random.normal(self.make_rng("params"), shape))
    self.cluster_size = self.variable(STATS, "cluster_size", jnp.zeros, shape[:2])
    self.embed_sum = self.variable(STATS, "embed_sum", jnp.zeros, shape)
    self.initialized = self.variable(STATS, "initialized", lambda: jnp.zeros([], bool))

  def __call__(self, x, mask, num_active, *, train: bool = False) -> dict:
    """`x` [B, F, D], `mask` [B, F] bool (real frames), `num_active` [B] int32 n_q per example → dict:
        quantized [B, F, D] (x's dtype; straight-through gradient to x)
        codes [B, F, N_q] int32 (layers past an example's n_q are computed but unused)
        commitment f32 []: mean ‖r_q − sg(e)‖² per dimension, summed over the layers used
        perplexity, usage, replaced [N_q] f32: per layer, over the frames that use it: exp(entropy) of
          the codes, fraction of the codebook used in this batch, codes replaced as dead this step."""
    batch, frames, dim = x.shape
    flat = x.astype(jnp.float32).reshape(-1, dim)
    active = jnp.arange(self.num_quantizers)[None, None, :] < num_active[:, None, None]
    active = jnp.broadcast_to(active, (batch, frames, self.num_quantizers)).reshape(-1, self.num_quantizers)
    weights = (active & mask.reshape(-1, 1)).astype(jnp.float32).T                   # [N_q, M]
    update = train and self.is_mutable_collection(STATS) and not self.is_initializing()
    if update:
      init_rng, layer_rng = jax.random.split(self.make_rng("vq"))
      self._kmeans_init_once(init_rng, flat, mask.reshape(-1).astype(jnp.float32))
      rngs = jax.random.split(layer_rng, self.num_quantizers)
    else:
      rngs = jnp.zeros([self.num_quantizers, 2], jnp.uint32)
    xs = (self.codebook.value, self.cluster_size.value, self.embed_sum.value, weights, rngs)
    _, out = jax.lax.scan(lambda r, layer: self._layer(r, layer, update), flat, xs)
    codes, quantized, codebook, cluster_size, embed_sum, metrics = out
    if update:
      self.codebook.value, self.cluster_size.value, self.embed_sum.value = codebook, cluster_size, embed_sum
    used = jnp.einsum("mq,qmd->md", active.astype(jnp.float32), quantized).reshape(batch, frames, dim)
    used = flat.reshape(x.shape) + jax.lax.stop_gradient(used - flat.reshape(x.shape))
    return {"quantized": used.astype(x.dtype),
            "codes": codes.T.reshape(batch, frames, self.num_quantizers),
            "commitment": metrics["commitment"].sum(), "perplexity": metrics["perplexity"],
            "usage": metrics["usage"], "replaced": metrics["replaced"]}

  def _kmeans_init_once(self, rng, flat, weights):
    """On the first training call: codebooks ← k-means of the batch's residuals, layer by layer."""
    def layer(residual, rng_q):
      centroids, counts = kmeans(rng_q, residual, weights, self.codebook_size, self.kmeans_iters)
      residual = residual - centroids[jnp.argmin(squared_distances(residual, centroids), -1)]
      return residual, (centroids, counts)

    def init():   # one scan over the layers: the program stays one layer long whatever N_q
      _, (books, sizes) = jax.lax.scan(layer, flat, jax.random.split(rng, self.num_quantizers))
      return books, sizes, books * sizes[..., None]
    stats = (self.codebook.value, self.cluster_size.value, self.embed_sum.value)
    stats = jax.lax.cond(self.initialized.value, lambda: stats, init)
    self.codebook.value, self.cluster_size.value, self.embed_sum.value = stats
    self.initialized.value = jnp.ones([], bool)

  def _layer(self, residual, layer, update: bool):
    """One quantizer: residual [M, D] → (next residual, (codes, quantized, new stats, metrics))."""
    codebook, cluster_size, embed_sum, weights, rng = layer
    codes = jnp.argmin(squared_distances(residual, codebook), -1).astype(jnp.int32)
    quantized = codebook[codes]
    counts, sums = assignment_stats(residual, codes, weights, self.codebook_size)
    replaced = jnp.zeros([], jnp.int32)
    if update:   # a layer that no example of the batch uses keeps its statistics
      new = ema_update(cluster_size, embed_sum, counts, sums, self.decay, self.epsilon)
      new_codebook, new_size, new_sum, replaced = replace_dead_codes(
          rng, new[2], new[0], new[1], residual, weights, self.dead_code_threshold)
      keep = weights.sum() == 0
      codebook, cluster_size, embed_sum = jax.tree.map(
          lambda old, fresh: jnp.where(keep, old, fresh), (codebook, cluster_size, embed_sum),
          (new_codebook, new_size, new_sum))
      replaced = jnp.where(keep, 0, replaced)
    error = jnp.mean(jnp.square(residual - jax.lax.stop_gradient(quantized)), -1)
    metrics = {"commitment": jnp.sum(error * weights) / jnp.maximum(weights.sum(), 1.0),
               "perplexity": perplexity(counts), "usage": jnp.mean(counts > 0),
               "replaced": replaced.astype(jnp.float32)}
    return residual - quantized, (codes, quantized, codebook, cluster_size, embed_sum, metrics)

  def decode(self, codes):
    """`codes` [B, F, n_q] int32 (n_q ≤ N_q: the first n_q layers) → Σ_q e_{q,c_q}: [B, F, D] f32."""
    books = self.codebook.value[:codes.shape[-1]]                  # [n_q, N, D]
    return jnp.sum(jax.vmap(lambda book, c: book[c], in_axes=(0, -1))(books, codes), 0)
