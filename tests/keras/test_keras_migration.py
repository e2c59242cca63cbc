"""Migrating tfp.layers models to jdlayers.keras keeps their meaning.

tfp.layers (TFP 0.25, `tensorflow_probability/python/layers/
dense_variational.py`, `conv_variational.py`) is the reference: explicit
None hooks (no KL term / no bias), its posterior functions, Keras' kernel
layout, its accessors and one loss per part.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

import jdlayers as jdl
from jdlayers import keras as jdk

from _keras_testlib import rng_like

tfd = tfp.distributions
N = 100


def _x(shape=(4, 3)):
  return rng_like(shape, 7)


# -- None means what it means in tfp.layers ----------------------------------

@pytest.mark.parametrize("hooks, parts", [
    ({}, ["kernel", "bias"]),  # jdlayers' defaults: both parts have a KL
    (dict(kernel_prior_fn=None), ["bias"]),
    (dict(kernel_divergence_fn=None), ["bias"]),
    (dict(bias_prior_fn=None), ["kernel"]),
    (dict(bias_divergence_fn=None), ["kernel"]),
    (dict(bias_posterior_fn=None), ["kernel"]),
    (dict(kernel_prior_fn=None, bias_posterior_fn=None), []),
])
@pytest.mark.parametrize("make", [lambda **kw: jdk.Dense(2, seed=0, **kw),
                                  lambda **kw: jdk.Conv1D(2, 3, seed=0, **kw)])
def test_none_hooks_mean_no_kl_term_or_no_bias(make, hooks, parts):
  layer = make(**hooks)
  x = _x((4, 3)) if isinstance(layer, jdk.Dense) else _x((2, 5, 3))
  layer(x)
  assert len(layer.losses) == len(parts)
  for part in ("kernel", "bias"):
    has_kl = getattr(layer, f"{part}_prior") is not None and (
        hooks.get(f"{part}_divergence_fn", 0) is not None)
    assert has_kl == (part in parts), part
  for loss, part in zip(layer.losses, parts):  # analytic, hence exact
    q, p = getattr(layer, f"{part}_posterior"), getattr(layer, f"{part}_prior")
    np.testing.assert_allclose(loss, tfd.kl_divergence(q, p), rtol=1e-5)
  no_bias = "bias_posterior_fn" in hooks
  assert (layer.bias_posterior is None) == no_bias == (not layer.has_bias)
  assert any(w.name.startswith("bias") for w in layer.weights) != no_bias
  if not parts:
    assert float(layer.kl_loss()) == 0.


def test_no_bias_layer_is_x_times_kernel():
  x = _x()
  layer = jdk.Dense(2, kernel_posterior_fn=jdl.vi.point_mass(),
                    bias_posterior_fn=None, seed=0)
  y = layer(x)
  assert [w.name for w in layer.weights] == ["kernel_loc"]
  np.testing.assert_allclose(y, x @ layer.get_weights()[0], rtol=1e-6)


def test_kernel_posterior_none_is_an_error_saying_what_to_pass():
  with pytest.raises(ValueError, match=r"mean_field_normal\(\)"):
    jdk.Dense(2, kernel_posterior_fn=None)


# -- tfp.layers posterior functions ----------------------------------------------

@keras.saving.register_keras_serializable(package="jdlayers_tests")
def loc_scale_posterior(dtype, shape, name, trainable, add_variable_fn):
  """A user's own tfp.layers-style posterior on `default_loc_scale_fn`."""
  loc, scale = tfp.layers.default_loc_scale_fn()(dtype, shape, name,
                                                  trainable, add_variable_fn)
  return tfd.Independent(tfd.Normal(loc, scale), len(shape))


@pytest.mark.parametrize("fn, names", [
    (tfp.layers.default_mean_field_normal_fn(),
     ["loc", "untransformed_scale"]),
    (tfp.layers.default_mean_field_normal_fn(is_singular=True), ["loc"]),
    (loc_scale_posterior, ["loc", "untransformed_scale"]),
    (tfp.layers.default_multivariate_normal_fn, []),  # fixed, no variables
])
def test_tfp_posterior_functions_make_keras_weights(fn, names):
  x = _x()
  layer = jdk.Dense(2, estimator="reparam", kernel_posterior_fn=fn,
                    bias_posterior_fn=fn, seed=0)
  layer(x)
  want = [f"{part}_{n}" for part in ("kernel", "bias") for n in names]
  assert [w.name for w in layer.trainable_weights] == want
  shapes = {"kernel": (3, 2), "bias": (2,)}  # Keras' layout
  assert [tuple(w.shape) for w in layer.weights] == [
      shapes[n.split("_")[0]] for n in want]
  assert tuple(layer.kernel_posterior.event_shape) == (3, 2)
  if not names:
    return
  # The distribution reads the variables: assigning moves the posterior,
  # and gradients reach every variable.
  weights = {w.name: w for w in layer.weights}
  weights["kernel_loc"].assign(np.full((3, 2), 0.5, np.float32))
  np.testing.assert_allclose(layer.kernel_posterior.mean(), 0.5)
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(layer(x)) + tf.add_n(layer.losses)
  grads = tape.gradient(loss, layer.trainable_weights)
  assert all(g is not None and np.any(np.asarray(g) != 0) for g in grads)


def test_tfp_posterior_function_saves_and_loads(tmp_path):
  x = _x()
  model = keras.Sequential([
      keras.Input((3,)),
      jdk.Dense(2, kernel_posterior_fn=loc_scale_posterior,
                bias_posterior_fn=loc_scale_posterior, seed=0)])
  path = os.path.join(tmp_path, "m.keras")
  model.save(path)
  loaded = keras.models.load_model(path)
  for a, b in zip(model.weights, loaded.weights):
    np.testing.assert_array_equal(a, b)
  jdk.reseed(model, 3)
  jdk.reseed(loaded, 3)
  np.testing.assert_array_equal(model(x), loaded(x))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(kernel_posterior_fn=tfp.layers.default_mean_field_normal_fn),
     TypeError, r"call it: `kernel_posterior_fn=tfp.layers.default_mean_"),
    (dict(kernel_posterior_fn=lambda dtype, shape, name: None), TypeError,
     r"jdlayers.vi.mean_field_normal\(\) or a tfp.layers function"),
    (dict(kernel_prior_fn=lambda a, b, c: None), TypeError,
     r"\(dtype, shape\) -> tfd.Distribution or a tfp.layers function"),
    # tfp.layers' DenseFlipout(units, activation, activity_regularizer):
    (dict(use_bias=None), TypeError, "activity_regularizer"),
])
def test_unsupported_hooks_say_what_to_pass(kwargs, error, match):
  with pytest.raises(error, match=match):
    jdk.Dense(2, **kwargs)


def test_unsupported_tfp_features_say_what_to_pass():
  reg = tfp.layers.default_mean_field_normal_fn(
      loc_regularizer=tf_keras.regularizers.L2(1.))
  with pytest.raises(ValueError, match="regularizer.*kernel_divergence_fn"):
    jdk.Dense(2, kernel_posterior_fn=reg)(_x())
  trainable_prior = tfp.layers.default_mean_field_normal_fn()
  with pytest.raises(ValueError, match="priors are fixed"):
    jdk.Dense(2, kernel_prior_fn=trainable_prior)(_x())
  closure = jdk.Dense(2, kernel_posterior_fn=trainable_prior)
  with pytest.raises(TypeError, match="register_keras_serializable"):
    closure.get_config()


# -- Keras' layout ---------------------------------------------------------------

def _near_point_mass(layer, keras_layer):
  """Copies a Keras layer's weights into the posterior locations; scales
  `eps + softplus(-40)` (about 1.2e-7 in float32)."""
  weights = {w.name: w for w in layer.weights}
  for name, value in zip(("kernel_loc", "bias_loc"),
                         keras_layer.get_weights()):
    weights[name].assign(value)
  for name in ("kernel_untransformed_scale", "bias_untransformed_scale"):
    weights[name].assign(np.full(weights[name].shape, -40., np.float32))


@pytest.mark.parametrize("make_ref, make, shape", [
    (lambda: keras.layers.Dense(5, activation="relu"),
     lambda **kw: jdk.Dense(5, "relu", seed=0, **kw), (4, 3)),
    (lambda: keras.layers.Conv2D(4, (3, 2), strides=2, padding="same"),
     lambda **kw: jdk.Conv2D(4, (3, 2), strides=2, padding="same", seed=0,
                             **kw), (2, 7, 6, 3)),
    (lambda: keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same"),
     lambda **kw: jdk.Conv2DTranspose(4, 3, strides=2, padding="same",
                                      seed=0, **kw), (2, 4, 5, 3)),
])
@pytest.mark.parametrize("estimator", ["reparam", "flipout", "local"])
def test_keras_weights_copy_in_unchanged(make_ref, make, shape, estimator):
  x = _x(shape)
  ref = make_ref()
  ref.build(x.shape)
  weights = ref.get_weights()
  weights[1] = rng_like(weights[1].shape, 1)  # a nonzero bias
  ref.set_weights(weights)
  want = np.asarray(ref(x))
  layer = make(estimator=estimator)
  layer.build(x.shape)
  assert tuple(layer.kernel_posterior.mean().shape) == tuple(ref.kernel.shape)
  _near_point_mass(layer, ref)
  np.testing.assert_allclose(layer.kernel_posterior.mean(), ref.kernel)
  # Noise of scale ~1.2e-7 on weights: far below the 1e-4 tolerance.
  np.testing.assert_allclose(layer(x), want, rtol=1e-4, atol=1e-4)
  # A point-mass layer takes Keras' weights as they are.
  point = make(estimator=estimator, kernel_posterior_fn=jdl.vi.point_mass(),
               bias_posterior_fn=jdl.vi.point_mass())
  point.build(x.shape)
  point.set_weights(ref.get_weights())
  np.testing.assert_allclose(point(x), want, rtol=1e-5, atol=1e-5)


def test_files_from_the_old_layout_load_transposed():
  """Configs without `keras_layout` were written when the dense kernel was
  `[units, in]` and None meant the default: both are read that way."""
  layer = jdk.Dense(2, seed=0)
  layer.build((None, 3))
  old = dict(layer.get_config(), kernel_prior_fn=None)
  del old["keras_layout"]
  clone = jdk.Dense.from_config(old)
  clone.build((None, 3))
  values = layer.get_weights()
  store = {str(i): v.T for i, v in enumerate(values)}  # the old layout
  clone.load_own_variables(store)
  for a, b in zip(clone.get_weights(), values):
    np.testing.assert_array_equal(a, b)
  clone(_x())
  assert len(clone.losses) == 2  # old None: the default prior


# -- accessors, tensor functions, losses ---------------------------------------------

def test_accessors_are_distributions_in_keras_layout():
  layer = jdk.Conv2DTranspose(4, 3, seed=0)
  assert layer.kernel_posterior is None  # before build, as tfp.layers
  layer.build((None, 5, 5, 2))
  assert tuple(layer.kernel_posterior.event_shape) == (3, 3, 4, 2)
  assert tuple(layer.kernel_prior.event_shape) == (3, 3, 4, 2)
  assert tuple(layer.bias_posterior.event_shape) == (4,)
  dense = jdk.Dense(3, kernel_prior_fn=tfp.layers.default_multivariate_normal_fn,
                    seed=0)
  dense.build((None, 2))
  for d in (dense.kernel_posterior, dense.kernel_prior):
    assert isinstance(d, tfd.Independent)  # as tfp.layers' default forms
    assert tuple(d.event_shape) == (2, 3)
  kernel = {w.name: w for w in dense.weights}["kernel_loc"]
  np.testing.assert_array_equal(dense.kernel_posterior.mean(), kernel)


def test_posterior_tensor_fns_as_tfp_layers():
  x = _x()
  layer = jdk.Dense(2, estimator="reparam", seed=0,
                    kernel_posterior_tensor_fn=lambda d: d.mean(),
                    bias_posterior_tensor_fn=lambda d: d.mean())
  y = layer(x)
  kernel, _, bias, _ = layer.get_weights()
  np.testing.assert_allclose(y, x @ kernel + bias, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(layer.kernel_posterior_tensor, kernel)
  # Flipout draws the kernel's noise itself (tfp.layers: no kernel tensor);
  # the bias tensor function applies with every estimator, as tfp.layers.
  seen = []

  def divergence(q, p, z):
    seen.append((q, p, z))
    return tf.reduce_sum(q.log_prob(layer_b.bias_posterior.mean()))
  layer_b = jdk.Dense(2, seed=0, bias_posterior_tensor_fn=lambda d: d.mean(),
                      bias_divergence_fn=divergence,
                      bias_prior_fn=tfp.layers.default_multivariate_normal_fn)
  layer_b(x)
  assert layer_b.kernel_posterior_tensor is None
  bias = {w.name: w for w in layer_b.weights}["bias_loc"]
  np.testing.assert_array_equal(layer_b.bias_posterior_tensor, bias)
  (q, p, z), = seen
  assert z is layer_b.bias_posterior_tensor
  assert isinstance(p, tfd.Independent) and tuple(q.event_shape) == (2,)


# -- a migrated tfp.layers model ---------------------------------------------------

def _kl_over_n(q, p, _):
  return tfd.kl_divergence(q, p) / N


def _tfp_hooks():
  """Explicit tfp.layers hooks: a Bayesian bias with a prior."""
  return dict(kernel_divergence_fn=_kl_over_n,
              bias_posterior_fn=tfp.layers.default_mean_field_normal_fn(),
              bias_prior_fn=tfp.layers.default_multivariate_normal_fn,
              bias_divergence_fn=_kl_over_n)


# tfp.layers' defaults spelt out for jdlayers.keras (the migration table):
# a point-mass bias without prior, the KL unscaled (num_examples=None).
TFP_DEFAULT_BIAS = dict(bias_posterior_fn=jdl.vi.point_mass(),
                        bias_prior_fn=None)


@pytest.mark.parametrize("explicit", [True, False])
def test_migrated_model_has_tfp_layers_losses(explicit):
  x = _x((3, 6, 6, 1))
  hooks = _tfp_hooks() if explicit else {}
  ours = {} if explicit else TFP_DEFAULT_BIAS
  reference = tf_keras.Sequential([
      tf_keras.Input((6, 6, 1)),
      tfp.layers.Convolution2DFlipout(2, 3, **hooks),
      tf_keras.layers.Flatten(),
      tfp.layers.DenseReparameterization(3, **hooks),
      tfp.layers.DenseFlipout(2, kernel_prior_fn=None)])
  migrated = keras.Sequential([
      keras.Input((6, 6, 1)),
      jdk.Conv2D(2, 3, seed=1, **hooks, **ours),
      keras.layers.Flatten(),
      jdk.Dense(3, estimator="reparam", seed=2, **hooks, **ours),
      jdk.Dense(2, kernel_prior_fn=None, seed=3, **TFP_DEFAULT_BIAS)])
  reference(x), migrated(x)
  assert len(migrated.losses) == len(reference.losses) == (4 if explicit
                                                           else 2)
  # Same posteriors: the same losses (all analytic), part by part.
  tfp_layers = [l for l in reference.layers if l.weights]
  ours_layers = jdk.variational_layers(migrated)
  for a, b in zip(tfp_layers, ours_layers):
    assert [tuple(w.shape) for w in a.weights] == [
        tuple(w.shape) for w in b.weights]
    b.set_weights(a.get_weights())
  reference(x), migrated(x)
  np.testing.assert_allclose(migrated.losses, reference.losses, rtol=1e-5)


def test_variational_takes_tfp_posterior_functions():
  layer = jdk.Variational(
      jdl.Affine(2, 3), seed=0,
      kernel_posterior_fn=tfp.layers.default_mean_field_normal_fn(),
      posterior_fns={"bias": tfp.layers.default_mean_field_normal_fn(
          is_singular=True)})
  y = layer(_x())
  assert tuple(y.shape) == (4, 2)
  assert [w.name for w in layer.trainable_weights] == [
      "weights_loc", "weights_untransformed_scale", "bias_loc"]


def test_tfp_hooks_compile_under_xla():
  """tfp.layers functions are called inside every step: under XLA too."""
  x = _x((8, 3))
  layer = jdk.Dense(
      2, num_examples=8, seed=0,
      kernel_posterior_fn=tfp.layers.default_mean_field_normal_fn(),
      kernel_divergence_fn=_kl_over_n,
      kernel_prior_fn=tfp.layers.default_multivariate_normal_fn,
      bias_posterior_fn=tfp.layers.default_mean_field_normal_fn(
          is_singular=True), bias_prior_fn=None)
  layer(x)

  @tf.function(jit_compile=True)
  def step(x):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.square(layer(x))) + tf.add_n(layer.losses)
    return loss, tape.gradient(loss, layer.trainable_weights)
  loss, grads = step(x)
  assert np.isfinite(float(loss)) and len(layer.losses) == 1
  assert all(np.all(np.isfinite(g)) for g in grads)
