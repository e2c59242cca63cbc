"""The shared mechanism of composites: a joint distribution over children.

A composite yields each child that has random parameters as a root component
of a `tfd.JointDistributionCoroutine`; children without random parameters
(`StaticLayer`s, plain callables) are kept as static parts of the value. A
composite of only such children is parameter-free itself: it yields them all
(their samples have no leaves) and `log_prob` is `zeros(sample_shape)`. Its
sample is a `CompositeLayer` holding every child's sampled layer in order;
`tf.nest` sees through it to the children's random tensors.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence, Tuple

import tensorflow as tf
import tensorflow_probability as tfp

from jdlayers import _registry
from jdlayers.layers import _base
from jdlayers.layers.static import Lambda

tfd = tfp.distributions
Root = tfd.JointDistributionCoroutine.Root


@dataclasses.dataclass(frozen=True)
class CompositeConfig:
  """Static configuration of a composite (subclasses add fields)."""
  desc: str


class CompositeLayer:
  """A sampled composite: the children's sampled layers plus static config.

  Attributes:
    layers: Tuple of the children's sampled layers, in order.
    config: Static configuration.
  """

  # __weakref__: `tf.function(network)` keys its cache by weak reference.
  __slots__ = ("_layers", "_config", "__weakref__")

  def __init__(self, layers=(), config=None):
    if isinstance(layers, CompositeLayer):  # TFP's `type(structure)(value)`.
      config = layers._config if config is None else config
      layers = layers._layers
    object.__setattr__(self, "_layers", tuple(layers))
    object.__setattr__(self, "_config", config)

  def __tf_flatten__(self):
    return self._config, self._layers

  @classmethod
  def __tf_unflatten__(cls, metadata, components):
    return cls(tuple(components), metadata)

  def __len__(self) -> int:
    return len(self._layers)

  def __setattr__(self, name, value):
    raise AttributeError(f"{type(self).__name__} is immutable.")

  @property
  def layers(self) -> Tuple:
    return self._layers

  @property
  def config(self):
    return self._config

  def __getitem__(self, i):
    return self._layers[i]

  def __repr__(self) -> str:
    inner = ", ".join(repr(l) for l in self._layers)
    return f"<{type(self).__name__} [{inner}]>"

  def __call__(self, x):
    raise NotImplementedError


class Composite(_base.StatelessSeedMixin, _base.ConfigMixin,
                tfd.JointDistributionCoroutine):
  """Base of `Sequential`, `Residual` and `Parallel`."""

  _value_type = CompositeLayer
  # The constructor's *args, saved by `get_config` under this key.
  _varargs: Optional[str] = None

  @classmethod
  def from_config(cls, config):
    """Builds the composite from `get_config()`'s output (children nested).

    Raises:
      ValueError: For an unknown class or function name in `config`.
    """
    kwargs = _registry.decode_args(cls.__name__, config)
    args = kwargs.pop(cls._varargs, []) if cls._varargs else []
    return cls(*args, **kwargs)

  def __init__(self, children: Sequence, config, name: Optional[str],
               validate_args: bool = False):
    kids = []
    for c in children:
      if isinstance(c, (tfd.Distribution, _base.StaticLayer)):
        kids.append(c)
      elif callable(c):
        kids.append(Lambda(c))
      else:
        raise TypeError(f"{config.desc}: children must be layer distributions "
                        f"or callables; got {c!r}.")
    if not kids:
      raise ValueError(f"{config.desc} needs at least one layer.")
    self._children = tuple(kids)
    # The joint's components: the children with random parameters (static
    # children stay out of the state). A network of only static layers yields
    # them all, as a joint needs a component; their samples have no leaves.
    random = tuple(i for i, c in enumerate(kids) if not _base.is_static(c))
    self._random = random or tuple(range(len(kids)))
    self._parameter_free = not random
    self._config = config
    random_children = [kids[i] for i in self._random]

    def model():
      for child in random_children:
        yield Root(child)

    super().__init__(model, validate_args=validate_args, name=name)

  @property
  def layers(self) -> Tuple:
    """The child distributions (plain callables wrapped in `Lambda`)."""
    return self._children

  @property
  def config(self):
    return self._config

  @property
  def batch_shape(self):
    if self._parameter_free:
      # The children's shapes are leafless layers, which TFP's base property
      # would try to read as one TensorShape.
      return self._model_unflatten(self._batch_shape_parts())
    return super().batch_shape

  def _call_log_prob(self, value, name, **kwargs):
    if self._parameter_free:
      # TFP first converts `value` against `dtype`, which would drop the
      # children's sample shape (nest metadata, no tensor); the parts keep it.
      with self._name_and_control_scope(name):
        return self._log_prob(value, **kwargs)
    return super()._call_log_prob(value, name, **kwargs)

  def _model_unflatten(self, xs):
    layers = [c.layer if _base.is_static(c) else None for c in self._children]
    for i, x in zip(self._random, xs):
      layers[i] = x
    return self._value_type(tuple(layers), self._config)

  def _model_flatten(self, value):
    layers = value.layers if isinstance(value, CompositeLayer) else tuple(value)
    if len(layers) == len(self._random) != len(self._children):
      return tuple(layers)  # already only the random children
    return tuple(layers[i] for i in self._random)

