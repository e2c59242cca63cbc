"""A layer's kernel and bias as one matrix `[out, cols (+1)]`, and its patches.

KFAC sees every supported layer as a dense map on patches: a pre-activation
at position `t` is `M @ [patch_t; 1]` with `M = [kernel matrix | bias]`.

* dense `weights [out, in]`: the matrix is the weights; the patch is `x`.
* conv `kernel [*size, in, out]`: the matrix is `reshape(kernel, [cols,
  out])^T` with `cols = prod(size) * in`.
* transposed conv `kernel [*size, out, in]`: the same after swapping its
  last two axes.

Patches come from the layer itself, applied with an identity kernel (one
output channel per kernel entry): the same strides, padding, dilations,
data format and output padding as the layer, for every rank, with no
hand-written im2col to keep in sync.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List

import tensorflow as tf

from jdlayers.inference.laplace._select import Block
from jdlayers.layers.affine import AffineLayer
from jdlayers.layers.conv import ConvLayer


def _swap_last(t):
  r = t.shape.rank
  return tf.transpose(t, list(range(r - 2)) + [r - 1, r - 2])


def kernel_to_matrix(layer, kernel) -> tf.Tensor:
  """`[*B, *kernel shape]` -> `[*B, out, cols]`."""
  kernel = tf.convert_to_tensor(kernel)
  if isinstance(layer, AffineLayer):
    return kernel
  lead = kernel.shape.rank - (layer.config.rank + 2)
  if not isinstance(layer, ConvLayer):
    kernel = _swap_last(kernel)  # [*size, out, in] -> [*size, in, out]
  shape = tf.shape(kernel)
  flat = tf.reshape(kernel, tf.concat([shape[:lead], [-1], shape[-1:]], 0))
  return _swap_last(flat)


def matrix_to_kernel(layer, matrix, kernel_shape) -> tf.Tensor:
  """Inverse of `kernel_to_matrix`: `[*B, out, cols]` -> `[*B, *shape]`."""
  matrix = tf.convert_to_tensor(matrix)
  if isinstance(layer, AffineLayer):
    return matrix
  lead = tf.shape(matrix)[:-2]
  shape = list(kernel_shape)
  if not isinstance(layer, ConvLayer):
    shape[-2], shape[-1] = shape[-1], shape[-2]
  kernel = tf.reshape(_swap_last(matrix), tf.concat([lead, shape], 0))
  return kernel if isinstance(layer, ConvLayer) else _swap_last(kernel)


def block_to_matrix(block: Block, parts: List[tf.Tensor]) -> tf.Tensor:
  """The block's chosen parts (each `[*B, *shape]`) -> `[*B, out, width]`."""
  cols = []
  if block.kernel is not None:
    cols.append(kernel_to_matrix(block.layer, parts[block.kernel]))
  if block.bias is not None:
    cols.append(parts[block.bias][..., None])
  return tf.concat(cols, -1) if len(cols) > 1 else cols[0]


def matrix_to_block(block: Block, matrix, shapes) -> Dict[int, tf.Tensor]:
  """`[*B, out, width]` -> {selection index: `[*B, *shape]`}."""
  out = {}
  if block.kernel is not None:
    out[block.kernel] = matrix_to_kernel(
        block.layer, matrix[..., :block.cols], shapes[block.kernel])
  if block.bias is not None:
    out[block.bias] = matrix[..., -1]
  return out


def linear(layer):
  """The layer without its activation (its pre-activation map)."""
  return type(layer)(layer.params, dataclasses.replace(layer.config,
                                                       activation=None))


def to_positions(y, layer) -> tf.Tensor:
  """A layer output `[N, *spatial, C]` (or channels first) -> `[N, T, C]`."""
  if isinstance(layer, AffineLayer):
    return tf.reshape(y, [tf.shape(y)[0], -1, tf.shape(y)[-1]])
  if layer.config.data_format == "channels_first":
    r = y.shape.rank
    y = tf.transpose(y, [0] + list(range(2, r)) + [1])
  return tf.reshape(y, [tf.shape(y)[0], -1, tf.shape(y)[-1]])


def patches(layer, x) -> tf.Tensor:
  """The inputs each pre-activation sees: `[N, T, cols]` (kernel order)."""
  if isinstance(layer, AffineLayer):
    return to_positions(x, layer)
  kernel = layer.params["kernel"]
  size = [int(d) for d in kernel.shape[:layer.config.rank]]
  if isinstance(layer, ConvLayer):
    c_in = int(kernel.shape[-2])
    cols = c_in
    for s in size:
      cols *= s
    eye = tf.reshape(tf.eye(cols, dtype=kernel.dtype), size + [c_in, cols])
  else:
    c_in = int(kernel.shape[-1])
    cols = c_in
    for s in size:
      cols *= s
    eye = _swap_last(tf.reshape(tf.eye(cols, dtype=kernel.dtype),
                                size + [c_in, cols]))
  probe = type(layer)({"kernel": eye},
                      dataclasses.replace(layer.config, activation=None))
  return to_positions(probe(x), layer)
