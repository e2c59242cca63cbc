"""A small BNN on 1-D data: converged chains and calibrated predictive bands.

The weights of a BNN are not identifiable (hidden units permute and flip
sign), so convergence is judged where it matters, on the posterior-predictive
function at fixed inputs. Data come from the model class itself (a known
smooth function plus N(0, 0.2^2) noise); held-out points from the same
process must fall in the 90% predictive interval at roughly the nominal rate:
with 200 held-out points the binomial sd of the rate is 2.1%, so [0.84, 0.96]
is a 3-sd band.
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


def test_bnn_converges_and_predictive_covers_held_out_points():
  x, y = _data(60, 0)
  x_test, y_test = _data(200, 1)
  net = jdl.Sequential(jdl.Affine(6, 1, activation="tanh"), jdl.Affine(1, 6))
  model = models.Model(net, models.Normal(scale=NOISE))
  result = jdl.mcmc.sample(model, x, y, num_chains=8, num_results=1000,
                           num_burnin_steps=500, kernel="nuts", seed=3,
                           progress=False)
  probe = result.predict(np.linspace(-2, 2, 7, dtype=np.float32)[:, None])
  f = probe.means[..., 0]                        # [draws, chains, 7]
  assert jdl.diagnostics.split_rhat(f).max() < 1.01
  assert jdl.diagnostics.bulk_ess(f).min() > 400
  pred = result.predict(x_test, seed=0)
  lo, hi = pred.interval(0.9)
  coverage = np.mean((y_test >= lo) & (y_test <= hi))
  assert 0.84 <= coverage <= 0.96, coverage
  # The predictive is sharper than the prior's and close to the noise floor.
  assert pred.rmse(y_test) < 1.2 * NOISE
