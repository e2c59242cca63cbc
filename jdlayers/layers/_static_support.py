"""TFP plumbing for parameter-free layers: a sample shape with no tensor.

A sampled `Lambda`, `Flatten` or pooling layer has no `tf.nest` leaves; its
sample shape `S` rides in the value's nest metadata (so `log_prob` can return
`zeros(S)`, as the TFP anchor's dummy `[*S, 0]` tensor gives). Two places in
TFP would drop that metadata, and this module covers both:

- The event-space bijector: `tfb.Identity` converts its input to a tensor;
  `StaticIdentity` passes the value through as it is.
- `JointDistribution`s rebuild each part of a value given to `log_prob` from
  the part's `dtype` (TFP's `_sanitize_value`), which carries no sample
  shape. A distribution offering `_get_single_sample_distributions`,
  `_model_flatten` and `_model_unflatten` is rebuilt through those instead;
  `SHAPE_PART` is the one "component" a parameter-free layer reports there,
  so its sample shape passes as a constant int32 vector and comes back intact.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from jdlayers import _validate

tfb = tfp.bijectors


class _ShapePart:
  """Stands for a sample shape in TFP's `_sanitize_value` (reads `dtype`)."""
  dtype = tf.int32


SHAPE_PART = _ShapePart()


def static_sample_shape(sample_shape, owner: str) -> Tuple[int, ...]:
  """`sample_shape` as a tuple of Python ints; it must be known statically.

  Raises:
    ValueError: For a shape not known at trace time, or a negative size.
    TypeError: For a float, bool or string size (as every layer's `sample`).
  """
  _validate.sample_shape(sample_shape, f"{owner}.sample")
  if isinstance(sample_shape, tf.TensorShape):
    sample_shape = sample_shape.as_list()
  static = tf.get_static_value(sample_shape) if tf.is_tensor(
      sample_shape) else sample_shape
  if static is None:
    raise ValueError(f"{owner}.sample: `sample_shape` must be known when "
                     f"tracing (a parameter-free layer records it statically); "
                     f"got the symbolic tensor {sample_shape!r}.")
  try:
    dims = tuple(int(d) for d in np.reshape(np.asarray(static), [-1]))
  except (TypeError, ValueError):
    raise ValueError(f"{owner}.sample: `sample_shape` must be an int or a "
                     f"sequence of ints; got {sample_shape!r}.") from None
  if any(d < 0 for d in dims):
    raise ValueError(f"{owner}.sample: `sample_shape` must not be negative; "
                     f"got {list(dims)}.")
  return dims


class StaticIdentity(tfb.Bijector):
  """The event-space bijector of a parameter-free layer: the identity on its
  leafless samples (their sample shape kept), with log-det-Jacobian 0."""

  def __init__(self, name: str = "static_identity"):
    super().__init__(forward_min_event_ndims=0, is_constant_jacobian=True,
                     validate_args=False, parameters=dict(name=name),
                     name=name)

  def forward(self, x, name="forward", **kwargs):
    del name, kwargs
    return x

  def inverse(self, y, name="inverse", **kwargs):
    del name, kwargs
    return y

  def forward_log_det_jacobian(self, x, event_ndims=None,
                               name="forward_log_det_jacobian", **kwargs):
    del x, event_ndims, name, kwargs
    return tf.zeros([])

  def inverse_log_det_jacobian(self, y, event_ndims=None,
                               name="inverse_log_det_jacobian", **kwargs):
    del y, event_ndims, name, kwargs
    return tf.zeros([])

  # Shapes, ranks and dtypes of a leafless structure pass through unchanged.
  def forward_event_ndims(self, event_ndims, **kwargs):
    return event_ndims

  def inverse_event_ndims(self, event_ndims, **kwargs):
    return event_ndims

  def forward_event_shape(self, input_shape):
    return input_shape

  def inverse_event_shape(self, output_shape):
    return output_shape

  def forward_event_shape_tensor(self, input_shape,
                                 name="forward_event_shape_tensor"):
    return input_shape

  def inverse_event_shape_tensor(self, output_shape,
                                 name="inverse_event_shape_tensor"):
    return output_shape

  def forward_dtype(self, dtype=None, name="forward_dtype", **kwargs):
    return dtype

  def inverse_dtype(self, dtype=None, name="inverse_dtype", **kwargs):
    return dtype
