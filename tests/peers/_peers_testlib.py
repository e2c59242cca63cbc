"""Shared plumbing of the ported TFP test suites (tests/peers/).

TFP runs most of its tests under `test_util.test_all_tf_execution_regimes`:
graph mode (a TF1 `tf.Graph` evaluated with a session), eager mode, and eager
mode with `tf.function` bodies run eagerly. `Regime` reproduces the three
with pytest, and `evaluate` is TFP's `self.evaluate`.
"""

import contextlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

import jdlayers as jdl  # noqa: E402

tf.get_logger().setLevel("ERROR")
tfd = tfp.distributions

# TFP's `test_all_tf_execution_regimes`: graph, eager, eager without tf.function.
ALL_REGIMES = ("graph", "eager", "eager_no_tf_function")
# TFP's end-to-end training tests and the Keras tests skip graph mode (Keras
# 3 has none); of the two eager regimes they run under one, to keep the suite
# fast: Keras layers in "eager" (Keras compiles its own train step), and
# the `vi.fit` loops of tfp.experimental.nn's tests (`FIT_REGIMES`) without
# tf.function, which spares tracing a training step per test (tests/vi
# covers the compiled step).
EAGER_REGIMES = ("eager",)
FIT_REGIMES = ("eager_no_tf_function",)


class Regime:
  """One execution regime; `evaluate` turns tensors (nests too) into numpy."""

  def __init__(self, name: str):
    self.name = name
    self._session = None

  @contextlib.contextmanager
  def scope(self):
    if self.name == "graph":
      graph = tf.Graph()
      with graph.as_default():
        with tf.compat.v1.Session(graph=graph) as sess:
          self._session = sess
          try:
            yield self
          finally:
            self._session = None
    elif self.name == "eager_no_tf_function":
      previous = tf.config.functions_run_eagerly()
      tf.config.run_functions_eagerly(True)
      try:
        yield self
      finally:
        tf.config.run_functions_eagerly(previous)
    else:
      yield self

  @property
  def executing_eagerly(self) -> bool:
    return self.name != "graph"

  def evaluate(self, value):
    """TFP's `self.evaluate`: tensors (any nest) -> numpy."""
    if self._session is not None:
      leaves = tf.nest.flatten(value, expand_composites=True)
      tensors = [i for i, x in enumerate(leaves) if tf.is_tensor(x)]
      ran = self._session.run([leaves[i] for i in tensors])
      for i, r in zip(tensors, ran):
        leaves[i] = r
      return tf.nest.pack_sequence_as(value, leaves, expand_composites=True)
    return tf.nest.map_structure(
        lambda x: x.numpy() if hasattr(x, "numpy") else np.asarray(x), value)


def regime_fixture(names):
  """A pytest fixture running each test once per regime in `names`."""

  @pytest.fixture(params=names)
  def regime(request):
    r = Regime(request.param)
    with r.scope():
      yield r
  return regime


def broadcast_shape(a, b):
  """`ps.broadcast_shape` for static shapes, as a list."""
  return list(np.broadcast_shapes(tuple(a), tuple(b)))


# -- tfp.experimental.nn's `BnnEndToEnd` ---------------------------------------

def nn_prior():
  """`tfp.experimental.nn`'s default prior of its variational layers
  (`make_kernel_bias_prior_spike_and_slab`): the two-component mixture
  `0.5 N(0, 1) + 0.5 N(0, 2000)` on every kernel and bias entry."""
  return jdl.priors.spike_and_slab(spike_scale=1.0, slab_scale=2000.0,
                                   slab_prob=0.5, bias="spike_and_slab")


def run_bnn_fit(net, likelihood, x, y, estimator, *, train_size, batch_size,
                steps=2):
  """TFP's `BnnEndToEnd.run_bnn_test` training part: `steps` Adam steps on
  `nll + KL / train_size`, a mean-field normal posterior over every kernel
  and bias (tfn's `make_kernel_bias_posterior_mvn_diag`), and the
  likelihood's scale a point estimate (tfn: a `TransformedVariable`).

  TFP only runs the steps; they must also give finite losses.
  """
  model = jdl.models.Model(net, likelihood)
  n = batch_size * steps
  q = jdl.vi.fit(model, x[:n], y[:n], estimator=estimator, epochs=1,
                 batch_size=batch_size, num_examples=train_size, seed=0,
                 shuffle=False, progress=False, point_mass="scale")
  assert len(q.history.step_loss) == steps
  assert np.all(np.isfinite(q.history.step_loss)), q.history.step_loss
  return q


# -- tfp.layers' test mocks (layers/dense_variational_test.py and
#    conv_variational_test.py define the same ones) ----------------------------

class Counter(object):
  """Helper class to manage incrementing a counting `int`."""

  def __init__(self):
    self._value = -1

  @property
  def value(self):
    return self._value

  def __call__(self):
    self._value += 1
    return self._value


class MockDistribution(tfd.Independent):
  """Monitors layer calls to the underlying distribution.

  TFP's mock skips `Independent.__init__`; this one is a well-formed
  `Independent(Normal(loc, scale))` (TFP's `distribution` property) whose
  `sample` and `log_prob` return the given results, as TFP's.
  """

  def __init__(self, result_sample, result_log_prob, loc=None, scale=None):
    self.result_sample = result_sample
    self.result_log_prob = result_log_prob
    self.result_loc = loc
    self.result_scale = scale
    shape = result_sample.shape
    if loc is not None and scale is not None:
      normal = tfd.Normal(loc=loc, scale=scale)
    else:
      normal = tfd.Normal(loc=tf.zeros(shape), scale=tf.ones(shape))
    self.called_log_prob = Counter()
    self.called_sample = Counter()
    self.called_loc = Counter()
    self.called_scale = Counter()
    super().__init__(normal, reinterpreted_batch_ndims=len(shape))

  def log_prob(self, *args, **kwargs):
    self.called_log_prob()
    return self.result_log_prob

  def sample(self, sample_shape=(), *args, **kwargs):
    # TFP's mock returns `result_sample` for any sample shape (its layers
    # only draw one value); jdlayers also draws the prior to learn the
    # network's structure, so other sample shapes get `result_sample` tiled.
    self.called_sample()
    sample_shape = list(tf.TensorShape(sample_shape))
    if not sample_shape:
      return self.result_sample
    return tf.broadcast_to(self.result_sample,
                           sample_shape + list(self.result_sample.shape))

  @property
  def loc(self):
    self.called_loc()
    return self.result_loc

  @property
  def scale(self):
    self.called_scale()
    return self.result_scale


class MockKLDivergence(object):
  """Monitors layer calls to the divergence implementation."""

  def __init__(self, result):
    self.result = result
    self.args = []
    self.called = Counter()

  def __call__(self, *args, **kwargs):
    self.called()
    self.args.append(args)
    return self.result


def uniform(shape, seed):
  # TFP: tf.random.uniform(shape, seed=seed()) (op seeds); stateless here.
  return tf.random.stateless_uniform(shape, seed=[7, seed])


def assert_divergence_args(divergence, expected_args):
  """TFP: one call to the divergence, with `expected_args`, tested for
  identity with `is` (they mix distributions and tensors)."""
  actual_args = divergence.args[0]
  for a, b in zip(expected_args, actual_args):
    assert a is b


# -- tfp.layers' Keras layer test (keras_test_utils.layer_test) -------------

@keras.saving.register_keras_serializable(package="tfp_peers")
def kernel_posterior_fn(dtype, shape, name, trainable, add_variable_fn):
  """Set trivially. The function is required to instantiate layer."""
  del name, trainable, add_variable_fn  # unused
  dist = tfd.Normal(loc=tf.zeros(shape, dtype), scale=tf.ones(shape, dtype))
  batch_ndims = tf.size(dist.batch_shape_tensor())
  return tfd.Independent(dist, reinterpreted_batch_ndims=batch_ndims)


def keras_layer_test(cls, kwargs, input_shape):
  """What TFP's `keras_test_utils.layer_test` checks: the layer builds from
  `kwargs`, runs on `input_shape` (None: any size) eagerly and in a
  functional model, its output shape is `compute_output_shape`'s, and its
  config round-trips."""
  concrete = tuple(2 if d is None else d for d in input_shape)
  x = np.random.default_rng(0).uniform(size=concrete).astype(np.float32)
  layer = cls(**kwargs)
  y = layer(x)
  assert tuple(y.shape) == tuple(layer.compute_output_shape(concrete))
  inputs = keras.Input(batch_shape=input_shape)
  outputs = cls(**kwargs)(inputs)
  model = keras.Model(inputs, outputs)
  assert tuple(model(x).shape) == tuple(y.shape)
  config = layer.get_config()
  again = type(layer).from_config(config)
  assert again.get_config() == config
  assert tuple(again(x).shape) == tuple(y.shape)
