"""Layers without random parameters: `Lambda`, `Flatten`, pooling.

They respect the sample dims: anything left of the layer's input core passes
through untouched. Each is a real `tfd.Distribution` (a `StaticLayer`, a
point mass) usable in any joint distribution: `sample(S)` gives the layer
recorded with sample shape `S` and `log_prob` of it is `zeros(S)`. No
zero-size placeholder tensor is created: the sample has no `tf.nest` leaves.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Tuple

import tensorflow as tf

from jdlayers import _registry
from jdlayers import ops
from jdlayers.layers import _base


@dataclasses.dataclass(frozen=True)
class LambdaConfig:
  """Static configuration of a `Lambda`: the function."""
  desc: str
  fn: Callable


class LambdaLayer(_base.StaticSampledLayer):
  """A sampled `Lambda`: calls its function."""
  __slots__ = ()

  @property
  def fn(self) -> Callable:
    return self._config.fn

  def __call__(self, *args, **kwargs):
    return self._config.fn(*args, **kwargs)


@_registry.register_class("Lambda")
class Lambda(_base.StaticLayer):
  """Wraps a callable (e.g. `tf.nn.relu`) as a layer; as the TFP anchor.

  Args:
    fn: The callable.
    dtype: dtype of the (zero) `log_prob`.
    name: Name.
    output_feature_ndims: Feature dims of `fn`'s output, if known (lets a
      following `Flatten()` infer what to flatten).

  #### Example

  ```python
  import jdlayers as jdl, tensorflow as tf
  jdl.Lambda(tf.square).sample(seed=0)(tf.constant([2.]))  # [4.]
  ```
  """

  def __init__(self, fn: Callable, dtype=tf.float32, name: str = "Lambda",
               output_feature_ndims: Optional[int] = None):
    if not callable(fn):
      raise TypeError(f"Lambda: `fn` must be callable; got {fn!r}.")
    desc = f"Lambda({getattr(fn, '__name__', fn)!s})"
    args = dict(fn=fn, dtype=tf.as_dtype(dtype), name=name,
                output_feature_ndims=output_feature_ndims)
    super().__init__(LambdaLayer({}, LambdaConfig(desc, fn)), dtype, name,
                     parameters=args)
    self.output_feature_ndims = output_feature_ndims
    self._init_args = args


@dataclasses.dataclass(frozen=True)
class FlattenConfig:
  """Static configuration of a `Flatten`."""
  desc: str
  feature_ndims: Optional[int]


class FlattenLayer(_base.StaticSampledLayer):
  """Flattens the last `feature_ndims` dims into one."""
  __slots__ = ()

  def __call__(self, x):
    k = self._config.feature_ndims
    if k is None:
      raise ValueError("Flatten(): `feature_ndims` is unknown; pass "
                       "Flatten(feature_ndims=...) or put it after a conv "
                       "layer inside a Sequential, which infers it.")
    x = tf.convert_to_tensor(x)
    if x.shape.rank is not None and x.shape.rank < k + 1:
      raise ValueError(f"Flatten(feature_ndims={k}) expects an input of rank "
                       f">= {k + 1} ([..., N, <{k} feature dims>]); got shape "
                       f"{x.shape.as_list()}.")
    shape = x.shape.as_list()
    feat = shape[-k:]
    n = -1 if None in feat else int(tf.TensorShape(feat).num_elements())
    lead = shape[:-k]
    if None in lead:
      lead = tf.unstack(tf.shape(x)[:-k])
    return tf.reshape(x, list(lead) + [n])


@_registry.register_class("Flatten")
class Flatten(_base.StaticLayer):
  """Flattens each example's features: `[..., N, *f] -> [..., N, prod(f)]`.

  Sample dims make "all but the batch axis" ambiguous, so the number of
  feature dims is given (`feature_ndims`) or, inside a `Sequential`, inferred
  from the preceding layer (e.g. 3 after a `Conv2D`).

  #### Example

  ```python
  import jdlayers as jdl, tensorflow as tf
  jdl.Flatten(3).sample()(tf.ones([4, 2, 5, 5, 3])).shape  # [4, 2, 75]
  ```
  """

  def __init__(self, feature_ndims: Optional[int] = None,
               name: str = "Flatten"):
    if feature_ndims is not None:
      feature_ndims = ops.positive_int(feature_ndims, "feature_ndims",
                                       "Flatten")
    desc = f"Flatten(feature_ndims={feature_ndims})"
    super().__init__(FlattenLayer({}, FlattenConfig(desc, feature_ndims)),
                     name=name, parameters=dict(feature_ndims=feature_ndims,
                                                name=name))
    self.feature_ndims = feature_ndims
    self.output_feature_ndims = 1
    self._init_args = dict(feature_ndims=feature_ndims, name=name)


@dataclasses.dataclass(frozen=True)
class PoolConfig:
  """Static configuration of a pooling layer."""
  desc: str
  rank: int
  pool_size: Tuple[int, ...]
  strides: Tuple[int, ...]
  padding: str
  mode: str
  data_format: str


class PoolLayer(_base.StaticSampledLayer):
  """Max/average pooling over the spatial dims."""
  __slots__ = ()

  def __call__(self, x):
    c = self._config
    return ops.pool(x, rank=c.rank, pool_size=c.pool_size, strides=c.strides,
                    padding=c.padding, mode=c.mode, data_format=c.data_format,
                    layer=c.desc)


@_registry.register_class("Pool")
class Pool(_base.StaticLayer):
  """Max ("max") or average ("avg") pooling of any rank, as Keras' pooling.

  Args:
    pool_size: An int or `rank`-tuple.
    strides: An int or `rank`-tuple; None means `pool_size`.
    padding: "valid" (default) or "same".
    data_format: "channels_last" or "channels_first".
    rank: 1, 2 or 3 (fixed by the `MaxPool2D`-style subclasses).
    mode: "max" or "avg".
    name: Name.

  #### Example

  ```python
  import jdlayers as jdl, tensorflow as tf
  jdl.MaxPool2D(2).sample()(tf.ones([4, 2, 8, 8, 3])).shape  # [4, 2, 4, 4, 3]
  ```
  """

  _fixed_rank: Optional[int] = None
  _fixed_mode: Optional[str] = None

  def __init__(self, pool_size=2, strides=None, padding: str = "valid",
               data_format: str = "channels_last", *,
               rank: Optional[int] = None, mode: Optional[str] = None,
               name: Optional[str] = None):
    cls = type(self).__name__
    rank = self._fixed_rank if rank is None else rank
    mode = (self._fixed_mode if mode is None else mode)
    if rank not in (1, 2, 3):
      raise ValueError(f"{cls}: `rank` must be 1, 2 or 3; got {rank!r}.")
    if mode is None or mode.lower() not in ("max", "avg"):
      raise ValueError(f"{cls}: `mode` must be 'max' or 'avg'; got {mode!r}.")
    pool_size = ops.normalize_tuple(pool_size, rank, "pool_size", cls)
    strides = pool_size if strides is None else ops.normalize_tuple(
        strides, rank, "strides", cls)
    desc = f"{cls}(pool_size={pool_size}, strides={strides})"
    config = PoolConfig(desc, rank, pool_size, strides,
                        ops.normalize_padding(padding, rank, desc, False),
                        mode.upper(), ops.normalize_data_format(data_format,
                                                                desc))
    super().__init__(PoolLayer({}, config), name=name or cls,
                     parameters=dict(pool_size=pool_size, strides=strides,
                                     padding=padding, data_format=data_format,
                                     rank=rank, mode=mode, name=name))
    self.output_feature_ndims = rank + 1
    self._init_args = dict(pool_size=pool_size, strides=strides,
                           padding=config.padding,
                           data_format=config.data_format, name=name)
    if rank != self._fixed_rank:
      self._init_args["rank"] = rank
    if mode.lower() != self._fixed_mode:
      self._init_args["mode"] = mode.lower()


def _pool_class(name: str, rank: int, mode: str):
  doc = (f"{'Max' if mode == 'max' else 'Average'} pooling with rank={rank} "
         "(see `Pool`).")
  cls = type(name, (Pool,), {"_fixed_rank": rank, "_fixed_mode": mode,
                             "__doc__": doc, "__module__": __name__})
  return _registry.register_class(name)(cls)


MaxPool1D = _pool_class("MaxPool1D", 1, "max")
MaxPool2D = _pool_class("MaxPool2D", 2, "max")
MaxPool3D = _pool_class("MaxPool3D", 3, "max")
AvgPool1D = _pool_class("AvgPool1D", 1, "avg")
AvgPool2D = _pool_class("AvgPool2D", 2, "avg")
AvgPool3D = _pool_class("AvgPool3D", 3, "avg")
