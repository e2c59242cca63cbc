"""Classification metrics for the examples: accuracy, NLL, calibration.

Numpy only (plus matplotlib, on the Agg backend, for the diagram), so any
model's predicted class probabilities can be scored the same way: a Bayesian
network's posterior predictive, a Keras model's softmax, a baseline's.

Calibration follows Guo et al. (2017), "On Calibration of Modern Neural
Networks": the *top-label* confidence `max_k p_k` of each example is put in
one of `num_bins` equal-width bins over `[0, 1]` (bin `m` holds confidences in
`((m - 1) / M, m / M]`, the first bin also holds 0), and the expected
calibration error is the count-weighted mean gap between each bin's accuracy
and its mean confidence.

#### Example

```python
probs = model_probs(x_test)                # [N, K], rows sum to 1
print(accuracy(probs, y_test), nll(probs, y_test), ece(probs, y_test))
reliability_diagram({"BNN": (probs, y_test)}, "out/reliability.png")
```
"""

from __future__ import annotations

import pathlib
from typing import Mapping, Tuple

import numpy as np

__all__ = ["accuracy", "nll", "ece", "reliability", "merge_sparse_bins",
           "reliability_diagram"]


def _check(probs, labels) -> Tuple[np.ndarray, np.ndarray]:
  """`probs` as float64 `[N, K]` and `labels` as int `[N]`, or ValueError."""
  probs = np.asarray(probs, np.float64)
  labels = np.asarray(labels)
  if probs.ndim != 2:
    raise ValueError(f"`probs` must be [N, K] class probabilities; got shape "
                     f"{probs.shape}.")
  if labels.ndim == 2 and labels.shape[1] == 1:
    labels = labels[:, 0]
  if labels.shape != probs.shape[:1]:
    raise ValueError(f"`labels` must be [N] (N={probs.shape[0]}) to match "
                     f"`probs` {probs.shape}; got shape {labels.shape}.")
  if not np.issubdtype(labels.dtype, np.integer):
    if not np.all(labels == np.round(labels)):
      raise ValueError("`labels` must be integer class indices.")
    labels = labels.astype(np.int64)
  if labels.size and (labels.min() < 0 or labels.max() >= probs.shape[1]):
    raise ValueError(f"`labels` must lie in [0, {probs.shape[1]}); got range "
                     f"[{labels.min()}, {labels.max()}].")
  return probs, labels


def accuracy(probs, labels) -> float:
  """Fraction of examples whose most probable class is the label.

  Args:
    probs: `[N, K]` predicted class probabilities.
    labels: `[N]` integer class labels.

  Returns:
    The accuracy in `[0, 1]`.
  """
  probs, labels = _check(probs, labels)
  return float(np.mean(np.argmax(probs, axis=-1) == labels))


def nll(probs, labels, eps: float = 1e-12) -> float:
  """Mean negative log-likelihood `-mean(log p[label])`, in nats.

  Args:
    probs: `[N, K]` predicted class probabilities.
    labels: `[N]` integer class labels.
    eps: floor for a label's probability, so a confidently wrong
      prediction costs `-log(eps)` rather than infinity.

  Returns:
    The mean NLL per example.
  """
  probs, labels = _check(probs, labels)
  p = probs[np.arange(len(labels)), labels]
  return float(-np.mean(np.log(np.maximum(p, eps))))


def _bin_index(conf: np.ndarray, num_bins: int) -> np.ndarray:
  """Bin `m` (0-based) holds `(m / M, (m + 1) / M]`; 0 goes in bin 0."""
  return np.clip(np.ceil(conf * num_bins).astype(np.int64) - 1, 0,
                 num_bins - 1)


def reliability(probs, labels, num_bins: int = 15) -> dict:
  """Per-bin top-label confidence, accuracy and count.

  Args:
    probs: `[N, K]` predicted class probabilities.
    labels: `[N]` integer class labels.
    num_bins: number of equal-width confidence bins over `[0, 1]`.

  Returns:
    A dict of numpy arrays, each `[num_bins]`: `edges` (`[num_bins + 1]`
    bin edges), `confidence` (mean top-label confidence of the bin),
    `accuracy` (fraction correct in the bin) and `count` (examples in the
    bin). Empty bins have count 0 and NaN confidence and accuracy.

  Raises:
    ValueError: if the shapes disagree, a label is out of range or
      `num_bins < 1`.
  """
  if int(num_bins) < 1:
    raise ValueError(f"`num_bins` (={num_bins}) must be at least 1.")
  probs, labels = _check(probs, labels)
  conf = probs.max(axis=-1)
  correct = (probs.argmax(axis=-1) == labels).astype(np.float64)
  idx = _bin_index(conf, num_bins)
  count = np.bincount(idx, minlength=num_bins)
  with np.errstate(invalid="ignore", divide="ignore"):
    confidence = np.bincount(idx, conf, num_bins) / count
    acc = np.bincount(idx, correct, num_bins) / count
  return {"edges": np.linspace(0., 1., num_bins + 1), "confidence": confidence,
          "accuracy": acc, "count": count}


def merge_sparse_bins(r: dict, min_count: int) -> dict:
  """Merges adjacent bins of `reliability` until each holds `min_count`.

  A bin with a handful of examples has an accuracy too noisy to read (one
  example more or less moves it by tens of percent), so a diagram drawn from
  such bins zig-zags. Bins are merged left to right, skipping empty ones,
  until a group holds at least `min_count` examples; a short last group joins
  the one before it. Counts are kept, confidence and accuracy become the
  count-weighted means of the merged bins (the same values `reliability`
  computes directly on the wider bin).

  Args:
    r: the dict returned by `reliability`.
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


def ece(probs, labels, num_bins: int = 15) -> float:
  """Expected calibration error of the top-label confidence.

  `ECE = sum_m (n_m / N) * |acc_m - conf_m|` over the equal-width bins `m`
  of `reliability`; empty bins contribute nothing.

  Args:
    probs: `[N, K]` predicted class probabilities.
    labels: `[N]` integer class labels.
    num_bins: number of equal-width confidence bins over `[0, 1]`.

  Returns:
    The ECE in `[0, 1]` (0 for a perfectly calibrated model, up to
    binning and sampling noise).
  """
  r = reliability(probs, labels, num_bins)
  n = r["count"]
  keep = n > 0
  gaps = np.abs(r["accuracy"][keep] - r["confidence"][keep])
  return float(np.sum(n[keep] * gaps) / max(int(n.sum()), 1))


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
    curves: `{name: (probs, labels)}`, `probs` `[N, K]`, `labels` `[N]`.
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
    r = reliability(probs, labels, num_bins)
    total = int(r["count"].sum())
    merged = merge_sparse_bins(r, max(1, int(np.ceil(min_fraction * total))))
    label = (f"{name}: acc {100 * accuracy(probs, labels):.1f}%, "
             f"ECE {100 * ece(probs, labels, num_bins):.2f}%")
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
