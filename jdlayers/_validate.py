"""Checks of user settings, shared by every public entry point.

Each function checks one kind of setting where it enters the library (a
sample shape, a count, a step size, a probability, a choice, a flag) and
raises an error that names the function, the argument and the value, so a
setting that cannot work fails before any TensorFlow op runs. This module is
the ground floor: it imports nothing from jdlayers.

Errors: `TypeError` for a value of the wrong kind (a string, a bool where a
number is meant, a float where a count is meant, ...), `ValueError` for a
value of the right kind outside its range (negative, zero, NaN, ...).
Counts keep the repository's earlier convention: anything that is not an
integer in range is a `ValueError` ("must be an int >= 1; got 2.5").

#### Example

```python
from jdlayers import _validate
_validate.count(3, "num_chains", "mcmc.sample", minimum=1)   # 3
_validate.real(-0.1, "step_size", "mcmc.sample", low=0.)     # ValueError
```
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Optional, Sequence

import numpy as np
import tensorflow as tf


def _is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def count(value, arg: str, where: str, minimum: int = 0,
          maximum: Optional[int] = None) -> int:
  """Checks an integer count `minimum <= value <= maximum`; returns an int.

  Raises:
    ValueError: For a bool, a non-integer, or a value out of range.
  """
  if not _is_int(value) or value < minimum or (
      maximum is not None and value > maximum):
    rng = (f">= {minimum}" if maximum is None
           else f"in [{minimum}, {maximum}]")
    raise ValueError(f"{where}: `{arg}` must be an int {rng}; got "
                     f"{value!r}.")
  return int(value)


def real(value, arg: str, where: str, *, low: Optional[float] = None,
         high: Optional[float] = None, low_open: bool = False,
         high_open: bool = False) -> float:
  """Checks a finite real number in `[low, high]` (ends open if asked).

  Returns:
    The value as a Python float.

  Raises:
    TypeError: For a bool or a non-number (a string, None, a list).
    ValueError: For NaN, an infinity, or a value outside the range.
  """
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    if isinstance(value, (np.ndarray, tf.Tensor, tf.Variable)) and (
        tf.TensorShape(value.shape).rank == 0):
      # A variable (e.g. an annealed KL weight) is checked at its value now.
      v = value if isinstance(value, np.ndarray) else tf.get_static_value(
          tf.convert_to_tensor(value))
      if v is not None and np.issubdtype(np.asarray(v).dtype, np.number):
        return real(np.asarray(v).item(), arg, where, low=low, high=high,
                    low_open=low_open, high_open=high_open)
      if v is None:
        return value  # symbolic: checked where it is known
    raise TypeError(f"{where}: `{arg}` must be a real number; got "
                    f"{value!r}.")
  v = float(value)
  bad = not math.isfinite(v)
  if low is not None:
    bad = bad or v < low or (low_open and v == low)
  if high is not None:
    bad = bad or v > high or (high_open and v == high)
  if bad:
    lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
    hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
    rng = " and ".join(r for r in (lo, hi) if r)
    raise ValueError(f"{where}: `{arg}` must be a finite number"
                     f"{' ' + rng if rng else ''}; got {value!r}.")
  return v


def positive(value, arg: str, where: str) -> float:
  """Checks a finite real number > 0 (a step size, a learning rate)."""
  return real(value, arg, where, low=0., low_open=True)


def probability(value, arg: str, where: str) -> float:
  """Checks a probability strictly inside (0, 1) (an acceptance target)."""
  return real(value, arg, where, low=0., high=1., low_open=True,
              high_open=True)


def positive_values(value, arg: str, where: str):
  """Checks a scalar, an array or a list of them: every entry finite > 0.

  Symbolic tensors pass (their values are unknown until run). Returns the
  value unchanged.
  """
  parts = value if isinstance(value, (list, tuple)) else [value]
  if not parts:
    raise ValueError(f"{where}: `{arg}` is an empty list.")
  for p in parts:
    if isinstance(p, tf.Tensor):
      p = tf.get_static_value(p)
      if p is None:
        continue
    try:
      arr = np.asarray(p)
    except (TypeError, ValueError):
      arr = None
    if (arr is None or isinstance(p, (bool, np.bool_))
        or not np.issubdtype(arr.dtype, np.number)
        or arr.dtype == np.bool_):
      raise TypeError(f"{where}: `{arg}` must be a positive number (or a "
                      f"list/array of them); got {value!r}.")
    if arr.size == 0 or not np.all(np.isfinite(arr)) or not np.all(arr > 0):
      raise ValueError(f"{where}: `{arg}` must be finite and > 0; got "
                       f"{value!r}.")
  return value


def choice(value, choices: Sequence, arg: str, where: str):
  """Checks that `value` is one of `choices`; returns it."""
  if not isinstance(value, str) or value not in choices:
    raise ValueError(f"{where}: `{arg}` must be one of {list(choices)}; got "
                     f"{value!r}.")
  return value


def boolean(value, arg: str, where: str, allow_none: bool = False):
  """Checks a flag: True or False (or None where that means "automatic")."""
  if value is None and allow_none:
    return None
  if not isinstance(value, (bool, np.bool_)):
    extra = " or None" if allow_none else ""
    raise TypeError(f"{where}: `{arg}` must be True or False{extra}; got "
                    f"{value!r}.")
  return bool(value)


def callable_or_flag(value, arg: str, where: str):
  """Checks a `progress`-like setting: True, False or a callable."""
  if callable(value) or isinstance(value, (bool, np.bool_)):
    return value
  raise TypeError(f"{where}: `{arg}` must be True, False or a callable; got "
                  f"{value!r}.")


def optional_callable(value, arg: str, where: str) -> Optional[Callable]:
  """Checks a callback: None or a callable."""
  if value is not None and not callable(value):
    raise TypeError(f"{where}: `{arg}` must be None or a callable; got "
                    f"{value!r}.")
  return value


def sample_shape(value, where: str) -> Any:
  """Checks a `sample_shape`: an int >= 0, a sequence of them, or an integer
  tensor (checked when its value is known). Returns it unchanged.

  `sample(2.5)` used to give 2 samples and `sample(True)` 1; both, and
  negative sizes, are refused here.

  Raises:
    TypeError: For a bool, a float, a string or a float tensor.
    ValueError: For a negative or unknown (None) entry, or a tensor of rank
      above 1.
  """
  msg = (f"{where}: `sample_shape` must be an int >= 0 or a sequence of "
         f"them; got {value!r}")
  if isinstance(value, (tf.Tensor, tf.Variable, np.ndarray, np.generic)):
    dtype = tf.as_dtype(value.dtype)
    if not dtype.is_integer:
      raise TypeError(f"{msg} (dtype {dtype.name}).")
    rank = tf.TensorShape(value.shape).rank or 0
    if rank > 1:
      raise ValueError(f"{msg} (rank {rank}).")
    static = (tf.get_static_value(value) if isinstance(value, tf.Tensor)
              else None if isinstance(value, tf.Variable) else value)
    if static is not None and np.any(np.asarray(static) < 0):
      raise ValueError(f"{msg}.")
    return value
  if isinstance(value, tf.TensorShape):
    if value.rank is None or None in value.as_list():
      raise ValueError(f"{msg} (not fully known).")
    return value
  items = [value] if not isinstance(value, (list, tuple)) else list(value)
  for v in items:
    if isinstance(v, tf.Tensor) and v.shape.rank == 0:
      if not v.dtype.is_integer:
        raise TypeError(f"{msg}.")
      static = tf.get_static_value(v)
      if static is not None and static < 0:
        raise ValueError(f"{msg}.")
      continue
    if not _is_int(v):
      raise (ValueError if v is None else TypeError)(f"{msg}.")
    if v < 0:
      raise ValueError(f"{msg}.")
  return value


def seed(value, where: str, allow_none: bool = True):
  """Checks a stateless seed: an int, a pair of ints, or an int tensor [2].

  Raises:
    TypeError: For a bool, a float, a string or a float tensor.
    ValueError: For a sequence or tensor that is not a pair.
  """
  if value is None and allow_none:
    return None
  msg = f"{where}: `seed` must be an int or a pair of ints; got {value!r}"
  if _is_int(value):
    return value
  if isinstance(value, (tf.Tensor, tf.Variable, np.ndarray)):
    if not tf.as_dtype(value.dtype).is_integer:
      raise TypeError(f"{msg} (dtype {tf.as_dtype(value.dtype).name}).")
    shape = tf.TensorShape(value.shape)
    if shape.rank == 0:
      return value
    if shape.rank is not None and shape.as_list() not in ([2], [None]):
      raise ValueError(f"{msg} (shape {list(value.shape)}).")
    return value
  if isinstance(value, (list, tuple)):
    if len(value) != 2:
      raise ValueError(f"{msg}.")
    if not all(_is_int(v) for v in value):
      raise TypeError(f"{msg}.")
    return value
  raise TypeError(f"{msg}.")
