"""Batched convolution and transposed convolution of any rank.

Applying `S` sampled kernels happens inside one op call. `impl="auto"` picks
the formulation measured fastest for the mode and device (figures: per
chain-gradient, 8 chains, Conv2D 3x3 16->16 on 64 8x8 images, 2-core CPU,
TF 2.21 with oneDNN; see benchmarks/layers.py):

* under XLA (`jit_compile=True`), convolution becomes im2col patches and one
  broadcasting batched matmul ("patches": 3.8 ms; XLA's own CPU convolution
  takes 39 ms unrolled and 86 ms grouped);
* otherwise, by which side carries sample dims:
  - kernel without sample dims: fold the input's leading dims into the batch
    and run one ordinary convolution;
  - input without sample dims ("channel-stacked"): concatenate the `S` kernels
    along the output channels, one convolution, move the stack to the front;
  - both: one grouped convolution with the samples folded into channels
    ("grouped": 0.78 ms) where its gradient exists (rank 1-2 with oneDNN, or
    a GPU), else one ordinary convolution per sample, unrolled in the graph
    ("unrolled": 5.6 ms).

No `tf.vectorized_map` or `tf.while_loop` is involved, so gradients compile
under `tf.function(jit_compile=True)`.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import tensorflow as tf

from jdlayers.ops import _shapes

IMPLS = ("auto", "unrolled", "grouped", "patches")
_NN_FORMAT = {1: "NWC", 2: "NHWC", 3: "NDHWC"}


def _in_xla_context() -> bool:
  """True while tracing inside `tf.function(jit_compile=True)`."""
  try:
    from tensorflow.python.framework import ops as tf_ops  # pylint: disable=g-import-not-at-top
    from tensorflow.python.ops import control_flow_util  # pylint: disable=g-import-not-at-top
    return bool(control_flow_util.GraphOrParentsInXlaContext(
        tf_ops.get_default_graph()))
  except Exception:  # pylint: disable=broad-except
    return False


def _onednn_enabled() -> bool:
  """True when TF's CPU kernels run through oneDNN in this process.

  This is a run-time property, not a build one: TF turns oneDNN off by itself
  on CPUs without the instructions it looks for (many AMD EPYCs), and
  `TF_ENABLE_ONEDNN_OPTS=0` turns it off anywhere. `IsMklEnabled` reads both.
  """
  try:
    from tensorflow.python.util import _pywrap_util_port  # pylint: disable=g-import-not-at-top
    return bool(_pywrap_util_port.IsMklEnabled())
  except Exception:  # pylint: disable=broad-except
    return False


def _grouped_has_gradient(rank: int, dtype: tf.DType) -> bool:
  """Grouped convolutions differentiate on GPUs and, for float32 rank 1-2, on
  oneDNN CPU builds (float64 falls back to Eigen, which has no gradient)."""
  if rank > 2:  # oneDNN has no grouped Conv3D.
    return False
  if tf.config.list_logical_devices("GPU"):
    return True
  return dtype == tf.float32 and _onednn_enabled()


def _native_dilated_transpose(dtype: tf.DType) -> bool:
  """Whether `tf.nn.conv_transpose` may be given `dilations > 1` here.

  TF's Eigen CPU kernel refuses them ("Current CPU implementations do not yet
  support dilation rates larger than 1"); oneDNN and XLA take them in float32.
  Elsewhere the kernel is dilated explicitly, which is the same operator.
  """
  return dtype == tf.float32 and (_in_xla_context() or _onednn_enabled())


def _per_sample_impl(impl: str, rank: int, transpose: bool,
                     dtype: tf.DType) -> str:
  """"grouped" where it has a gradient (also when asked for), else unrolled."""
  if impl in ("auto", "grouped") and not transpose and _grouped_has_gradient(
      rank, dtype):
    return "grouped"
  return "unrolled"


def _to_channels_last(x: tf.Tensor, rank: int) -> tf.Tensor:
  nd = x.shape.rank
  c = nd - rank - 1
  perm = list(range(c)) + list(range(c + 1, nd)) + [c]
  return tf.transpose(x, perm)


def _to_channels_first(y: tf.Tensor, rank: int) -> tf.Tensor:
  nd = y.shape.rank
  c = nd - rank - 1
  perm = list(range(c)) + [nd - 1] + list(range(c, nd - 1))
  return tf.transpose(y, perm)


def _apply_sampled(x: tf.Tensor, kernel: tf.Tensor, rank: int, out_axis: int,
                   single: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
                   impl: str, layer: str) -> tf.Tensor:
  """Applies `single` (an unbatched conv) for every sample of `kernel`.

  Args:
    x: `[*B, N, *spatial, C]` (channels last).
    kernel: `[*S, *size, a, b]`; `out_axis` (-1 or -2) names the output
      channel axis among the last two.
    rank: Number of spatial dims.
    out_axis: Output-channel axis of the kernel core.
    single: `(x [M, *spatial, C], kernel core) -> [M, *spatial', out]`.
    impl: "auto", "unrolled" or "grouped".
    layer: Layer description for error messages.

  Returns:
    `[*broadcast(B, S), N, *spatial', out]`.
  """
  core = rank + 2
  x_batch = x.shape[:-core].as_list()
  s_batch = kernel.shape[:-core].as_list()
  bs = _shapes.broadcast_batch_shape(x_batch, s_batch, layer, x.shape,
                                     kernel.shape)
  if None in s_batch or None in x_batch:
    raise ValueError(f"{layer}: sample dims must be static; got input shape "
                     f"{x.shape.as_list()} and parameter shape "
                     f"{kernel.shape.as_list()}.")
  k_core = kernel.shape[-core:].as_list()
  x_shape = _shapes.static_or_dynamic_shape(x)
  x_core = x_shape[-core:]
  n_lead = len(bs)

  def finish(y, lead):
    y_core = _shapes.static_or_dynamic_shape(y)[1:]
    return tf.reshape(y, [1] * (n_lead - len(lead)) + list(lead) + y_core)

  if _shapes.num_elements(s_batch) == 1:
    y = single(tf.reshape(x, [-1] + x_core[1:]), tf.reshape(kernel, k_core))
    y_core = _shapes.static_or_dynamic_shape(y)[1:]
    return tf.reshape(y, [1] * (n_lead - len(x_batch)) + x_batch + x_core[:1] +
                      y_core)

  if _shapes.num_elements(x_batch) == 1:
    p = _shapes.num_elements(s_batch)
    k = tf.reshape(kernel, [p] + k_core)
    # [P, *size, a, b] -> [*size, a, b] with P folded next to the output axis.
    ax = core + out_axis  # position of the output axis within the core (0-based)
    perm = list(range(1, ax + 1)) + [0] + list(range(ax + 1, core + 1))
    k = tf.transpose(k, perm)
    stacked = list(k_core)
    stacked[ax] = p * k_core[ax]
    y = single(tf.reshape(x, x_core), tf.reshape(k, stacked))
    y_shape = _shapes.static_or_dynamic_shape(y)
    y = tf.reshape(y, y_shape[:-1] + [p, k_core[ax]])
    perm = [rank + 1] + list(range(rank + 1)) + [rank + 2]
    y = tf.transpose(y, perm)  # [P, N, *spatial', out]
    return tf.reshape(y, [1] * (n_lead - len(s_batch)) + s_batch +
                      _shapes.static_or_dynamic_shape(y)[1:])

  p = _shapes.num_elements(bs)
  xs = tf.reshape(tf.broadcast_to(x, list(bs) + x_core), [p] + x_core)
  ks = tf.reshape(tf.broadcast_to(kernel, list(bs) + k_core), [p] + k_core)
  if _per_sample_impl(impl, rank, out_axis == -2, x.dtype) == "grouped":
    y = _grouped(xs, ks, rank, single)
  else:
    y = tf.stack([single(xs[i], ks[i]) for i in range(p)], axis=0)
  return tf.reshape(y, list(bs) + _shapes.static_or_dynamic_shape(y)[1:])


def _grouped(xs: tf.Tensor, ks: tf.Tensor, rank: int, single) -> tf.Tensor:
  """Per-sample convolution as one grouped convolution (samples in channels)."""
  p = xs.shape[0]
  x_shape = _shapes.static_or_dynamic_shape(xs)
  c = x_shape[-1]
  # [P, N, *sp, C] -> [N, *sp, P*C]
  perm = list(range(1, rank + 2)) + [0, rank + 2]
  x = tf.reshape(tf.transpose(xs, perm), x_shape[1:-1] + [p * c])
  k_core = ks.shape[1:].as_list()
  # [P, *size, C, O] -> [*size, C, P*O]: group g owns output block g.
  perm = list(range(1, rank + 2)) + [0, rank + 2]
  k = tf.reshape(tf.transpose(ks, perm), k_core[:-1] + [p * k_core[-1]])
  y = single(x, k)  # [N, *sp', P*O]
  y_shape = _shapes.static_or_dynamic_shape(y)
  y = tf.reshape(y, y_shape[:-1] + [p, k_core[-1]])
  return tf.transpose(y, [rank + 1] + list(range(rank + 1)) + [rank + 2])


def _patches_conv(x: tf.Tensor, kernel: tf.Tensor, rank: int, strides,
                  padding: str, dilations) -> tf.Tensor:
  """Convolution as im2col + one broadcasting batched matmul.

  Args:
    x: `[*B, N, *spatial, C]` with static spatial dims; padding "VALID"/"SAME".
    kernel: `[*S, *size, C, O]`.

  Returns:
    `[*broadcast(B, S), N, *spatial', O]`.
  """
  core = rank + 2
  size = kernel.shape[-core:-2].as_list()
  c, o = kernel.shape[-2], kernel.shape[-1]
  spatial = x.shape[-rank - 1:-1].as_list()
  if padding == "SAME":
    pads = []
    for n, k, st, d in zip(spatial, size, strides, dilations):
      out = -(-n // st)
      total = max((out - 1) * st + (k - 1) * d + 1 - n, 0)
      pads.append([total // 2, total - total // 2])
    x = tf.pad(x, [[0, 0]] * (x.shape.rank - rank - 1) + pads + [[0, 0]])
    spatial = x.shape[-rank - 1:-1].as_list()
  outs = [_shapes.conv_output_length(n, k, st, d, "VALID")
          for n, k, st, d in zip(spatial, size, strides, dilations)]
  lead = _shapes.static_or_dynamic_shape(x)[:-core + 1]  # [*B, N]
  cols = []
  for offset in np.ndindex(*size):
    index = [slice(None)] * (x.shape.rank - rank - 1)
    for off, out, st, d in zip(offset, outs, strides, dilations):
      index.append(slice(off * d, off * d + (out - 1) * st + 1, st))
    cols.append(x[tuple(index)])
  k_prod = int(np.prod(size))
  cols = tf.stack(cols, axis=-2)  # [*B, N, *outs, K, C]
  cols = tf.reshape(cols, lead[:-1] + [lead[-1] * int(np.prod(outs)),
                                       k_prod * c])
  k = tf.reshape(kernel, _shapes.static_or_dynamic_shape(kernel)[:-core] +
                 [k_prod * c, o])
  y = tf.linalg.matmul(cols, k)
  y_lead = _shapes.static_or_dynamic_shape(y)[:-2]
  return tf.reshape(y, y_lead + [lead[-1]] + outs + [o])


def _check_channels(x: tf.Tensor, expected: int, rank: int, data_format: str,
                    layer: str) -> None:
  axis = -1 if data_format == "channels_last" else -(rank + 1)
  got = x.shape[axis]
  if got is not None and expected is not None and got != expected:
    raise ValueError(f"{layer} got input with {got} channels (input shape "
                     f"{x.shape.as_list()}, {data_format}); expected "
                     f"{expected}.")


def _check_spatial(x: tf.Tensor, size: Sequence[int], dilations, padding,
                   rank: int, layer: str) -> None:
  if padding != "VALID":
    return
  spatial = x.shape[-rank - 1:-1]
  for n, k, d in zip(spatial, size, dilations):
    if n is not None and n < (k - 1) * d + 1:
      raise ValueError(f"{layer} with padding='valid' needs spatial dims >= "
                       f"the dilated kernel size "
                       f"{[(k - 1) * d + 1 for k, d in zip(size, dilations)]}; "
                       f"got input spatial shape {spatial.as_list()}.")


def _add_bias(y: tf.Tensor, bias: Optional[tf.Tensor], rank: int) -> tf.Tensor:
  if bias is None:
    return y
  return y + tf.reshape(bias, _shapes.static_or_dynamic_shape(bias)[:-1] +
                        [1] * (rank + 1) + [bias.shape[-1]])


def conv(x, kernel: tf.Tensor, bias: Optional[tf.Tensor] = None, *,
         rank: int, strides: Sequence[int], padding: str,
         dilations: Sequence[int], data_format: str = "channels_last",
         impl: str = "auto", layer: str = "Conv") -> tf.Tensor:
  """Convolution of any rank with sampled kernels and biases.

  Args:
    x: `[*B, N, *spatial, C]` (channels_last) or `[*B, N, C, *spatial]`.
    kernel: `[*S, *size, C, out]`.
    bias: `[*S, out]` or None.
    rank: Number of spatial dims (1, 2 or 3).
    strides: `rank` ints.
    padding: "VALID", "SAME" or (rank 1) "CAUSAL".
    dilations: `rank` ints.
    data_format: "channels_last" or "channels_first".
    impl: "auto" (see the module docstring), or force "unrolled",
      "grouped" or "patches".
    layer: Layer description for error messages.

  Returns:
    `[*broadcast(B, S), N, *spatial', out]` (channels in the input's place).

  Raises:
    ValueError: For a bad input rank, channel count, spatial size or batch.
    TypeError: For a non-floating input.

  #### Example

  ```python
  y = conv(tf.ones([2, 8, 8, 3]), tf.ones([5, 3, 3, 3, 4]), rank=2,
           strides=(1, 1), padding="SAME", dilations=(1, 1))  # [5, 2, 8, 8, 4]
  ```
  """
  core = rank + 2
  x = _shapes.check_input(x, kernel.dtype, layer, core,
                          _core_desc(rank, data_format))
  _check_channels(x, kernel.shape[-2], rank, data_format, layer)
  if data_format == "channels_first":
    x = _to_channels_last(x, rank)
  size = kernel.shape[-core:-2].as_list()
  if padding == "CAUSAL":
    left = (size[0] - 1) * dilations[0]
    pads = [[0, 0]] * (x.shape.rank - 2) + [[left, 0], [0, 0]]
    x = tf.pad(x, pads)
    padding = "VALID"
  _check_spatial(x, size, dilations, padding, rank, layer)

  fmt = _NN_FORMAT[rank]

  def single(xi, ki):
    # An explicit data_format: TF 2.21's eager Conv3D gradient needs it.
    return tf.nn.convolution(xi, ki, strides=list(strides), padding=padding,
                             dilations=list(dilations), data_format=fmt)

  use_patches = impl == "patches" or (impl == "auto" and _in_xla_context())
  if use_patches and None not in x.shape[-rank - 1:-1].as_list():
    _shapes.broadcast_batch_shape(x.shape[:-core], kernel.shape[:-core],
                                  layer, x.shape, kernel.shape)
    y = _patches_conv(x, kernel, rank, strides, padding, dilations)
  else:
    y = _apply_sampled(x, kernel, rank, -1, single,
                       "auto" if impl == "patches" else impl, layer)
  y = _add_bias(y, bias, rank)
  return _to_channels_first(y, rank) if data_format == "channels_first" else y


def conv_transpose(x, kernel: tf.Tensor, bias: Optional[tf.Tensor] = None, *,
                   rank: int, strides: Sequence[int], padding: str,
                   dilations: Sequence[int],
                   output_padding: Optional[Sequence[int]] = None,
                   data_format: str = "channels_last", impl: str = "auto",
                   layer: str = "ConvTranspose") -> tf.Tensor:
  """Transposed convolution of any rank with sampled kernels and biases.

  Output lengths follow Keras' `Conv*DTranspose` (see
  `conv_transpose_output_length`).

  Args:
    x: `[*B, N, *spatial, C]` (channels_last) or `[*B, N, C, *spatial]`.
    kernel: `[*S, *size, out, C]` (the `tf.nn.conv_transpose` layout).
    bias: `[*S, out]` or None.
    rank: Number of spatial dims (1, 2 or 3).
    strides: `rank` ints.
    padding: "VALID" or "SAME".
    dilations: `rank` ints.
    output_padding: `rank` ints or None.
    data_format: "channels_last" or "channels_first".
    impl: "auto"/"unrolled" (the only formulation of this op).
    layer: Layer description for error messages.

  Returns:
    `[*broadcast(B, S), N, *spatial', out]` (channels in the input's place).

  Raises:
    ValueError: For a bad input rank, channel count or batch.
    TypeError: For a non-floating input.

  #### Example

  ```python
  y = conv_transpose(tf.ones([2, 4, 4, 3]), tf.ones([3, 3, 6, 3]), rank=2,
                     strides=(2, 2), padding="SAME", dilations=(1, 1))
  # [2, 8, 8, 6]
  ```
  """
  core = rank + 2
  x = _shapes.check_input(x, kernel.dtype, layer, core,
                          _core_desc(rank, data_format))
  _check_channels(x, kernel.shape[-1], rank, data_format, layer)
  if data_format == "channels_first":
    x = _to_channels_last(x, rank)
  size = kernel.shape[-core:-2].as_list()
  op = output_padding if output_padding is not None else [None] * rank
  spatial = _shapes.static_or_dynamic_shape(x)[-rank - 1:-1]
  # Works on Python ints and on scalar tensors (unknown lengths) alike.
  out_spatial = [
      _shapes.conv_transpose_output_length(spatial[i], size[i], strides[i],
                                           dilations[i], padding, op[i])
      for i in range(rank)]
  if max(dilations) > 1 and not _native_dilated_transpose(kernel.dtype):
    kernel = _dilate_kernel(kernel, rank, dilations)
    dilations = [1] * rank

  def single(xi, ki):
    n = _shapes.static_or_dynamic_shape(xi)[0]
    return tf.nn.conv_transpose(xi, ki, [n] + out_spatial + [ki.shape[-2]],
                                strides=list(strides), padding=padding,
                                dilations=list(dilations),
                                data_format=_NN_FORMAT[rank])

  y = _apply_sampled(x, kernel, rank, -2, single, "unrolled", layer)
  y = _add_bias(y, bias, rank)
  return _to_channels_first(y, rank) if data_format == "channels_first" else y


def _dilate_kernel(kernel: tf.Tensor, rank: int, dilations) -> tf.Tensor:
  """Writes `d - 1` zeros between the taps of `[*S, *size, a, b]` kernels."""
  first = kernel.shape.rank - rank - 2
  for i, d in enumerate(dilations):
    if d == 1:
      continue
    axis = first + i
    k = kernel.shape[axis]
    kernel = tf.expand_dims(kernel, axis + 1)
    pads = [[0, 0]] * kernel.shape.rank
    pads[axis + 1] = [0, d - 1]
    kernel = tf.pad(kernel, pads)
    shape = _shapes.static_or_dynamic_shape(kernel)
    kernel = tf.reshape(kernel, shape[:axis] + [k * d] + shape[axis + 2:])
    kernel = tf.gather(kernel, tf.range((k - 1) * d + 1), axis=axis)
  return kernel


def _core_desc(rank: int, data_format: str) -> str:
  sp = ", ".join(["w"] if rank == 1 else (["h", "w"] if rank == 2 else
                                          ["d", "h", "w"]))
  if data_format == "channels_last":
    return f"[..., N, {sp}, in_channels]"
  return f"[..., N, in_channels, {sp}]"
