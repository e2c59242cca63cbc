"""Calibration and OOD figures for the examples; every number from jdl.metrics.

Plotting only (matplotlib on the Agg backend): the accuracies, ECEs,
reliability bins, AUROCs and FPRs drawn here all come from `jdlayers.metrics`,
so a figure and the library report the same numbers. `probs` can be `[N, K]`
class probabilities or `[S, N, K]` per-draw ones (scored as their mean over
`S`, the posterior predictive), as everywhere in `jdl.metrics`.

#### Example

```python
probs = model_probs(x_test)                # [N, K] or [S, N, K]
reliability_diagram({"BNN": (probs, y_test)}, "out/reliability.png")
ood_histogram({"BNN": (jdl.metrics.predictive_entropy(probs),
                       jdl.metrics.predictive_entropy(probs_ood))},
              "out/ood.png")
```
"""

from __future__ import annotations

import pathlib
from typing import Mapping, Tuple

import numpy as np

import jdlayers as jdl

__all__ = ["merge_sparse_bins", "reliability_diagram", "ood_histogram",
           "scores"]


def merge_sparse_bins(r: dict, min_count: int) -> dict:
  """Merges adjacent bins of `jdl.metrics.reliability` until each holds
  `min_count`.

  A bin with a handful of examples has an accuracy too noisy to read (one
  example more or less moves it by tens of percent), so a diagram drawn from
  such bins zig-zags. Bins are merged left to right, skipping empty ones,
  until a group holds at least `min_count` examples; a short last group joins
  the one before it. Counts are kept, confidence and accuracy become the
  count-weighted means of the merged bins (the same values `reliability`
  computes directly on the wider bin).

  Args:
    r: the dict returned by `jdl.metrics.reliability`.
    min_count: fewest examples per merged bin (>= 1).

  Returns:
    A dict like `r` with `M' <= M` bins: `edges` `[M' + 1]` (of unequal
    widths, from the first to the last non-empty bin; empty bins between
    groups join the group on their right), `confidence`, `accuracy` and
    `count`, each `[M']`, no empty bin.

  Raises:
    ValueError: if `min_count < 1`.
  """
  if int(min_count) < 1:
    raise ValueError(f"`min_count` (={min_count}) must be at least 1.")
  count, edges = r["count"], r["edges"]
  groups, current = [], []
  for m in np.flatnonzero(count > 0):
    current.append(m)
    if count[current].sum() >= min_count:
      groups.append(current)
      current = []
  if current:
    if groups:
      groups[-1] += current
    else:
      groups.append(current)
  out = {"edges": [edges[groups[0][0]]] if groups else [], "confidence": [],
         "accuracy": [], "count": []}
  for g in groups:
    n = count[g]
    out["edges"].append(edges[g[-1] + 1])
    out["count"].append(n.sum())
    out["confidence"].append(np.sum(n * r["confidence"][g]) / n.sum())
    out["accuracy"].append(np.sum(n * r["accuracy"][g]) / n.sum())
  return {k: np.asarray(v, np.int64 if k == "count" else np.float64)
          for k, v in out.items()}


def reliability_diagram(curves: Mapping[str, Tuple[np.ndarray, np.ndarray]],
                        path, num_bins: int = 15,
                        title: str = "Reliability diagram",
                        min_fraction: float = 0.02) -> pathlib.Path:
  """Writes a PNG comparing the calibration of several models.

  The top panel plots each model's per-bin accuracy against its per-bin mean
  confidence over the diagonal of perfect calibration, with accuracy and ECE
  (on the equal-width bins) in the legend. Sparse bins are merged with their
  neighbours (`merge_sparse_bins`) until each point stands for at least
  `min_fraction` of the examples, and each point is labelled with its count,
  so no line zig-zags through a bin of two or three examples. The bottom
  panel shows how the examples spread over the equal-width bins.

  Args:
    curves: `{name: (probs, labels)}`, `probs` `[N, K]` or `[S, N, K]`,
      `labels` `[N]`.
    path: output file; its parent directory must exist.
    num_bins: number of equal-width confidence bins.
    title: figure title.
    min_fraction: fewest examples per plotted point, as a fraction of `N`.

  Returns:
    `path`, as a `pathlib.Path`.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  path = pathlib.Path(path)
  fig, (ax, hist) = plt.subplots(
      2, 1, figsize=(5.5, 6.5), sharex=True, constrained_layout=True,
      gridspec_kw={"height_ratios": [3, 1]})
  ax.plot([0, 1], [0, 1], color="0.5", ls="--", lw=1,
          label="perfect calibration")
  edges = np.linspace(0., 1., num_bins + 1)
  width = (edges[1] - edges[0]) / (len(curves) + 1)
  for i, (name, (probs, labels)) in enumerate(curves.items()):
    r = jdl.metrics.reliability(probs, labels, num_bins)
    total = int(r["count"].sum())
    merged = merge_sparse_bins(r, max(1, int(np.ceil(min_fraction * total))))
    acc = jdl.metrics.accuracy(probs, labels)
    err = jdl.metrics.ece(probs, labels, num_bins)
    label = f"{name}: acc {100 * acc:.1f}%, ECE {100 * err:.2f}%"
    sizes = 12 + 120 * merged["count"] / total
    ax.plot(merged["confidence"], merged["accuracy"], color=f"C{i}", lw=1.5,
            label=label)
    ax.scatter(merged["confidence"], merged["accuracy"], s=sizes,
               color=f"C{i}", zorder=3)
    for c, a, n in zip(merged["confidence"], merged["accuracy"],
                       merged["count"]):
      ax.annotate(str(n), (c, a), textcoords="offset points",
                  xytext=(-4, 5 if i % 2 == 0 else -11), ha="right",
                  fontsize=6.5, color=f"C{i}")
    hist.bar(edges[:-1] + (i + 0.5) * width, r["count"] / r["count"].sum(),
             width=width, color=f"C{i}", align="edge", label=name)
  ax.set_xlim(0, 1)
  ax.set_ylim(0, 1.02)
  ax.set_ylabel("accuracy in bin")
  ax.set_title(f"{title}\n(points: bins merged to >= "
               f"{100 * min_fraction:.0f}% of examples, labelled with counts)",
               fontsize=10)
  ax.legend(fontsize=8, frameon=False, loc="lower right")
  hist.set_yscale("log")
  hist.set_xlabel("top-label confidence")
  hist.set_ylabel("fraction")
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def ood_histogram(scores: Mapping[str, Tuple[np.ndarray, np.ndarray]], path,
                  xlabel: str = "predictive entropy (nats)",
                  title: str = "In-distribution vs out-of-distribution",
                  num_bins: int = 30) -> pathlib.Path:
  """Writes a PNG of OOD scores, one panel per model, in and out overlaid.

  Each panel shows the density of the score (higher = more likely OOD, as
  `jdl.metrics.predictive_entropy`) on in-distribution and OOD inputs over
  shared bins, with `jdl.metrics.ood_auroc` and `fpr_at_95_tpr` in its
  title.

  Args:
    scores: `{name: (scores_in, scores_out)}`, each a vector `[N_in]`,
      `[N_out]` of one model's scores.
    path: output file; its parent directory must exist.
    xlabel: what the score is.
    title: figure title.
    num_bins: histogram bins per panel.

  Returns:
    `path`, as a `pathlib.Path`.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  path = pathlib.Path(path)
  fig, axes = plt.subplots(1, len(scores), figsize=(4 * len(scores), 3.2),
                           sharey=False, squeeze=False,
                           constrained_layout=True)
  for ax, (name, (s_in, s_out)) in zip(axes[0], scores.items()):
    auroc = jdl.metrics.ood_auroc(s_in, s_out)
    fpr = jdl.metrics.fpr_at_95_tpr(s_in, s_out)
    s_in, s_out = np.asarray(s_in, float), np.asarray(s_out, float)
    both = np.concatenate([s_in, s_out])
    # A constant score (every input alike) still gets one visible bin.
    lo, hi = both.min(), max(both.max(), both.min() + 1e-6)
    bins = np.linspace(lo, hi, num_bins + 1)
    ax.hist(s_in, bins, density=True, alpha=0.6, color="C0",
            label=f"in-distribution ({len(s_in)})")
    ax.hist(s_out, bins, density=True, alpha=0.6, color="C3",
            label=f"OOD ({len(s_out)})")
    ax.set_title(f"{name}\nAUROC {100 * auroc:.1f}%, FPR@95%TPR "
                 f"{100 * fpr:.1f}%", fontsize=9)
    ax.set_xlabel(xlabel)
    ax.legend(fontsize=7, frameon=False)
  axes[0][0].set_ylabel("density")
  fig.suptitle(title, fontsize=10)
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def scores(probs, labels, ood_probs: Mapping[str, np.ndarray], *,
           fpr: bool = False) -> dict:
  """Test metrics and, per shifted set, the OOD scores of the entropy.

  Args:
    probs: `[N, K]` or `[S, N, K]` test predictions.
    labels: `[N]` test labels.
    ood_probs: Set name -> predictions on that shifted set.
    fpr: Also the FPR at 95% TPR per set (`fpr_<name>`).

  Returns:
    `acc`, `nll`, `ece` (15 bins), `brier` and `auroc_<name>` per set.
  """
  m = jdl.metrics
  out = {"acc": m.accuracy(probs, labels), "nll": m.nll(probs, labels),
         "ece": m.ece(probs, labels, num_bins=15),
         "brier": m.brier(probs, labels)}
  h_in = m.predictive_entropy(probs)
  for name, p in ood_probs.items():
    h_out = m.predictive_entropy(p)
    out[f"auroc_{name}"] = m.ood_auroc(h_in, h_out)
    if fpr:
      out[f"fpr_{name}"] = m.fpr_at_95_tpr(h_in, h_out)
  return out
