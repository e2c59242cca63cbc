"""Shared helpers of the jdlayers.keras tests."""

import keras
import numpy as np

from jdlayers import keras as jdk
from jdlayers.inference import vi

POINT_MASS = dict(kernel_posterior_fn=vi.point_mass(),
                  bias_posterior_fn=vi.point_mass())


def keras_twin(case, use_keras_dtype=True, explicit_dilation=False):
  """The Keras 3 layer matching a `jdlayers.testing` conv case (always
  channels_last: Keras' channels_first CPU kernels are partial), the
  matching `jdlayers.keras` class and its keyword arguments.

  `explicit_dilation`: the Keras layer gets dilation 1 and the dilated
  kernel size, for kernels with the dilation's zeros written in (TF's CPU
  kernels have no dilated transposed convolution; see `dilate_kernel`)."""
  kw = case.kwargs
  rank = kw["rank"]
  transpose = case.kind == "conv_transpose"
  args = dict(filters=kw["out_channels"], kernel_size=kw["size"],
              strides=kw["strides"], padding=kw["padding"].lower(),
              data_format=kw["data_format"], dilation_rate=kw["dilations"],
              activation=kw["activation"], use_bias=kw["use_bias"])
  if transpose and kw.get("output_padding") is not None:
    args["output_padding"] = kw["output_padding"]
  name = f"Conv{rank}D" + ("Transpose" if transpose else "")
  dtype = case.dtype.name if use_keras_dtype else "float32"
  ref_args = dict(args, data_format="channels_last")
  if explicit_dilation:
    size = np.broadcast_to(kw["size"], (rank,))
    dil = np.broadcast_to(kw["dilations"], (rank,))
    ref_args.update(dilation_rate=1, kernel_size=tuple(
        int((k - 1) * d + 1) for k, d in zip(size, dil)))
  ref = getattr(keras.layers, name)(dtype=dtype, **ref_args)
  return ref, getattr(jdk, name), args


def apply_channels_last(layer, x, data_format, rank):
  """`layer` (channels_last) applied to `x` in `data_format`."""
  if data_format == "channels_last":
    return np.asarray(layer(x))
  y = np.asarray(layer(np.moveaxis(x, 1, -1)))
  return np.moveaxis(y, -1, 1)


def dilate_kernel(kernel, dilations):
  """`kernel` `[*k, ...]` with the dilation's zeros written in:
  `[*((k - 1) * d + 1), ...]`, the same operator at dilation 1."""
  rank = len(dilations)
  shape = [(k - 1) * d + 1 for k, d in zip(kernel.shape[:rank], dilations)]
  out = np.zeros(shape + list(kernel.shape[rank:]), kernel.dtype)
  out[tuple(slice(None, None, d) for d in dilations)] = kernel
  return out


def channels_last_shape(shape, data_format):
  shape = tuple(shape)
  if data_format == "channels_last":
    return shape
  return (shape[0],) + shape[2:] + (shape[1],)


def set_point_mass(layer, kernel, bias=None):
  """Sets a point-mass layer's values to Keras-layout weights (the layers
  store Keras' layout, so a Keras layer's weights copy in as they are)."""
  layer.set_weights([kernel] if bias is None else [kernel, bias])


def rng_like(shape, seed=0, dtype=np.float32):
  return np.random.default_rng(seed).normal(size=shape).astype(dtype)
