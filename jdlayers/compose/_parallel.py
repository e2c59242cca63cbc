"""`Parallel`: branches applied to the same input, then combined."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from jdlayers import _registry
from jdlayers.compose import _base, _features
from jdlayers.ops import _shapes


@dataclasses.dataclass(frozen=True)
class ParallelConfig(_base.CompositeConfig):
  """Static configuration of a `Parallel`."""
  combine: str = "concat"
  axis: int = -1


class ParallelLayer(_base.CompositeLayer):
  """A sampled `Parallel`: combines its branches' outputs."""

  __slots__ = ()

  def __call__(self, x):
    ys = [branch(x) for branch in self._layers]
    c = self._config
    dtype = next((y.dtype for y in ys if hasattr(y, "dtype")), None)
    ys = [tf.convert_to_tensor(y, dtype=dtype) for y in ys]
    if c.combine == "sum":
      _check_sum_shapes(ys, self._layers, c.desc)
      out = ys[0]
      for y in ys[1:]:
        out = out + y
      return out
    return tf.concat(_broadcast_except(ys, c.axis, c.desc), axis=c.axis)


def _check_sum_shapes(ys, layers, desc: str) -> None:
  """combine='sum' needs broadcastable outputs; says which branches differ."""
  static = [y.shape.as_list() if y.shape.rank is not None else None
            for y in ys]
  for i in range(1, len(ys)):
    a, b = static[0], static[i]
    if a is None or b is None or None in a + b:
      continue
    try:
      np.broadcast_shapes(tuple(a), tuple(b))
    except ValueError:
      raise ValueError(
          f"{desc}: combine='sum' adds the branches' outputs, but branch 0 "
          f"{_features.describe(layers[0])} gives shape {a} and branch {i} "
          f"{_features.describe(layers[i])} gives shape {b}, which do not "
          "broadcast.") from None


def _broadcast_except(ys, axis: int, desc: str):
  """Broadcasts tensors against each other on every axis but `axis`."""
  rank = max(y.shape.rank for y in ys)
  ys = [tf.reshape(y, [1] * (rank - y.shape.rank) + _shapes.static_or_dynamic_shape(y)) for y in ys]
  a = rank + axis
  static = [y.shape.as_list() for y in ys]
  if all(None not in s for s in static):
    try:
      lead = np.broadcast_shapes(*[tuple(s[:a] + [1] + s[a + 1:])
                                   for s in static])
    except ValueError:
      raise ValueError(f"{desc}: branch output shapes {static} do not "
                       f"broadcast outside axis {axis}.") from None
    return [tf.broadcast_to(y, lead[:a] + (s[a],) + lead[a + 1:])
            for y, s in zip(ys, static)]
  one = tf.one_hot(a, rank, dtype=tf.int32)
  shape = tf.shape(ys[0]) * (1 - one) + one
  for y in ys[1:]:
    shape = tf.broadcast_dynamic_shape(shape, tf.shape(y) * (1 - one) + one)
  return [tf.broadcast_to(y, shape * (1 - one) + tf.shape(y)[a] * one)
          for y in ys]


@_registry.register_class("Parallel")
class Parallel(_base.Composite):
  """Distribution over blocks that apply branches to one input and combine.

  Args:
    *branches: Layer distributions or callables, each applied to the input.
    combine: "concat" (along `axis`, leading sample dims broadcast) or "sum".
    axis: Negative axis for "concat" (-1: features / channels_last).
    name: Name of the distribution.
    validate_args: Passed to `JointDistributionCoroutine`.

  Raises:
    ValueError: For an unknown `combine`, a non-negative `axis`, no
      branches, branches that expect different input sizes known at
      construction, or (with "sum") different output sizes (neither 1).

  #### Example

  ```python
  import jdlayers as jdl, tensorflow as tf
  block = jdl.Parallel(jdl.Affine(3, 2), jdl.Affine(4, 2))
  block.sample(5, seed=0)(tf.ones([7, 2])).shape  # [5, 7, 7]
  ```
  """

  _value_type = ParallelLayer
  _varargs = "branches"

  def __init__(self, *branches, combine: str = "concat", axis: int = -1,
               name: str = "Parallel", validate_args: bool = False):
    parameters = dict(locals())
    if combine not in ("concat", "sum"):
      raise ValueError(f"Parallel: `combine` must be 'concat' or 'sum'; got "
                       f"{combine!r}.")
    if not isinstance(axis, int) or axis >= 0:
      raise ValueError(f"Parallel: `axis` must be a negative int (leading "
                       f"sample dims vary); got {axis!r}.")
    if not branches:
      raise ValueError("Parallel needs at least one branch.")
    config = ParallelConfig(f"Parallel({len(branches)} branches, {combine})",
                            combine, axis)
    # Sizes known statically are checked now, not at the first call.
    self.feature_sizes = _features.check_branches(branches, combine, axis,
                                                  config.desc)
    super().__init__(branches, config, name, validate_args)
    self._parameters = parameters
    self._init_args = dict(branches=self._children, combine=combine,
                           axis=axis, name=name, validate_args=validate_args)
    feats = {getattr(b, "output_feature_ndims", None) for b in branches}
    self.output_feature_ndims = feats.pop() if len(feats) == 1 else None
