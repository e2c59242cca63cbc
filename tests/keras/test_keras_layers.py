"""jdlayers.keras layers: equivalence with Keras, shapes, errors.

With point-mass posteriors (zero variance) every estimator gives exactly
the deterministic layer, so the outputs must equal `keras.layers.Dense`,
`ConvND` and `ConvNDTranspose` with the same weights.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from hypothesis import given, settings
from hypothesis import strategies as st

import jdlayers as jdl
import jdlayers.testing as jdt
from jdlayers import keras as jdk

from _keras_testlib import (POINT_MASS, apply_channels_last,
                            channels_last_shape, dilate_kernel, keras_twin,
                            rng_like, set_point_mass)

tfd = tfp.distributions
ESTIMATORS = ("reparam", "flipout", "local")


def _tol(dtype):
  return dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(
      rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_point_mass_dense_equals_keras_dense(dtype):
  x = rng_like([5, 3, 4], dtype=dtype)  # extra dims, as keras Dense
  ref = keras.layers.Dense(6, activation="tanh", dtype=dtype)
  ref.build(x.shape)
  kernel, bias = ref.get_weights()
  bias = rng_like(bias.shape, 1, dtype)
  ref.set_weights([kernel, bias])
  layer = jdk.Dense(6, "tanh", dtype=dtype, seed=0, **POINT_MASS)
  layer.build(x.shape)
  set_point_mass(layer, kernel, bias)
  want = ref(x)
  for estimator in ESTIMATORS:
    layer.estimator = estimator
    for fn in (layer, tf.function(layer, autograph=False)):
      y = fn(x)
      assert y.dtype == dtype and tuple(y.shape) == (5, 3, 6)
      np.testing.assert_allclose(y, want, **_tol(dtype))


def _check_conv(case, estimator):
  kw = case.kwargs
  dil = tuple(np.broadcast_to(kw["dilations"], (kw["rank"],)))
  # TF's CPU kernels have no dilated transposed convolution (none at all
  # without oneDNN): the reference gets the dilation written into its kernel.
  explicit = case.kind == "conv_transpose" and max(dil) > 1
  ref, cls, args = keras_twin(case, explicit_dilation=explicit)
  x = case.x.reshape((-1,) + case.x.shape[len(case.batch_shape) + 1:])
  fmt = kw["data_format"]
  ref.build(channels_last_shape(x.shape, fmt))
  weights = ref.get_weights()
  if kw["use_bias"]:
    weights[1] = rng_like(weights[1].shape, case.seed, weights[1].dtype)
  ours = list(weights)
  if explicit:
    ours[0] = weights[0][tuple(slice(None, None, d) for d in dil)]
    weights[0] = dilate_kernel(ours[0], dil)
  ref.set_weights(weights)
  layer = cls(estimator=estimator, dtype=case.dtype.name, seed=case.seed,
              **args, **POINT_MASS)
  layer.build(x.shape)
  set_point_mass(layer, *ours)
  y = layer(x)
  want = apply_channels_last(ref, x, fmt, kw["rank"])
  assert tuple(y.shape) == want.shape
  assert tuple(y.shape) == tuple(layer.compute_output_shape(x.shape))
  np.testing.assert_allclose(y, want, **_tol(case.dtype.name))


@settings(deadline=None, max_examples=8)
@given(case=jdt.conv_configs(sample_shape=()),
       estimator=st.sampled_from(ESTIMATORS))
def test_point_mass_conv_equals_keras_conv(case, estimator):
  _check_conv(case, estimator)


@settings(deadline=None, max_examples=8)
@given(case=jdt.conv_transpose_configs(sample_shape=()),
       estimator=st.sampled_from(ESTIMATORS))
def test_point_mass_conv_transpose_equals_keras(case, estimator):
  _check_conv(case, estimator)


@settings(deadline=None, max_examples=5)
@given(case=st.one_of(jdt.conv_configs(sample_shape=(), dtype=tf.float32),
                      jdt.conv_transpose_configs(sample_shape=(),
                                                 dtype=tf.float32)),
       estimator=st.sampled_from(ESTIMATORS))
def test_sampled_conv_shapes_and_noise(case, estimator):
  """Mean-field layers: the Keras output shape, and draws that vary."""
  _, cls, args = keras_twin(case)
  x = case.x.reshape((-1,) + case.x.shape[len(case.batch_shape) + 1:])
  layer = cls(estimator=estimator, seed=case.seed, **args)
  y1, y2 = layer(x), layer(x)
  assert tuple(y1.shape) == tuple(layer.compute_output_shape(x.shape))
  assert y1.shape == y2.shape
  # One KL loss per part (kernel, and bias if any), as tfp.layers.
  assert len(layer.losses) == 1 + bool(args["use_bias"])
  assert all(loss.shape == () for loss in layer.losses)
  if np.any(x):
    assert not np.array_equal(y1, y2)  # a new weight draw per call


def test_flipout_and_local_noise_differs_per_example():
  """One call, identical examples: Flipout and local reparameterization
  give each example its own noise; reparameterization shares one draw."""
  x = np.ones([4, 3], np.float32)
  for est, shared in (("reparam", True), ("flipout", False),
                      ("local", False)):
    y = jdk.Dense(5, estimator=est, seed=1)(x).numpy()
    assert np.allclose(y, y[:1]) == shared, est


def test_keras_names_defaults_and_data_format():
  layer = jdk.Conv2D(4, 3)
  assert layer.padding == "valid" and layer.strides == (1, 1)
  assert layer.data_format == keras.config.image_data_format()
  assert jdk.Conv1D(2, 3, padding="causal").padding == "causal"
  y = jdk.Conv3DTranspose(2, 2, strides=2, data_format="channels_first")(
      np.ones([1, 3, 2, 2, 2], np.float32))
  assert tuple(y.shape) == (1, 2, 4, 4, 4)
  dense = jdk.Dense(2)
  dense.build((None, 3))
  assert [(w.name, tuple(w.shape)) for w in dense.weights] == [
      ("kernel_loc", (3, 2)), ("kernel_untransformed_scale", (3, 2)),
      ("bias_loc", (2,)), ("bias_untransformed_scale", (2,))]
  assert dense.surrogate.part_names == ("weights", "bias")
  assert isinstance(dense.distribution, jdl.Affine)


# -- errors ------------------------------------------------------------------

@pytest.mark.parametrize("make, match", [
    (lambda: jdk.Dense(3, estimator="bogus"), "unknown estimator 'bogus'"),
    (lambda: jdk.Dense(3, estimator={"*": "flipout"}), "unknown estimator"),
    (lambda: jdk.Dense(0), "units"),
    (lambda: jdk.Dense(3, num_examples=0), "num_examples"),
    (lambda: jdk.Dense(3, kl_weight=-1.), "kl_weight"),
    (lambda: jdk.Dense(3, seed=1.5), "seed"),
    (lambda: jdk.Conv2D(3, 3, padding="full"), "padding"),
    (lambda: jdk.Conv2DTranspose(3, 3, padding="causal"), "padding"),
    (lambda: jdk.Conv2D(3, (3, 3, 3)), "kernel_size"),
    (lambda: jdk.Conv2D(3, 3, strides=2, dilation_rate=2), "dilations"),
    (lambda: jdk.Conv2D(3, 3, data_format="nhcw"), "data_format"),
    (lambda: jdk.Conv2DTranspose(3, 3, strides=2, output_padding=2),
     "output_padding"),
])
def test_bad_arguments_fail_at_construction(make, match):
  with pytest.raises(ValueError, match=match):
    make()


@pytest.mark.parametrize("make", [
    lambda: jdk.Dense(3, kernel_posterior_fn="mean_field"),
    lambda: jdk.Dense(3, kernel_prior_fn=1.0),
    lambda: jdk.Dense(3, bias_divergence_fn=0.5),
    lambda: jdk.Dense(3, prior="normal"),
    lambda: jdk.Variational(jdl.models.Model(jdl.Affine(1, 2),
                                             jdl.models.Normal(scale=1.))),
    lambda: jdk.Variational(keras.layers.Dense(3)),
])
def test_bad_hooks_raise_type_error(make):
  with pytest.raises(TypeError):
    make()


def test_input_channel_mismatch_at_call():
  conv = jdk.Conv2D(4, 3)
  conv(np.ones([1, 5, 5, 2], np.float32))
  with pytest.raises(ValueError, match="expected axis -1 .* value 2"):
    conv(np.ones([1, 5, 5, 3], np.float32))
  with pytest.raises(ValueError, match="expected ndim=4"):
    conv(np.ones([5, 5, 2], np.float32))
  dense = jdk.Dense(4)
  dense(np.ones([2, 3], np.float32))
  with pytest.raises(ValueError, match="expected axis -1 .* value 3"):
    dense(np.ones([2, 5], np.float32))
  wrapped = jdk.Variational(jdl.Affine(2, 3))
  with pytest.raises(ValueError, match=r"Affine\(out_units=2, in_units=3\)"):
    wrapped(np.ones([2, 4], np.float32))


def _laplace(spec, make_variable):
  """A user builder of a non-normal family (Laplace)."""
  loc = make_variable("loc", spec.shape, lambda: tf.zeros(spec.shape))
  return lambda: tfd.Independent(tfd.Laplace(tf.convert_to_tensor(loc), 1.),
                                 len(spec.shape))


def test_flipout_needs_a_normal_surrogate():
  x = np.ones([2, 3], np.float32)
  with pytest.raises(ValueError, match="normal or point-mass surrogate"):
    jdk.Dense(2, kernel_posterior_fn=_laplace)(x)
  y = jdk.Dense(2, estimator="reparam", kernel_posterior_fn=_laplace)(x)
  assert y.shape == (2, 2)
