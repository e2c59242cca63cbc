"""Shared pieces of the normalisation layers: config, argument checks and
the prior model of `gamma`, `beta` and `tau`.

A `jdl.priors` prior describes `gamma - 1` (its kernel part, so it centres
the scale at 1, the identity, and shrinks towards it) and `beta` and `tau`
as biases (its `Normal(0, bias_scale)` bias part).
"""

from __future__ import annotations

import dataclasses
import numbers

import tensorflow as tf
import tensorflow_probability as tfp

from jdlayers import priors as priors_lib

tfd = tfp.distributions
tfb = tfp.bijectors
Root = tfd.JointDistributionCoroutine.Root


@dataclasses.dataclass(frozen=True)
class NormConfig:
  """Static configuration of a normalisation layer."""
  desc: str
  features: int
  epsilon: float
  rank: int
  data_format: str = "channels_last"
  dtype: tf.DType = tf.float32
  center: bool = True
  scale: bool = True


def check_epsilon(value, desc: str) -> float:
  """`value` as a float; raises ValueError naming `desc` unless > 0."""
  if (not isinstance(value, numbers.Real) or isinstance(value, bool)
      or not value > 0):
    raise ValueError(f"{desc}: `epsilon` must be a number > 0; got "
                     f"{value!r}.")
  return float(value)


def check_rank(value, low: int, high: int, desc: str) -> int:
  """`value` as an int; raises ValueError naming `desc` unless in range."""
  if (not isinstance(value, numbers.Integral) or isinstance(value, bool)
      or not low <= value <= high):
    raise ValueError(f"{desc}: `rank` must be an integer in [{low}, {high}]; "
                     f"got {value!r}.")
  return int(value)


def _shift_gamma(d, dtype: tf.DType):
  """The component `d` shifted by 1 if it is `gamma` (Root kept)."""
  root = isinstance(d, Root)
  inner = d.distribution if root else d
  if inner.name != "gamma":
    return d
  inner = tfd.TransformedDistribution(
      inner, tfb.Shift(tf.constant(1., dtype)), name="gamma")
  return Root(inner) if root else inner


def scale_offset_model(prior: priors_lib.Prior, features: int,
                       dtype: tf.DType, *, scale: bool = True,
                       center: bool = True, tau: bool = False):
  """Coroutine model of `gamma` (`prior` on `gamma - 1`), `beta`, `tau`.

  Args:
    prior: A `jdl.priors` prior; its kernel part gives `gamma - 1`, its
      bias part `beta` and `tau` (thresholds act as biases).
    features: Size `F` of each parameter.
    dtype: Floating dtype.
    scale, center, tau: Which of `gamma`, `beta`, `tau` to include.

  Returns:
    A zero-argument model for `tfd.JointDistributionCoroutine`.
  """
  spec = priors_lib.ParamSpec(
      kernel_name="gamma", kernel_shape=(features,),
      bias_shape=(features,) if center else None, out_axis=0, fan_in=1,
      fan_out=1, dtype=dtype, bias_name="beta")

  def bias_like(name):
    return Root(priors_lib.with_support(
        prior.bias_dist(spec), prior.bias_support(spec), [features],
        name=name))

  def model_fn():
    if scale:
      gen, value = prior.model(spec)(), None
      while True:
        try:
          d = gen.send(value)
        except StopIteration:
          break
        value = yield _shift_gamma(d, dtype)
    elif center:
      yield bias_like("beta")
    if tau:
      yield bias_like("tau")

  return model_fn
