"""Parity with the TFP anchor, `tfp.experimental.joint_distribution_layers`.

With the same parameters our layers give the same outputs and `log_prob`
(`Conv2D` with `use_bias=False`: the anchor's has no bias), and accept the
anchor's positional constructor arguments.
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.experimental import \
    joint_distribution_layers as tfjdl

import jdlayers as jdl

tfd = tfp.distributions
Root = tfd.JointDistributionCoroutine.Root


def _x(shape, dtype=tf.float32, seed=0):
  return tf.random.stateless_normal(shape, [seed, 1], dtype=dtype)


def _ours_from(dist, parts):
  return tf.nest.pack_sequence_as(dist.sample(seed=(0, 0)), list(parts))


# ------------------------------------------------------------------ Affine --

@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_affine_unbatched(dtype):
  anchor = tfjdl.Affine(3, 4, dtype)
  ours = jdl.Affine(3, 4, dtype)
  a = anchor.sample(seed=(1, 2))
  f = _ours_from(ours, [a.weights, a.bias])
  # A single example and a data batch [N, in]: both conventions agree.
  for x in (_x([4], dtype), _x([6, 4], dtype)):
    if x.shape.rank == 1:
      np.testing.assert_allclose(f(x[tf.newaxis])[0], a(x), rtol=1e-6)
    else:
      np.testing.assert_allclose(f(x), a(x), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(ours.log_prob(f), anchor.log_prob(a), rtol=1e-6)


def test_affine_sampled_batch():
  anchor = tfjdl.Affine(3, 4)
  ours = jdl.Affine(3, 4)
  a = anchor.sample(5, seed=(3, 4))
  f = _ours_from(ours, [a.weights, a.bias])
  np.testing.assert_allclose(ours.log_prob(f), anchor.log_prob(a), rtol=1e-6)
  assert ours.log_prob(f).shape.as_list() == [5]
  # Anchor: one example per sample, x [S, in] -> [S, out]. Ours: that is a
  # data batch of one per sample, x [S, 1, in] -> [S, 1, out].
  x = _x([5, 4])
  np.testing.assert_allclose(f(x[:, tf.newaxis])[:, 0], a(x), rtol=1e-5,
                             atol=1e-6)
  # Anchor with x [N, S, in] broadcasts data over samples ([N, S, out]);
  # ours takes x [N, in] to [S, N, out]: the same numbers, transposed.
  xs = _x([7, 4])
  y_anchor = a(tf.broadcast_to(xs[:, tf.newaxis], [7, 5, 4]))
  np.testing.assert_allclose(f(xs), tf.transpose(y_anchor, [1, 0, 2]),
                             rtol=1e-5, atol=1e-5)


def test_affine_anchor_sample_round_trips_into_ours():
  # The anchor's own samples are directly usable as our log_prob input.
  anchor = tfjdl.Affine(2, 3)
  ours = jdl.Affine(2, 3)
  a = anchor.sample(4, seed=(0, 5))
  np.testing.assert_allclose(
      ours.log_prob({"weights": a.weights, "bias": a.bias}),
      anchor.log_prob(a), rtol=1e-6)
  # And ours into the anchor.
  f = ours.sample(4, seed=(0, 6))
  np.testing.assert_allclose(
      anchor.log_prob(tfjdl.AffineLayer(f.weights, f.bias)),
      ours.log_prob(f), rtol=1e-6)


def test_affine_custom_params_model_fn_same_as_anchor():
  def pmf(out_units, in_units, dtype):
    yield Root(tfd.Sample(tfd.Laplace(tf.zeros([], dtype), 0.5),
                          [out_units, in_units], name="weights"))
    yield Root(tfd.Sample(tfd.Normal(tf.zeros([], dtype), 2.), out_units,
                          name="bias"))

  anchor = tfjdl.Affine(2, 3, tf.float32, pmf, "A")
  ours = jdl.Affine(2, 3, tf.float32, pmf, "A")
  a = anchor.sample(3, seed=(2, 2))
  f = _ours_from(ours, [a.weights, a.bias])
  np.testing.assert_allclose(ours.log_prob(f), anchor.log_prob(a), rtol=1e-6)
  # Same stateless seed, same model: the same draw.
  f2 = ours.sample(3, seed=(2, 2))
  np.testing.assert_allclose(f2.weights, a.weights)
  np.testing.assert_allclose(f2.bias, a.bias)


# ------------------------------------------------------------------ Conv2D --

@pytest.mark.parametrize("strides, padding", [
    ((1, 1), "SAME"), ((2, 2), "SAME"), ((1, 1), "VALID"), ((2, 1), "VALID")])
@pytest.mark.parametrize("sample_shape", [(), (3,)])
def test_conv2d_parity(strides, padding, sample_shape):
  anchor = tfjdl.Conv2D(4, (3, 2), 2, tf.float32, strides=strides,
                        padding=padding)
  ours = jdl.Conv2D(4, (3, 2), 2, tf.float32, strides=strides,
                    padding=padding, use_bias=False)
  a = anchor.sample(sample_shape, seed=(4, 4))
  f = _ours_from(ours, [a.kernel])
  x = _x([2, 7, 6, 2])
  np.testing.assert_allclose(f(x), a(x), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(ours.log_prob(f), anchor.log_prob(a), rtol=1e-6)
  if sample_shape:
    # Both broadcast a per-sample input batch [S, N, ...] the same way.
    xs = _x(list(sample_shape) + [2, 7, 6, 2], seed=3)
    np.testing.assert_allclose(f(xs), a(xs), rtol=1e-5, atol=1e-5)


def test_conv2d_positional_arguments():
  args = (4, 3, 2, tf.float64, None, (2, 2), "VALID", "c")
  ours = jdl.Conv2D(*args, use_bias=False)
  anchor = tfjdl.Conv2D(*args[:4], strides=(2, 2), padding="VALID", name="c")
  assert ours.name == anchor.name == "c"
  f = ours.sample(seed=(0, 0))
  assert f.kernel.shape.as_list() == [3, 3, 2, 4]
  assert f.kernel.dtype == tf.float64
  assert f.config.strides == (2, 2) and f.config.padding == "VALID"
  x = _x([1, 7, 7, 2], tf.float64)
  a = tfjdl.make_conv2d_layer_class((2, 2), "VALID")(kernel=f.kernel)
  np.testing.assert_allclose(f(x), a(x), rtol=1e-12)
  # Ours has a bias by default.
  assert set(jdl.Conv2D(*args).sample(seed=(0, 0)).params) == {"kernel",
                                                                "bias"}


def test_affine_positional_arguments():
  ours = jdl.Affine(3, 4, tf.float64, None, "aff")
  anchor = tfjdl.Affine(3, 4, tf.float64, name="aff")
  assert ours.name == anchor.name == "aff"
  f, a = ours.sample(seed=(0, 0)), anchor.sample(seed=(0, 0))
  assert f.weights.shape == a.weights.shape
  assert f.bias.shape == a.bias.shape
  assert f.weights.dtype == a.weights.dtype == tf.float64


# ----------------------------------------------------- Lambda / Sequential --

def test_lambda_parity():
  x = _x([3, 4])
  a = tfjdl.Lambda(tf.square).sample(seed=(0, 0))
  f = jdl.Lambda(tf.square).sample(seed=(0, 0))
  np.testing.assert_array_equal(f(x), a(x))
  assert f.fn is a.fn is tf.square
  # Ours carries no zero-size placeholder; the anchor's has one.
  assert tf.nest.flatten(f) == []
  np.testing.assert_array_equal(jdl.Lambda(tf.square).log_prob(f), 0.)


@pytest.mark.parametrize("sample_shape", [(), (4,)])
def test_sequential_parity(sample_shape):
  anchor = tfjdl.Sequential(tfjdl.Affine(5, 3), tf.nn.softplus,
                            tfjdl.Affine(2, 5))
  ours = jdl.Sequential(jdl.Affine(5, 3), tf.nn.softplus, jdl.Affine(2, 5))
  a = anchor.sample(sample_shape, seed=(5, 5))
  l1, _, l2 = a.layers
  parts = [l1.weights, l1.bias, l2.weights, l2.bias]
  f = tf.nest.pack_sequence_as(ours.sample(sample_shape, seed=(0, 0)), parts)
  np.testing.assert_allclose(ours.log_prob(f), anchor.log_prob(a), rtol=1e-6)
  if sample_shape:
    x = _x([4, 3])  # one example per sample network
    np.testing.assert_allclose(f(x[:, tf.newaxis])[:, 0], a(x), rtol=1e-5,
                               atol=1e-5)
  else:
    x = _x([6, 3])
    np.testing.assert_allclose(f(x), a(x), rtol=1e-5, atol=1e-5)


def test_sequential_conv_parity():
  anchor = tfjdl.Sequential(tfjdl.Conv2D(3, 3, 1), tf.nn.relu,
                            tfjdl.Conv2D(2, 3, 3, strides=(2, 2)))
  ours = jdl.Sequential(jdl.Conv2D(3, 3, 1, use_bias=False), tf.nn.relu,
                        jdl.Conv2D(2, 3, 3, strides=2, use_bias=False))
  a = anchor.sample(2, seed=(6, 6))
  parts = [a.layers[0].kernel, a.layers[2].kernel]
  f = tf.nest.pack_sequence_as(ours.sample(2, seed=(0, 0)), parts)
  x = _x([3, 6, 6, 1])
  np.testing.assert_allclose(f(x), a(x), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(ours.log_prob(f), anchor.log_prob(a), rtol=1e-6)
