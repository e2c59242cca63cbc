"""ChEES on Bayesian networks: 64 chains agree in function space, and SBC.

The weights of a BNN are not identifiable (hidden units permute and flip
sign), so convergence is judged on the posterior-predictive function at fixed
inputs, as in `test_mcmc_bnn.py` (same data: `tanh(2x) + x/2 + N(0, 0.2^2)`,
fixed numpy arrays).
"""

import numpy as np
import pytest
import tensorflow as tf

import jdlayers as jdl
from jdlayers import models
from jdlayers.inference import _loop

from test_mcmc_bnn import NOISE, _data


def test_64_chains_agree_in_function_space():
  """False-failure probability: over seeds 1-8 (64 chains, 500 + 500 steps)
  the function-space split R-hat was 1.0013-1.0018 and the bulk ESS 25000-
  26400 of 32000 draws; with 300 + 300 steps (this test), seeds 1-6 gave
  1.0016-1.0020 and ESS 15300-15900. The bound 1.01 is 5x the largest excess
  seen (and ~40 of its run-to-run sds, ~0.0002), the ESS bound 10x below the
  smallest, so a correct sampler fails with probability well below 1e-3.
  What it catches (independent normal draws, 300 x 64): 8 chains offset by
  0.5 sd give R-hat 1.012, 2 chains offset by 1 sd 1.016.
  """
  x, y = _data(60, 0)
  net = jdl.Sequential(jdl.Affine(6, 1, activation="tanh"), jdl.Affine(1, 6))
  model = models.Model(net, models.Normal(scale=NOISE))
  result = jdl.mcmc.sample(model, x, y, num_chains=64, num_results=300,
                           num_burnin_steps=300, kernel="chees", seed=3,
                           progress=False)
  probe = result.predict(np.linspace(-2, 2, 7, dtype=np.float32)[:, None])
  f = probe.means[..., 0]                        # [300, 64, 7]
  rhat = jdl.diagnostics.split_rhat(f).max()
  ess = jdl.diagnostics.bulk_ess(f).min()
  assert rhat < 1.01 and ess > 1500, (rhat, ess)
  # The learned trajectory is many leapfrog steps long (not a random walk).
  assert result.trace.num_leapfrog_steps.mean() > 10


# -- simulation-based calibration ---------------------------------------------

R, CHAINS, BURN, KEEP, THIN, BINS = 256, 16, 200, 100, 10, 8
L = CHAINS * KEEP // THIN     # posterior draws per replicate


def _chi2_ok(counts):
  # chi^2 with BINS - 1 = 7 dof; its 0.9999 quantile is 29.88: with 8
  # statistics, a correct sampler fails this test with probability 8e-4.
  expected = counts.sum() / len(counts)
  stat = ((counts - expected) ** 2 / expected).sum()
  return stat < 29.88, stat


@pytest.mark.slow
def test_sbc_ranks_are_uniform_and_the_loop_compiles_once():
  """SBC (Talts et al. 2018) of ChEES on a tiny BNN, one `sample` call per
  replicate: R = 256 networks and data sets from the prior predictive, each
  posterior sampled by 16 chains, ranks of the true value among L = 160
  draws (every 10th of 100 per chain: measured on 4 replicates, the bulk ESS
  of the thinned draws is 0.9-2.0x their number, so they are ~independent,
  as SBC's uniformity needs). Every replicate has data of the same shapes,
  so all reuse the first one's compiled loop. Measured (seed as here): the
  8 chi^2 statistics were 2.2-13.3 against the bound 29.88; 45-75 s."""
  x = np.linspace(-1.5, 1.5, 8, dtype=np.float32)[:, None]
  net = jdl.Sequential(jdl.Affine(2, 1, activation="tanh"), jdl.Affine(1, 2))
  model = models.Model(net, models.Normal(scale=0.5))
  truth = model.joint(x).sample(R, seed=11)
  ys = truth.y.numpy()                              # [R, 8, 1]
  true_parts = [p.numpy() for p in tf.nest.flatten(truth.network)]
  f_true = truth.network(x[3:4]).numpy()[:, 0, 0]   # [R]
  ranks = []
  for r in range(R):
    result = jdl.mcmc.sample(model, x, ys[r], num_chains=CHAINS,
                             num_results=KEEP, num_burnin_steps=BURN,
                             kernel="chees", seed=(7, r), progress=False)
    draws = [s[::THIN].reshape(L, -1) for s in result.states]
    row = [(d < t[r].reshape(1, -1)).sum(0) for d, t in zip(draws,
                                                             true_parts)]
    # The function value at one input: a non-linear statistic of theta.
    f = result.networks(x[3:4]).numpy()[..., 0, 0]            # [KEEP, C]
    row.append([(f[::THIN] < f_true[r]).sum()])
    ranks.append(np.concatenate(row))
  loops = list(vars(model)[_loop._ATTR].values())
  assert len(loops) == 1 and loops[0].traces == 1, [l.traces for l in loops]
  ranks = np.array(ranks)                           # [R, 7 + 1] in 0..L
  names = [f"{n}[{j}]" for n, t in zip(result.part_names, true_parts)
           for j in range(t[0].size)] + ["f(x_3)"]
  stats = []
  for name, col in zip(names, ranks.T):
    counts = np.bincount(col * BINS // (L + 1), minlength=BINS)
    stats.append((name, *_chi2_ok(counts)))
  bad = [s for s in stats if not s[1]]
  assert not bad, stats
