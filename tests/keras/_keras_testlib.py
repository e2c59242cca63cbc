"""Shared helpers of the jdlayers.keras tests."""

import keras
import numpy as np

from jdlayers import keras as jdk
from jdlayers.inference import vi

POINT_MASS = dict(kernel_posterior_fn=vi.point_mass(),
                  bias_posterior_fn=vi.point_mass())


def keras_twin(case, use_keras_dtype=True):
  """The Keras 3 layer matching a `jdlayers.testing` conv case (always
  channels_last: Keras' channels_first CPU kernels are partial), the
  matching `jdlayers.keras` class and its keyword arguments."""
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
  ref = getattr(keras.layers, name)(
      dtype=dtype, **dict(args, data_format="channels_last"))
  return ref, getattr(jdk, name), args


def apply_channels_last(layer, x, data_format, rank):
  """`layer` (channels_last) applied to `x` in `data_format`."""
  if data_format == "channels_last":
    return np.asarray(layer(x))
  y = np.asarray(layer(np.moveaxis(x, 1, -1)))
  return np.moveaxis(y, -1, 1)


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
