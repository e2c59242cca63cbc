"""Predictive uncertainty on the 8x8 digits: deterministic, VI and Laplace.

One training seed of `uncertainty_study.py`'s comparison, with figures. It
fits, on the digits split of `vi_digits_cnn.py`:

* the deterministic Keras CNN, early-stopped on a 15% validation split;
* VI started at the MAP with the KL down-weighted (`moped-kl`, the best
  variational posterior of the study: `vi.fit(..., init=map_fit,
  init_scale=lambda w: 0.1 * tf.abs(w), kl_weight=0.03)`);
* a last-layer KFAC Laplace around the same MAP (`jdl.laplace.fit(...,
  subset="last_layer", hessian="kron")`, GLM predictive) twice: its prior
  precision and link chosen by NLL on the validation split
  (`uncertainty_study.choose_laplace`), and its prior precision by the
  marginal likelihood alone (MC link);

and prints test accuracy, NLL, ECE (15 bins), Brier score, and, with the
predictive entropy as the score, OOD AUROC and FPR at 95% TPR for two
out-of-distribution sets: the test digits rotated by 90 degrees, and
uniform-noise images. Every number comes from `jdlayers.metrics`.

It writes a reliability diagram (`uncertainty_demo_reliability.png`) and
one predictive-entropy histogram per OOD set
(`uncertainty_demo_ood_rotated.png`, `uncertainty_demo_ood_noise.png`);
an existing file is kept unless `--overwrite` is given (a numbered name is
used instead).

Results (seed 0; 68 s wall, 37 CPU-s, on the shared 2-core machine):

  method                    acc %  NLL     ECE %  Brier   AUROC / FPR95
                                                        rotated     noise
  deterministic CNN         97.78  0.0683  1.46   0.0318  .906/.342   .980/.089
  VI (MAP start, KL x0.03)  98.22  0.0488  0.34   0.0265  .906/.307   .979/.082
  Laplace (last, val.)      97.78  0.0626  1.00   0.0306  .719/.809   .979/.098
  Laplace (last, marglik)   97.56  0.1560  9.88   0.0542  .958/.113   .997/.013

The MAP-started VI beats the deterministic CNN on every in-distribution
score and matches its OOD detection. The validation split prefers the
Laplace approximation with no spread at all (its NLL falls monotonically
with the prior precision, up to 1e6, where it is the MAP), so that row is
the MAP; the marginal likelihood's precision detects OOD inputs best but is
under-confident on the test digits. `uncertainty_study.py` has all seeds.

Usage:
  python examples/uncertainty_demo.py [--seed N] [--epochs E]
      [--map-epochs E] [--kl-weight W] [--samples S] [--out-dir DIR]
      [--overwrite] [--smoke]
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

import _calibration  # noqa: E402
import uncertainty_study as study  # noqa: E402
import vi_digits_cnn as digits  # noqa: E402

FIGURES = {"reliability": "uncertainty_demo_reliability.png",
           "rotated": "uncertainty_demo_ood_rotated.png",
           "noise": "uncertainty_demo_ood_noise.png"}


def ood_sets(x_test, seed: int) -> dict:
  """The OOD inputs: `{name: [N, 8, 8, 1]}` rotated digits and noise."""
  rng = np.random.default_rng(seed)
  return {"rotated": np.rot90(x_test, k=1, axes=(1, 2)).copy(),
          "noise": rng.uniform(0., 1., x_test.shape).astype(np.float32)}



def table(rows: dict, ood_names) -> str:
  """One line per method: acc, NLL, ECE, Brier, AUROC and FPR per OOD set."""
  head = (f"{'method':30s} {'acc %':>6s} {'NLL':>7s} {'ECE %':>6s} "
          f"{'Brier':>7s}")
  for name in ood_names:
    head += f" {'AUROC ' + name:>14s} {'FPR95 ' + name:>14s}"
  lines = [head]
  for method, r in rows.items():
    line = (f"{method:30s} {100 * r['acc']:6.2f} {r['nll']:7.4f} "
            f"{100 * r['ece']:6.2f} {r['brier']:7.4f}")
    for name in ood_names:
      line += f" {r['auroc_' + name]:14.3f} {r['fpr_' + name]:14.3f}"
    lines.append(line)
  return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--seed", type=int, default=0, help="training seed")
  p.add_argument("--epochs", type=int, default=200, help="VI epochs")
  p.add_argument("--map-epochs", type=int, default=100,
                 help="epochs of the MAP fit (starts VI, centres Laplace)")
  p.add_argument("--kl-weight", type=float, default=0.03,
                 help="KL weight of the MAP-started VI")
  p.add_argument("--samples", type=int, default=100,
                 help="posterior networks of the VI predictive; draws of "
                 "the Laplace MC link")
  p.add_argument("--out-dir", "--out", dest="out_dir", default="out",
                 type=pathlib.Path)
  p.add_argument("--overwrite", action="store_true",
                 help="replace existing figures")
  p.add_argument("--smoke", action="store_true", help="tiny run, for CI")
  return p.parse_args(argv)


def main(argv=None) -> int:
  args = parse_args(argv)
  det_epochs = 300
  if args.smoke:
    args.epochs, args.map_epochs, args.samples, det_epochs = 2, 2, 4, 2
  start = time.perf_counter()
  x_tr, y_tr, x_te, y_te = digits.load_data()
  ood = ood_sets(x_te, args.seed)
  print(f"jdlayers {jdl.__version__}: digits {len(x_tr)} train / "
        f"{len(x_te)} test; OOD: {len(x_te)} rotated digits and "
        f"{len(x_te)} uniform-noise images; seed {args.seed}", flush=True)
  predictors = {}

  # Times measured on an idle 2-core CPU.
  print("training the deterministic CNN with early stopping (about 10 s)...",
        flush=True)
  predictors["deterministic CNN"], _ = digits.fit_deterministic(
      x_tr, y_tr, epochs=det_epochs, learning_rate=study.LEARNING_RATE,
      seed=args.seed)

  print(f"training the MAP ({args.map_epochs} epochs, about "
        f"{3 + 0.04 * args.map_epochs:.0f} s)...", flush=True)
  map_fit = study.map_fit(x_tr, y_tr, args, args.seed)

  print(f"VI from the MAP (MOPED, KL x{args.kl_weight:g}, {args.epochs} "
        f"epochs, about {3 + 0.09 * args.epochs:.0f} s)...", flush=True)
  q = vi.fit(digits.build_bnn(), x_tr, y_tr, init=map_fit,
             init_scale=lambda w: 0.1 * tf.abs(w), kl_weight=args.kl_weight,
             epochs=args.epochs, batch_size=study.BATCH,
             learning_rate=study.LEARNING_RATE, seed=args.seed,
             progress=False)
  predictors[f"VI (MAP start, KL x{args.kl_weight:g})"] = (
      lambda xs: np.asarray(q.predict(xs, num_samples=args.samples,
                                      seed=args.seed).mean))

  print("Laplace (last layer, KFAC): choosing the prior precision and link "
        "on the validation split, a second MAP on 85% of the training set "
        "(about 15 s)...", flush=True)
  predictors["Laplace (last layer, val.)"] = study.fit_laplace(
      "last_layer", (x_tr, y_tr), map_fit, args, args.seed)
  print("Laplace (last layer, KFAC): the prior precision by the marginal "
        "likelihood alone...", flush=True)
  predictors["Laplace (last layer, marglik)"] = study.fit_laplace_marglik(
      "last_layer", (x_tr, y_tr), map_fit, args, args.seed)

  print("predicting...", flush=True)
  rows, test_probs, entropies = {}, {}, {n: {} for n in ood}
  for method, predict in predictors.items():
    probs = predict(x_te)
    ood_probs = {n: predict(x) for n, x in ood.items()}
    rows[method] = _calibration.scores(probs, y_te, ood_probs, fpr=True)
    test_probs[method] = (probs, y_te)
    for n, p in ood_probs.items():
      entropies[n][method] = (jdl.metrics.predictive_entropy(probs),
                              jdl.metrics.predictive_entropy(p))
  print()
  print(table(rows, list(ood)))
  print()

  args.out_dir.mkdir(parents=True, exist_ok=True)
  path = _common.free_path(args.out_dir, FIGURES["reliability"],
                           args.overwrite)
  _calibration.reliability_diagram(test_probs, path,
                                   title="8x8 digits, test set: reliability")
  print(f"wrote {path}")
  for n, label in (("rotated", "test digits rotated 90 degrees"),
                   ("noise", "uniform-noise images")):
    path = _common.free_path(args.out_dir, FIGURES[n], args.overwrite)
    _calibration.ood_histogram(
        entropies[n], path,
        title=f"Predictive entropy: test digits vs {label} (OOD)")
    print(f"wrote {path}")
  print(f"done in {time.perf_counter() - start:.1f} s")
  return 0


if __name__ == "__main__":
  sys.exit(main())
