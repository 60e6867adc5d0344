"""Folded convolutions equal flax's nn.Conv / nn.ConvTranspose on the unfolded signal, values and gradients,
with the same parameters."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from speechjax.nn.folded_conv import FoldedCausalConvTranspose, FoldedConv, fold, unfold

pytestmark = pytest.mark.fast_compile


def assert_same_as_reference(reference, folded, x, fold_in, fold_out):
  """Same output and same gradients (towards params and input) from the same parameters."""
  params = reference.init(jax.random.key(1), x)
  assert jax.tree.map(jnp.shape, folded.init(jax.random.key(1), fold(x, fold_in))) == \
      jax.tree.map(jnp.shape, params)

  def ref_loss(p, x):
    return jnp.sum(jnp.sin(reference.apply(p, x)))

  def folded_loss(p, x):
    return jnp.sum(jnp.sin(unfold(folded.apply(p, fold(x, fold_in)), fold_out)))

  np.testing.assert_allclose(unfold(folded.apply(params, fold(x, fold_in)), fold_out), reference.apply(params, x),
                             rtol=1e-5, atol=1e-5)
  ref_grads, folded_grads = jax.grad(ref_loss, (0, 1))(params, x), jax.grad(folded_loss, (0, 1))(params, x)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), folded_grads, ref_grads)


@pytest.mark.parametrize("kernel, dilation, stride, fold_in, fold_out", [
    (7, 1, 1, 4, 4), (7, 9, 1, 4, 4), (1, 1, 1, 4, 4),      # SoundStream's residual units at 4 × 32 lanes
    (4, 1, 2, 4, 2), (8, 1, 4, 2, 1),                       # its down convs between folds
    (3, 2, 1, 1, 1)])                                       # unfolded: the plain conv path
def test_causal_conv_equals_nn_conv(kernel, dilation, stride, fold_in, fold_out):
  x = jax.random.normal(jax.random.key(0), (2, 96, 3))
  pads = [((kernel - 1) * dilation + 1 - stride, 0)]
  assert_same_as_reference(nn.Conv(5, (kernel,), (stride,), pads, kernel_dilation=(dilation,)),
                           FoldedConv(5, (kernel,), (stride,), pads, (dilation,), fold_in=fold_in,
                                      fold_out=fold_out), x, fold_in, fold_out)


@pytest.mark.parametrize("kernel, stride, groups, fold_in, fold_out", [
    (15, 1, 1, 8, 8), (41, 4, 2, 8, 2), (41, 4, 4, 2, 1), (5, 1, 1, 4, 4), (41, 4, 2, 1, 1)])
def test_same_padded_grouped_conv_equals_nn_conv(kernel, stride, groups, fold_in, fold_out):
  """MelGAN's waveform-discriminator convs: SAME padding, stride 4, groups of input channels."""
  x = jax.random.normal(jax.random.key(0), (2, 128, 8))
  assert_same_as_reference(nn.Conv(8, (kernel,), (stride,), "SAME", feature_group_count=groups),
                           FoldedConv(8, (kernel,), (stride,), "SAME", feature_group_count=groups,
                                      fold_in=fold_in, fold_out=fold_out), x, fold_in, fold_out)


@pytest.mark.parametrize("kernel, strides, fold_in, fold_out", [
    ((7, 7), (1, 1), 4, 4), ((3, 4), (1, 2), 4, 4), ((4, 4), (2, 2), 4, 2), ((1, 1), (2, 2), 4, 2)])
def test_2d_conv_folded_along_the_last_axis_equals_nn_conv(kernel, strides, fold_in, fold_out):
  """The STFT discriminator's convs over [time, frequency], folded along frequency."""
  x = jax.random.normal(jax.random.key(0), (2, 12, 64, 2))
  assert_same_as_reference(nn.Conv(3, kernel, strides, "SAME"),
                           FoldedConv(3, kernel, strides, "SAME", fold_in=fold_in, fold_out=fold_out),
                           x, fold_in, fold_out)


class TrimmedConvTranspose(nn.Module):
  """SoundStream's causal upsampling as flax writes it: kernel 2·stride, VALID, first T·stride outputs."""
  stride: int

  @nn.compact
  def __call__(self, x):
    y = nn.ConvTranspose(5, (2 * self.stride,), (self.stride,), "VALID", name="conv")(x)
    return y[:, :x.shape[1] * self.stride]


class FoldedTranspose(nn.Module):
  stride: int
  fold_in: int
  fold_out: int

  @nn.compact
  def __call__(self, x):
    return FoldedCausalConvTranspose(5, self.stride, self.fold_in, self.fold_out, name="conv")(x)


@pytest.mark.parametrize("stride, fold_in, fold_out", [
    (2, 2, 4), (4, 1, 2), (4, 2, 4), (2, 1, 2), (5, 1, 1), (8, 1, 1)])
def test_causal_transposed_conv_equals_trimmed_nn_conv_transpose(stride, fold_in, fold_out):
  x = jax.random.normal(jax.random.key(0), (2, 24, 3))
  assert_same_as_reference(TrimmedConvTranspose(stride), FoldedTranspose(stride, fold_in, fold_out), x,
                           fold_in, fold_out)


def test_folds_that_do_not_line_up_are_refused():
  x = jnp.zeros((1, 24, 8))
  with pytest.raises(ValueError, match="fold_out · stride must be a multiple of fold_in"):
    FoldedConv(4, (3,), (1,), "SAME", fold_in=4, fold_out=2).init(jax.random.key(0), x)
  with pytest.raises(ValueError, match="cannot fold length 10 by 4"):
    fold(jnp.zeros((1, 10, 2)), 4)
