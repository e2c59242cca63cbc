"""Prior predictive of Bayesian neural networks built with jdlayers.

A layer is a distribution; a sample of it is a function. This demo draws many
networks at once from two priors (as one would start many MCMC chains),
applies them to bundled inputs, prints shapes and log-probs, and plots the
functions they represent:

* an MLP `1 -> 50 -> 50 -> 1` (tanh) on a fixed grid `x in [-2, 2]`, under
  the anchor's default `Normal(0, 1)` prior and under a fan-in scaled
  (LeCun) prior;
* a small CNN (Conv2D 3x3 1->16 relu, Conv2D 3x3 16->16 stride 2 relu,
  Flatten, Affine -> 10) on a few synthetic 8x8 images made from a seed.

Usage:
  python examples/prior_predictive.py [--out DIR] [--seed N] [--smoke]
                                      [--overwrite]

The figure goes to `DIR/prior_predictive.png`; an existing file there is kept
unless `--overwrite` is given (the figure then goes to
`prior_predictive-1.png`, `-2`, ...). The path written is printed.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _common  # noqa: E402

tf = _common.quiet_start()  # before anything else loads TensorFlow

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import jdlayers as jdl  # noqa: E402

FIGURE = "prior_predictive.png"


def mlp(prior=None) -> jdl.Sequential:
  """Distribution over `1 -> 50 -> 50 -> 1` tanh MLPs."""
  return jdl.Sequential(
      jdl.Affine(50, 1, activation="tanh", prior=prior),
      jdl.Affine(50, 50, activation="tanh", prior=prior),
      jdl.Affine(1, 50, prior=prior),
  )


def cnn() -> jdl.Sequential:
  """Distribution over small CNNs mapping `[N, 8, 8, 1]` to `[N, 10]`."""
  return jdl.Sequential(
      jdl.Conv2D(16, 3, 1, activation="relu", prior=jdl.priors.he_normal()),
      jdl.Conv2D(16, 3, 16, strides=2, activation="relu",
                 prior=jdl.priors.he_normal()),
      jdl.Flatten(),
      jdl.Affine(10, 4 * 4 * 16, prior=jdl.priors.lecun_normal()),
  )


def synthetic_images(n: int, seed: int) -> np.ndarray:
  """`n` 8x8 one-channel images: a Gaussian blob plus a little noise."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:8, 0:8]
  centres = rng.uniform(1.5, 6.5, size=(n, 2))
  widths = rng.uniform(0.8, 2.0, size=(n, 1, 1))
  d2 = ((yy - centres[:, 0, None, None]) ** 2 +
        (xx - centres[:, 1, None, None]) ** 2)
  images = np.exp(-d2 / (2 * widths ** 2))
  images += 0.05 * rng.standard_normal(images.shape)
  return images[..., None].astype(np.float32)  # [n, 8, 8, 1]


def free_path(out_dir: pathlib.Path, overwrite: bool) -> pathlib.Path:
  """`out_dir/prior_predictive.png`, or a numbered name if that exists."""
  return _common.free_path(out_dir, FIGURE, overwrite)


def describe(name: str, net, fs, x) -> None:
  """Prints the shapes and log-probs of `S` networks applied to `x`."""
  ys = fs(x)
  lp = net.log_prob(fs).numpy()
  print(f"{name}: x {x.shape.as_list()} -> y {ys.shape.as_list()}, "
        f"log_prob {list(lp.shape)}: mean {lp.mean():.1f}, "
        f"range [{lp.min():.1f}, {lp.max():.1f}]")


def plot(panels, x: np.ndarray, num_lines: int, path: pathlib.Path) -> None:
  """One panel per prior: thin draws, mean and a 2-sigma band."""
  fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2),
                           sharex=True, constrained_layout=True)
  for ax, (title, ys) in zip(np.atleast_1d(axes), panels):
    mean, std = ys.mean(axis=0), ys.std(axis=0)
    ax.fill_between(x, mean - 2 * std, mean + 2 * std, color="C0", alpha=0.18,
                    label=r"mean $\pm$ 2 sd")
    ax.plot(x, ys[:num_lines].T, color="C0", lw=0.7, alpha=0.6)
    ax.plot(x, mean, color="k", lw=2, label="mean")
    ax.set_title(f"{title}\n({len(ys)} networks, {min(num_lines, len(ys))} "
                 "shown)", fontsize=10)
    ax.set_xlabel("x")
    ax.axhline(0, color="0.7", lw=0.5, zorder=0)
  np.atleast_1d(axes)[0].set_ylabel("f(x)")
  # Below the panels, so it covers no curve.
  fig.legend(*np.atleast_1d(axes)[0].get_legend_handles_labels(),
             loc="outside lower center", ncol=2, fontsize=8, frameon=False)
  fig.suptitle("Prior predictive of a 1-50-50-1 tanh MLP", fontsize=12)
  fig.savefig(path, dpi=110)
  plt.close(fig)


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out", default="out", type=pathlib.Path,
                 help="output directory (default: out/)")
  p.add_argument("--seed", default=0, type=int, help="random seed")
  p.add_argument("--smoke", action="store_true",
                 help="tiny sizes, for CI")
  p.add_argument("--overwrite", action="store_true",
                 help=f"replace an existing DIR/{FIGURE}")
  return p.parse_args(argv)


def main(argv=None) -> int:
  args = parse_args(argv)
  start = time.perf_counter()
  # The MLP panels use `num_draws` networks (printed and plotted alike); the
  # CNN is shown with `num_cnns` networks on `num_images` images.
  num_grid, num_draws, num_lines, num_cnns, num_images = (
      (40, 16, 8, 4, 3) if args.smoke else (200, 500, 30, 32, 8))
  # Stateless seeds: the same --seed gives the same networks and figure.
  seeds = iter(tf.unstack(
      tf.random.experimental.stateless_split([args.seed, 0], 8)))

  x_grid = np.linspace(-2.0, 2.0, num_grid, dtype=np.float32)
  x = tf.constant(x_grid[:, None])  # [N, 1]
  images = tf.constant(synthetic_images(num_images, args.seed))

  priors = [("Normal(0, 1) prior (TFP anchor default)", None),
            ("LeCun-normal prior: Normal(0, 1/fan_in)",
             jdl.priors.lecun_normal())]

  print(f"jdlayers {jdl.__version__}: {num_draws} MLPs per prior and "
        f"{num_cnns} CNNs, each set sampled at once")
  panels = []
  for title, prior in priors:
    net = mlp(prior)
    fs = net.sample(num_draws, seed=next(seeds))
    describe(f"MLP, {title.split(' prior')[0]:>12s}", net, fs, x)
    panels.append((title, fs(x)[..., 0].numpy()))

  net = cnn()
  f = net.sample(seed=next(seeds))          # one network
  print(f"CNN, one network: x {images.shape.as_list()} -> "
        f"y {f(images).shape.as_list()}, log_prob "
        f"{float(net.log_prob(f)):.1f}")
  fs = net.sample(num_cnns, seed=next(seeds))    # num_cnns networks
  describe("CNN", net, fs, images)
  probs = tf.nn.softmax(fs(images)).numpy()      # [S, N, 10]
  print(f"CNN prior predictive: mean max-class probability "
        f"{probs.max(axis=-1).mean():.2f} (1/10 = uniform)")

  args.out.mkdir(parents=True, exist_ok=True)
  path = free_path(args.out, args.overwrite)
  plot(panels, x_grid, num_lines, path)
  print(f"wrote {path}")
  print(f"done in {time.perf_counter() - start:.1f} s")
  return 0


if __name__ == "__main__":
  sys.exit(main())
