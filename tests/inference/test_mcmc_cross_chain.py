"""ChEES-HMC and SNAPER-HMC recover closed-form posteriors.

Two targets with a known answer, each sampled with 16 chains:

* Bayesian linear regression with known noise (`test_mcmc_blr._problem`):
  the posterior of `theta = (w, b)` is Gaussian with known mean and
  covariance `C`; no constrained part, so no `TransformedTransitionKernel`.
* The same regression with a learnt noise scale, `sigma ~ HalfNormal(1)`:
  a constrained latent, so the kernels run inside a
  `TransformedTransitionKernel`. Given `sigma`, `theta` integrates out in
  closed form (`y ~ N(0, sigma^2 I + Z Z^T)`), so 1-D quadrature over
  `sigma` gives the exact posterior mean and variance of `sigma` and the
  posterior mean of `theta`.

Tolerances are Monte Carlo errors from the run's own ESS *of each
estimated quantity*: a mean is within `Z sd / sqrt(ESS)` with ESS of the
draws, a covariance entry `E[(t_i - m_i)(t_j - m_j)] = C_ij` within
`Z sqrt((C_ii C_jj + C_ij^2) / ESS_ij)` with ESS_ij that of the product
chain (for short, antithetic trajectories the draws' ESS exceeds the draw
count while the products' ESS does not, so the draws' ESS would understate
the covariance error). ESS is the "basic" (autocorrelation) ESS of 16 chains
x 200 draws, whose relative error is a few percent. With `Z = 4.5` each
check fails a correct sampler with probability 6.8e-6 (2.5e-5 if the ESS
is overestimated by 10%); the known-noise test makes 14 checks per kernel,
the noise-scale test 6: at most 20 x 2.5e-5 = 5e-4 per kernel, 1e-3 for
the file. Measured over seeds 1-6 per kernel and test (XLA): the largest
|z| of any check was 2.73 (ChEES covariance); the smallest ESS 807 (SNAPER,
theta with a learnt noise scale), products' ESS >= 823. With ESS ~1000 a
bias of 0.15 posterior sd or a 20% variance error is ~5 z.

The runs use `jit_compile=False` (3-11 s each here instead of 17-70 s of
XLA compilation on a busy 2-core machine); the algorithm is the same, and
`test_mcmc_compile_cache.py` runs ChEES under XLA.
"""

import numpy as np
import pytest
import tensorflow_probability as tfp

import jdlayers as jdl
from jdlayers import models

from test_mcmc_blr import D, N, SIGMA, _problem

KERNELS = ("chees", "snaper")
Z = 4.5
RUN = dict(num_chains=16, num_results=200, num_burnin_steps=200,
           jit_compile=False, progress=False)


def _ess(draws):
  """`[draws, chains, k]` -> `[k]` ESS of the mean of each column."""
  return jdl.diagnostics.ess(draws, "basic")


def _check_mean(draws, mean, sd, what):
  ess = _ess(draws)
  assert ess.min() > 200, f"{what}: too few effective draws: {ess}"
  z = (draws.reshape(-1, draws.shape[-1]).mean(0) - mean) / (
      sd / np.sqrt(ess))
  assert np.all(np.abs(z) < Z), f"{what}: mean z-scores {z} (ESS {ess})"


def _check_cov(draws, mean, cov, what):
  """Every `E[(t_i - m_i)(t_j - m_j)]` against `cov[i, j]` (Gaussian)."""
  c = draws - mean
  i, j = np.triu_indices(len(mean))
  prods = c[..., i] * c[..., j]                       # [draws, chains, k]
  ess = _ess(prods)
  assert ess.min() > 100, f"{what}: too few effective products: {ess}"
  sd = np.sqrt(cov[i, i] * cov[j, j] + cov[i, j] ** 2)
  z = (prods.reshape(-1, len(i)).mean(0) - cov[i, j]) / (sd / np.sqrt(ess))
  assert np.all(np.abs(z) < Z), f"{what}: covariance z-scores {z} (ESS {ess})"


@pytest.fixture(scope="module", params=KERNELS)
def blr(request):
  x, y, mean, cov = _problem()
  model = models.Model(jdl.Affine(1, D), models.Normal(scale=SIGMA))
  result = jdl.mcmc.sample(model, x, y, kernel=request.param, seed=1, **RUN)
  return result, mean, cov


def test_known_noise_posterior_matches_closed_form(blr):
  result, mean, cov = blr
  assert result.num_divergences == 0
  draws = np.concatenate([result["weights"][..., 0, :], result["bias"]],
                         axis=-1).astype(np.float64)     # [200, 16, 4]
  # R-hat of 16 chains x 200 draws moves by about +-0.01 here (1.005-1.015
  # measured); the ESS-scaled checks are the real test.
  assert jdl.diagnostics.split_rhat(draws).max() < 1.05
  _check_mean(draws, mean, np.sqrt(np.diag(cov)), result.kernel)
  _check_cov(draws, mean, cov, result.kernel)


def _noise_posterior(x, y):
  """Exact posterior mean and variance of `sigma` and of each `theta_i`, by
  quadrature over `sigma` with `theta` integrated out."""
  z = np.concatenate([x, np.ones((N, 1))], 1).astype(np.float64)
  y = y[:, 0].astype(np.float64)
  grid = np.linspace(0.2, 1.2, 2001)    # the posterior is ~0.50 +- 0.054
  logp, means, variances = [], [], []
  for s in grid:
    k = s ** 2 * np.eye(N) + z @ z.T
    logp.append(-0.5 * (y @ np.linalg.solve(k, y) + np.linalg.slogdet(k)[1])
                - 0.5 * s ** 2)         # + log HalfNormal(s; 1)
    prec = np.eye(D + 1) + z.T @ z / s ** 2
    means.append(np.linalg.solve(prec, z.T @ y / s ** 2))
    variances.append(np.diag(np.linalg.inv(prec)))
  p = np.exp(np.array(logp) - max(logp))
  p /= p.sum()
  assert p[0] + p[-1] < 1e-10           # the grid holds the posterior
  m, means = p @ grid, np.array(means)
  theta_mean = p @ means                # total variance: E[var] + var[mean]
  theta_var = p @ np.array(variances) + p @ (means - theta_mean) ** 2
  return m, p @ (grid - m) ** 2, theta_mean, theta_var


@pytest.fixture(scope="module", params=KERNELS)
def noisy(request):
  x, y, _, _ = _problem()
  model = models.Model(jdl.Affine(1, D), models.Normal(
      scale=tfp.distributions.HalfNormal(1.)))
  result = jdl.mcmc.sample(model, x, y, kernel=request.param, seed=2, **RUN)
  return result, _noise_posterior(x, y)


def test_learnt_noise_scale_matches_quadrature(noisy):
  result, (m, var, theta_mean, theta_var) = noisy
  assert result.part_names[-1] == "scale"
  sigma = result["scale"].astype(np.float64)          # [200, 16]
  # Every kept state is in the support (TTK samples log sigma).
  assert np.all(np.isfinite(sigma)) and sigma.min() > 0
  assert result.num_divergences == 0
  _check_mean(sigma[..., None], np.array([m]), np.sqrt(np.array([var])),
              "sigma")
  _check_cov(sigma[..., None], np.array([m]), np.array([[var]]), "sigma")
  theta = np.concatenate([result["weights"][..., 0, :], result["bias"]],
                         axis=-1).astype(np.float64)
  _check_mean(theta, theta_mean, np.sqrt(theta_var), "theta")
