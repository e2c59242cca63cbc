"""`jdl.LayerNorm` and `jdl.FilterResponseNorm`: Keras 3 / paper-formula
equivalence, shapes, graph/XLA, gradients, priors and log_prob, errors, HMC,
VI, io."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from hypothesis import given, settings
from hypothesis import strategies as st

import keras

import jdlayers as jdl
import jdlayers.testing as jdt
from jdlayers import io, models

from _layers_testlib import tol

tfd = tfp.distributions
# Every dtype with S = [] and S = [3] (the grid), plus drawn configs.
GRID = pytest.mark.parametrize("dtype, s", [
    (d, s) for d in (tf.float32, tf.float64) for s in ((), (3,))])


def _per_lead(case, f, fn):
  """`fn(x[idx], [w[idx_S] for w in weights])` for every lead index."""
  lead = tuple(np.broadcast_shapes(case.batch_shape, case.sample_shape))
  ns = len(case.sample_shape)
  core = case.x.ndim - len(case.batch_shape)
  x = np.broadcast_to(case.x, lead + case.x.shape[-core:])
  weights = [np.asarray(w) for w in f.params.values()]
  outs = []
  for idx in np.ndindex(*lead):
    s_idx = tuple(0 if d == 1 else i for i, d in zip(idx[len(lead) - ns:],
                                                     case.sample_shape))
    outs.append(fn(x[idx], {k: w[s_idx] for k, w in zip(f.params, weights)}))
  return np.stack(outs).reshape(lead + outs[0].shape)


def _keras_layer_norm(case, f):
  kw = case.kwargs
  kl = keras.layers.LayerNormalization(
      epsilon=kw["epsilon"], center=kw["center"], scale=kw["scale"],
      dtype=case.dtype.name)
  kl.build(case.x.shape[len(case.batch_shape):])

  def run(x, params):
    if params:
      kl.set_weights([params[n] for n in ("gamma", "beta") if n in params])
    return np.asarray(kl(x))
  if not kw["random"]:
    return run(case.x, {})
  return _per_lead(case, f, run)


@GRID
@settings(deadline=None, max_examples=4)
@given(data=st.data())
def test_layer_norm_equals_keras_layer_normalization(dtype, s, data):
  case = data.draw(jdt.layer_norm_configs(dtype, s, random=None),
                   label="case")
  f = case.dist.sample(case.sample_shape, seed=case.seed)
  y = f(case.x)
  assert tuple(y.shape) == case.output_shape and y.dtype == case.dtype
  rtol, atol = tol(case.dtype)
  np.testing.assert_allclose(y, _keras_layer_norm(case, f), rtol=rtol,
                             atol=atol)


def _frn_numpy(x, p, kw):
  """The paper's formula, in float64 numpy (Singh & Krishnan 2019, alg. 1)."""
  rank, last = kw["rank"], kw["data_format"] == "channels_last"
  x = x.astype(np.float64)
  if not last:
    x = np.moveaxis(x, 1, -1)
  nu2 = np.mean(x ** 2, axis=tuple(range(1, rank + 1)), keepdims=True)
  y = p["gamma"] * x / np.sqrt(nu2 + kw["epsilon"]) + p["beta"]
  if kw["tlu"]:
    y = np.maximum(y, p["tau"])
  return y if last else np.moveaxis(y, -1, 1)


@GRID
@settings(deadline=None, max_examples=3)
@given(data=st.data())
def test_frn_equals_the_paper_formula(dtype, s, data):
  case = data.draw(jdt.filter_response_norm_configs(dtype, s),
                   label="case")
  f = case.dist.sample(case.sample_shape, seed=case.seed)
  y = f(case.x)
  assert tuple(y.shape) == case.output_shape and y.dtype == case.dtype
  want = _per_lead(case, f, lambda x, p: _frn_numpy(x, p, case.kwargs))
  rtol, atol = tol(case.dtype)
  np.testing.assert_allclose(y, want, rtol=rtol, atol=atol)


def _cases():
  return st.one_of(jdt.layer_norm_configs(),
                   jdt.filter_response_norm_configs())


@settings(deadline=None, max_examples=6)
@given(_cases())
def test_graph_and_xla_equal_eager_and_gradients_reach_every_leaf(case):
  f = case.dist.sample(case.sample_shape, seed=case.seed)
  eager = f(case.x)
  rtol, atol = tol(case.dtype)
  for jit in (False, True):
    g = tf.function(lambda layer, x: layer(x), jit_compile=jit)
    np.testing.assert_allclose(g(f, case.x), eager, rtol=10 * rtol,
                               atol=10 * atol)
  leaves = tf.nest.flatten(f)
  w = tf.constant(np.random.default_rng(0).normal(size=eager.shape),
                  case.dtype)
  with tf.GradientTape() as tape:
    tape.watch(leaves)
    loss = tf.reduce_sum(w * f(case.x))
  grads = dict(zip(f.params, tape.gradient(loss, leaves)))
  for name, g in grads.items():
    assert g is not None and np.all(np.isfinite(g)), name
  # beta (without a TLU) moves every output by one: its gradient is the sum
  # of w over everything but the parameter's own axes.
  if "beta" in grads and "tau" not in grads:
    assert np.abs(np.asarray(grads["beta"])).sum() > 0


def test_tlu_threshold_gets_exactly_the_gradient_where_it_wins():
  frn = jdl.FilterResponseNorm(2, tf.float64, rank=1)
  f = frn.sample(seed=3)
  x = tf.constant(np.random.default_rng(0).normal(size=(4, 5, 2)))
  w = tf.constant(np.random.default_rng(1).normal(size=(4, 5, 2)))
  with tf.GradientTape() as tape:
    tape.watch(f.tau)
    loss = tf.reduce_sum(w * f(x))
  p = {k: np.asarray(v) for k, v in f.params.items()}
  lin = _frn_numpy(np.asarray(x), p, dict(
      rank=1, data_format="channels_last", epsilon=1e-6, tlu=False))
  wins = lin < p["tau"]
  assert wins.any() and not wins.all()
  want = (np.asarray(w) * wins).sum(axis=(0, 1))
  np.testing.assert_allclose(tape.gradient(loss, f.tau), want, rtol=1e-12)


def test_sample_dims_broadcast_against_input_dims():
  f = jdl.LayerNorm(3, tf.float64, rank=1).sample([2, 1], seed=0)
  x = np.random.default_rng(0).normal(size=(5, 4, 6, 3))
  y = f(x)                                   # B=[5] against S=[2, 1]
  assert y.shape == (2, 5, 4, 6, 3)
  one = type(f)({k: v[1, 0] for k, v in f.params.items()}, f.config)
  np.testing.assert_allclose(y[1, 3], one(x[3]), rtol=1e-12)


def test_log_prob_is_the_sum_of_the_tfd_parts():
  ln = jdl.LayerNorm(3, tf.float64)
  f = ln.sample(4, seed=1)
  n01 = tfd.Normal(np.float64(0), 1.)
  want = (tf.reduce_sum(n01.log_prob(f.gamma - 1.), -1) +
          tf.reduce_sum(n01.log_prob(f.beta), -1))
  np.testing.assert_allclose(ln.log_prob(f), want, rtol=1e-12)
  frn = jdl.FilterResponseNorm(2, tf.float64)
  g = frn.sample(3, seed=2)
  assert list(g.params) == ["gamma", "beta", "tau"]
  want = sum(tf.reduce_sum(n01.log_prob(v - (1. if k == "gamma" else 0.)),
                           -1) for k, v in g.params.items())
  np.testing.assert_allclose(frn.log_prob(g), want, rtol=1e-12)
  hs = jdl.LayerNorm(3, prior=jdl.priors.horseshoe(0.5), center=False)
  h = hs.sample(2, seed=0)
  assert list(h.params) == ["global_scale", "local_scale", "gamma"]
  lp = tfd.HalfCauchy(0., 0.5).log_prob(h.global_scale)
  lp += tf.reduce_sum(tfd.HalfCauchy(0., 1.).log_prob(h.local_scale), -1)
  scale = h.global_scale[:, None] * h.local_scale
  lp += tf.reduce_sum(tfd.Normal(1., scale).log_prob(h.gamma), -1)
  np.testing.assert_allclose(hs.log_prob(h), lp, rtol=1e-5)


def test_the_prior_centres_the_scale_at_one():
  """gamma - 1 ~ Normal(0, 0.1): the mean of 4000 draws is within 5 standard
  errors (0.1 / sqrt(4000)) of 1 (false failure < 6e-7); beta's of 0."""
  f = jdl.LayerNorm(1, tf.float64, prior=jdl.priors.normal(0.1)).sample(
      4000, seed=0)
  se = 0.1 / np.sqrt(4000)
  assert abs(np.mean(f.gamma) - 1.) < 5 * se
  assert abs(np.mean(f.beta)) < 5 * se


def test_scale_or_center_off_and_the_parameter_free_layer():
  assert jdl.LayerNorm(3, center=False).param_names == ("gamma",)
  assert jdl.LayerNorm(3, scale=False).param_names == ("beta",)
  for kw in (dict(random=False), dict(center=False, scale=False)):
    fixed = jdl.LayerNorm(3, tf.float64, **kw)
    assert isinstance(fixed, jdl.layers.FixedLayerNorm)
    f = fixed.sample(2, seed=0)
    assert tf.nest.flatten(f) == []
    np.testing.assert_array_equal(fixed.log_prob(f), np.zeros(2))
    x = np.random.default_rng(0).normal(size=(4, 3))
    want = keras.layers.LayerNormalization(dtype="float64", **{
        k: v for k, v in kw.items() if k != "random"})(x)
    np.testing.assert_allclose(f(x), want, rtol=1e-12)
  net = jdl.Sequential(jdl.Affine(3, 2), jdl.LayerNorm(3, random=False))
  fs = net.sample(4, seed=0)
  assert fs(tf.ones([5, 2])).shape == (4, 5, 3)


# -- errors ------------------------------------------------------------------

@pytest.mark.parametrize("make, err, match", [
    (lambda: jdl.LayerNorm(0), ValueError,
     "`features` must be a positive integer; got 0"),
    (lambda: jdl.LayerNorm(3, epsilon=0.), ValueError,
     r"LayerNorm\(features=3\): `epsilon` must be a number > 0; got 0.0"),
    (lambda: jdl.LayerNorm(3, rank=-1), ValueError,
     r"`rank` must be an integer in \[0, 8\]; got -1"),
    (lambda: jdl.LayerNorm(3, tf.int32), TypeError,
     "`dtype` must be floating"),
    (lambda: jdl.FilterResponseNorm(2, rank=4), ValueError,
     r"FilterResponseNorm\(channels=2\): `rank` must be an integer in "
     r"\[1, 3\]; got 4"),
    (lambda: jdl.FilterResponseNorm(2, data_format="nhcw"), ValueError,
     "unknown `data_format` 'nhcw'"),
    (lambda: jdl.FilterResponseNorm(2, epsilon=-1), ValueError,
     "`epsilon` must be a number > 0"),
])
def test_bad_arguments_are_refused(make, err, match):
  with pytest.raises(err, match=match):
    make()


def test_bad_inputs_name_the_layer_and_shapes():
  ln = jdl.LayerNorm(3, rank=1).sample(2, seed=0)
  with pytest.raises(ValueError, match=r"LayerNorm\(features=3\) got input "
                     r"with 4 features on axis -1 \(input shape \[2, 5, 4\]"
                     r"\); expected 3"):
    ln(tf.ones([2, 5, 4]))
  with pytest.raises(ValueError, match=r"LayerNorm\(features=3\) expects an "
                     r"input of rank >= 3.*got shape \[5, 3\]"):
    ln(tf.ones([5, 3]))
  with pytest.raises(ValueError, match=r"leading dims \[3\].*sample shape "
                     r"\[2\]"):
    ln(tf.ones([3, 2, 5, 3]))
  with pytest.raises(TypeError, match="got an input of dtype int32"):
    ln(tf.ones([2, 5, 3], tf.int32))
  frn = jdl.FilterResponseNorm(2, data_format="channels_first").sample(
      seed=0)
  with pytest.raises(ValueError, match=r"FilterResponseNorm\(channels=2\) "
                     r"got input with 3 features on axis -3"):
    frn(tf.ones([4, 3, 5, 5]))
  with pytest.raises(ValueError, match=r"expects an input of rank >= 4 "
                     r"\(\[..., N, C, <2 spatial dims>\]\); got shape \[2, 5, "
                     r"5\]"):
    frn(tf.ones([2, 5, 5]))


# -- inference ---------------------------------------------------------------

def _tiny_model():
  net = jdl.Sequential(jdl.FilterResponseNorm(2, rank=1),
                       jdl.LayerNorm(2, rank=1), jdl.Flatten(),
                       jdl.Affine(1, 3 * 2))
  return models.Model(net, models.Normal(scale=0.5))


def _data():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(8, 3, 2)).astype(np.float32)
  return x, x.sum(axis=(1, 2))[:, None].astype(np.float32)


def test_hmc_runs_and_moves():
  x, y = _data()
  result = jdl.mcmc.sample(_tiny_model(), x, y, kernel="hmc", num_chains=2,
                           num_results=4, num_burnin_steps=4,
                           num_leapfrog_steps=3, seed=0, progress=False,
                           jit_compile=False)
  for part in result.states:
    draws = np.asarray(part)
    assert np.all(np.isfinite(draws))
    assert np.ptp(draws, axis=0).max() > 0


def test_vi_fits():
  x, y = _data()
  q = jdl.vi.fit(_tiny_model(), x, y, epochs=1, batch_size=4,
                 learning_rate=0.05, seed=0, jit_compile=False,
                 progress=False)
  assert np.all(np.isfinite(q.history.step_loss))
  assert q.history.step_loss[-1] != q.history.step_loss[0]


# -- io ----------------------------------------------------------------------

@settings(deadline=None, max_examples=4)
@given(st.one_of(jdt.layer_norm_configs(random=None),
                 jdt.filter_response_norm_configs()))
def test_config_and_file_round_trip(tmp_path_factory, case):
  again = io.from_config(io.to_config(case.dist))
  assert io.to_config(again) == io.to_config(case.dist)
  assert type(again) is type(case.dist)
  f = case.dist.sample(case.sample_shape, seed=case.seed)
  path = tmp_path_factory.mktemp("norm") / "norm.jdl.npz"
  io.save_network(path, case.dist, f)
  dist, loaded = io.load_network(path)
  for u, v in zip(tf.nest.flatten(f), tf.nest.flatten(loaded)):
    np.testing.assert_array_equal(u, v)
  np.testing.assert_array_equal(f(case.x), loaded(case.x))
  np.testing.assert_array_equal(case.dist.log_prob(f), dist.log_prob(loaded))


def test_prior_round_trips_in_a_network_file(tmp_path):
  net = jdl.Sequential(
      jdl.Affine(3, 2), jdl.LayerNorm(3, prior=jdl.priors.horseshoe(0.5)))
  path = io.save_distribution(tmp_path / "n.jdl.npz", net)
  again = io.load_distribution(path)
  assert io.to_config(again) == io.to_config(net)
