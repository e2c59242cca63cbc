"""Uncertainty metrics: accuracy, NLL, Brier, calibration, entropies, OOD.

Every function takes numpy arrays, lists or eager `tf.Tensor`s (any float
dtype), computes in float64 numpy and returns a Python float (a score) or a
float64 numpy array (per-example values, bins). They run eagerly on values:
inside a `tf.function`, compute the predictions there and score them
outside.

**Predictions.** A classifier's predictions are either `[N, K]` class
probabilities or `[S, N, K]` per-draw probabilities from `S` posterior
samples (as `softmax(jdl.keras.predict_samples(...))` or `fs(x)` softmaxed).
The scores of a prediction (`accuracy`, `nll`, `brier`, `ece`,
`reliability`) average `[S, N, K]` over `S` first: they score the posterior
predictive `p(y | x) = mean_s p_s(y | x)`. The entropies take the same
inputs; `expected_entropy` and `mutual_information` need the draws
(`[S, N, K]`). Every such function takes `from_logits=True` for logits
instead (a softmax over the last dim is applied to each draw). Rows of
probabilities must lie in [0, 1] and sum to 1 within 1e-3, so logits passed
by mistake are refused, not scored.

**OOD detection** scores in-distribution and out-of-distribution inputs
with any per-example score where *higher means more likely OOD* (the
predictive entropy, the mutual information, `1 - max_k p_k`). OOD inputs are
the positive class, as in uncertainty-baselines.

Every check runs before any number is computed, and its error names the
function, the argument and the shape or value.

#### Example

```python
import numpy as np, jdlayers as jdl
draws = np.array([[[0.9, 0.1], [0.6, 0.4]],
                  [[0.7, 0.3], [0.2, 0.8]]])            # [S=2, N=2, K=2]
jdl.metrics.accuracy(draws, [0, 0])     # 0.5: predictive [.8, .2], [.4, .6]
jdl.metrics.mutual_information(draws)                   # [N] nats, >= 0
jdl.metrics.ood_auroc([0.1, 0.2], [0.3, 0.15])          # 0.75
```
"""

from __future__ import annotations

import numpy as np

from jdlayers import _metrics_inputs as _in
from jdlayers import _validate
from jdlayers._metrics_ood import fpr_at_95_tpr, ood_auprc, ood_auroc

__all__ = ["accuracy", "nll", "brier", "ece", "reliability",
           "predictive_entropy", "expected_entropy", "mutual_information",
           "ood_auroc", "ood_auprc", "fpr_at_95_tpr"]

_ECE_KINDS = ("top_label", "classwise")


def _scored(probs, labels, where, from_logits):
  """The predictive `[N, K]` and int labels `[N]`, both checked."""
  p = _in.probs(probs, where, from_logits)
  return p, _in.labels(labels, p.shape[0], p.shape[1], where)


def accuracy(probs, labels, *, from_logits: bool = False) -> float:
  """Fraction of examples whose most probable class is the label.

  Args:
    probs: `[N, K]` class probabilities or `[S, N, K]` per-draw ones
      (averaged over `S`: the posterior predictive); logits with
      `from_logits=True`.
    labels: `[N]` integer class labels in `[0, K)`.
    from_logits: `probs` holds logits.

  Returns:
    The accuracy in `[0, 1]`. Ties go to the lowest class index.

  Raises:
    ValueError: For a wrong rank, mismatched `N`, out-of-range labels, NaN
      or rows not summing to 1.
  """
  p, y = _scored(probs, labels, "metrics.accuracy", from_logits)
  return float(np.mean(np.argmax(p, axis=-1) == y))


def nll(probs, labels, *, eps: float = 1e-12,
        from_logits: bool = False) -> float:
  """Mean negative log-likelihood `-mean_n log p(y_n | x_n)`, in nats.

  With `[S, N, K]` draws, `p` is the posterior predictive
  `mean_s p_s(y | x)` (computed as a log-mean-exp for logits, so it stays
  exact far into the tails).

  Args:
    probs: `[N, K]` or `[S, N, K]` probabilities (logits with
      `from_logits=True`).
    labels: `[N]` integer class labels in `[0, K)`.
    eps: floor of the label's probability, in `(0, 1)`: a confidently wrong
      prediction costs `-log(eps)` (27.6 nats for 1e-12), not infinity.
    from_logits: `probs` holds logits.

  Returns:
    The mean NLL per example (a Python float; sklearn's `log_loss`).
  """
  where = "metrics.nll"
  eps = _validate.real(eps, "eps", where, low=0., high=1., low_open=True,
                       high_open=True)
  log_p = _in.samples(probs, where, from_logits, "probs", log=True)
  y = _in.labels(labels, log_p.shape[1], log_p.shape[2], where)
  picked = log_p[:, np.arange(len(y)), y]                   # [S, N]
  top = picked.max(axis=0)
  with np.errstate(invalid="ignore"):
    # log mean_s exp(picked); a label with probability 0 in every draw
    # gives -inf (nan from inf - inf, caught by fmax below).
    log_pred = top + np.log(np.mean(np.exp(picked - top), axis=0))
  log_pred = np.fmax(np.nan_to_num(log_pred, nan=-np.inf), np.log(eps))
  return float(-np.mean(log_pred))


def brier(probs, labels, *, from_logits: bool = False) -> float:
  """Multiclass Brier score `mean_n sum_k (p_nk - 1[y_n = k])^2`.

  Brier's (1950) original form, as uncertainty-baselines reports it: in
  `[0, 2]`, 0 for a certain right prediction. For two classes it is twice
  sklearn's binary `brier_score_loss(y, p[:, 1])`.

  Args:
    probs: `[N, K]` or `[S, N, K]` probabilities (averaged over `S`);
      logits with `from_logits=True`.
    labels: `[N]` integer class labels in `[0, K)`.
    from_logits: `probs` holds logits.

  Returns:
    The Brier score, a Python float.
  """
  p, y = _scored(probs, labels, "metrics.brier", from_logits)
  onehot = np.eye(p.shape[1])[y]
  return float(np.mean(np.sum((p - onehot) ** 2, axis=-1)))


def _edges(num_bins: int) -> np.ndarray:
  """Bin edges `m / M`, each the correctly rounded double."""
  return np.arange(num_bins + 1) / num_bins


def _bin_index(conf: np.ndarray, num_bins: int) -> np.ndarray:
  """Bin `m` (0-based) holds `(edge_m, edge_{m+1}]`; 0 goes in bin 0.

  Exact comparisons against the edges (not `ceil(conf * M)`, whose product
  rounds), so a confidence equal to an edge always falls in the lower bin.
  """
  return np.searchsorted(_edges(num_bins)[1:-1], conf, side="left")


def _binned_gap(conf: np.ndarray, hit: np.ndarray, num_bins: int) -> float:
  """`sum_m (n_m / N) |mean(hit in m) - mean(conf in m)|`."""
  idx = _bin_index(conf, num_bins)
  gap = np.bincount(idx, hit - conf, num_bins)    # n_m * (acc_m - conf_m)
  return float(np.sum(np.abs(gap)) / len(conf))


def reliability(probs, labels, num_bins: int = 15, *,
                from_logits: bool = False) -> dict:
  """Per-bin top-label confidence, accuracy and count (Guo et al. 2017).

  The confidence `max_k p_k` of each example goes in one of `num_bins`
  equal-width bins over `[0, 1]`: bin `m` holds `(m / M, (m + 1) / M]`
  (0-based; a confidence of exactly 0 goes in bin 0).

  Args:
    probs: `[N, K]` or `[S, N, K]` probabilities (averaged over `S`);
      logits with `from_logits=True`.
    labels: `[N]` integer class labels in `[0, K)`.
    num_bins: number of equal-width bins, an int >= 1.
    from_logits: `probs` holds logits.

  Returns:
    A dict of float64 numpy arrays: `edges` `[num_bins + 1]`, and
    `confidence` (mean confidence in the bin), `accuracy` (fraction right
    in the bin) and `count` (examples in the bin, int64), each
    `[num_bins]`. Empty bins have count 0 and NaN confidence and accuracy.
  """
  where = "metrics.reliability"
  num_bins = _validate.count(num_bins, "num_bins", where, minimum=1)
  p, y = _scored(probs, labels, where, from_logits)
  conf = p.max(axis=-1)
  hit = (p.argmax(axis=-1) == y).astype(np.float64)
  idx = _bin_index(conf, num_bins)
  count = np.bincount(idx, minlength=num_bins)
  with np.errstate(invalid="ignore", divide="ignore"):
    confidence = np.bincount(idx, conf, num_bins) / count
    acc = np.bincount(idx, hit, num_bins) / count
  return {"edges": _edges(num_bins),
          "confidence": confidence, "accuracy": acc, "count": count}


def ece(probs, labels, num_bins: int = 15, *, kind: str = "top_label",
        from_logits: bool = False) -> float:
  """Expected calibration error over equal-width bins.

  `kind="top_label"` (Guo et al. 2017): the count-weighted mean gap
  `sum_m (n_m / N) |acc_m - conf_m|` between the accuracy and the mean
  top-label confidence `max_k p_k` of each bin of `reliability`.
  `kind="classwise"` (Kull et al. 2019): for each class `k`, the same gap
  between how often `y = k` and the mean `p_k` in each bin of `p_k` (over
  all examples), averaged over the `K` classes. Empty bins add nothing.

  Args:
    probs: `[N, K]` or `[S, N, K]` probabilities (averaged over `S`);
      logits with `from_logits=True`.
    labels: `[N]` integer class labels in `[0, K)`.
    num_bins: number of equal-width bins over `[0, 1]`, an int >= 1.
    kind: `"top_label"` or `"classwise"`.
    from_logits: `probs` holds logits.

  Returns:
    The ECE in `[0, 1]`, a Python float (0 when perfectly calibrated, up
    to binning and sampling noise).
  """
  where = "metrics.ece"
  num_bins = _validate.count(num_bins, "num_bins", where, minimum=1)
  kind = _validate.choice(kind, _ECE_KINDS, "kind", where)
  p, y = _scored(probs, labels, where, from_logits)
  if kind == "top_label":
    hit = (p.argmax(axis=-1) == y).astype(np.float64)
    return _binned_gap(p.max(axis=-1), hit, num_bins)
  onehot = np.eye(p.shape[1])[y]
  return float(np.mean([_binned_gap(p[:, k], onehot[:, k], num_bins)
                        for k in range(p.shape[1])]))


def _entropy(p: np.ndarray) -> np.ndarray:
  """`-sum_k p_k log p_k` over the last dim, with 0 log 0 = 0."""
  with np.errstate(divide="ignore", invalid="ignore"):
    terms = np.where(p > 0, p * np.log(p), 0.)
  return -terms.sum(axis=-1)


def predictive_entropy(samples, *, from_logits: bool = False) -> np.ndarray:
  """Entropy of the posterior predictive, `H[mean_s p_s]`, per example.

  The total uncertainty (aleatoric + epistemic), in nats: 0 for a certain
  prediction, `log K` for a uniform one.

  Args:
    samples: `[S, N, K]` per-draw probabilities or `[N, K]` probabilities;
      logits with `from_logits=True`.
    from_logits: `samples` holds logits.

  Returns:
    A float64 numpy array `[N]`.
  """
  where = "metrics.predictive_entropy"
  return _entropy(_in.samples(samples, where, from_logits).mean(axis=0))


def expected_entropy(samples, *, from_logits: bool = False) -> np.ndarray:
  """Mean entropy of the draws, `mean_s H[p_s]`, per example (aleatoric).

  Args:
    samples: `[S, N, K]` per-draw probabilities (logits with
      `from_logits=True`).
    from_logits: `samples` holds logits.

  Returns:
    A float64 numpy array `[N]`, in nats.
  """
  where = "metrics.expected_entropy"
  return _entropy(_in.samples(samples, where, from_logits,
                              ranks=(3,))).mean(axis=0)


def mutual_information(samples, *, from_logits: bool = False) -> np.ndarray:
  """BALD mutual information `H[mean_s p_s] - mean_s H[p_s]` (epistemic).

  The information the label would give about the weights (Houlsby et al.
  2011): 0 when every draw agrees, up to `log K`. Tiny negative round-off
  is clipped to 0.

  Args:
    samples: `[S, N, K]` per-draw probabilities (logits with
      `from_logits=True`). One prediction (`[N, K]`) has no spread between
      draws, so it is refused rather than scored 0.
    from_logits: `samples` holds logits.

  Returns:
    A float64 numpy array `[N]`, in nats, >= 0.
  """
  where = "metrics.mutual_information"
  p = _in.samples(samples, where, from_logits, ranks=(3,))
  mi = _entropy(p.mean(axis=0)) - _entropy(p).mean(axis=0)
  return np.maximum(mi, 0.)
