"""HMC and NUTS recover the closed-form posterior of Bayesian linear regression.

Model: `y = X w + b + N(0, sigma^2)`, prior `w, b ~ N(0, 1)` (an `Affine`
layer with its default prior, known noise). The posterior over `theta = (w, b)`
is Gaussian with precision `I + Z^T Z / sigma^2` (`Z = [X, 1]`) and mean
`cov Z^T y / sigma^2`.

Tolerances are Monte Carlo errors from the sampler's own bulk ESS: a mean is
within `4 sd / sqrt(ESS)`; a covariance entry within
`4 sqrt((C_ii C_jj + C_ij^2) / ESS)` (the standard error of a sample
covariance of a Gaussian). With 16 such checks per kernel, a correct sampler
fails this test with probability well below 1e-3; a bias of 0.2 posterior sd
or a 20% variance error fails it.
"""

import numpy as np
import pytest

import jdlayers as jdl
from jdlayers import models

N, D, SIGMA = 50, 3, 0.5


def _problem():
  rng = np.random.default_rng(42)
  x = rng.normal(size=(N, D)).astype(np.float32)
  w = np.array([[1.0], [-2.0], [0.5]])
  y = (x @ w + 0.3 + SIGMA * rng.normal(size=(N, 1))).astype(np.float32)
  z = np.concatenate([x, np.ones((N, 1))], 1).astype(np.float64)
  cov = np.linalg.inv(np.eye(D + 1) + z.T @ z / SIGMA ** 2)
  mean = cov @ z.T @ y[:, 0].astype(np.float64) / SIGMA ** 2
  return x, y, mean, cov


def _check_against_closed_form(result, mean, cov):
  draws = np.concatenate([result["weights"][..., 0, :], result["bias"]],
                         axis=-1).astype(np.float64)       # [D, C, 4]
  ess = jdl.diagnostics.bulk_ess(draws)
  assert ess.min() > 50, f"too few effective draws for the test: {ess}"
  # R-hat is itself noisy (about +-0.005 at this ESS); the ESS-scaled checks
  # below are the real test.
  assert jdl.diagnostics.split_rhat(draws).max() < 1.02
  flat = draws.reshape(-1, D + 1)
  sd = np.sqrt(np.diag(cov))
  err = np.abs(flat.mean(0) - mean)
  assert np.all(err < 4 * sd / np.sqrt(ess)), (err / sd, ess)
  emp = np.cov(flat.T)
  tol = 4 * np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov ** 2) /
                    ess.min())
  assert np.all(np.abs(emp - cov) < tol), (emp - cov) / tol


@pytest.mark.parametrize("kernel, kwargs", [
    ("nuts", {}),
    # Whitened, this posterior is ~N(0, I) and the adapted step ~1, so the
    # trajectory length ~ num_leapfrog_steps: 5 is well away from the
    # resonant multiples of pi (3 and 6 gave R-hat 1.05-1.19 before the
    # step size was jittered, 1.04 after; see JitteredStepSize).
    ("hmc", dict(num_leapfrog_steps=5)),
    ("hmc", dict(num_leapfrog_steps=5, adaptation="step_size",
                 step_size_jitter=0.3)),
])
def test_posterior_matches_closed_form(kernel, kwargs):
  x, y, mean, cov = _problem()
  model = models.Model(jdl.Affine(1, D), models.Normal(scale=SIGMA))
  result = jdl.mcmc.sample(model, x, y, num_chains=8, num_results=400,
                           num_burnin_steps=300, kernel=kernel, seed=1,
                           progress=False, **kwargs)
  assert result.num_divergences == 0
  _check_against_closed_form(result, mean, cov)
