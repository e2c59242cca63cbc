"""`Affine` (alias `Dense`): a distribution over `y = x @ weights^T + bias`."""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Optional, Union

import tensorflow as tf

from jdlayers import _registry
from jdlayers import ops
from jdlayers import priors as priors_lib
from jdlayers.layers import _base


@dataclasses.dataclass(frozen=True)
class AffineConfig:
  """Static configuration of an affine layer."""
  desc: str
  activation: Optional[Callable] = None


class AffineLayer(_base.SampledLayer):
  """A sampled affine layer: `activation(x @ weights^T + bias)`.

  Parameters: `weights` `[*S, out_units, in_units]`, `bias` `[*S, out_units]`
  (absent without bias), plus any extra latents of the prior.
  """

  __slots__ = ()

  def __call__(self, x):
    """Applies the layer.

    Args:
      x: `[*B, N, in_units]`; `B` broadcasts against the sample shape `S`.

    Returns:
      `[*broadcast(B, S), N, out_units]`.
    """
    y = ops.dense(x, self._params["weights"], self._params.get("bias"),
                  layer=self._config.desc)
    act = self._config.activation
    return y if act is None else act(y)


@_registry.register_class("Affine")
class Affine(_base.LayerDistribution):
  """Distribution over affine layers `y = activation(x @ weights^T + bias)`.

  A drop-in superset of `tfp.experimental.joint_distribution_layers.Affine`:
  the same positional arguments, `weights` of shape `[out_units, in_units]`,
  and the same default prior (`Normal(0, 1)` on weights and bias).

  Args:
    out_units: Number of output units.
    in_units: Number of input units.
    dtype: float32 or float64.
    params_model_fn: Optional `(out_units, in_units, dtype) -> model` as in
      the anchor; it must yield `weights` and may yield `bias` and extra
      latents. Overrides `prior`.
    name: Name of the distribution.
    use_bias: Whether the default/`prior` model has a bias.
    activation: A callable or a name such as "relu"; None is the identity.
    prior: A `jdlayers.priors.Prior` (default `priors.normal(1.0)`).
    validate_args: Passed to `JointDistributionCoroutine`.

  Raises:
    ValueError: For non-positive sizes, an unknown activation name, or a
      prior without `weights`.

  #### Example

  ```python
  import jdlayers as jdl, tensorflow as tf
  f = jdl.Affine(3, 2, activation="tanh").sample(8, seed=0)
  f(tf.ones([5, 2])).shape  # [8, 5, 3]
  ```
  """

  _value_type = AffineLayer

  def __init__(self, out_units: int, in_units: int, dtype=tf.float32,
               params_model_fn: Optional[Callable] = None,
               name: str = "Affine", *, use_bias: bool = True,
               activation: Union[str, Callable, None] = None,
               prior: Optional[priors_lib.Prior] = None,
               validate_args: bool = False):
    parameters = dict(locals())
    cls = type(self).__name__
    out_units = ops.positive_int(out_units, "out_units", cls)
    in_units = ops.positive_int(in_units, "in_units", cls)
    desc = f"{cls}(out_units={out_units}, in_units={in_units})"
    dtype = _float_dtype(dtype, desc)
    config = AffineConfig(desc=desc,
                          activation=ops.get_activation(activation, desc))
    if params_model_fn is not None:
      model = functools.partial(params_model_fn, out_units, in_units, dtype)
      prior = None
    else:
      prior = priors_lib.normal() if prior is None else prior
      spec = priors_lib.ParamSpec(
          kernel_name="weights", kernel_shape=(out_units, in_units),
          bias_shape=(out_units,) if use_bias else None, out_axis=0,
          fan_in=in_units, fan_out=out_units, dtype=dtype)
      model = prior.model(spec)
    super().__init__(model, config, required=("weights",),
                     forbidden=() if use_bias else ("bias",),
                     validate_args=validate_args, name=name)
    self._parameters = parameters
    self._init_args = dict(
        out_units=out_units, in_units=in_units, dtype=dtype,
        params_model_fn=params_model_fn, name=name, use_bias=bool(use_bias),
        activation=config.activation, prior=prior,
        validate_args=validate_args)
    self.out_units, self.in_units = out_units, in_units
    self.output_feature_ndims = 1


Dense = Affine


def _float_dtype(dtype, desc: str) -> tf.DType:
  dtype = tf.as_dtype(dtype)
  if not dtype.is_floating:
    raise TypeError(f"{desc}: `dtype` must be floating (float32 or float64); "
                    f"got {dtype.name}.")
  return dtype
