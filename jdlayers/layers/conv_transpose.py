"""Transposed convolutions of every rank: `ConvTranspose(rank=...)`, 1D-3D."""

from __future__ import annotations

from typing import Callable, Optional, Tuple, Union

import tensorflow as tf

from jdlayers import _registry
from jdlayers import ops
from jdlayers import priors as priors_lib
from jdlayers.layers import _base
from jdlayers.layers.conv import _ConvBase

IntOrTuple = Union[int, Tuple[int, ...]]


class ConvTransposeLayer(_base.SampledLayer):
  """A sampled transposed convolution: `activation(conv_t(x, kernel) + bias)`.

  Parameters: `kernel` `[*S, *size, out_channels, in_channels]` (the
  `tf.nn.conv_transpose` layout), `bias` `[*S, out_channels]`.
  """

  __slots__ = ()

  def __call__(self, x):
    """Applies the layer.

    Args:
      x: `[*B, N, *spatial, in_channels]` (or channels first).

    Returns:
      `[*broadcast(B, S), N, *spatial', out_channels]`, spatial lengths as
      Keras' `Conv*DTranspose`.
    """
    c = self._config
    y = ops.conv_transpose(x, self._params["kernel"], self._params.get("bias"),
                           rank=c.rank, strides=c.strides, padding=c.padding,
                           dilations=c.dilations,
                           output_padding=c.output_padding,
                           data_format=c.data_format, impl=c.impl,
                           layer=c.desc)
    return y if c.activation is None else c.activation(y)


@_registry.register_class("ConvTranspose")
class ConvTranspose(_ConvBase):
  """Distribution over transposed-convolution layers of any rank.

  Outputs equal `tf.keras.layers.ConvNDTranspose` with the same kernel and
  bias. Arguments are those of `jdlayers.Conv` plus `output_padding` (ints
  smaller than the strides, or None for Keras' default output length);
  "causal" padding is not available.

  #### Example

  ```python
  import jdlayers as jdl, tensorflow as tf
  f = jdl.ConvTranspose2D(8, 3, 4, strides=2).sample(seed=0)
  f(tf.ones([2, 5, 5, 4])).shape  # [2, 10, 10, 8]
  ```
  """

  _value_type = ConvTransposeLayer
  _transpose = True

  def __init__(self, out_channels: int, size: IntOrTuple, in_channels: int,
               dtype=tf.float32, params_model_fn: Optional[Callable] = None,
               strides: IntOrTuple = 1, padding: str = "SAME",
               name: Optional[str] = None, *, rank: Optional[int] = None,
               output_padding: Optional[IntOrTuple] = None,
               dilations: IntOrTuple = 1,
               data_format: str = "channels_last", use_bias: bool = True,
               activation: Union[str, Callable, None] = None,
               prior: Optional[priors_lib.Prior] = None, impl: str = "auto",
               validate_args: bool = False):
    parameters = dict(locals())
    self._setup(parameters, rank=rank, out_channels=out_channels, size=size,
                in_channels=in_channels, dtype=dtype,
                params_model_fn=params_model_fn, strides=strides,
                padding=padding, name=name, dilations=dilations,
                data_format=data_format, use_bias=use_bias,
                activation=activation, prior=prior, impl=impl,
                output_padding=output_padding, validate_args=validate_args)


@_registry.register_class("ConvTranspose1D")
class ConvTranspose1D(ConvTranspose):
  """`ConvTranspose` with `rank=1`."""
  _fixed_rank = 1


@_registry.register_class("ConvTranspose2D")
class ConvTranspose2D(ConvTranspose):
  """`ConvTranspose` with `rank=2`."""
  _fixed_rank = 2


@_registry.register_class("ConvTranspose3D")
class ConvTranspose3D(ConvTranspose):
  """`ConvTranspose` with `rank=3`."""
  _fixed_rank = 3
