"""Initial values of a surrogate from a point estimate (MOPED-style).

Mean-field VI started at random locations with the prior pulling every
weight spends its first epochs finding a fit, and on small data often
settles with most weights at the prior (wide, under-confident predictives).
Starting the means at a MAP or deterministic fit, with small scales, is the
MOPED recipe (Krishnan et al. 2020: `sigma = delta * |w_MAP|`). `Surrogate`
takes `init=` (the point estimate) and `init_scale=` (the scales); this
module turns them into one value and one scale per part, checked against the
parts' shapes.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
import tensorflow as tf

from jdlayers import _validate

_WHERE = "Surrogate"


def part_values(init, part_names: Sequence[str], shapes: Sequence[tuple],
                num_net_parts: int, dtype) -> List[Optional[tf.Tensor]]:
  """One initial value (or None) per part, from what `init` holds.

  Args:
    init: None; a fitted `Surrogate` over the same parts (its means, e.g. a
      point-mass MAP fit); a sampled network with the structure of
      `network.sample()` (its parameters; latents keep their default); a
      list of one value per part; or a dict from part names to values.
    part_names, shapes: The surrogate's parts.
    num_net_parts: How many leading parts are the network's.
    dtype: The surrogate's dtype.

  Raises:
    TypeError: For an `init` of another kind.
    ValueError: For an unknown part name, a wrong count, a shape mismatch
      or a non-finite value; the message names the part.
  """
  n = len(part_names)
  if init is None:
    return [None] * n
  if hasattr(init, "mean_parts") and hasattr(init, "part_names"):
    if tuple(init.part_names) != tuple(part_names):
      raise ValueError(f"{_WHERE}: `init` is a surrogate over parts "
                       f"{list(init.part_names)}, not {list(part_names)}.")
    values = list(init.mean_parts())
  elif isinstance(init, dict):
    unknown = sorted(set(init) - set(part_names))
    if unknown:
      raise ValueError(f"{_WHERE}: `init` names unknown parts {unknown}; "
                       f"the parts are {list(part_names)}.")
    values = [init.get(name) for name in part_names]
  elif isinstance(init, (list, tuple)):
    if len(init) != n:
      raise ValueError(f"{_WHERE}: `init` has {len(init)} values; the "
                       f"surrogate has {n} parts {list(part_names)}.")
    values = list(init)
  elif isinstance(init, (np.ndarray, tf.Tensor, str, bytes, int, float)):
    raise TypeError(f"{_WHERE}: `init` must be a sampled network, a fitted "
                    f"Surrogate, a list or a dict of part values; got "
                    f"{type(init).__name__}.")
  else:
    flat = tf.nest.flatten(init)
    if len(flat) != num_net_parts:
      raise ValueError(
          f"{_WHERE}: `init` ({type(init).__name__}) has {len(flat)} "
          f"parameters; the network has {num_net_parts} "
          f"{list(part_names[:num_net_parts])}.")
    values = flat + [None] * (n - num_net_parts)
  out = []
  for name, shape, v in zip(part_names, shapes, values):
    if v is None:
      out.append(None)
      continue
    v = tf.cast(tf.convert_to_tensor(v), dtype)
    if tuple(v.shape) != tuple(shape):
      raise ValueError(f"{_WHERE}: `init` value of part {name!r} has shape "
                       f"{list(v.shape)}; the part has shape {list(shape)}.")
    _check_finite(v, f"init[{name!r}]")
    out.append(v)
  return out


def part_scales(init_scale, values: Sequence[Optional[tf.Tensor]],
                part_names: Sequence[str], dtype
                ) -> List[Optional[tf.Tensor]]:
  """One initial scale (or None, the builder's default) per part.

  Args:
    init_scale: None; a number > 0 for every part; or a callable
      `fn(value) -> scale` applied to each part given an `init` value
      (MOPED: `lambda w: 0.1 * abs(w)`; scales are floored at 1e-6).
    values: The parts' initial values (`part_values`).
    part_names: For messages.
    dtype: The surrogate's dtype.

  Raises:
    TypeError, ValueError: For a scale that is not a number > 0, or a
      callable giving a negative or non-finite scale (naming the part).
  """
  if init_scale is None:
    return [None] * len(values)
  if not callable(init_scale):
    s = _validate.positive(init_scale, "init_scale", _WHERE)
    return [tf.constant(s, dtype)] * len(values)
  out = []
  for name, v in zip(part_names, values):
    if v is None:
      out.append(None)
      continue
    s = tf.cast(init_scale(v), dtype)
    _check_finite(s, f"init_scale(init[{name!r}])", low=0.)
    out.append(s)
  return out


def _check_finite(v, what: str, low: Optional[float] = None) -> None:
  """Eager values are checked now; symbolic ones (in a graph) cannot be."""
  value = tf.get_static_value(v)
  if value is None:
    return
  value = np.asarray(value)
  if not np.isfinite(value).all() or (low is not None and (value < low).any()):
    rng = "finite" if low is None else f"finite and >= {low:g}"
    raise ValueError(f"{_WHERE}: `{what}` must be {rng}; got values in "
                     f"[{np.nanmin(value):g}, {np.nanmax(value):g}] "
                     f"({int((~np.isfinite(value)).sum())} non-finite).")
