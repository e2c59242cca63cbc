"""Batched normalisation ops: layer norm and filter response norm.

Both are functions of the input and the (sampled) weights only: no running
statistics, so a sampled network is a function and a posterior over
networks is a posterior over functions. `S` sampled parameter sets
`[*S, features]` apply by broadcasting: they are reshaped to
`[*S, 1, ..., 1, features]` so that their sample dims line up with the
input's leading dims left of its core (DESIGN.md section 2).
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf

from jdlayers.ops import _shapes


def _expand(p: tf.Tensor, core_rank: int, axis: int) -> tf.Tensor:
  """`[*S, F]` -> `[*S, <core_rank dims, F on axis, 1 elsewhere>]`."""
  shape = tf.shape(p)
  ones = [1] * core_rank
  ones[axis] = -1
  return tf.reshape(p, tf.concat([shape[:-1], tf.constant(ones)], 0))


def _check(x, params, features: int, axis: int, core_rank: int,
           core_desc: str, layer: str) -> tf.Tensor:
  """Input checks shared by both ops: dtype, rank, size on `axis`, and the
  leading dims against the parameters' sample dims."""
  ref = next(p for p in params if p is not None)
  x = _shapes.check_input(x, ref.dtype, layer, core_rank, core_desc)
  if x.shape.rank is None:
    return x
  size = x.shape[axis]
  if size is not None and size != features:
    raise ValueError(f"{layer} got input with {size} features on axis {axis} "
                     f"(input shape {x.shape.as_list()}); expected "
                     f"{features}.")
  for p in params:
    if p is not None and p.shape.rank is not None:
      _shapes.broadcast_batch_shape(x.shape[:-core_rank], p.shape[:-1], layer,
                                    x.shape, p.shape)
  return x


def layer_norm(x, gamma: Optional[tf.Tensor], beta: Optional[tf.Tensor], *,
               features: int, epsilon: float, rank: int = 0,
               layer: str = "LayerNorm") -> tf.Tensor:
  """Normalises over the last axis, then scales and shifts, as Keras 3.

  Computes `keras.layers.LayerNormalization`'s function (TensorFlow
  backend): `mean, var = tf.nn.moments(x, [-1])` (the biased variance),
  `y = (x - mean) / sqrt(var + epsilon) * gamma + beta`. The input is
  normalised once, at its own shape, before the `S` sampled scales and
  offsets broadcast it: Keras' `x * inv + (beta - mean * inv)` would build
  three full `[*S, N, ...]` tensors (measured 1.6-1.9x slower at 8-32
  samples, benchmarks/layers_seq.py); the two agree to rounding.

  Args:
    x: `[*B, N, *inner, features]` with `len(inner) == rank`.
    gamma: `[*S, features]` scale, or None (no scale).
    beta: `[*S, features]` offset, or None (no offset).
    features: Size of the last axis.
    epsilon: Added to the variance.
    rank: Number of `inner` axes between `N` and the features (0 for
      `[N, F]`, 1 for sequences `[N, T, F]`); it lines `S` up with `B`.
    layer: Layer description for messages.

  Returns:
    `[*broadcast(B, S), N, *inner, features]`.

  Raises:
    TypeError: For a non-floating input or another float dtype.
    ValueError: For rank < `rank + 2`, a last axis other than `features`,
      or `B` and `S` that do not broadcast.

  #### Example

  ```python
  import tensorflow as tf
  from jdlayers import ops
  ops.layer_norm(tf.ones([5, 3]), tf.ones([4, 3]), None, features=3,
                 epsilon=1e-3).shape  # [4, 5, 3]
  ```
  """
  core = rank + 2
  ref = gamma if gamma is not None else beta
  if ref is None:
    raise ValueError(f"{layer}: layer_norm needs `gamma` or `beta`.")
  x = _check(x, (gamma, beta), features, -1, core,
             f"[..., N, {'*inner, ' * bool(rank)}features]", layer)
  mean, var = tf.nn.moments(x, axes=[-1], keepdims=True)
  y = (x - mean) * tf.math.rsqrt(var + tf.constant(epsilon, x.dtype))
  if gamma is not None:
    y = y * _expand(gamma, core, -1)
  if beta is not None:
    y = y + _expand(beta, core, -1)
  return y


def filter_response_norm(x, gamma: tf.Tensor, beta: tf.Tensor,
                         tau: Optional[tf.Tensor], *, channels: int,
                         rank: int, epsilon: float,
                         data_format: str = "channels_last",
                         layer: str = "FilterResponseNorm") -> tf.Tensor:
  """Filter response normalisation with a thresholded linear unit.

  Singh & Krishnan (2019): `nu2 = mean_spatial(x^2)` per example and
  channel, `y = gamma * x / sqrt(nu2 + epsilon) + beta`, then the TLU
  `max(y, tau)`.

  Args:
    x: `[*B, N, *spatial, C]` (channels_last) or `[*B, N, C, *spatial]`
      (channels_first), `len(spatial) == rank`.
    gamma: `[*S, C]` scale.
    beta: `[*S, C]` offset.
    tau: `[*S, C]` TLU threshold, or None for no TLU.
    channels: `C`.
    rank: Number of spatial axes (1, 2 or 3).
    epsilon: Added to `nu2`.
    data_format: "channels_last" or "channels_first".
    layer: Layer description for messages.

  Returns:
    The same shape as `x` with `B` broadcast against `S`.

  Raises:
    TypeError: For a non-floating input or another float dtype.
    ValueError: For rank < `rank + 2`, a channel size other than
      `channels`, or `B` and `S` that do not broadcast.

  #### Example

  ```python
  import tensorflow as tf
  from jdlayers import ops
  p = tf.ones([4, 3])
  ops.filter_response_norm(tf.ones([5, 8, 8, 3]), p, p, p, channels=3,
                           rank=2, epsilon=1e-6).shape  # [4, 5, 8, 8, 3]
  ```
  """
  core = rank + 2
  last = data_format == "channels_last"
  axis = -1 if last else -(rank + 1)
  spatial = "*spatial"
  desc = (f"[..., N, {spatial}, C]" if last else f"[..., N, C, {spatial}]")
  x = _check(x, (gamma, beta, tau), channels, axis, core,
             desc.replace(spatial, f"<{rank} spatial dims>"), layer)
  axes = list(range(-rank - 1, -1)) if last else list(range(-rank, 0))
  nu2 = tf.reduce_mean(tf.square(x), axis=axes, keepdims=True)
  y = x * tf.math.rsqrt(nu2 + tf.constant(epsilon, x.dtype))
  y = _expand(gamma, core, axis) * y + _expand(beta, core, axis)
  if tau is not None:
    y = tf.maximum(y, _expand(tau, core, axis))
  return y
