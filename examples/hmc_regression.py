"""HMC over a whole Bayesian neural network on a bundled 1-D regression set.

The model is a `1 -> 32 -> 32 -> 1` tanh MLP with `Normal(0, 1)` priors and a
Gaussian likelihood whose noise scale is itself a latent (`HalfNormal(0.5)`
prior). All chains run at once, in one XLA-compiled loop; warm-up adapts the
step size and a diagonal mass matrix. The script prints the convergence
diagnostics (split R-hat, bulk ESS, acceptance, divergences), the test RMSE
and NLL, and writes a PNG of the posterior-predictive band over the data.

Data: `examples/data/noisy_sine.csv` (y = sin(3x) + 0.3x + noise, training
inputs leave a gap in [0.3, 0.9]).

Usage:
  python examples/hmc_regression.py [--kernel hmc|nuts] [--chains C]
      [--draws D] [--warmup W] [--seed N] [--out DIR] [--overwrite] [--smoke]

The figure goes to `DIR/hmc_regression.png`; an existing file is kept
unless `--overwrite` is given (a numbered name is used instead).
"""

from __future__ import annotations

import argparse
import warnings
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# TFP warns about GPU TensorFloat-32 at import; this demo runs in float32 on
# whatever device is there and the warning is noise here.
warnings.filterwarnings("ignore", message="TensorFloat-32")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

import jdlayers as jdl  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _common  # noqa: E402

FIGURE = "hmc_regression.png"
# Inputs at which the posterior-predictive function is checked for
# convergence: weights of a BNN are not identifiable (hidden units permute),
# its functions are.
PROBE_X = np.linspace(-2., 2., 9, dtype=np.float32)[:, None]


def build_model(width: int = 32) -> jdl.models.Model:
  """The BNN: `1 -> width -> width -> 1` tanh MLP, learnt noise scale."""
  net = jdl.Sequential(
      jdl.Affine(width, 1, activation="tanh"),
      jdl.Affine(width, width, activation="tanh"),
      jdl.Affine(1, width),
  )
  noise = tfp.distributions.HalfNormal(0.5)
  return jdl.models.Model(net, jdl.models.Normal(scale=noise))


def plot(x_train, y_train, x_test, y_test, grid, pred, path) -> None:
  """Posterior-predictive band (90% of y and of the function) over the data."""
  lo_y, hi_y = pred.interval(0.9, of="y")
  lo_f, hi_f = pred.interval(0.9, of="mean")
  fig, ax = plt.subplots(figsize=(7.5, 4.5), constrained_layout=True)
  g = grid[:, 0]
  ax.fill_between(g, lo_y[:, 0], hi_y[:, 0], color="C0", alpha=0.15,
                  label="90% predictive (y)")
  ax.fill_between(g, lo_f[:, 0], hi_f[:, 0], color="C0", alpha=0.35,
                  label="90% credible (function)")
  ax.plot(g, pred.mean[:, 0], color="C0", lw=2, label="predictive mean")
  ax.scatter(x_train, y_train, s=8, color="k", label="train", zorder=3)
  ax.scatter(x_test, y_test, s=10, color="C3", marker="x", label="test",
             zorder=3)
  ax.axvspan(0.3, 0.9, color="0.9", zorder=0, label="no training data")
  ax.set_xlabel("x")
  ax.set_ylabel("y")
  ax.legend(fontsize=8, frameon=False, loc="upper left")
  ax.set_title("BNN posterior predictive, HMC over all weights", fontsize=11)
  fig.savefig(path, dpi=110)
  plt.close(fig)


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--kernel", default="hmc", choices=jdl.mcmc.KERNELS)
  p.add_argument("--chains", default=8, type=int)
  p.add_argument("--draws", default=1000, type=int)
  p.add_argument("--warmup", default=1000, type=int)
  p.add_argument("--target-accept", default=0.9, type=float,
                 help="step size adaptation target (a smaller step than "
                 "HMC's usual 0.75 avoids divergences in this posterior's "
                 "sharper modes)")
  p.add_argument("--seed", default=0, type=int)
  p.add_argument("--out", default="out", type=pathlib.Path)
  p.add_argument("--overwrite", action="store_true",
                 help=f"replace an existing DIR/{FIGURE}")
  p.add_argument("--smoke", action="store_true", help="tiny run, for CI")
  return p.parse_args(argv)


def main(argv=None) -> int:
  args = parse_args(argv)
  start = time.perf_counter()
  x_train, y_train, x_test, y_test = _common.load_split_csv("noisy_sine.csv")
  width = 8 if args.smoke else 32
  chains, draws, warmup = ((2, 30, 30) if args.smoke else
                           (args.chains, args.draws, args.warmup))
  model = build_model(width)
  print(f"jdlayers {jdl.__version__}: {args.kernel.upper()} on "
        f"{len(x_train)} points, {chains} chains x ({warmup} warm-up + "
        f"{draws} draws)")
  result = jdl.mcmc.sample(
      model, x_train, y_train, num_chains=chains, num_results=draws,
      num_burnin_steps=warmup, kernel=args.kernel, num_leapfrog_steps=20,
      target_accept_prob=args.target_accept, seed=args.seed)
  diag = result.diagnostics()
  print(diag)

  probe = result.predict(PROBE_X, seed=args.seed)
  f = probe.means[..., 0]                     # [draws, chains, 9]
  print(f"posterior-predictive function at {len(PROBE_X)} inputs: max split "
        f"R-hat {jdl.diagnostics.split_rhat(f).max():.3f}, min bulk ESS "
        f"{jdl.diagnostics.bulk_ess(f).min():.0f}")
  print("  (weights' R-hat is large by design: hidden units can swap places, so "
        "chains\n   sit in equivalent modes; judge convergence on the function. "
        "A function R-hat\n   above 1.01 means chains found different "
        "explanations of the data: run more\n   chains or longer.)")
  noise = result.latents["scale"]
  print(f"noise scale: posterior mean {noise.mean():.3f} (true 0.15)")

  test = result.predict(x_test, seed=args.seed)
  lo, hi = test.interval(0.9)
  cover = float(np.mean((y_test >= lo) & (y_test <= hi)))
  print(f"test RMSE {test.rmse(y_test):.3f} | test NLL {test.nll(y_test):.3f}"
        f" | 90% interval covers {100 * cover:.0f}% of test points")

  grid = np.linspace(-2.2, 2.2, 200, dtype=np.float32)[:, None]
  args.out.mkdir(parents=True, exist_ok=True)
  path = _common.free_path(args.out, FIGURE, args.overwrite)
  plot(x_train, y_train, x_test, y_test, grid,
       result.predict(grid, seed=args.seed), path)
  print(f"wrote {path}")
  print(f"done in {time.perf_counter() - start:.1f} s")
  return 0


if __name__ == "__main__":
  sys.exit(main())
