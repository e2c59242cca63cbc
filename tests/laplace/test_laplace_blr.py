"""Laplace on Bayesian linear regression, where it is exact.

With a Normal likelihood of known scale `s` and a `N(0, 1/delta)` prior,
the posterior of `w` is `N(mu, P^{-1})` with `P = X^T X / s^2 + delta I`,
`mu = P^{-1} X^T y / s^2` (X with a column of ones for the bias), and the
evidence is `N(y; 0, s^2 I + X X^T / delta)`. No randomness in these tests
except the MAP fit, which is a convex problem solved far below its
tolerance.
"""

import numpy as np
import pytest
import tensorflow as tf

import jdlayers as jdl

S, SP, D, N = 0.5, 2.0, 3, 40


def _data(dtype=np.float64):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(N, D))
  y = x @ rng.normal(size=D) + 0.3 + S * rng.normal(size=N)
  return x.astype(dtype), y.astype(dtype)


def _model(dtype=tf.float64):
  return jdl.models.Model(jdl.Affine(1, D, dtype=dtype,
                                     prior=jdl.priors.normal(SP)),
                          jdl.models.Normal(S))


def _closed_form(x, y, delta):
  xa = np.c_[x, np.ones(len(x))].astype(np.float64)
  prec = xa.T @ xa / S ** 2 + delta * np.eye(D + 1)
  mu = np.linalg.solve(prec, xa.T @ y.astype(np.float64) / S ** 2)
  return mu, prec, xa


def _params(mu):
  return [mu[:D][None, :], mu[D:]]


def _log_evidence(xa, y, delta):
  cov = S ** 2 * np.eye(len(y)) + xa @ xa.T / delta
  _, logdet = np.linalg.slogdet(cov)
  return -0.5 * (len(y) * np.log(2 * np.pi) + logdet +
                 y @ np.linalg.solve(cov, y))


def _golden_max(f, lo, hi, tol=1e-10):
  """The maximiser of a unimodal `f` on `[lo, hi]` (golden-section)."""
  g = (np.sqrt(5.) - 1.) / 2.
  a, b = lo, hi
  while b - a > tol:
    c, d = b - g * (b - a), a + g * (b - a)
    if f(c) > f(d):
      b = d
    else:
      a = c
  return 0.5 * (a + b)


def test_full_equals_closed_form_posterior():
  x, y = _data()
  mu, prec, _ = _closed_form(x, y, 1 / SP ** 2)
  la = jdl.laplace.fit(_model(), x, y, hessian="full",
                       prior_precision=1 / SP ** 2,
                       map_options=dict(steps=3000, batch_size=None,
                                        learning_rate=0.05))
  got_mu = np.concatenate([np.ravel(p) for p in la.params])
  np.testing.assert_allclose(got_mu, mu, atol=1e-4)
  cov = np.linalg.inv(la.structure.precision(la.prior_precision).numpy())
  np.testing.assert_allclose(cov, np.linalg.inv(prec), rtol=1e-10,
                             atol=1e-14)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-10),
                                        (np.float32, 1e-4)])
def test_kron_equals_full_on_one_dense_output(dtype, rtol):
  x, y = _data(dtype)
  mu, prec, _ = _closed_form(x, y, 1.)
  model = _model(tf.as_dtype(dtype))
  params = [p.astype(dtype) for p in _params(mu)]
  full = jdl.laplace.fit(model, x, y, params=params, hessian="full")
  kron = jdl.laplace.fit(model, x, y, params=params, hessian="kron")
  pf = full.structure.precision(full.prior_precision).numpy()
  pk = kron.structure.precision(kron.prior_precision).numpy()
  np.testing.assert_allclose(pk, pf, rtol=rtol, atol=rtol * np.abs(pf).max())
  np.testing.assert_allclose(pf, prec, rtol=rtol, atol=rtol * np.abs(pf).max())
  assert abs(kron.log_marginal_likelihood() -
             full.log_marginal_likelihood()) < rtol * 1e3


def test_marglik_tuned_precision_is_the_evidence_maximiser():
  x, y = _data()
  xa = np.c_[x, np.ones(N)]
  delta = float(np.exp(_golden_max(
      lambda t: _log_evidence(xa, y, np.exp(t)), -8., 8.)))
  mu, _, _ = _closed_form(x, y, delta)
  # The Laplace evidence holds theta* fixed: at the mode for delta*, its
  # stationary point is MacKay's fixed point, which is delta* itself.
  for hessian in ("full", "kron", "diag"):
    la = jdl.laplace.fit(_model(), x, y, params=_params(mu), hessian=hessian,
                         prior_precision="marglik")
    if hessian != "diag":
      np.testing.assert_allclose(la.prior_precision, [delta], rtol=1e-5)
      np.testing.assert_allclose(la.log_marginal_likelihood(),
                                 _log_evidence(xa, y, delta), rtol=1e-10)
    grid = delta * np.exp(np.linspace(-0.5, 0.5, 11))
    vals = [la.log_marginal_likelihood(g) for g in grid]
    assert la.log_marginal_likelihood() >= max(vals) - 1e-9


def test_marglik_per_layer_beats_scalar():
  x, y = _data()
  mu, _, _ = _closed_form(x, y, 1.)
  net = jdl.Sequential(jdl.Affine(2, D, dtype=tf.float64),
                       jdl.Affine(1, 2, dtype=tf.float64))
  model = jdl.models.Model(net, jdl.models.Normal(S))
  parts = [p.numpy() for p in tf.nest.flatten(net.sample(seed=1))]
  one = jdl.laplace.fit(model, x, y, params=parts, hessian="full",
                        prior_precision="marglik")
  per = jdl.laplace.fit(model, x, y, params=parts, hessian="full",
                        prior_precision="marglik_per_layer")
  assert per.prior_precision.shape == (2,)
  assert per.log_marginal_likelihood() >= one.log_marginal_likelihood() - 1e-9
  del mu


def test_samples_have_the_posterior_covariance():
  """4000 draws; each of the 10 covariance entries is checked against the
  exact one within 5 of its standard errors (normal theory, entries
  `sqrt((S_ii S_jj + S_ij^2) / n)`): false failure < 10 * 6e-7."""
  x, y = _data()
  mu, prec, _ = _closed_form(x, y, 1.)
  la = jdl.laplace.fit(_model(), x, y, params=_params(mu), hessian="kron")
  parts = la.sample_parts(4000, seed=3)
  draws = np.concatenate([np.reshape(p, (4000, -1)) for p in parts], -1)
  cov = np.linalg.inv(prec)
  emp = np.cov(draws, rowvar=False)
  se = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov ** 2) / 4000)
  assert np.all(np.abs(emp - cov) < 5 * se)
  np.testing.assert_allclose(draws.mean(0), mu, atol=5 * np.sqrt(
      np.diag(cov).max() / 4000))
