"""jdlayers.keras as variational inference: KL through add_loss, hooks,
training with compile/fit, seeds, get_config and model.save round trips."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import jdlayers as jdl
from jdlayers import keras as jdk
from jdlayers.inference import vi

from _keras_testlib import rng_like

tfd = tfp.distributions
N = 96


def _bars(n=N, seed=0):
  """6x6 images of a vertical (class 0) or horizontal (class 1) bar."""
  rng = np.random.default_rng(seed)
  y = rng.integers(0, 2, n).astype(np.int32)
  x = 0.1 * rng.normal(size=(n, 6, 6, 1)).astype(np.float32)
  pos = rng.integers(1, 5, n)
  for i in range(n):
    if y[i]:
      x[i, pos[i], :, 0] += 1.
    else:
      x[i, :, pos[i], 0] += 1.
  return x, y


def _cnn(**vi_kwargs):
  return keras.Sequential([
      keras.Input((6, 6, 1)),
      jdk.Conv2D(4, 3, activation="relu", seed=1, **vi_kwargs),
      keras.layers.Flatten(),
      jdk.Dense(2, seed=2, **vi_kwargs),
  ])


@pytest.fixture(scope="module")
def trained():
  """A Bayesian CNN fitted on the bars by compile/fit (shared: tracing the
  training step is the slow part)."""
  x, y = _bars()
  model = _cnn(num_examples=N)
  model.compile(keras.optimizers.Adam(0.03),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  history = model.fit(x, y, epochs=10, batch_size=32, verbose=0,
                      shuffle=False)
  return model, x, y, history.history["loss"]


def test_fit_trains_a_bayesian_cnn(trained):
  model, x, y, loss = trained
  assert loss[-1] < 0.7 * loss[0], loss
  probs = tf.nn.softmax(jdk.predict_samples(model, x, 8, seed=0)).numpy()
  assert np.mean(probs.mean(0).argmax(-1) == y) > 0.9


def test_model_save_load_round_trip_gives_identical_predictions(trained,
                                                                tmp_path):
  model, x, _, _ = trained
  path = tmp_path / "bnn.keras"
  model.save(path)
  y_before = model(x)  # the saved seed state's next draw
  loaded = keras.models.load_model(path)
  np.testing.assert_array_equal(loaded(x), y_before)
  for a, b in zip(model.weights, loaded.weights):
    np.testing.assert_array_equal(a, b)
  jdk.reseed(model, 7)
  jdk.reseed(loaded, 7)
  np.testing.assert_array_equal(model(x), loaded(x))
  np.testing.assert_array_equal(model(x), loaded(x))  # the streams go on
  assert not np.array_equal(model(x), y_before)
  as_json = lambda m: json.loads(json.dumps(m.get_config()))  # noqa: E731
  assert as_json(loaded) == as_json(model)  # (Keras: tuples become lists)


def test_add_loss_is_the_scaled_kl(trained):
  model, x, _, _ = trained
  model(x[:4])
  layers = jdk.variational_layers(model)
  # One loss per part (kernel, bias) per layer, as tfp.layers.
  assert len(model.losses) == 2 * len(layers) == 4
  for i, layer in enumerate(layers):
    kernel_loss, bias_loss = model.losses[2 * i:2 * i + 2]
    # Normal posterior and prior: the KL is analytic, hence exact.
    for loss, q, p in ((kernel_loss, layer.kernel_posterior,
                        layer.kernel_prior),
                       (bias_loss, layer.bias_posterior, layer.bias_prior)):
      np.testing.assert_allclose(loss, tfd.kl_divergence(q, p) / N,
                                 rtol=1e-5)
    want = layer.surrogate.kl_divergence(seed=0) / N
    np.testing.assert_allclose(kernel_loss + bias_loss, want, rtol=1e-5)
    np.testing.assert_allclose(layer.kl_loss(), want, rtol=1e-5)


def test_kl_weight_and_unscaled_kl():
  x = np.ones([3, 4], np.float32)
  half = jdk.Dense(2, num_examples=10, kl_weight=0.5, seed=3)
  raw = jdk.Dense(2, seed=3)
  half(x), raw(x)
  kl = raw.surrogate.kl_divergence(seed=0)
  np.testing.assert_allclose(tf.add_n(raw.losses), kl, rtol=1e-6)
  np.testing.assert_allclose(tf.add_n(half.losses), 0.05 * kl, rtol=1e-6)


# -- hooks -------------------------------------------------------------------

def _normal_fn(scale):
  def prior_fn(dtype, shape):
    return tfd.Normal(tf.zeros(shape, dtype), tf.constant(scale, dtype))
  return prior_fn


def test_prior_hooks_give_the_analytic_kl():
  x = np.ones([2, 3], np.float32)
  layer = jdk.Dense(4, kernel_prior_fn=_normal_fn(2.),
                    bias_prior_fn=tfp.layers.default_multivariate_normal_fn,
                    seed=0)
  layer(x)
  q_w, q_b = layer.surrogate.distributions()
  want = (
      tf.reduce_sum(tfd.kl_divergence(q_w.distribution, tfd.Normal(0., 2.))) +
      tf.reduce_sum(tfd.kl_divergence(q_b.distribution, tfd.Normal(0., 1.))))
  np.testing.assert_allclose(tf.add_n(layer.losses), want, rtol=1e-5)
  # A jdlayers prior for one part: its kernel model (a Laplace: MC term).
  laplace = jdk.Dense(4, kernel_prior_fn=jdl.priors.laplace(0.5), seed=0)
  laplace(x)
  assert laplace.distribution.sample(seed=0).weights.shape == (4, 3)


def test_divergence_and_posterior_hooks():
  x = np.ones([2, 3], np.float32)

  def no_kl(q, p, z):
    del q, p, z
    return 0.
  layer = jdk.Dense(4, kernel_divergence_fn=no_kl,
                    bias_posterior_fn=vi.point_mass(), seed=0)
  layer(x)
  assert [w.name for w in layer.weights] == [
      "kernel_loc", "kernel_untransformed_scale", "bias_loc"]
  bias = layer.surrogate.trainable_parameters["bias/loc"]
  want = -tfd.Normal(0., 1.).log_prob(bias).numpy().sum()  # MAP bias term
  assert len(layer.losses) == 2 and float(layer.losses[0]) == 0.
  np.testing.assert_allclose(layer.losses[1], want, rtol=1e-6)
  mc = jdk.Dense(4, kernel_divergence_fn=jdk.mc_divergence_fn, seed=0)
  mc(x)
  assert np.isfinite(mc.losses[0])


def test_variational_wraps_any_network():
  net = jdl.Sequential(jdl.Conv2D(2, 3, 1, activation="relu"), jdl.Flatten(),
                       jdl.Affine(3, 2 * 6 * 6, prior=jdl.priors.horseshoe()))
  layer = jdk.Variational(net, estimator={"0": "local", "*": "flipout"},
                          posterior_fns={"2/bias": vi.point_mass()},
                          num_examples=50, seed=4)
  x, _ = _bars(5)
  y = layer(x)
  assert tuple(y.shape) == (5, 3) == layer.compute_output_shape(x.shape)
  names = set(layer.surrogate.trainable_parameters)
  assert "2/bias/loc" in names and "2/bias/untransformed_scale" not in names
  assert "2/global_scale/untransformed_scale" in names
  assert layer.losses[0].shape == ()
  clone = jdk.Variational.from_config(layer.get_config())
  assert clone.get_config() == layer.get_config()
  assert tuple(clone(x).shape) == (5, 3)


# -- seeds and configs ---------------------------------------------------------

def test_same_seed_same_layer():
  x = rng_like([4, 3])
  a, b = jdk.Dense(2, seed=11), jdk.Dense(2, seed=11)
  np.testing.assert_array_equal(a(x), b(x))
  np.testing.assert_array_equal(a(x), b(x))
  keras.utils.set_random_seed(5)
  c = jdk.Dense(2)
  keras.utils.set_random_seed(5)
  d = jdk.Dense(2)
  np.testing.assert_array_equal(c(x), d(x))
  assert not np.array_equal(a(x), c(x))


@keras.saving.register_keras_serializable(package="jdlayers_tests")
def wide_prior(dtype, shape):
  return tfd.Normal(tf.zeros(shape, dtype), tf.constant(3., dtype))


@pytest.mark.parametrize("cls, args", [
    (jdk.Dense, (3,)), (jdk.Conv1D, (2, 3)), (jdk.Conv2D, (2, (3, 1))),
    (jdk.Conv3D, (2, 1)), (jdk.Conv1DTranspose, (2, 3)),
    (jdk.Conv2DTranspose, (2, 3)), (jdk.Conv3DTranspose, (2, 2)),
])
def test_get_config_from_config_round_trip(cls, args):
  kwargs = dict(estimator="local", prior=jdl.priors.laplace(0.5),
                kernel_posterior_fn=vi.mean_field_normal(0.2, -4.),
                kernel_prior_fn=wide_prior,
                kernel_divergence_fn=jdk.mc_divergence_fn,
                bias_posterior_fn=vi.point_mass(),
                bias_prior_fn=jdl.priors.normal(2.),
                num_examples=100, kl_weight=0.3, seed=9, activation="relu",
                name="layer")
  if cls is not jdk.Dense:
    kwargs.update(strides=2, padding="same")
  layer = cls(*args, **kwargs)
  config = layer.get_config()
  json.dumps(config)
  clone = cls.from_config(config)
  assert clone.get_config() == config
  assert clone.kernel_posterior_fn == vi.mean_field_normal(0.2, -4.)
  assert clone.kernel_prior_fn is wide_prior
  assert clone.prior == jdl.priors.laplace(0.5)
  same = keras.saving.deserialize_keras_object(
      keras.saving.serialize_keras_object(layer))
  assert type(same) is cls and same.get_config() == config


def test_unsaveable_hooks_fail_at_save_time(tmp_path):
  layer = jdk.Dense(2, kernel_divergence_fn=lambda q, p, z: 0.)
  with pytest.raises(TypeError, match="register_keras_serializable"):
    layer.get_config()
  model = keras.Sequential([keras.Input((3,)), layer])
  with pytest.raises(TypeError, match="kernel_divergence_fn"):
    model.save(tmp_path / "m.keras")

  def tanh_ish(x):
    return tf.tanh(x)
  wrapped = jdk.Variational(jdl.Sequential(jdl.Affine(2, 3),
                                           jdl.Lambda(tanh_ish)))
  with pytest.raises(TypeError, match="distribution cannot be saved"):
    wrapped.get_config()


def test_training_step_compiles_under_xla():
  """XLA (Keras' default for fit on GPUs): a gradient step through Flipout
  and local reparameterization, with the seed stream and the KL losses."""
  x = rng_like([16, 3])
  model = keras.Sequential([
      keras.Input((3,)),
      jdk.Dense(8, "tanh", estimator="flipout", num_examples=16, seed=0),
      jdk.Dense(1, estimator="local", num_examples=16, seed=1)])
  optimizer = keras.optimizers.SGD(0.01)

  @tf.function(jit_compile=True)
  def step(x):
    with tf.GradientTape() as tape:
      y = model(x, training=True)
      loss = tf.reduce_mean(tf.square(y - 1.)) + tf.add_n(model.losses)
    variables = model.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss
  losses = [float(step(x)) for _ in range(3)]
  assert np.all(np.isfinite(losses)) and len(set(losses)) == 3
  states = [l.seed_generator.state.numpy()[1] for l in model.layers]
  assert states == [3, 3]  # one draw per call


def test_steps_per_execution_runs_the_same_steps():
  """`compile(steps_per_execution=k)` (k steps per compiled call: the
  per-step cost of Keras' loop is paid once per k steps) draws fresh noise
  every step from the same stream: the fit equals the one-step-per-call
  fit (same ops, same order; tolerance for float32 re-association by the
  graph optimiser)."""
  x, y = _bars(64)
  out = []
  for k in (1, 4):
    model = _cnn(num_examples=64)
    model.compile(keras.optimizers.Adam(0.03),
                  keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True), steps_per_execution=k)
    loss = model.fit(x, y, epochs=2, batch_size=16, verbose=0,
                     shuffle=False).history["loss"]
    states = [l.seed_generator.state.numpy()[1]
              for l in jdk.variational_layers(model)]
    assert states == [8, 8]  # 2 epochs x 4 steps, one draw per step
    out.append((loss, [v.numpy() for v in model.trainable_variables]))
  (loss1, w1), (loss4, w4) = out
  np.testing.assert_allclose(loss4, loss1, rtol=1e-5)
  for a, b in zip(w4, w1):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
