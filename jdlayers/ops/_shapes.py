"""Output-shape formulas and input checks shared by every op.

The shape rule (DESIGN.md section 2): an input is `[*B, *core]`; its leading
dims `B` broadcast (numpy rules) against the parameters' sample shape `S`.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf


def conv_output_length(n: Optional[int], k: int, s: int, d: int,
                       padding: str) -> Optional[int]:
  """Length of one spatial axis after a convolution (as `tf.nn.convolution`).

  Args:
    n: Input length (None if unknown).
    k: Kernel size.
    s: Stride.
    d: Dilation.
    padding: "VALID", "SAME" or "CAUSAL".

  Returns:
    The output length, or None when `n` is None.
  """
  if n is None:
    return None
  dk = (k - 1) * d + 1
  if padding == "VALID":
    return max(n - dk, -1) // s + 1
  return -(-n // s)  # SAME and CAUSAL: ceil(n / s)


def conv_transpose_output_length(n: Optional[int], k: int, s: int, d: int,
                                 padding: str,
                                 output_padding: Optional[int]) -> Optional[int]:
  """Length of one spatial axis after a transposed convolution (as Keras).

  Args:
    n: Input length (None if unknown).
    k: Kernel size.
    s: Stride.
    d: Dilation.
    padding: "VALID" or "SAME".
    output_padding: Extra length on one side, or None for Keras' default.

  Returns:
    The output length, or None when `n` is None.
  """
  if n is None:
    return None
  dk = (k - 1) * d + 1
  if output_padding is None:
    if padding == "VALID":
      return n * s + max(dk - s, 0)
    return n * s
  pad = dk // 2 if padding == "SAME" else 0
  return (n - 1) * s + dk - 2 * pad + output_padding


def broadcast_batch_shape(x_batch: Sequence, s_batch: Sequence,
                          layer: str, x_shape, s_shape) -> Tuple:
  """Broadcasts static leading dims, raising a clear error when they clash.

  Unknown (None) dims are treated as broadcastable; the result then holds None.
  """
  xb, sb = list(x_batch), list(s_batch)
  n = max(len(xb), len(sb))
  xb = [1] * (n - len(xb)) + xb
  sb = [1] * (n - len(sb)) + sb
  out = []
  for a, b in zip(xb, sb):
    if a is None or b is None:
      out.append(None if (a in (None, 1) or b in (None, 1)) else max(a, b))
    elif a == b or b == 1:
      out.append(a)
    elif a == 1:
      out.append(b)
    else:
      raise ValueError(
          f"{layer}: the input's leading dims {list(x_batch)} (input shape "
          f"{list(x_shape)}) do not broadcast with the layer's sample shape "
          f"{list(s_batch)} (parameter shape {list(s_shape)}).")
  return tuple(out)


def check_input(x: tf.Tensor, dtype: tf.DType, layer: str, core_rank: int,
                core_desc: str) -> tf.Tensor:
  """Converts `x` to a tensor of `dtype` and checks its rank.

  Args:
    x: The input, array-like or tensor.
    dtype: The layer's floating dtype.
    layer: Layer description for messages, e.g. "Conv2D(in_channels=3)".
    core_rank: Rank of the layer's input core, e.g. 4 for `[N, h, w, c]`.
    core_desc: Human description of the core, e.g. "[..., N, h, w, c]".

  Returns:
    `x` as a tensor of `dtype`.

  Raises:
    TypeError: For integer/bool/complex inputs or a float tensor of another
      float dtype.
    ValueError: For an input of rank below `core_rank`.
  """
  if isinstance(x, (tf.Tensor, tf.Variable)) or hasattr(x, "dtype"):
    x_dtype = tf.as_dtype(x.dtype)
    if not x_dtype.is_floating:
      raise TypeError(f"{layer} got an input of dtype {x_dtype.name}; expected "
                      f"a floating input ({dtype.name}). Cast it first, e.g. "
                      f"tf.cast(x, tf.{dtype.name}).")
    if isinstance(x, (tf.Tensor, tf.Variable)) and x_dtype != dtype:
      raise TypeError(f"{layer} has dtype {dtype.name} but got an input of "
                      f"dtype {x_dtype.name}.")
  x = tf.convert_to_tensor(x, dtype=dtype)
  if x.shape.rank is not None and x.shape.rank < core_rank:
    raise ValueError(f"{layer} expects an input of rank >= {core_rank} "
                     f"({core_desc}); got shape {x.shape.as_list()}.")
  return x


def static_or_dynamic_shape(x: tf.Tensor):
  """Shape of `x` as a list of Python ints where static, scalars elsewhere."""
  static = x.shape.as_list()
  if None not in static:
    return static
  dynamic = tf.shape(x)
  return [d if d is not None else dynamic[i] for i, d in enumerate(static)]


def num_elements(dims) -> int:
  """Product of a static shape (1 for an empty shape)."""
  return int(np.prod(dims, dtype=np.int64)) if len(dims) else 1
