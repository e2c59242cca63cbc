"""Convolutions of every rank: `Conv(rank=...)` and `Conv1D/2D/3D`.

`ConvTranspose` (in `conv_transpose.py`) shares `_ConvBase`, which owns the
argument normalisation, the prior's `ParamSpec` and the static config.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Optional, Tuple, Union

import numpy as np
import tensorflow as tf

from jdlayers import _registry
from jdlayers import ops
from jdlayers import priors as priors_lib
from jdlayers.layers import _base
from jdlayers.layers.affine import _float_dtype

IntOrTuple = Union[int, Tuple[int, ...]]


@dataclasses.dataclass(frozen=True)
class ConvConfig:
  """Static configuration of a (transposed) convolution layer."""
  desc: str
  rank: int
  strides: Tuple[int, ...]
  padding: str
  dilations: Tuple[int, ...]
  data_format: str
  activation: Optional[Callable] = None
  impl: str = "auto"
  output_padding: Optional[Tuple[int, ...]] = None


class ConvLayer(_base.SampledLayer):
  """A sampled convolution: `activation(conv(x, kernel) + bias)`.

  Parameters: `kernel` `[*S, *size, in_channels, out_channels]`, `bias`
  `[*S, out_channels]` (absent without bias), plus any extra latents.
  """

  __slots__ = ()

  def __call__(self, x):
    """Applies the layer.

    Args:
      x: `[*B, N, *spatial, in_channels]` (or channels first); `B`
        broadcasts against the sample shape `S`.

    Returns:
      `[*broadcast(B, S), N, *spatial', out_channels]`.
    """
    c = self._config
    y = ops.conv(x, self._params["kernel"], self._params.get("bias"),
                 rank=c.rank, strides=c.strides, padding=c.padding,
                 dilations=c.dilations, data_format=c.data_format,
                 impl=c.impl, layer=c.desc)
    return y if c.activation is None else c.activation(y)


class _ConvBase(_base.LayerDistribution):
  """Shared constructor of `Conv` and `ConvTranspose`."""

  _transpose = False
  _fixed_rank: Optional[int] = None

  def _setup(self, parameters, *, rank, out_channels, size, in_channels, dtype,
             params_model_fn, strides, padding, name, dilations, data_format,
             use_bias, activation, prior, impl, output_padding,
             validate_args):
    cls = type(self).__name__
    if self._fixed_rank is not None:
      if rank not in (None, self._fixed_rank):
        raise ValueError(f"{cls} fixes rank={self._fixed_rank}; got "
                         f"rank={rank!r}.")
      rank = self._fixed_rank
    if rank not in (1, 2, 3):
      raise ValueError(f"{cls}: `rank` must be 1, 2 or 3; got {rank!r}.")
    out_channels = ops.positive_int(out_channels, "out_channels", cls)
    in_channels = ops.positive_int(in_channels, "in_channels", cls)
    size = ops.normalize_tuple(size, rank, "size", cls)
    desc = (f"{cls}(out_channels={out_channels}, size={size}, "
            f"in_channels={in_channels})")
    if name not in (None, cls):
      desc += f" '{name}'"
    dtype = _float_dtype(dtype, desc)
    strides = ops.normalize_tuple(strides, rank, "strides", desc)
    dilations = ops.normalize_tuple(dilations, rank, "dilations", desc)
    padding = ops.normalize_padding(padding, rank, desc,
                                    allow_causal=not self._transpose)
    data_format = ops.normalize_data_format(data_format, desc)
    ops.check_strides_dilations(strides, dilations, desc)
    if impl not in ops.IMPLS:
      raise ValueError(f"{desc}: unknown `impl` {impl!r}; expected one of "
                       f"{list(ops.IMPLS)}.")
    if output_padding is not None:
      output_padding = _check_output_padding(output_padding, rank, strides,
                                             dilations, size, padding, desc)
    config = ConvConfig(desc=desc, rank=rank, strides=strides, padding=padding,
                        dilations=dilations, data_format=data_format,
                        activation=ops.get_activation(activation, desc),
                        impl=impl, output_padding=output_padding)
    if self._transpose:
      kernel_shape = size + (out_channels, in_channels)
    else:
      kernel_shape = size + (in_channels, out_channels)
    if params_model_fn is not None:
      model = functools.partial(params_model_fn, out_channels, size,
                                in_channels, dtype)
      prior = None
    else:
      prior = priors_lib.normal() if prior is None else prior
      receptive = int(np.prod(size))
      spec = priors_lib.ParamSpec(
          kernel_name="kernel", kernel_shape=kernel_shape,
          bias_shape=(out_channels,) if use_bias else None,
          out_axis=rank + (0 if self._transpose else 1),
          fan_in=in_channels * receptive, fan_out=out_channels * receptive,
          dtype=dtype)
      model = prior.model(spec)
    super().__init__(model, config, required=("kernel",),
                     forbidden=() if use_bias else ("bias",),
                     validate_args=validate_args, name=name or cls)
    self._parameters = parameters
    self._init_args = _init_args(
        self, out_channels=out_channels, size=size, in_channels=in_channels,
        dtype=dtype, params_model_fn=params_model_fn, strides=strides,
        padding=padding, name=name, rank=rank, output_padding=output_padding,
        dilations=dilations, data_format=data_format, use_bias=bool(use_bias),
        activation=config.activation, prior=prior, impl=impl,
        validate_args=validate_args)
    self.rank, self.size = rank, size
    self.out_channels, self.in_channels = out_channels, in_channels
    self.output_feature_ndims = rank + 1


def _init_args(layer, **args):
  """The normalised constructor arguments `get_config` saves: `rank` only
  where the class does not fix it, `output_padding` only when transposed."""
  if layer._fixed_rank is not None:  # pylint: disable=protected-access
    del args["rank"]
  if not layer._transpose:  # pylint: disable=protected-access
    del args["output_padding"]
  return args


def _check_output_padding(output_padding, rank, strides, dilations, size,
                          padding, desc):
  op = ops.normalize_tuple(output_padding, rank, "output_padding", desc,
                           minimum=0)
  for p, s, d, k in zip(op, strides, dilations, size):
    even_same = padding == "SAME" and ((k - 1) * d + 1) % 2 == 0
    # Valid lengths: p < s (as Keras), except that p = 1 is needed (and
    # valid) with stride 1 where padding='same' meets an even kernel size.
    if p >= s and not (even_same and p == 1):
      raise ValueError(f"{desc}: `output_padding` (={op}) must be smaller "
                       f"than `strides` (={strides}) on every axis (or 1 "
                       "where padding='same' meets an even dilated kernel "
                       f"size; dilations={dilations}).")
    if even_same and p == 0:
      raise ValueError(f"{desc}: with padding='same' and an even (dilated) "
                       f"kernel size {size}, `output_padding` (={op}) must be "
                       ">= 1 on that axis (the output would be one shorter "
                       "than the convolution it transposes).")
  return op


@_registry.register_class("Conv")
class Conv(_ConvBase):
  """Distribution over convolution layers of any rank (with a bias).

  Kernel `[*size, in_channels, out_channels]` (the `tf.nn` layout), bias
  `[out_channels]`. Positional arguments match the TFP anchor's `Conv2D`; the
  rest are keyword-only. Outputs equal `tf.keras.layers.ConvND` with the same
  kernel and bias.

  Args:
    out_channels: Number of output channels.
    size: Kernel size, an int or a `rank`-tuple.
    in_channels: Number of input channels.
    dtype: float32 or float64.
    params_model_fn: Optional `(out_channels, size, in_channels, dtype) ->
      model` as in the anchor; must yield `kernel`, may yield `bias` and
      extra latents. Overrides `prior`.
    strides: An int or `rank`-tuple.
    padding: "same" (default, as the anchor), "valid", or "causal" (rank 1).
    name: Name of the distribution.
    rank: Number of spatial dims (1, 2 or 3); fixed by `Conv1D/2D/3D`.
    dilations: An int or `rank`-tuple; cannot exceed 1 together with strides.
    data_format: "channels_last" (default) or "channels_first".
    use_bias: Whether the default/`prior` model has a bias.
    activation: A callable or a name such as "relu".
    prior: A `jdlayers.priors.Prior` (default `priors.normal(1.0)`).
    impl: How `S` sampled kernels meet inputs: "auto" picks the formulation
      measured fastest per mode (im2col + batched matmul under XLA; one
      grouped conv where it differentiates, else one conv per sample,
      elsewhere; see `jdlayers.ops`), or force "unrolled", "grouped" or
      "patches".
    validate_args: Passed to `JointDistributionCoroutine`.

  Raises:
    ValueError: For bad sizes, padding, data_format, strides with dilations,
      or a prior without `kernel`.

  #### Example

  ```python
  import jdlayers as jdl, tensorflow as tf
  f = jdl.Conv2D(16, 3, 1, activation="relu").sample(4, seed=0)
  f(tf.ones([2, 8, 8, 1])).shape  # [4, 2, 8, 8, 16]
  ```
  """

  _value_type = ConvLayer

  def __init__(self, out_channels: int, size: IntOrTuple, in_channels: int,
               dtype=tf.float32, params_model_fn: Optional[Callable] = None,
               strides: IntOrTuple = 1, padding: str = "SAME",
               name: Optional[str] = None, *, rank: Optional[int] = None,
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
                output_padding=None, validate_args=validate_args)


@_registry.register_class("Conv1D")
class Conv1D(Conv):
  """`Conv` with `rank=1`: inputs `[..., N, width, in_channels]`."""
  _fixed_rank = 1


@_registry.register_class("Conv2D")
class Conv2D(Conv):
  """`Conv` with `rank=2`: inputs `[..., N, h, w, in_channels]`.

  Same arguments as `tfp.experimental.joint_distribution_layers.Conv2D`
  (which has no bias: pass `use_bias=False` for identical `log_prob`).
  """
  _fixed_rank = 2


@_registry.register_class("Conv3D")
class Conv3D(Conv):
  """`Conv` with `rank=3`: inputs `[..., N, d, h, w, in_channels]`."""
  _fixed_rank = 3
