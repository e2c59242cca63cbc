"""Input checks of `jdlayers.metrics`: arrays in, float64 numpy out.

Every metric takes numpy arrays, lists or eager `tf.Tensor`s and computes in
float64 numpy. The checks here turn each input into that form, or raise an
error that names the metric, the argument and the shape or value, before any
number is computed: a wrong rank, a sample dim of size 0, NaN, probabilities
that do not sum to 1, labels out of range, mismatched example counts.

#### Example

```python
from jdlayers import _metrics_inputs as mi
p = mi.probs([[0.9, 0.1]], "metrics.nll")           # float64 [1, 2]
mi.labels([0], 1, 2, "metrics.nll")                  # int64 [1]
```
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from jdlayers import _validate

# Rows of probabilities must sum to 1 within this absolute tolerance: loose
# enough for a float32 (or bfloat16-then-float32) softmax over many classes,
# tight enough to catch logits or unnormalised scores passed as `probs`.
SUM_TOL = 1e-3


def array(value, arg: str, where: str) -> np.ndarray:
  """`value` as a float64 numpy array; symbolic tensors and strings refused."""
  if isinstance(value, (tf.Tensor, tf.Variable)):
    if not tf.executing_eagerly() and isinstance(value, tf.Tensor):
      raise TypeError(f"{where}: `{arg}` is a symbolic tensor (inside "
                      f"tf.function); metrics compute on values, eagerly. "
                      f"Pass the tensor's value (outside tf.function).")
    value = value.numpy()
  try:
    arr = np.asarray(value)
  except (TypeError, ValueError) as e:
    raise TypeError(f"{where}: `{arg}` must be a numeric array; got "
                    f"{type(value).__name__} ({e}).") from None
  if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number) or (
      np.issubdtype(arr.dtype, np.complexfloating)):
    raise TypeError(f"{where}: `{arg}` must be a real numeric array; got "
                    f"dtype {arr.dtype} (shape {arr.shape}).")
  return arr.astype(np.float64)


def _finite(arr: np.ndarray, arg: str, where: str) -> None:
  bad = ~np.isfinite(arr)
  if bad.any():
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    raise ValueError(f"{where}: `{arg}` (shape {arr.shape}) holds "
                     f"{int(bad.sum())} NaN or infinite values, the first "
                     f"at index {first}: {arr[first]}.")


def samples(value, where: str, from_logits: bool = False,
            arg: str = "samples", ranks=(2, 3),
            log: bool = False) -> np.ndarray:
  """Checked class probabilities, float64 `[S, N, K]` (rank 2 gets S = 1).

  Args:
    value: `[S, N, K]` per-draw probabilities or `[N, K]` probabilities
      (logits with `from_logits=True`); `ranks` says which are allowed.
    where: the metric's name, for errors.
    from_logits: apply a softmax over the last dim first.
    arg: the argument's name, for errors.
    ranks: the allowed ranks.
    log: return log-probabilities instead (exact log-softmax for logits;
      the log of the checked probabilities otherwise, -inf for a zero).

  Raises:
    TypeError: For a non-numeric array or a symbolic tensor.
    ValueError: For another rank, an empty dim, NaN/inf, or (probabilities)
      an entry outside [0, 1] or a row not summing to 1 within `SUM_TOL`.
  """
  from_logits = _validate.boolean(from_logits, "from_logits", where)
  arr = array(value, arg, where)
  what = "logits" if from_logits else "probabilities"
  names = {2: "[N, K]", 3: "[S, N, K]"}
  if arr.ndim not in ranks:
    allowed = " or ".join(f"{names[r]} {what}" for r in ranks)
    hint = (" (it needs the S draws, not one prediction)"
            if ranks == (3,) and arr.ndim == 2 else "")
    raise ValueError(f"{where}: `{arg}` must be {allowed}; got shape "
                     f"{arr.shape} (rank {arr.ndim}){hint}.")
  if 0 in arr.shape:
    dims = "SNK"[3 - arr.ndim:]
    raise ValueError(f"{where}: `{arg}` has an empty dim (shape {arr.shape}, "
                     f"dims {list(dims)}); it needs at least one draw, one "
                     f"example and one class.")
  _finite(arr, arg, where)
  rank, shape = arr.ndim, arr.shape
  if rank == 2:
    arr = arr[None]
  if from_logits:
    log_p = arr - arr.max(axis=-1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=-1, keepdims=True))
    return log_p if log else np.exp(log_p)
  low, high = arr.min(), arr.max()
  if low < -SUM_TOL or high > 1 + SUM_TOL:
    raise ValueError(f"{where}: `{arg}` must hold probabilities in [0, 1]; "
                     f"got values in [{low:g}, {high:g}] (logits? pass "
                     f"from_logits=True).")
  sums = arr.sum(axis=-1)
  err = np.abs(sums - 1.)
  if err.max() > SUM_TOL:
    first = tuple(int(i) for i in np.argwhere(err > SUM_TOL)[0])
    shown = first[1:] if rank == 2 else first  # index as the user passed it
    raise ValueError(f"{where}: every row of `{arg}` (shape {shape}) must "
                     f"sum to 1 within {SUM_TOL:g}; row {shown} sums to "
                     f"{sums[first]:.6g} (logits? pass from_logits=True).")
  # Tiny negative or >1 round-off is clipped so 0 log 0 and the bins behave.
  arr = np.clip(arr, 0., 1.)
  if log:
    with np.errstate(divide="ignore"):
      return np.log(arr)
  return arr


def probs(value, where: str, from_logits: bool = False,
          arg: str = "probs") -> np.ndarray:
  """The posterior predictive `[N, K]`: `[S, N, K]` averaged over S."""
  return samples(value, where, from_logits, arg).mean(axis=0)


def labels(value, n: int, k: int, where: str,
           arg: str = "labels") -> np.ndarray:
  """Integer class labels `[N]` (`[N, 1]` accepted) in `[0, k)`, as int64.

  Raises:
    TypeError: For a non-numeric array (strings, bools).
    ValueError: For a shape other than `[n]`, NaN, non-integer values or a
      label outside `[0, k)`.
  """
  arr = array(value, arg, where)
  shape = arr.shape
  if arr.ndim == 2 and arr.shape[1] == 1:
    arr = arr[:, 0]
  if arr.shape != (n,):
    raise ValueError(f"{where}: `{arg}` must be [N] class indices with N={n} "
                     f"(the examples of `probs`); got shape "
                     f"{shape}.")
  _finite(arr, arg, where)
  if not np.all(arr == np.round(arr)):
    raise ValueError(f"{where}: `{arg}` must be integer class indices; got "
                     f"non-integer values such as "
                     f"{arr[arr != np.round(arr)][0]:g}.")
  if arr.min() < 0 or arr.max() >= k:
    raise ValueError(f"{where}: `{arg}` must lie in [0, {k}) for K={k} "
                     f"classes; got values in [{arr.min():g}, "
                     f"{arr.max():g}].")
  return arr.astype(np.int64)


def scores(value, arg: str, where: str) -> np.ndarray:
  """OOD scores: a finite, non-empty float64 vector `[N]`."""
  arr = array(value, arg, where)
  if arr.ndim != 1:
    raise ValueError(f"{where}: `{arg}` must be a vector [N] of scores; got "
                     f"shape {arr.shape}.")
  if arr.size < 1:
    raise ValueError(f"{where}: `{arg}` is empty; it needs at least one "
                     f"score.")
  _finite(arr, arg, where)
  return arr
