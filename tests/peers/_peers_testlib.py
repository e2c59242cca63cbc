"""Shared plumbing of the ported TFP test suites (tests/peers/).

TFP runs most of its tests under `test_util.test_all_tf_execution_regimes`:
graph mode (a TF1 `tf.Graph` evaluated with a session), eager mode, and eager
mode with `tf.function` bodies run eagerly. `Regime` reproduces the three
with pytest, and `evaluate` is TFP's `self.evaluate`.
"""

import contextlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import jdlayers as jdl  # noqa: E402

tf.get_logger().setLevel("ERROR")

# TFP's `test_all_tf_execution_regimes`: graph, eager, eager without tf.function.
ALL_REGIMES = ("graph", "eager", "eager_no_tf_function")
# TFP's end-to-end training tests skip graph mode; of the two eager regimes
# they run under the one users run (tf.function on), to keep the suite fast.
EAGER_REGIMES = ("eager",)


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
                                   slab_prob=0.5)


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
