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
density (NLL), in the target's original units. The figure
`DIR/hmc_diabetes.png` plots each test patient's predicted against observed
progression, with 90% predictive intervals, for both models; an existing
file is kept unless `--overwrite` is given (a numbered name is used).

Usage:
  python examples/hmc_diabetes.py [--kernel nuts|hmc] [--chains C]
      [--draws D] [--warmup W] [--seed N] [--out DIR] [--overwrite] [--smoke]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _common  # noqa: E402

_common.quiet_start()  # before anything else loads TensorFlow

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
from sklearn.datasets import load_diabetes  # noqa: E402

import jdlayers as jdl  # noqa: E402

FIGURE = "hmc_diabetes.png"


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
  """OLS predictive (flat prior, plug-in noise), standardised units.

  Returns:
    `(rmse, nll, mean [N_test], sd [N_test])`.
  """
  z = np.concatenate([x, np.ones((len(x), 1))], 1).astype(np.float64)
  zt = np.concatenate([x_test, np.ones((len(x_test), 1))], 1).astype(np.float64)
  w, *_ = np.linalg.lstsq(z, y[:, 0], rcond=None)
  resid = y[:, 0] - z @ w
  s2 = resid @ resid / (len(z) - z.shape[1])
  var = s2 * (1. + np.einsum("ni,ij,nj->n", zt, np.linalg.inv(z.T @ z), zt))
  mean = zt @ w
  err = y_test[:, 0] - mean
  nll = 0.5 * np.mean(np.log(2 * np.pi * var) + err ** 2 / var)
  return float(np.sqrt(np.mean(err ** 2))), float(nll), mean, np.sqrt(var)


def build_model(width: int, num_features: int) -> jdl.models.Model:
  """`num_features -> width -> 1` tanh BNN with a learnt noise scale."""
  prior = jdl.priors.lecun_normal()
  net = jdl.Sequential(
      jdl.Affine(width, num_features, activation="tanh", prior=prior),
      jdl.Affine(1, width, prior=prior))
  noise = tfp.distributions.HalfNormal(1.0)
  return jdl.models.Model(net, jdl.models.Normal(scale=noise))


def plot(y_test, panels, path) -> None:
  """Predicted vs observed on the test set, one panel per model.

  Args:
    y_test: `[N]` observed targets, original units.
    panels: `[(title, mean [N], lo [N], hi [N])]`, original units.
    path: output PNG.
  """
  fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.4),
                           sharex=True, sharey=True, constrained_layout=True)
  lim = (min(y_test.min(), min(p[2].min() for p in panels)),
         max(y_test.max(), max(p[3].max() for p in panels)))
  for ax, (title, mean, lo, hi) in zip(axes, panels):
    inside = (y_test >= lo) & (y_test <= hi)
    ax.plot(lim, lim, color="0.6", ls="--", lw=1, label="prediction = observed")
    for sel, color, label in ((inside, "C0", "observed inside"),
                              (~inside, "C3", "observed outside")):
      ax.errorbar(y_test[sel], mean[sel],
                  yerr=[mean[sel] - lo[sel], hi[sel] - mean[sel]], fmt="o",
                  ms=3, lw=0.8, color=color, alpha=0.8,
                  label=f"{label} the 90% interval ({sel.sum()})")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("observed progression")
    ax.legend(fontsize=7.5, frameon=False, loc="upper left")
  axes[0].set_ylabel("predicted progression (mean, 90% interval)")
  fig.suptitle("Diabetes test set: predictive intervals", fontsize=12)
  fig.savefig(path, dpi=110)
  plt.close(fig)


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--kernel", default="nuts", choices=jdl.mcmc.KERNELS)
  p.add_argument("--chains", default=4, type=int)
  p.add_argument("--draws", default=500, type=int)
  p.add_argument("--warmup", default=500, type=int)
  p.add_argument("--seed", default=0, type=int)
  p.add_argument("--out", default="out", type=pathlib.Path)
  p.add_argument("--overwrite", action="store_true",
                 help=f"replace an existing DIR/{FIGURE}")
  p.add_argument("--smoke", action="store_true", help="tiny run, for CI")
  return p.parse_args(argv)


def main(argv=None) -> int:
  args = parse_args(argv)
  start = time.perf_counter()
  x, y, x_test, y_test, my, sy = split(args.seed)
  chains, draws, warmup, width = ((2, 20, 20, 4) if args.smoke else
                                  (args.chains, args.draws, args.warmup, 16))
  print(f"diabetes: {len(x)} train / {len(x_test)} test points, "
        f"{x.shape[1]} features; target sd {sy:.1f}")

  lin_rmse, lin_nll, lin_mean, lin_sd = linear_baseline(x, y, x_test, y_test)
  print(f"compiling NUTS with XLA (about {10 if args.smoke else 40} s on a "
        "2-core CPU), then one progress line per chunk...", flush=True)
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

  units = lambda a: np.reshape(a, -1) * sy + my   # [N] or [N, 1] -> [N]
  lo, hi = pred.interval(0.9)
  z = 1.6448536  # 90% central interval of a normal
  panels = [(rows[0][0], units(lin_mean), units(lin_mean - z * lin_sd),
             units(lin_mean + z * lin_sd)),
            (rows[1][0], units(pred.mean), units(lo), units(hi))]
  args.out.mkdir(parents=True, exist_ok=True)
  path = _common.free_path(args.out, FIGURE, args.overwrite)
  plot(units(y_test), panels, path)
  print(f"wrote {path}")
  print(f"done in {time.perf_counter() - start:.1f} s")
  return 0


if __name__ == "__main__":
  sys.exit(main())
