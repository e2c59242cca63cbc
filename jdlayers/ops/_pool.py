"""Pooling over the spatial dims of `[*B, N, *spatial, C]` inputs."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from jdlayers.ops import _conv, _shapes


def pool(x: tf.Tensor, *, rank: int, pool_size: Sequence[int],
         strides: Sequence[int], padding: str, mode: str,
         data_format: str = "channels_last", layer: str = "Pool") -> tf.Tensor:
  """Max or average pooling; leading (sample) dims are folded into the batch.

  Args:
    x: `[*B, N, *spatial, C]` (channels_last) or `[*B, N, C, *spatial]`.
    rank: Number of spatial dims.
    pool_size: `rank` ints.
    strides: `rank` ints.
    padding: "VALID" or "SAME".
    mode: "MAX" or "AVG".
    data_format: "channels_last" or "channels_first".
    layer: Layer description for error messages.

  Returns:
    `[*B, N, *spatial', C]` (channels in the input's place).

  #### Example

  ```python
  y = pool(tf.ones([3, 2, 8, 8, 4]), rank=2, pool_size=(2, 2),
           strides=(2, 2), padding="VALID", mode="MAX")  # [3, 2, 4, 4, 4]
  ```
  """
  x = tf.convert_to_tensor(x)
  core = rank + 2
  x = _shapes.check_input(x, x.dtype, layer, core,
                          _conv._core_desc(rank, data_format))
  if rank == 3 and x.dtype != tf.float32 and not tf.config.list_logical_devices(
      "GPU"):
    raise TypeError(f"{layer}: TensorFlow has no {x.dtype.name} 3-D pooling "
                    "kernel on CPU; cast the input to float32.")
  if data_format == "channels_first":
    x = _conv._to_channels_last(x, rank)
  _conv._check_spatial(x, pool_size, [1] * rank, padding, rank, layer)
  shape = _shapes.static_or_dynamic_shape(x)
  # tf.nn.max_pool/avg_pool (as Keras), not tf.nn.pool: the latter rejects
  # strides larger than the window with padding "SAME".
  pool_fn = tf.nn.max_pool if mode == "MAX" else tf.nn.avg_pool
  y = pool_fn(tf.reshape(x, [-1] + shape[-core + 1:]), list(pool_size),
              list(strides), padding)
  y = tf.reshape(y, shape[:-core + 1] + _shapes.static_or_dynamic_shape(y)[1:])
  return _conv._to_channels_first(y, rank) if data_format == "channels_first" \
      else y
