"""Parameter-free layers (`Lambda`, `Flatten`, pooling) are real distributions.

As the TFP anchor's `Lambda` (a `JointDistributionCoroutine`): usable
anywhere a `tfd.Distribution` is, yielded inside a user's
`JointDistributionCoroutine`, with `log_prob` of shape `S` for a sample of
shape `S`, under `tf.function` and XLA; and still without zero-size
placeholder tensors: a sample has no `tf.nest` leaves. All checks are exact
(no statistics).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # pylint: disable=g-import-not-at-top
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.experimental import (
    joint_distribution_layers as anchor)

import jdlayers as jdl

tfd, tfb = tfp.distributions, tfp.bijectors
Root = tfd.JointDistributionCoroutine.Root

STATIC = {
    "Lambda": lambda: jdl.Lambda(tf.nn.softplus),
    "Flatten": lambda: jdl.Flatten(2),
    "MaxPool2D": lambda: jdl.MaxPool2D(2),
    "AvgPool1D": lambda: jdl.AvgPool1D(2),
    "Pool": lambda: jdl.Pool(2, rank=3, mode="max"),
}


@pytest.fixture(params=sorted(STATIC))
def static(request):
  return STATIC[request.param]()


def test_is_a_distribution_with_structured_shapes(static):
  # TFP layers_test.testIsDistribution, for every parameter-free layer.
  assert isinstance(static, tfd.Distribution)
  dtype = static.dtype
  for shape in (static.batch_shape, static.event_shape,
                static.batch_shape_tensor(), static.event_shape_tensor()):
    tf.nest.assert_same_structure(dtype, shape)
  sample = static.sample([3], seed=0)
  tf.nest.assert_same_structure(dtype, sample)
  bijector = static.experimental_default_event_space_bijector()
  unconstrained = tf.nest.map_structure(lambda x: x + 0.,
                                        bijector.inverse(sample))
  assert static.log_prob(bijector.forward(unconstrained)).shape == [3]


@pytest.mark.parametrize("sample_shape", [(), (3,), (2, 3), 4])
@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_log_prob_has_the_sample_shape(sample_shape, dtype):
  layer = jdl.Lambda(tf.square, dtype=dtype)
  value = layer.sample(sample_shape, seed=1)
  expected = list(np.atleast_1d(sample_shape)) if sample_shape != () else []
  lp = layer.log_prob(value)
  assert lp.shape == expected and lp.dtype == dtype
  np.testing.assert_array_equal(lp, np.zeros(expected))
  np.testing.assert_array_equal(layer.prob(value), np.ones(expected))
  value2, lp2 = layer.experimental_sample_and_log_prob(sample_shape, seed=2)
  assert lp2.shape == expected and value2.sample_shape == tuple(expected)


def test_lambda_log_prob_shape_matches_the_anchor():
  ours, theirs = jdl.Lambda(tf.square), anchor.Lambda(tf.square)
  for shape in ([], [3], [2, 5]):
    ours_lp = ours.log_prob(ours.sample(shape, seed=(1, 2)))
    theirs_lp = theirs.log_prob(theirs.sample(shape, seed=(1, 2)))
    assert ours_lp.shape == theirs_lp.shape == shape
  # And the layer computes the same function.
  x = tf.constant([[-1.5, 2.]])
  np.testing.assert_array_equal(ours.sample(seed=(0, 1))(x),
                                theirs.sample(seed=(0, 1))(x))


def test_samples_have_no_leaves_and_networks_keep_their_state_parts(static):
  assert tf.nest.flatten(static.sample(5, seed=0)) == []
  assert jdl.event_space_bijectors(static) == []
  net = jdl.Sequential(jdl.Affine(3, 2), jdl.Lambda(tf.nn.relu),
                       jdl.Affine(1, 3))
  fs = net.sample(4, seed=0)
  parts = tf.nest.flatten(fs)
  assert [p.shape.as_list() for p in parts] == [[4, 3, 2], [4, 3], [4, 1, 3],
                                                [4, 1]]
  assert len(jdl.event_space_bijectors(net)) == len(parts)
  np.testing.assert_array_equal(
      net.log_prob(fs),
      net.layers[0].log_prob(fs[0]) + net.layers[2].log_prob(fs[2]))
  rebuilt = tf.nest.pack_sequence_as(fs, parts)
  np.testing.assert_array_equal(rebuilt(tf.ones([2, 2])), fs(tf.ones([2, 2])))


def _user_model():
  @tfd.JointDistributionCoroutine
  def model():
    w = yield Root(tfd.Sample(tfd.Normal(0., 1.), 2, name="w"))
    lam = yield Root(jdl.Lambda(tf.square, name="lam"))
    flat = yield Root(jdl.Flatten(3, name="flat"))
    pool = yield Root(jdl.MaxPool2D(2, name="pool"))
    x = tf.reshape(tf.range(16, dtype=tf.float32), [1, 4, 4, 1])
    # [*S, 1, 2, 2, 1] pooled, flattened to [*S, 1, 4]: mean of a pooled map.
    feats = flat(pool(x + w[..., :1, tf.newaxis, tf.newaxis, tf.newaxis]))
    yield tfd.Independent(
        tfd.Normal(tf.reduce_mean(feats, [-2, -1])[..., tf.newaxis]
                   + tf.reduce_sum(lam(w), -1, keepdims=True), 1.),
        1, name="y")
  return model


def test_yielded_inside_a_user_joint_distribution():
  model = _user_model()
  value = model.sample(4, seed=(3, 4))
  assert isinstance(value.lam, jdl.LambdaLayer)
  assert isinstance(value.flat, jdl.FlattenLayer)
  assert isinstance(value.pool, jdl.PoolLayer)
  assert value.lam.sample_shape == (4,)
  assert [p.shape.as_list() for p in tf.nest.flatten(value)] == [[4, 2],
                                                                 [4, 1]]
  lp = model.log_prob(value)
  assert lp.shape == [4]
  parts = model.log_prob_parts(value)
  for part in (parts.lam, parts.flat, parts.pool):
    np.testing.assert_array_equal(part, np.zeros([4]))
  np.testing.assert_allclose(
      parts.w, tfd.Normal(0., 1.).log_prob(value.w).numpy().sum(-1),
      rtol=1e-6)
  np.testing.assert_allclose(lp, parts.w + parts.y, rtol=1e-6)


def test_user_joint_distribution_compiles_with_xla():
  model = _user_model()

  @tf.function(jit_compile=True)
  def draw_and_score(seed):
    value = model.sample(3, seed=seed)
    return model.log_prob(value), value

  lp, value = draw_and_score(tf.constant([5, 6]))
  assert lp.shape == [3] and value.w.shape == [3, 2]
  # The static parts come out of the compiled function with their shape.
  assert value.pool.sample_shape == (3,)
  np.testing.assert_allclose(lp, model.log_prob(value), rtol=1e-5)


def test_static_layers_under_tf_function():
  layer = jdl.MaxPool2D(2)

  @tf.function
  def run(x):
    value = layer.sample(2)
    return value(x), layer.log_prob(value)

  y, lp = run(tf.ones([2, 3, 4, 4, 1]))
  assert y.shape == [2, 3, 2, 2, 1] and lp.shape == [2]


def test_bijector_flow_like_the_anchor_test():
  # TFP layers_test.testBijectorIntegration: networks defining a RealNVP flow,
  # closed by a Lambda whose sample is a function returning the bijector.
  @tfd.JointDistributionCoroutine
  def bijector_model():
    bijectors = []
    for i in range(2):
      net = yield Root(jdl.Sequential(
          jdl.Affine(5, 5), tf.tanh, jdl.Affine(10, 5),
          jdl.Lambda(lambda x: tfb.Chain([tfb.Shift(x[..., :5]),
                                          tfb.Scale(log_scale=x[..., 5:])])),
          name=f"net{i}"))
      bijectors.append(tfb.RealNVP(
          fraction_masked=0.5 * (-1) ** i,
          bijector_fn=lambda x, _, bn=net: bn(x)))
    yield jdl.Lambda(lambda: tfb.Chain(bijectors))

  # One draw of the networks (S = []), so x: [N=2, 10] gives ldj: [2] as in
  # the anchor's test (jdlayers puts sample dims before the data batch N).
  *params, _ = bijector_model.sample(seed=(7, 8))

  def ldj_fn(params):
    flow = bijector_model.sample(value=params, seed=(7, 8))[-1]
    return flow().forward_log_det_jacobian(tf.ones([2, 10]), 1)

  with tf.GradientTape() as tape:
    tape.watch(tf.nest.flatten(params))
    ldj = ldj_fn(params)
  grads = tape.gradient(ldj, tf.nest.flatten(params))
  assert ldj.shape == [2]
  assert len(grads) == 8  # 2 networks x 2 Affine x (kernel, bias); no dummies.
  assert all(g is not None and np.all(np.isfinite(g)) for g in grads)


def test_sequential_of_a_function_and_a_lambda_is_parameter_free():
  # Used to say "wrap a deterministic function in Lambda", already done.
  net = jdl.Sequential(tf.nn.relu, jdl.Lambda(tf.square))
  assert isinstance(net, tfd.Distribution)
  fs = net.sample(3, seed=0)
  assert tf.nest.flatten(fs) == []
  np.testing.assert_array_equal(fs(tf.constant([-1., 2.])), [0., 4.])
  assert net.log_prob(fs).shape == [3]
  assert net.log_prob(net.sample(seed=0)).shape == []
  # Inside a network it is one more part without state.
  outer = jdl.Sequential(jdl.Affine(2, 2), net)
  assert len(tf.nest.flatten(outer.sample(2, seed=0))) == 2
  assert len(jdl.event_space_bijectors(outer)) == 2
  assert outer.log_prob(outer.sample(2, seed=0)).shape == [2]


def test_config_round_trips():
  def cube(x):
    return x ** 3
  jdl.io.register_function("test_static_cube", cube, overwrite=True)
  for dist in (jdl.Lambda(cube, dtype=tf.float64), jdl.Flatten(3),
               jdl.AvgPool2D(2, padding="same"),
               jdl.Sequential(tf.nn.relu, jdl.Flatten(1))):
    again = jdl.io.from_json(jdl.io.to_json(dist))
    assert type(again) is type(dist) and isinstance(again, tfd.Distribution)
    assert jdl.io.to_config(again) == jdl.io.to_config(dist)
    assert tf.nest.flatten(again.sample(2, seed=0)) == []


def test_errors_name_the_layer():
  layer = jdl.Lambda(tf.square)
  with pytest.raises(TypeError, match=r"Lambda\(square\)\.log_prob.*sample"):
    layer.log_prob(tf.ones([3]))
  # The same check, and message, as every layer with parameters.
  with pytest.raises(ValueError, match=r"Flatten.*`sample_shape` must be an "
                     r"int >= 0.*got -1"):
    jdl.Flatten(2).sample(-1)
  for bad in (2.5, True):   # were silently 2 and 1 samples
    with pytest.raises(TypeError, match=r"Lambda\(square\)\.sample: "
                       r"`sample_shape` must be an int >= 0"):
      layer.sample(bad)

  @tf.function
  def symbolic(n):
    return layer.sample(n)

  with pytest.raises(ValueError, match=r"Lambda\(square\)\.sample.*known"):
    symbolic(tf.constant(3))
