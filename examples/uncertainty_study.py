"""Which variational posteriors beat a deterministic CNN's calibration?

On the 8x8 digits (the split and CNN of `vi_digits_cnn.py`), this fits, for
each training seed:

* `det`: the deterministic Keras CNN, early-stopped on a 15% validation
  split of the training set (the baseline);
* `map`: the same network's MAP (`vi.fit(..., point_mass=True)`);
* `elbo`: mean-field VI on the ELBO from the default random start;
* `warmup`: the ELBO with the KL weight warmed up linearly over the first
  half of the epochs (`kl_weight=vi.linear_warmup(E // 2)`);
* `moped`: the ELBO started at the MAP means with scales `delta * |w|`
  (`Surrogate(init=map_fit, init_scale=...)`, Krishnan et al. 2020);
* `moped-kl`: as `moped` with the KL down-weighted, `kl_weight=W`
  (likelihood tempering). W = 0.03 had the lowest validation NLL among
  {0.1, 0.03, 0.01} (mean over seeds 0-1 of a stratified 15% validation
  split of the training set: 0.079 against 0.094 and 0.090);
* `cold`: tempered posterior, `temperature=T` (Wenzel et al. 2020), from
  the MAP start as `moped`;
* `laplace-ll`, `laplace-kfac`: a KFAC Laplace approximation around the
  `map` fit (`jdl.laplace.fit(..., params=map_fit, hessian="kron")`) over
  the last layer or all weights, with the linearised (GLM) predictive. The
  prior precision (the marginal likelihood's, or the grid search's) and
  the link (probit or MC) are those with the lowest NLL on the last 15% of
  the training set, for a Laplace around a MAP fitted on the first 85%
  (`choose_laplace`); the test set is never used;
* `laplace-ml`: last-layer KFAC Laplace with the marginal likelihood's
  prior precision, as laplace-torch's default, and the MC link;

and prints test accuracy, NLL, ECE (15 bins) and OOD AUROC (predictive
entropy; the test digits rotated by 90 degrees are the out-of-distribution
inputs), every seed and the median over seeds. A variant *beats* the
baseline on a seed when its ECE and NLL are both lower and its accuracy is
within 0.5 percentage points or better.

Numbers are computed by `jdlayers.metrics`. Every VI predictive averages
the class probabilities of `--samples` networks drawn from the posterior.

Usage:
  python examples/uncertainty_study.py [--seeds 0 1 2 3 4]
      [--variants det map elbo warmup moped moped-kl cold laplace-ll
                  laplace-kfac laplace-ml] [--epochs E]
      [--map-epochs E] [--kl-weight W] [--temperature T] [--delta D]
      [--samples S] [--smoke]

A full run (5 seeds, all variants) took 526 s on a 2-core CPU (load about
1; 795 s at load 6 without the Laplace rows). Results (median over seeds
0-4; every seed is printed):

  variant       acc %   NLL     ECE %  AUROC  beats det (seeds)
  det           98.00   0.0615  1.35   0.748  -
  map           98.44   0.0506  1.05   0.666  yes (3/5)
  elbo          97.56   0.1137  6.32   0.844  no (0/5)
  warmup        97.78   0.1109  6.29   0.871  no (0/5)
  moped         98.00   0.0942  5.14   0.824  no (0/5)
  moped-kl      98.67   0.0403  1.04   0.872  yes (4/5)
  cold          98.44   0.0427  1.51   0.761  no (2/5)
  laplace-ll    98.44   0.0506  1.05   0.667  yes (3/5)
  laplace-kfac  98.44   0.0506  1.05   0.666  yes (3/5)
  laplace-ml    98.22   0.1504  9.88   0.927  no (0/5)

The validation split picks a prior precision of 1e4 to 1e6 for both
Laplace variants on every seed: their validation NLL falls monotonically
with the precision, so `laplace-ll` and `laplace-kfac` are the MAP with a
negligible spread (`map`'s accuracy and NLL, ECE within 0.1 points). The
marginal likelihood's precision (about 3.3) gives the best OOD AUROC of
all rows but an under-confident predictive (ECE 10%); the probit link is
worse still there (NLL 0.50 against the MC link's 0.156, seed 0), as it
ignores that the logits' shared shift, which the prior alone constrains,
leaves the softmax unchanged. Sampled all-weight networks
(`pred_type="mc"`) lose accuracy (56%, seed 0, marginal likelihood), so
both use the GLM predictive. HMC is left out: the 6,090-weight CNN on
1,347 images needs far more than minutes on a 2-core CPU
(`benchmarks/hmc.py --model cnn`).

ECE on 450 test images is noisy: labels drawn from the deterministic CNN's
own probabilities (a perfectly calibrated model) give an ECE of 1.2% on
average (90th percentile 1.65%, 2000 draws, seed 0), so ECEs near 1% differ
by sampling noise alone; the NLL differences are the firmer evidence.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _common  # noqa: E402

tf = _common.quiet_start()  # before anything else loads TensorFlow

import numpy as np  # noqa: E402

import jdlayers as jdl  # noqa: E402
from jdlayers.inference import vi  # noqa: E402

import vi_digits_cnn as digits  # noqa: E402

VARIANTS = ("det", "map", "elbo", "warmup", "moped", "moped-kl", "cold",
            "laplace-ll", "laplace-kfac", "laplace-ml")
# Laplace subsets of the variants (KFAC curvature, GLM predictive).
LAPLACE = {"laplace-ll": "last_layer", "laplace-kfac": "all"}
# The validation share of the training set, taken from its end as the
# deterministic CNN's Keras `validation_split=0.15` takes it.
VAL_FRACTION = 0.15
# Prior precisions of the validation grid search, half a decade apart.
PRIOR_GRID = np.logspace(-2., 6., 17)
LEARNING_RATE = 3e-3
BATCH = 64


def scores(probs, labels, ood_probs) -> dict:
  """Accuracy, NLL, ECE and OOD AUROC (entropy) of `[N, K]` predictions."""
  m = jdl.metrics
  return {"acc": m.accuracy(probs, labels), "nll": m.nll(probs, labels),
          "ece": m.ece(probs, labels, num_bins=15),
          "auroc": m.ood_auroc(m.predictive_entropy(probs),
                               m.predictive_entropy(ood_probs))}


def fit_variant(name, data, args, seed, cache):
  """Fits one variant; returns `predict(x) -> [N, K]` probabilities."""
  x_tr, y_tr = data
  if name == "det":
    predict, _ = digits.fit_deterministic(
        x_tr, y_tr, epochs=args.det_epochs, learning_rate=LEARNING_RATE,
        seed=seed)
    return predict
  common = dict(epochs=args.epochs, batch_size=BATCH,
                learning_rate=LEARNING_RATE, seed=seed, progress=False)
  if "map" not in cache:  # the MAP also starts `moped`, `cold`, Laplace
    cache["map"] = map_fit(x_tr, y_tr, args, seed)
  if name in LAPLACE:
    return fit_laplace(LAPLACE[name], data, cache["map"], args, seed, cache)
  if name == "laplace-ml":
    return fit_laplace_marglik("last_layer", data, cache["map"], args, seed)
  moped_start = dict(init=cache["map"],
                     init_scale=lambda w: args.delta * tf.abs(w))
  if name == "map":
    q = cache["map"]
  elif name == "elbo":
    q = vi.fit(digits.build_bnn(), x_tr, y_tr, **common)
  elif name == "warmup":
    q = vi.fit(digits.build_bnn(), x_tr, y_tr,
               kl_weight=vi.linear_warmup(max(1, args.epochs // 2)),
               **common)
  elif name == "moped":
    q = vi.fit(digits.build_bnn(), x_tr, y_tr, **moped_start, **common)
  elif name == "moped-kl":
    q = vi.fit(digits.build_bnn(), x_tr, y_tr, kl_weight=args.kl_weight,
               **moped_start, **common)
  elif name == "cold":
    q = vi.fit(digits.build_bnn(), x_tr, y_tr,
               temperature=args.temperature, **moped_start, **common)
  else:
    raise ValueError(f"unknown variant {name!r}; choose from {VARIANTS}")
  samples = 1 if name == "map" else args.samples
  return lambda xs: np.asarray(q.predict(xs, num_samples=samples,
                                         seed=seed).mean)


def map_fit(x, y, args, seed):
  """The network's MAP (`vi.fit(..., point_mass=True)`, `args.map_epochs`)."""
  return vi.fit(digits.build_bnn(), x, y, point_mass=True,
                epochs=args.map_epochs, batch_size=BATCH,
                learning_rate=LEARNING_RATE, seed=seed, progress=False)


def choose_laplace(subset, data, args, seed, cache=None):
  """The prior precision and link of a KFAC Laplace, by validation NLL.

  A MAP fitted on the first 85% of the training set is expanded (KFAC over
  `subset`) on those images; every candidate's GLM predictive is scored by
  its NLL on the held-out last 15%: the marginal-likelihood precision and
  the validation grid search's (`optimize_prior_precision` over
  `PRIOR_GRID`, 1e-2 to 1e6), each with the probit and the MC link
  (`args.samples` draws). The test set is never looked at.

  Returns:
    `(prior_precision, link_approx, validation_nll)`: `prior_precision`
    is "marglik" (re-tuned on the full training set) or a float.
  """
  cache = {} if cache is None else cache
  x_tr, y_tr = data
  cut = int(len(x_tr) * (1. - VAL_FRACTION))
  x_fit, y_fit, x_val, y_val = x_tr[:cut], y_tr[:cut], x_tr[cut:], y_tr[cut:]
  if "map-val" not in cache:  # shared by the Laplace variants of a seed
    cache["map-val"] = map_fit(x_fit, y_fit, args, seed)
  la = jdl.laplace.fit(digits.build_bnn(), x_fit, y_fit,
                       params=cache["map-val"], hessian="kron",
                       subset=subset, prior_precision="marglik")
  marglik = la.prior_precision.copy()
  best = None
  for link in ("probit", "mc"):
    grid = la.optimize_prior_precision(x_val, y_val, grid=PRIOR_GRID,
                                       link_approx=link,
                                       n_samples=args.samples, seed=seed)
    for label, prior in (("marglik", marglik), ("grid", grid.copy())):
      la.prior_precision = prior
      nll = jdl.metrics.nll(la.predict(x_val, link_approx=link,
                                       n_samples=args.samples, seed=seed),
                            y_val)
      if best is None or nll < best[2]:
        best = ("marglik" if label == "marglik" else float(prior[0]), link,
                nll)
  return best


def fit_laplace(subset, data, params, args, seed, cache=None):
  """KFAC Laplace over `subset` around `params` (the study's MAP), with the
  prior precision and link `choose_laplace` picks; returns `predict`."""
  prior, link, val_nll = choose_laplace(subset, data, args, seed, cache)
  x_tr, y_tr = data
  la = jdl.laplace.fit(digits.build_bnn(), x_tr, y_tr, params=params,
                       hessian="kron", subset=subset, prior_precision=prior)
  print(f"    Laplace ({subset}, KFAC, GLM): prior precision {prior} -> "
        f"{la.prior_precision[0]:.3g}, {link} link (validation NLL "
        f"{val_nll:.4f})", flush=True)
  return lambda xs: la.predict(xs, pred_type="glm", link_approx=link,
                               n_samples=args.samples, seed=seed)


def fit_laplace_marglik(subset, data, params, args, seed):
  """KFAC Laplace over `subset` around `params`, the prior precision by the
  marginal likelihood alone, GLM predictive with the MC link (the probit
  link, which ignores the correlations of the logits, is far more
  under-confident here); returns `predict`."""
  x_tr, y_tr = data
  la = jdl.laplace.fit(digits.build_bnn(), x_tr, y_tr, params=params,
                       hessian="kron", subset=subset,
                       prior_precision="marglik")
  print(f"    Laplace ({subset}, KFAC, GLM): marginal-likelihood prior "
        f"precision {la.prior_precision[0]:.3g}, mc link", flush=True)
  return lambda xs: la.predict(xs, pred_type="glm", link_approx="mc",
                               n_samples=args.samples, seed=seed)


def table(results, variants, seeds) -> str:
  """Every seed, then the median, and how many seeds beat `det`."""
  lines = [f"{'variant':12s} {'seed':>5s} {'acc %':>7s} {'NLL':>7s} "
           f"{'ECE %':>6s} {'AUROC':>6s}  beats det"]
  for v in variants:
    rows = [results[(v, s)] for s in seeds]
    wins = 0
    for s, r in zip(seeds, rows):
      win = "-" if v == "det" else _beats(r, results.get(("det", s)))
      wins += win == "yes"
      lines.append(f"{v:12s} {s:5d} {100 * r['acc']:7.2f} {r['nll']:7.4f} "
                   f"{100 * r['ece']:6.2f} {r['auroc']:6.3f}  {win}")
    med = {k: float(np.median([r[k] for r in rows])) for k in rows[0]}
    det_med = ({k: float(np.median([results[("det", s)][k] for s in seeds]))
                for k in med} if all(("det", s) in results for s in seeds)
               else None)
    lines.append(f"{v:12s} {'med':>5s} {100 * med['acc']:7.2f} "
                 f"{med['nll']:7.4f} {100 * med['ece']:6.2f} "
                 f"{med['auroc']:6.3f}  "
                 + ("-" if v == "det" else
                    f"{_beats(med, det_med)} ({wins}/{len(seeds)} seeds)"))
  return "\n".join(lines)


def _beats(r, det) -> str:
  if det is None:
    return "-"
  ok = (r["ece"] < det["ece"] and r["nll"] < det["nll"]
        and r["acc"] >= det["acc"] - 0.005)
  return "yes" if ok else "no"


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
  p.add_argument("--variants", nargs="+", default=list(VARIANTS),
                 choices=VARIANTS)
  p.add_argument("--epochs", type=int, default=200, help="VI epochs")
  p.add_argument("--map-epochs", type=int, default=100,
                 help="epochs of the MAP fit")
  p.add_argument("--det-epochs", type=int, default=300,
                 help="most epochs of the early-stopped deterministic CNN")
  p.add_argument("--kl-weight", type=float, default=0.03,
                 help="KL weight of the `moped-kl` variant")
  p.add_argument("--temperature", type=float, default=0.03,
                 help="temperature of the `cold` variant")
  p.add_argument("--delta", type=float, default=0.1,
                 help="MOPED initial scale: delta * |w_MAP|")
  p.add_argument("--samples", type=int, default=100,
                 help="posterior networks per VI predictive; draws of the "
                 "Laplace MC link")
  p.add_argument("--smoke", action="store_true", help="tiny run, for CI")
  return p.parse_args(argv)


def main(argv=None) -> int:
  args = parse_args(argv)
  if args.smoke:
    args.seeds, args.epochs, args.map_epochs = [0], 2, 2
    args.det_epochs, args.samples = 2, 4
  x_tr, y_tr, x_te, y_te = digits.load_data()
  x_ood = np.rot90(x_te, k=1, axes=(1, 2)).copy()
  variants = list(dict.fromkeys(args.variants))
  print(f"jdlayers {jdl.__version__}: digits {len(x_tr)} train / "
        f"{len(x_te)} test (OOD: the test digits rotated 90 degrees); seeds "
        f"{args.seeds}; VI {args.epochs} epochs, MAP {args.map_epochs}, "
        f"W={args.kl_weight:g}, T={args.temperature:g}, "
        f"delta={args.delta:g}, {args.samples} posterior samples", flush=True)
  results = {}
  start = time.perf_counter()
  for seed in args.seeds:
    cache = {}
    for v in variants:
      t0 = time.perf_counter()
      predict = fit_variant(v, (x_tr, y_tr), args, seed, cache)
      results[(v, seed)] = r = scores(predict(x_te), y_te, predict(x_ood))
      print(f"  seed {seed} {v:12s}: acc {100 * r['acc']:.2f}% NLL "
            f"{r['nll']:.4f} ECE {100 * r['ece']:.2f}% AUROC "
            f"{r['auroc']:.3f} ({time.perf_counter() - t0:.0f} s)",
            flush=True)
  print()
  print(table(results, variants, args.seeds))
  print(f"\ndone in {time.perf_counter() - start:.0f} s")
  return 0


if __name__ == "__main__":
  sys.exit(main())
