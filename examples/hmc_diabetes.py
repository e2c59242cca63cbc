"""A BNN by HMC on scikit-learn's bundled diabetes data, against a linear model.

Data: 442 patients, 10 standardised baseline features, target a measure of
disease progression one year later (`sklearn.datasets.load_diabetes`, shipped
inside scikit-learn: no download). A fixed 80/20 train/test split.

Models:
* baseline: Bayesian linear regression with a flat prior and the noise
  variance set to its unbiased estimate (the classical OLS predictive,
  `N(x^T w, s^2 (1 + x^T (X^T X)^-1 x))`);
* BNN: `10 -> 16 -> 1` tanh MLP, LeCun-normal priors, Gaussian likelihood
  with a learnt noise scale (`HalfNormal(1)` on the standardised target),
  sampled with NUTS over all weights.

Both are scored on the test set by RMSE and mean negative log predictive
density (NLL), in the target's original units.

Usage:
  python examples/hmc_diabetes.py [--kernel nuts|hmc] [--chains C]
      [--draws D] [--warmup W] [--seed N] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore", message="TensorFloat-32")

import numpy as np  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
from sklearn.datasets import load_diabetes  # noqa: E402

import jdlayers as jdl  # noqa: E402


def split(seed: int = 0, test_fraction: float = 0.2):
  """Standardised float32 train/test arrays plus the target's mean and sd."""
  x, y = load_diabetes(return_X_y=True)
  idx = np.random.default_rng(seed).permutation(len(x))
  n_test = int(round(test_fraction * len(x)))
  test, train = idx[:n_test], idx[n_test:]
  mx, sx = x[train].mean(0), x[train].std(0)
  my, sy = y[train].mean(), y[train].std()
  f = lambda a, m, s: ((a - m) / s).astype(np.float32)
  return (f(x[train], mx, sx), f(y[train], my, sy)[:, None],
          f(x[test], mx, sx), f(y[test], my, sy)[:, None], my, sy)


def linear_baseline(x, y, x_test, y_test):
  """OLS predictive (flat prior, plug-in noise): `(rmse, nll)` standardised."""
  z = np.concatenate([x, np.ones((len(x), 1))], 1).astype(np.float64)
  zt = np.concatenate([x_test, np.ones((len(x_test), 1))], 1).astype(np.float64)
  w, *_ = np.linalg.lstsq(z, y[:, 0], rcond=None)
  resid = y[:, 0] - z @ w
  s2 = resid @ resid / (len(z) - z.shape[1])
  var = s2 * (1. + np.einsum("ni,ij,nj->n", zt, np.linalg.inv(z.T @ z), zt))
  mean = zt @ w
  err = y_test[:, 0] - mean
  nll = 0.5 * np.mean(np.log(2 * np.pi * var) + err ** 2 / var)
  return float(np.sqrt(np.mean(err ** 2))), float(nll)


def build_model(width: int, num_features: int) -> jdl.models.Model:
  """`num_features -> width -> 1` tanh BNN with a learnt noise scale."""
  prior = jdl.priors.lecun_normal()
  net = jdl.Sequential(
      jdl.Affine(width, num_features, activation="tanh", prior=prior),
      jdl.Affine(1, width, prior=prior))
  noise = tfp.distributions.HalfNormal(1.0)
  return jdl.models.Model(net, jdl.models.Normal(scale=noise))


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--kernel", default="nuts", choices=jdl.mcmc.KERNELS)
  p.add_argument("--chains", default=4, type=int)
  p.add_argument("--draws", default=500, type=int)
  p.add_argument("--warmup", default=500, type=int)
  p.add_argument("--seed", default=0, type=int)
  p.add_argument("--smoke", action="store_true", help="tiny run, for CI")
  return p.parse_args(argv)


def main(argv=None) -> int:
  args = parse_args(argv)
  start = time.perf_counter()
  x, y, x_test, y_test, _, sy = split(args.seed)
  chains, draws, warmup, width = ((2, 20, 20, 4) if args.smoke else
                                  (args.chains, args.draws, args.warmup, 16))
  print(f"diabetes: {len(x)} train / {len(x_test)} test points, "
        f"{x.shape[1]} features; target sd {sy:.1f}")

  lin_rmse, lin_nll = linear_baseline(x, y, x_test, y_test)
  result = jdl.mcmc.sample(
      build_model(width, x.shape[1]), x, y, num_chains=chains,
      num_results=draws, num_burnin_steps=warmup, kernel=args.kernel,
      seed=args.seed)
  print(result.diagnostics())
  pred = result.predict(x_test, seed=args.seed)
  f = result.predict(x_test[:10]).means[..., 0]
  print(f"predictive function at 10 test inputs: max R-hat "
        f"{jdl.diagnostics.split_rhat(f).max():.3f}, min bulk ESS "
        f"{jdl.diagnostics.bulk_ess(f).min():.0f}")

  # Back to the target's units: RMSE scales by sd, NLL shifts by log(sd).
  rows = [("linear regression (OLS predictive)", lin_rmse, lin_nll),
          (f"BNN, {args.kernel.upper()} ({chains}x{draws} draws)",
           pred.rmse(y_test), pred.nll(y_test))]
  print(f"\n{'model':40s} {'test RMSE':>10s} {'test NLL':>10s}")
  for name, rmse, nll in rows:
    print(f"{name:40s} {rmse * sy:10.2f} {nll + np.log(sy):10.3f}")
  print(f"done in {time.perf_counter() - start:.1f} s")
  return 0


if __name__ == "__main__":
  sys.exit(main())
