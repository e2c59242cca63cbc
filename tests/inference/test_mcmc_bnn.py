"""A small BNN on 1-D data: NUTS mixes, and its predictive bands are calibrated.

The weights of a BNN are not identifiable (hidden units permute and flip
sign), so convergence is judged where it matters, on the posterior-predictive
function at fixed inputs. Data come from the model class itself (a known
smooth function plus N(0, 0.2^2) noise) and are fixed numpy arrays, the same
on every machine; the only randomness is the sampler's.

False-failure probability for a correct sampler, per check:
- Coverage of 200 held-out points by the 90% predictive interval. For this
  fixed data the sampler moves the coverage by at most 0.005 (0.890-0.895
  over 12 runs: seeds 3, 10-14, oneDNN on and off); the band [0.84, 0.96] is
  10 such spreads from either end, so < 1e-6.
- RMSE of the predictive mean: 0.2016-0.2021 over the same runs, against a
  bound of 0.24 (1.2 x the noise sd).
- Function-space split R-hat and bulk ESS over the 8 chains. On another CPU
  the fixed seed gave R-hat 1.036 and ESS 147 (the old bound was 1.01): two
  of the eight chains mixed slowly (within-chain ESS 12 and 16 of 1000 draws)
  while agreeing with the others within 0.7 posterior sd. Slow chains showed
  in 2 of the 12 runs (R-hat 1.036 / ESS 147 and 1.008 / ESS 1574); the other
  10 gave R-hat <= 1.0023 and ESS >= 6400. So the bounds are R-hat < 1.2 and
  ESS > 40: 5x the worst excursion seen for R-hat and 3.5x for ESS, which
  puts a correct sampler's failure rate well below 1e-3 by that record, while
  a frozen, unadapted or wrongly-targeted sampler gives R-hat far above 1.2
  (the frozen chains of a non-finite start gave 5.8e15).
"""
import numpy as np

import jdlayers as jdl
from jdlayers import models

NOISE = 0.2


def _data(n, seed):
  rng = np.random.default_rng(seed)
  x = rng.uniform(-2, 2, size=(n, 1)).astype(np.float32)
  y = np.tanh(2 * x) + 0.5 * x + NOISE * rng.normal(size=x.shape)
  return x, y.astype(np.float32)


def test_bnn_mixes_and_predictive_covers_held_out_points():
  x, y = _data(60, 0)
  x_test, y_test = _data(200, 1)
  net = jdl.Sequential(jdl.Affine(6, 1, activation="tanh"), jdl.Affine(1, 6))
  model = models.Model(net, models.Normal(scale=NOISE))
  result = jdl.mcmc.sample(model, x, y, num_chains=8, num_results=1000,
                           num_burnin_steps=500, kernel="nuts", seed=3,
                           progress=False)
  probe = result.predict(np.linspace(-2, 2, 7, dtype=np.float32)[:, None])
  f = probe.means[..., 0]                        # [draws, chains, 7]
  rhat = jdl.diagnostics.split_rhat(f).max()
  ess = jdl.diagnostics.bulk_ess(f).min()
  assert rhat < 1.2 and ess > 40, (rhat, ess)
  pred = result.predict(x_test, seed=0)
  lo, hi = pred.interval(0.9)
  coverage = np.mean((y_test >= lo) & (y_test <= hi))
  assert 0.84 <= coverage <= 0.96, coverage
  # The predictive is sharper than the prior's and close to the noise floor.
  assert pred.rmse(y_test) < 1.2 * NOISE
