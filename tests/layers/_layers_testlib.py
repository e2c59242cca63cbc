"""Shared helpers of the layer tests: Keras references, tolerances, modes."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import keras

tfd = tfp.distributions


def tol(dtype):
  """(rtol, atol) for comparing against a reference in `dtype`."""
  return (1e-4, 1e-4) if dtype == tf.float32 else (1e-9, 1e-9)


def assert_close(a, b, dtype):
  rtol, atol = tol(dtype)
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol,
                             atol=atol)


def _to_last(x, rank):
  nd = x.ndim
  c = nd - rank - 1
  return np.moveaxis(x, c, -1)


def _to_first(y, rank):
  nd = y.ndim
  return np.moveaxis(y, -1, nd - rank - 1)


def keras_needs_float32(case) -> bool:
  """Keras' float64 transposed conv with dilations fails on CPU (TF kernel);
  jdlayers dilates the kernel itself, so compare against float32 Keras."""
  dil = case.kwargs.get("dilations", 1)
  dil = (dil,) if isinstance(dil, int) else tuple(dil)
  return (case.kind == "conv_transpose" and case.dtype == tf.float64
          and max(dil) > 1)


def _keras_layer(case):
  kw, dt = case.kwargs, case.dtype.name
  if keras_needs_float32(case):
    dt = "float32"
  if case.kind == "affine":
    return keras.layers.Dense(kw["out_units"], activation=kw["activation"],
                              use_bias=kw["use_bias"], dtype=dt)
  if case.kind == "pool":
    name = {"max": "MaxPooling", "avg": "AveragePooling"}[kw["mode"]]
    cls = getattr(keras.layers, f"{name}{kw['rank']}D")
    return cls(kw["pool_size"], kw["strides"], kw["padding"].lower(),
               dtype=dt)
  rank = kw["rank"]
  common = dict(kernel_size=kw["size"], strides=kw["strides"],
                padding=kw["padding"].lower(), dilation_rate=kw["dilations"],
                use_bias=kw["use_bias"], activation=kw["activation"],
                dtype=dt)
  if case.kind == "conv":
    return getattr(keras.layers, f"Conv{rank}D")(kw["out_channels"], **common)
  return getattr(keras.layers, f"Conv{rank}DTranspose")(
      kw["out_channels"], output_padding=kw.get("output_padding"), **common)


def keras_reference(case, layer):
  """Applies the Keras twin of `case`'s layer, sample by sample.

  Keras runs in channels_last (its channels_first CPU kernels are partial);
  the input/output are transposed around it.

  Args:
    case: A `jdlayers.testing.LayerCase`.
    layer: A sample of `case.dist` (shape `case.sample_shape`), or the
      static layer for pooling.

  Returns:
    A numpy array of shape `case.output_shape`.
  """
  kl = _keras_layer(case)
  rank = case.kwargs.get("rank", 0)
  first = case.kwargs.get("data_format") == "channels_first"
  x = _to_last(case.x, rank) if first else case.x
  core_rank = 2 if case.kind == "affine" else rank + 2
  if case.kind == "pool":
    y = np.asarray(kl(x.reshape((-1,) + x.shape[-core_rank + 1:])))
    y = y.reshape(x.shape[:-core_rank + 1] + y.shape[1:])
    return _to_first(y, rank) if first else y
  params = {k: np.asarray(v) for k, v in layer.params.items()}
  kname = "weights" if case.kind == "affine" else "kernel"
  kcore = params[kname].shape[len(case.sample_shape):]
  lead = tuple(np.broadcast_shapes(case.batch_shape, case.sample_shape))
  xs = np.broadcast_to(x, lead + x.shape[len(case.batch_shape):])
  ks = np.broadcast_to(params[kname], lead + kcore)
  bs = (np.broadcast_to(params["bias"], lead + params["bias"].shape[-1:])
        if "bias" in params else None)
  kl.build(xs.shape[len(lead):])
  call = kl
  if case.kind == "conv_transpose" and max(
      np.atleast_1d(case.kwargs.get("dilations", 1))) > 1:
    # TF's Eigen CPU kernel (oneDNN off) refuses dilated transposed
    # convolutions; XLA's takes them natively, which keeps the reference
    # independent of jdlayers' explicit-dilation fallback.
    call = tf.function(kl.__call__, jit_compile=True)
  outs = {}
  for idx in np.ndindex(*lead):
    k = ks[idx].T if case.kind == "affine" else ks[idx]
    kl.set_weights([k] if bs is None else [k, bs[idx]])
    outs[idx] = np.asarray(call(tf.constant(xs[idx])))
  y = np.stack([outs[i] for i in np.ndindex(*lead)])
  y = y.reshape(lead + y.shape[1:])
  return _to_first(y, rank) if first else y


def direct_log_prob(layer, sample_ndims, dtype, kernel_name):
  """Default-prior log-density of `layer`, computed with tfd directly."""
  normal = tfd.Normal(tf.constant(0., dtype), tf.constant(1., dtype))
  total = 0.
  for name, value in layer.params.items():
    assert name in (kernel_name, "bias"), name
    lp = normal.log_prob(value)
    axes = list(range(sample_ndims, len(value.shape)))
    total = total + tf.reduce_sum(lp, axis=axes)
  return total
