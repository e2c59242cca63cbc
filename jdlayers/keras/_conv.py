"""Keras-named variational convolutions: `Conv1D-3D`, `Conv1D-3DTranspose`.

Keras' arguments and defaults (`padding="valid"`, `data_format=None`
meaning `keras.config.image_data_format()`); one implementation
(`_ConvBase`), with thin classes fixing the rank.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple, Union

import keras

from jdlayers import layers as jdl_layers
from jdlayers import ops
from jdlayers import priors as priors_lib
from jdlayers.keras._hooks import DEFAULT
from jdlayers.keras._layers import _Named, _register
from jdlayers.layers.conv import _check_output_padding

IntOrTuple = Union[int, Tuple[int, ...]]


class _ConvBase(_Named):
  """Shared constructor of the (transposed) convolutions."""

  _rank: int = 0
  _transpose = False

  def __init__(self, filters: int, kernel_size: IntOrTuple,
               strides: IntOrTuple = 1, padding: str = "valid",
               data_format: Optional[str] = None,
               dilation_rate: IntOrTuple = 1, *,
               output_padding: Optional[IntOrTuple] = None, **kwargs):
    super().__init__(**kwargs)
    owner, rank = type(self).__name__, self._rank
    self.filters = ops.positive_int(filters, "filters", owner)
    self.kernel_size = ops.normalize_tuple(kernel_size, rank, "kernel_size",
                                           owner)
    self.strides = ops.normalize_tuple(strides, rank, "strides", owner)
    self.dilation_rate = ops.normalize_tuple(dilation_rate, rank,
                                             "dilation_rate", owner)
    self.padding = ops.normalize_padding(
        padding, rank, owner, allow_causal=not self._transpose).lower()
    self.data_format = ops.normalize_data_format(
        data_format or keras.config.image_data_format(), owner)
    ops.check_strides_dilations(self.strides, self.dilation_rate, owner)
    self.output_padding = None
    if output_padding is not None:
      self.output_padding = _check_output_padding(
          output_padding, rank, self.strides, self.dilation_rate,
          self.kernel_size, self.padding.upper(), owner)
    self.input_spec = keras.InputSpec(ndim=rank + 2)

  def _channel_axis(self) -> int:
    return -1 if self.data_format == "channels_last" else 1

  def _jdl_distribution(self, in_channels: int):
    kwargs = dict(rank=self._rank, strides=self.strides,
                  padding=self.padding, dilations=self.dilation_rate,
                  data_format=self.data_format, use_bias=self.has_bias,
                  prior=self._layer_prior, name=self.name)
    if self._transpose:
      cls = jdl_layers.ConvTranspose
      kwargs["output_padding"] = self.output_padding
    else:
      cls = jdl_layers.Conv
    return cls(self.filters, self.kernel_size, in_channels,
               self.variable_dtype, **kwargs)

  def _make_distribution(self, input_shape):
    rank, axis = self._rank, self._channel_axis()
    if len(input_shape) != rank + 2:
      raise ValueError(f"{type(self).__name__} '{self.name}': expected inputs "
                       f"of rank {rank + 2} ([batch, *spatial, channels], or "
                       f"channels first); got shape {input_shape}.")
    channels = input_shape[axis]
    if channels is None:
      raise ValueError(f"{type(self).__name__} '{self.name}': the channel "
                       f"dimension (axis {axis}) of the inputs must be known; "
                       f"got shape {input_shape}.")
    self.input_spec = keras.InputSpec(ndim=rank + 2,
                                      axes={axis: int(channels)})
    return self._jdl_distribution(int(channels))

  def compute_output_shape(self, input_shape):
    shape = list(input_shape)
    last = self.data_format == "channels_last"
    spatial = shape[1:-1] if last else shape[2:]
    padding = self.padding.upper()
    out = []
    for i, n in enumerate(spatial):
      k, s, d = self.kernel_size[i], self.strides[i], self.dilation_rate[i]
      if self._transpose:
        p = None if self.output_padding is None else self.output_padding[i]
        out.append(ops.conv_transpose_output_length(n, k, s, d, padding, p))
      else:
        out.append(ops.conv_output_length(n, k, s, d, padding))
    if last:
      return (shape[0], *out, self.filters)
    return (shape[0], self.filters, *out)

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update(filters=self.filters, kernel_size=self.kernel_size,
                  strides=self.strides, padding=self.padding,
                  data_format=self.data_format,
                  dilation_rate=self.dilation_rate)
    if self._transpose:
      config["output_padding"] = self.output_padding
    return config


_CONV_DOC = """Variational {rank}-D {what} (Keras arguments and defaults).

  Kernel `[*kernel_size, {layout}]` (as `keras.layers.{keras}`), drawn on
  every call from a trainable posterior with the chosen estimator; the
  scaled KL divergence to the prior is added with `add_loss`.

  Args:
    filters: Output channels.
    kernel_size: An int or {rank}-tuple.
    strides: An int or {rank}-tuple.
    padding: "valid" (default, as Keras){causal} or "same".{output_padding}
    data_format: "channels_last" or "channels_first" (default:
      `keras.config.image_data_format()`).
    dilation_rate: An int or {rank}-tuple (not with strides > 1).
    activation, use_bias, estimator, prior, kernel_posterior_fn,
      kernel_posterior_tensor_fn, kernel_prior_fn, kernel_divergence_fn,
      bias_posterior_fn, bias_posterior_tensor_fn, bias_prior_fn,
      bias_divergence_fn, num_examples, kl_weight, seed, **kwargs: As
      `jdlayers.keras.Dense` (keyword-only; the same tfp.layers meanings
      of None and the same defaults; shapes passed to the hooks are the
      kernel's `[*kernel_size, {layout}]`).

  Raises:
    ValueError: For invalid sizes, padding, data format or strides with
      dilations (at construction), and at call for inputs of another rank
      or channel count than the layer was built for.

  #### Example

  ```python
  import jdlayers as jdl, keras
  layer = jdl.keras.{name}(8, 3, activation="relu", num_examples=60000)
  y = layer(keras.ops.ones({example}))  # {out}
  ```
  """


class _Conv(_ConvBase):
  """Convolutions: Keras' positional arguments up to `dilation_rate`."""

  def __init__(self, filters: int, kernel_size: IntOrTuple,
               strides: IntOrTuple = 1, padding: str = "valid",
               data_format: Optional[str] = None,
               dilation_rate: IntOrTuple = 1, *, activation=None,
               use_bias: bool = True, estimator: str = "flipout",
               prior: Optional[priors_lib.Prior] = None,
               kernel_posterior_fn=DEFAULT, kernel_posterior_tensor_fn=None,
               kernel_prior_fn=DEFAULT, kernel_divergence_fn=DEFAULT,
               bias_posterior_fn=DEFAULT, bias_posterior_tensor_fn=None,
               bias_prior_fn=DEFAULT, bias_divergence_fn=DEFAULT,
               num_examples: Optional[int] = None, kl_weight: float = 1.0,
               seed: Optional[int] = None, **kwargs):
    super().__init__(
        filters, kernel_size, strides, padding, data_format, dilation_rate,
        activation=activation, use_bias=use_bias, estimator=estimator,
        prior=prior, kernel_posterior_fn=kernel_posterior_fn,
        kernel_posterior_tensor_fn=kernel_posterior_tensor_fn,
        kernel_prior_fn=kernel_prior_fn,
        kernel_divergence_fn=kernel_divergence_fn,
        bias_posterior_fn=bias_posterior_fn,
        bias_posterior_tensor_fn=bias_posterior_tensor_fn,
        bias_prior_fn=bias_prior_fn,
        bias_divergence_fn=bias_divergence_fn, num_examples=num_examples,
        kl_weight=kl_weight, seed=seed, **kwargs)


class _ConvTranspose(_ConvBase):
  """Transposed convolutions: Keras' positional arguments up to
  `dilation_rate`."""

  _transpose = True

  def __init__(self, filters: int, kernel_size: IntOrTuple,
               strides: IntOrTuple = 1, padding: str = "valid",
               output_padding: Optional[IntOrTuple] = None,
               data_format: Optional[str] = None,
               dilation_rate: IntOrTuple = 1, *, activation=None,
               use_bias: bool = True, estimator: str = "flipout",
               prior: Optional[priors_lib.Prior] = None,
               kernel_posterior_fn=DEFAULT, kernel_posterior_tensor_fn=None,
               kernel_prior_fn=DEFAULT, kernel_divergence_fn=DEFAULT,
               bias_posterior_fn=DEFAULT, bias_posterior_tensor_fn=None,
               bias_prior_fn=DEFAULT, bias_divergence_fn=DEFAULT,
               num_examples: Optional[int] = None, kl_weight: float = 1.0,
               seed: Optional[int] = None, **kwargs):
    super().__init__(
        filters, kernel_size, strides, padding, data_format, dilation_rate,
        output_padding=output_padding, activation=activation,
        use_bias=use_bias, estimator=estimator, prior=prior,
        kernel_posterior_fn=kernel_posterior_fn,
        kernel_posterior_tensor_fn=kernel_posterior_tensor_fn,
        kernel_prior_fn=kernel_prior_fn,
        kernel_divergence_fn=kernel_divergence_fn,
        bias_posterior_fn=bias_posterior_fn,
        bias_posterior_tensor_fn=bias_posterior_tensor_fn,
        bias_prior_fn=bias_prior_fn,
        bias_divergence_fn=bias_divergence_fn, num_examples=num_examples,
        kl_weight=kl_weight, seed=seed, **kwargs)


def _conv_doc(name: str, rank: int, transpose: bool) -> str:
  example = [2] + [5] * rank + [3]
  spatial = ", ".join([("7" if transpose else "3")] * rank)
  return _CONV_DOC.format(
      rank=rank, name=name, keras=name,
      what="transposed convolution" if transpose else "convolution",
      layout="filters, in_channels" if transpose else "in_channels, filters",
      causal=', "causal"' if rank == 1 and not transpose else "",
      output_padding=("\n    output_padding: None (Keras' default length) or "
                      "ints < strides." if transpose else ""),
      example=example, out=f"[2, {spatial}, 8]")


@_register
class Conv1D(_Conv):
  __doc__ = _conv_doc("Conv1D", 1, False)
  _rank = 1


@_register
class Conv2D(_Conv):
  __doc__ = _conv_doc("Conv2D", 2, False)
  _rank = 2


@_register
class Conv3D(_Conv):
  __doc__ = _conv_doc("Conv3D", 3, False)
  _rank = 3


@_register
class Conv1DTranspose(_ConvTranspose):
  __doc__ = _conv_doc("Conv1DTranspose", 1, True)
  _rank = 1


@_register
class Conv2DTranspose(_ConvTranspose):
  __doc__ = _conv_doc("Conv2DTranspose", 2, True)
  _rank = 2


@_register
class Conv3DTranspose(_ConvTranspose):
  __doc__ = _conv_doc("Conv3DTranspose", 3, True)
  _rank = 3
