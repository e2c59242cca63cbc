"""`Residual`: `y = x + inner(x)`."""

from __future__ import annotations

import tensorflow as tf

from jdlayers import _registry
from jdlayers.compose import _base


class ResidualLayer(_base.CompositeLayer):
  """A sampled `Residual`: `x + inner(x)`, sample dims broadcast."""

  __slots__ = ()

  def __call__(self, x):
    y = self._layers[0](x)
    x = tf.convert_to_tensor(x, dtype=y.dtype)
    if (x.shape.rank is not None and y.shape.rank is not None
        and x.shape.rank > 0 and y.shape.rank > 0
        and None not in (x.shape[-1], y.shape[-1])
        and x.shape[-1] != y.shape[-1]):
      raise ValueError(f"{self._config.desc}: inner output shape "
                       f"{y.shape.as_list()} does not match input shape "
                       f"{x.shape.as_list()}; a residual needs equal shapes.")
    return x + y


@_registry.register_class("Residual")
class Residual(_base.Composite):
  """Distribution over residual blocks `y = x + inner(x)`.

  Args:
    inner: A layer distribution (often a `Sequential`) whose output has the
      shape of its input.
    name: Name of the distribution.
    validate_args: Passed to `JointDistributionCoroutine`.

  #### Example

  ```python
  import jdlayers as jdl, tensorflow as tf
  block = jdl.Residual(jdl.Sequential(jdl.Affine(4, 4), tf.nn.relu))
  block.sample(2, seed=0)(tf.ones([3, 4])).shape  # [2, 3, 4]
  ```
  """

  _value_type = ResidualLayer

  def __init__(self, inner, name: str = "Residual",
               validate_args: bool = False):
    parameters = dict(locals())
    super().__init__([inner], _base.CompositeConfig("Residual"), name,
                     validate_args)
    self._parameters = parameters
    self._init_args = dict(inner=self._children[0], name=name,
                           validate_args=validate_args)
    self.output_feature_ndims = getattr(inner, "output_feature_ndims", None)
