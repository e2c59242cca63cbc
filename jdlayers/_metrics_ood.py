"""OOD detection metrics of `jdlayers.metrics`: AUROC, AUPRC, FPR@95%TPR.

Scores: higher means more likely out of distribution; OOD inputs are the
positive class. Ties are handled as scikit-learn does: AUROC counts a tied
in/out pair as half (Mann-Whitney U with average ranks), and the precision-
recall and ROC curves step over a whole group of tied scores at once.

#### Example

```python
from jdlayers import _metrics_ood
_metrics_ood.ood_auroc([0.1, 0.2], [0.3, 0.15])          # 0.75
```
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from jdlayers import _metrics_inputs as _in

__all__ = ["ood_auroc", "ood_auprc", "fpr_at_95_tpr"]


def _pooled(scores_in, scores_out, where) -> Tuple[np.ndarray, np.ndarray]:
  """Checked pooled scores `[N_in + N_out]` and OOD flags (1 = out)."""
  s_in = _in.scores(scores_in, "scores_in", where)
  s_out = _in.scores(scores_out, "scores_out", where)
  return (np.concatenate([s_in, s_out]),
          np.concatenate([np.zeros(len(s_in)), np.ones(len(s_out))]))


def _curve(scores_in, scores_out, where):
  """True and false positive counts at each distinct threshold, descending.

  Returns:
    `(tps, fps, n_out, n_in)`: `tps[j]`, `fps[j]` count the out and in
    scores `>= t_j`, where `t_0 > t_1 > ...` are the distinct scores.
  """
  score, is_out = _pooled(scores_in, scores_out, where)
  order = np.argsort(-score, kind="mergesort")
  score, is_out = score[order], is_out[order]
  # The last position of each group of tied scores: one threshold each.
  last = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]
  tps = np.cumsum(is_out)[last]
  fps = (last + 1) - tps
  return tps, fps, tps[-1], fps[-1]


def ood_auroc(scores_in, scores_out) -> float:
  """Area under the ROC curve for telling OOD inputs from in-distribution.

  The probability that a random OOD input scores higher than a random
  in-distribution one, ties counting half (the Mann-Whitney U over
  `N_in * N_out`, with average ranks): 0.5 is chance, 1 perfect. Equals
  `sklearn.metrics.roc_auc_score` with the OOD inputs labelled 1.

  Args:
    scores_in: `[N_in]` scores of in-distribution inputs (N_in >= 1).
    scores_out: `[N_out]` scores of OOD inputs (N_out >= 1).

  Returns:
    The AUROC in `[0, 1]`, a Python float.

  Raises:
    ValueError: For an empty, non-vector or non-finite score array.
  """
  score, is_out = _pooled(scores_in, scores_out, "metrics.ood_auroc")
  order = np.argsort(score, kind="mergesort")
  sorted_score = score[order]
  # Average 1-based rank of each group of ties: positions i..j-1 get
  # (i + 1 + j) / 2.
  starts = np.r_[0, np.flatnonzero(np.diff(sorted_score)) + 1]
  ends = np.r_[starts[1:], len(score)]
  ranks = np.empty(len(score))
  ranks[order] = np.repeat((starts + 1 + ends) / 2., ends - starts)
  n_out = is_out.sum()
  n_in = len(score) - n_out
  u = ranks[is_out == 1].sum() - n_out * (n_out + 1) / 2.
  return float(u / (n_in * n_out))


def ood_auprc(scores_in, scores_out) -> float:
  """Area under the precision-recall curve, OOD inputs positive.

  The average precision `sum_j (R_j - R_{j-1}) P_j` over the distinct
  score thresholds (no interpolation), as
  `sklearn.metrics.average_precision_score`. Chance level is the OOD
  fraction `N_out / (N_in + N_out)`, so report it with the AUROC.

  Args:
    scores_in: `[N_in]` scores of in-distribution inputs (N_in >= 1).
    scores_out: `[N_out]` scores of OOD inputs (N_out >= 1).

  Returns:
    The AUPRC in `[0, 1]`, a Python float.
  """
  tps, fps, n_out, _ = _curve(scores_in, scores_out, "metrics.ood_auprc")
  precision = tps / (tps + fps)
  recall = tps / n_out
  return float(np.sum(np.diff(np.r_[0., recall]) * precision))


def fpr_at_95_tpr(scores_in, scores_out) -> float:
  """False positive rate at the first threshold that finds 95% of OOD inputs.

  Lowering the threshold over the distinct scores, the fraction of
  in-distribution inputs flagged (`score >= threshold`) when the fraction of
  OOD inputs flagged first reaches 0.95: lower is better, 0 perfect. As
  `min(fpr[tpr >= 0.95])` over `sklearn.metrics.roc_curve` (no
  interpolation between thresholds).

  Args:
    scores_in: `[N_in]` scores of in-distribution inputs (N_in >= 1).
    scores_out: `[N_out]` scores of OOD inputs (N_out >= 1).

  Returns:
    The FPR in `[0, 1]`, a Python float.
  """
  tps, fps, n_out, n_in = _curve(scores_in, scores_out,
                                 "metrics.fpr_at_95_tpr")
  first = np.flatnonzero(tps / n_out >= 0.95)[0]
  return float(fps[first] / n_in)
