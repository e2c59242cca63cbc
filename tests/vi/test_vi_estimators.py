"""Estimators: shapes for every layer kind, exact moments, Flipout unbiased.

References are independent of jdlayers' ops: `tf.nn.conv2d` / matmul on the
surrogate's loc and scale give the exact pre-activation mean
`op(x, loc) + b_loc` and variance `op(x^2, scale^2) + b_scale^2` of a
mean-field normal layer. Statistical checks use `K` independent draws
(vectorised as a sample dim) and `5` standard errors; with the number of
outputs compared here a correct estimator fails with probability < 1e-4.
"""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings

import jdlayers as jdl
from jdlayers.inference import vi
from jdlayers.testing import strategies as jdt

ESTIMATORS = ("reparam", "flipout", "local")


def _widen(q, scale=0.3, seed=0):
  """Gives every part a visible spread and non-zero means."""
  rng = np.random.default_rng(seed)
  for name, v in q.trainable_parameters.items():
    if name.endswith("/loc"):
      v.assign(rng.normal(size=v.shape).astype(v.dtype.as_numpy_dtype))
    else:
      rho = np.log(np.expm1(scale * rng.uniform(0.5, 1.5, size=v.shape)))
      v.assign(rho.astype(v.dtype.as_numpy_dtype))


@settings(deadline=None, max_examples=12)
@given(jdt.layer_configs(kinds=("affine", "conv", "conv_transpose")))
def test_every_estimator_gives_the_layer_output_shape(case):
  q = vi.Surrogate(case.dist, seed=case.seed)
  for est in ESTIMATORS:
    y = q.apply(case.x, est, case.sample_shape, seed=case.seed)
    assert tuple(y.shape) == case.output_shape, est
    assert y.dtype == case.dtype
    again = q.apply(case.x, est, case.sample_shape, seed=case.seed)
    np.testing.assert_array_equal(y, again)  # stateless seeds


@settings(deadline=None, max_examples=8)
@given(jdt.layer_configs(kinds=("affine", "conv", "conv_transpose"),
                         sample_shape=()))
def test_point_mass_estimators_equal_the_deterministic_layer(case):
  q = vi.Surrogate(case.dist, point_mass=True, seed=case.seed)
  _widen(q, seed=case.seed)
  net = q.unpack(q.mean_parts())[0]
  want = net(case.x)
  for est in ESTIMATORS:
    got = q.apply(case.x, est, seed=1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _moments_reference(kind, x, q):
  """Exact mean/variance of the pre-activation, via tf.nn / matmul."""
  d = q.distributions()
  kloc, kscale = d[0].distribution.loc, d[0].distribution.scale
  bloc, bscale = d[1].distribution.loc, d[1].distribution.scale
  if kind == "affine":
    mean = x @ tf.transpose(kloc) + bloc
    var = (x ** 2) @ tf.transpose(kscale ** 2) + bscale ** 2
  else:
    conv = lambda a, k: tf.nn.conv2d(a, k, strides=2, padding="SAME")
    mean = conv(x, kloc) + bloc
    var = conv(x ** 2, kscale ** 2) + bscale ** 2
  return mean.numpy().astype(np.float64), var.numpy().astype(np.float64)


def _layer(kind):
  rng = np.random.default_rng(3)
  if kind == "affine":
    return (jdl.Affine(3, 4, tf.float64),
            rng.normal(size=(5, 4)))
  return (jdl.Conv2D(3, 3, 2, tf.float64, strides=2),
          rng.normal(size=(2, 5, 5, 2)))


@pytest.mark.parametrize("kind", ["affine", "conv"])
@pytest.mark.parametrize("est", ESTIMATORS)
def test_estimators_have_the_exact_mean_and_variance(kind, est):
  """Reparam, Flipout and local reparameterization all give each example's
  pre-activation the exact mean and variance of the mean-field layer
  (Flipout: unbiased, with the same marginal variance)."""
  dist, x = _layer(kind)
  q = vi.Surrogate(dist, seed=0)
  _widen(q)
  mean, var = _moments_reference(kind, x, q)
  k = 20000 if kind == "affine" else 6000
  y = q.apply(x, est, [k], seed=7).numpy()
  se = np.sqrt(var / k)
  assert np.all(np.abs(y.mean(0) - mean) < 5 * se), est
  # Sample variance of K draws: relative SE ~ sqrt(2/K) for a normal; 6 SE
  # leaves room for Flipout's mildly non-normal (sign-flipped) outputs.
  rel = y.var(0) / var - 1
  assert np.all(np.abs(rel) < 6 * np.sqrt(2 / k)), (est, rel.max())


def test_local_reparameterization_is_normal_with_exact_moments():
  dist, x = _layer("conv")
  q = vi.Surrogate(dist, seed=0)
  _widen(q)
  mean, var = _moments_reference("conv", x, q)
  z = (q.apply(x, "local", [4000], seed=3).numpy() - mean) / np.sqrt(var)
  # Standardised draws are N(0, 1): check skewness and excess kurtosis too.
  flat = z.reshape(4000, -1)
  assert np.all(np.abs((flat ** 3).mean(0)) < 5 * np.sqrt(15 / 4000))
  assert np.all(np.abs((flat ** 4).mean(0) - 3) < 5 * np.sqrt(96 / 4000))


def test_flipout_decorrelates_examples_but_reparam_does_not():
  dist = jdl.Affine(1, 4, tf.float64, use_bias=False)
  q = vi.Surrogate(dist, seed=0)
  _widen(q)
  x = np.ones((2, 4))  # two identical examples
  loc = q.distributions()[0].distribution.loc.numpy()
  for est, lo, hi in (("reparam", 0.99, 1.01), ("flipout", -0.05, 0.05)):
    y = q.apply(x, est, [8000], seed=1).numpy()[..., 0] - x @ loc.T[:, 0]
    corr = np.corrcoef(y[:, 0], y[:, 1])[0, 1]
    assert lo < corr < hi, (est, corr)


def _grad_variance(est, n, draws=300):
  """Variance over estimator noise of a minibatch loss gradient."""
  rng = np.random.default_rng(0)
  x = tf.constant(rng.normal(size=(n, 8)), tf.float64)
  y = tf.constant(rng.normal(size=(n, 1)), tf.float64)
  q = vi.Surrogate(jdl.Affine(1, 8, tf.float64), seed=0)
  _widen(q, scale=0.5)
  loc = q.trainable_parameters["weights/loc"]

  @tf.function(autograph=False)
  def grad(seed):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean((q.apply(x, est, seed=seed) - y) ** 2)
    return tape.gradient(loss, loc)

  g = np.stack([grad(tf.constant([0, i])).numpy() for i in range(draws)])
  return g.var(0).sum()


def test_flipout_gradient_variance_falls_as_one_over_batch_size():
  """Wen et al. (2018): with per-example perturbations the variance due to
  weight noise of a minibatch gradient falls ~1/N; with one shared draw it
  does not fall. (300 draws: the variance estimates are within ~15%.)"""
  flip = {n: _grad_variance("flipout", n) for n in (8, 128)}
  rep = {n: _grad_variance("reparam", n) for n in (8, 128)}
  assert flip[8] / flip[128] > 8, flip          # 16 ideally
  assert rep[8] / rep[128] < 3, rep             # ~1: shared noise
  assert flip[128] < rep[128] / 5, (flip, rep)


def test_estimator_per_layer_and_errors():
  net = jdl.Sequential(jdl.Affine(4, 2, activation="relu"), jdl.Affine(1, 4))
  q = vi.Surrogate(net, seed=0)
  x = tf.ones([3, 2])
  y = q.apply(x, {"0": "local", "*": "flipout"}, seed=0)
  assert y.shape == (3, 1)
  with pytest.raises(ValueError, match="unknown estimator 'flip'"):
    q.apply(x, "flip", seed=0)
  # A surrogate family other than normal cannot use Flipout.
  def laplace_builder(spec, make_variable):
    import tensorflow_probability as tfp
    loc = make_variable("loc", spec.shape, lambda: tf.zeros(spec.shape))
    return lambda: tfp.distributions.Independent(
        tfp.distributions.Laplace(tf.convert_to_tensor(loc), 1.),
        len(spec.shape))
  q2 = vi.Surrogate(net, builders={"0/weights": laplace_builder}, seed=0)
  assert q2.apply(x, "reparam", seed=0).shape == (3, 1)
  with pytest.raises(ValueError, match="needs a normal or point-mass"):
    q2.apply(x, "flipout", seed=0)


def test_compiles_with_xla_and_differentiates():
  net = jdl.Sequential(jdl.Conv2D(3, 3, 1, activation="relu"), jdl.Flatten(),
                       jdl.Affine(2, 3 * 4 * 4))
  q = vi.Surrogate(net, seed=0)
  x = tf.random.stateless_normal([5, 4, 4, 1], [1, 2])

  @tf.function(jit_compile=True, autograph=False)
  def losses(seed):
    out = []
    for est in ESTIMATORS:  # one compilation for all three
      with tf.GradientTape() as tape:
        l = tf.reduce_sum(q.apply(x, est, seed=seed) ** 2) + (
            q.kl_divergence(seed=seed))
      out.append((l, tape.gradient(l, q.trainable_variables)))
    return out

  for l, grads in losses(tf.constant([1, 2])):
    assert np.isfinite(l.numpy())
    assert all(g is not None and np.all(np.isfinite(g)) for g in grads)
