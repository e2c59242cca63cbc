"""`Sequential`: layers applied one after another."""

from __future__ import annotations

import dataclasses
from typing import Optional

from jdlayers import _registry
from jdlayers.compose import _base, _features
from jdlayers.layers.static import Flatten


class SequentialLayer(_base.CompositeLayer):
  """A sampled `Sequential`: applies its layers in order."""

  __slots__ = ()

  def __call__(self, x):
    for layer in self._layers:
      x = layer(x)
    return x


@_registry.register_class("Sequential")
class Sequential(_base.Composite):
  """Distribution over networks that apply layers in sequence.

  As the TFP anchor's `Sequential`: `Sequential(*layers)`; plain callables
  (e.g. `tf.nn.relu`) are wrapped in `Lambda`. A `Flatten()` without
  `feature_ndims` gets it from the layer before it (3 after a `Conv2D`).
  Nested composites work.

  Args:
    *layers: Layer distributions, static layers or callables.
    name: Name of the distribution.
    validate_args: Passed to `JointDistributionCoroutine`.

  Raises:
    ValueError: If no layer is given, or if a layer's input
      size known at construction (`in_units`, `in_channels`) differs from
      the output size of the sized layer before it (pooling and named
      activations in between keep sizes; other functions and `Flatten`
      make them unknown, and nothing unknown is checked).

  #### Example

  ```python
  import jdlayers as jdl, tensorflow as tf
  net = jdl.Sequential(jdl.Affine(8, 2), tf.nn.tanh, jdl.Affine(1, 8))
  fs = net.sample(4, seed=0)
  fs(tf.ones([10, 2])).shape, net.log_prob(fs).shape  # [4, 10, 1], [4]
  ```
  """

  _value_type = SequentialLayer
  _varargs = "layers"

  def __init__(self, *layers, name: str = "Sequential",
               validate_args: bool = False):
    parameters = dict(locals())
    kids, feat = [], None
    for c in layers:
      if isinstance(c, Flatten) and c.feature_ndims is None and feat:
        c = Flatten(feat, name=c.name)
      nd = getattr(c, "output_feature_ndims", None)
      feat = nd if nd is not None else feat
      kids.append(c)
    desc = f"Sequential({len(kids)} layers)"
    # Sizes known statically are checked now, not at the first call.
    self.feature_sizes = _features.check_chain(kids, desc)
    super().__init__(kids, _base.CompositeConfig(desc), name, validate_args)
    self._parameters = parameters
    self._init_args = dict(layers=self._children, name=name,
                           validate_args=validate_args)
    self.output_feature_ndims: Optional[int] = feat
