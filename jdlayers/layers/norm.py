"""Normalisation layers whose output is a function of input and weights only.

`LayerNorm` (random `gamma`/`beta`, Keras 3's names and formula) and
`FilterResponseNorm` (Singh & Krishnan, 2019: random `gamma`, `beta` and TLU
threshold `tau`). There is no BatchNorm: its running statistics are state,
not a function of the weights, so a network using them is not a sample of
a posterior over functions; Izmailov et al. (2021, "What are Bayesian
neural network posteriors really like?") used filter response
normalisation in their HMC ResNets for this reason.

Priors: a `jdl.priors` prior describes `gamma - 1` (so it centres the scale
at 1, the identity, and shrinks towards it), and `beta` and `tau` as biases
(`Normal(0, bias_scale)`). The default, `priors.normal()`, gives
`gamma ~ Normal(1, 1)` and `beta, tau ~ Normal(0, 1)`.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import tensorflow as tf

from jdlayers import _registry
from jdlayers import ops
from jdlayers import priors as priors_lib
from jdlayers.layers import _base
from jdlayers.layers._norm_base import (NormConfig, check_epsilon,
                                        check_rank, scale_offset_model)
from jdlayers.layers.affine import _float_dtype

__all__ = ["FilterResponseNorm", "FilterResponseNormLayer", "FixedLayerNorm",
           "FixedLayerNormLayer", "LayerNorm", "LayerNormLayer",
           "NormConfig"]


class LayerNormLayer(_base.SampledLayer):
  """A sampled layer norm: `gamma * (x - mean) / sqrt(var + eps) + beta`.

  Parameters: `gamma` and `beta` `[*S, features]` (either may be absent),
  plus any extra latents of the prior.
  """

  __slots__ = ()

  def keras_weights(self):
    """The weights in `keras.layers.LayerNormalization`'s order: `gamma`
    (if `scale`), then `beta` (if `center`), each `[*S, features]`."""
    return [self._params[n] for n in ("gamma", "beta") if n in self._params]

  def __call__(self, x):
    """Normalises `x` over its last axis, then scales and shifts.

    Args:
      x: `[*B, N, *inner, features]` with `len(inner) == rank`; `B`
        broadcasts against the sample shape `S`.

    Returns:
      `[*broadcast(B, S), N, *inner, features]`.

    Raises:
      TypeError: For a non-floating input or another float dtype.
      ValueError: For rank < `rank + 2`, a last axis other than `features`,
        or `B` that does not broadcast with `S`.
    """
    c = self._config
    return ops.layer_norm(x, self._params.get("gamma"),
                          self._params.get("beta"), features=c.features,
                          epsilon=c.epsilon, rank=c.rank, layer=c.desc)


@_registry.register_class("LayerNorm")
class LayerNorm(_base.LayerDistribution):
  """Distribution over layer normalisations with random scale and offset.

  The Bayesian twin of `keras.layers.LayerNormalization(epsilon=1e-3)` over
  the last axis: the same formula (biased variance, `epsilon` added to it)
  and weight names (`gamma`, `beta`, shape `[features]`), so weights move
  between the two. The default prior centres the scale at 1:
  `gamma ~ Normal(1, 1)`, `beta ~ Normal(0, 1)`; a `jdl.priors` prior given
  as `prior=` describes `gamma - 1` and `beta` (e.g. `priors.normal(0.1)`
  keeps each sampled layer near the plain normalisation). With
  `random=False` (or `center=False, scale=False`) the layer has no random
  parameters (scale 1, offset 0): a `FixedLayerNorm`.

  Args:
    features: Size of the normalised (last) axis.
    dtype: float32 or float64.
    name: Name of the distribution.
    epsilon: Added to the variance (Keras' default 1e-3).
    center: Whether there is an offset `beta`.
    scale: Whether there is a scale `gamma`.
    random: False for a parameter-free layer (scale 1, offset 0).
    rank: Axes between `N` and the features in the input core: 0 for
      `[*B, N, F]`, 1 for sequences `[*B, N, T, F]`; the sample dims `S`
      line up with `B` left of that core.
    prior: A `jdlayers.priors.Prior` for `gamma - 1` and `beta` (default
      `priors.normal()`).
    validate_args: Passed to `JointDistributionCoroutine`.

  Raises:
    ValueError: For a non-positive `features` or `epsilon`, or a negative
      `rank`.
    TypeError: For a non-floating dtype.

  #### Example

  ```python
  import jdlayers as jdl, tensorflow as tf
  f = jdl.LayerNorm(4, rank=1).sample(3, seed=0)
  f(tf.random.normal([2, 5, 4])).shape  # [3, 2, 5, 4]
  ```
  """

  _value_type = LayerNormLayer

  def __new__(cls, features=None, dtype=tf.float32, name="LayerNorm", *,
              epsilon=1e-3, center=True, scale=True, random=True, rank=0,
              prior=None, validate_args=False):
    del prior, validate_args
    if random and (center or scale):
      return super().__new__(cls)
    return FixedLayerNorm(features, dtype, name, epsilon=epsilon,
                          center=center, scale=scale, rank=rank)

  def __init__(self, features: int, dtype=tf.float32, name: str = "LayerNorm",
               *, epsilon: float = 1e-3, center: bool = True,
               scale: bool = True, random: bool = True, rank: int = 0,
               prior: Optional[priors_lib.Prior] = None,
               validate_args: bool = False):
    parameters = dict(locals())
    config = _ln_config(type(self).__name__, features, dtype, epsilon,
                        center, scale, rank)
    prior = priors_lib.normal() if prior is None else prior
    model = scale_offset_model(prior, config.features, config.dtype,
                               scale=bool(scale), center=bool(center))
    super().__init__(model, config,
                     required=("gamma",) if scale else ("beta",),
                     validate_args=validate_args, name=name)
    self._parameters = parameters
    self._init_args = dict(
        features=config.features, dtype=config.dtype, name=name,
        epsilon=config.epsilon, center=bool(center), scale=bool(scale),
        random=True, rank=config.rank, prior=prior,
        validate_args=validate_args)
    self.features = config.features
    self.output_feature_ndims = config.rank + 1


def _ln_config(cls: str, features, dtype, epsilon, center, scale,
               rank) -> NormConfig:
  features = ops.positive_int(features, "features", cls)
  desc = f"{cls}(features={features})"
  return NormConfig(desc=desc, features=features,
                    epsilon=check_epsilon(epsilon, desc),
                    rank=check_rank(rank, 0, 8, desc),
                    dtype=_float_dtype(dtype, desc), center=bool(center),
                    scale=bool(scale))


class FixedLayerNormLayer(_base.StaticSampledLayer):
  """A parameter-free layer norm (scale 1, offset 0)."""

  __slots__ = ()

  def __call__(self, x):
    """Normalises `x` over its last axis (as `LayerNormLayer`, scale 1).

    Args:
      x: `[..., N, *inner, features]`.

    Returns:
      The same shape.

    Raises:
      TypeError, ValueError: As `LayerNormLayer.__call__`.
    """
    c = self._config
    one = tf.ones([c.features], c.dtype)
    beta = tf.zeros([c.features], c.dtype) if c.center else None
    return ops.layer_norm(x, one if c.scale or beta is None else None, beta,
                          features=c.features, epsilon=c.epsilon,
                          rank=c.rank, layer=c.desc)


@_registry.register_class("layers.FixedLayerNorm")
class FixedLayerNorm(_base.StaticLayer):
  """A layer norm without random parameters (scale 1, offset 0).

  What `jdl.LayerNorm(..., random=False)` builds: a point mass (its samples
  have no leaves and add 0 to `log_prob`), the same formula as `LayerNorm`.

  Args:
    features: Size of the normalised (last) axis.
    dtype: float32 or float64.
    name: Name.
    epsilon: Added to the variance.
    center, scale: Kept for the config (the offset is 0, the scale 1).
    rank: Axes between `N` and the features (as `LayerNorm`).

  #### Example

  ```python
  import jdlayers as jdl, tensorflow as tf
  f = jdl.LayerNorm(4, random=False).sample(seed=0)
  f(tf.ones([2, 4])).shape  # [2, 4]
  ```
  """

  def __init__(self, features: int, dtype=tf.float32,
               name: str = "LayerNorm", *, epsilon: float = 1e-3,
               center: bool = True, scale: bool = True, rank: int = 0):
    config = _ln_config("LayerNorm", features, dtype, epsilon, center, scale,
                        rank)
    config = dataclasses.replace(config, desc=config.desc.replace(
        ")", ", random=False)"))
    args = dict(features=config.features, dtype=config.dtype, name=name,
                epsilon=config.epsilon, center=config.center,
                scale=config.scale, rank=config.rank)
    super().__init__(FixedLayerNormLayer({}, config), config.dtype, name,
                     parameters=args)
    self._init_args = args
    self.features = config.features
    self.output_feature_ndims = config.rank + 1


class FilterResponseNormLayer(_base.SampledLayer):
  """A sampled FRN: `max(gamma * x / sqrt(mean_spatial(x^2) + eps) + beta,
  tau)`.

  Parameters: `gamma`, `beta`, `tau` (absent with `tlu=False`)
  `[*S, channels]`, plus any extra latents of the prior.
  """

  __slots__ = ()

  def __call__(self, x):
    """Applies FRN and the TLU.

    Args:
      x: `[*B, N, *spatial, C]` (channels_last) or `[*B, N, C, *spatial]`.

    Returns:
      The same core shape, leading dims `broadcast(B, S)`.

    Raises:
      TypeError: For a non-floating input or another float dtype.
      ValueError: For rank < `rank + 2`, a channel axis other than
        `channels`, or `B` that does not broadcast with `S`.
    """
    c, p = self._config, self._params
    return ops.filter_response_norm(
        x, p["gamma"], p["beta"], p.get("tau"), channels=c.features,
        rank=c.rank, epsilon=c.epsilon, data_format=c.data_format,
        layer=c.desc)


@_registry.register_class("FilterResponseNorm")
class FilterResponseNorm(_base.LayerDistribution):
  """Distribution over filter response normalisations (FRN + TLU).

  Singh & Krishnan (2019): per example and channel,
  `y = gamma * x / sqrt(mean_spatial(x^2) + epsilon) + beta`, then the
  thresholded linear unit `max(y, tau)`. Use it where a deterministic
  network would use BatchNorm: BatchNorm's running statistics are state,
  not a function of the weights, and its output for one example depends on
  the rest of the batch, so it does not define a posterior over functions;
  FRN normalises each example on its own, and Izmailov et al. (2021) used
  it for HMC over ResNets for this reason. Random `gamma`, `beta`, `tau`
  `[channels]`; a `jdl.priors` prior describes `gamma - 1`, and `beta` and
  `tau` as biases (default `priors.normal()`: `gamma ~ Normal(1, 1)`,
  `beta, tau ~ Normal(0, 1)`). `epsilon` is fixed (the paper's learned
  epsilon is left out).

  Args:
    channels: Number of channels `C`.
    dtype: float32 or float64.
    name: Name of the distribution.
    rank: Number of spatial axes (1, 2 or 3).
    epsilon: Added to the mean square (default 1e-6, as the paper).
    data_format: "channels_last" (`[..., N, *spatial, C]`) or
      "channels_first" (`[..., N, C, *spatial]`).
    tlu: Whether to apply the TLU `max(y, tau)` (and have `tau`).
    prior: A `jdlayers.priors.Prior` (default `priors.normal()`).
    validate_args: Passed to `JointDistributionCoroutine`.

  Raises:
    ValueError: For a non-positive `channels` or `epsilon`, `rank` outside
      1..3 or an unknown `data_format`.
    TypeError: For a non-floating dtype.

  #### Example

  ```python
  import jdlayers as jdl, tensorflow as tf
  f = jdl.FilterResponseNorm(3).sample(2, seed=0)
  f(tf.random.normal([5, 8, 8, 3])).shape  # [2, 5, 8, 8, 3]
  ```
  """

  _value_type = FilterResponseNormLayer

  def __init__(self, channels: int, dtype=tf.float32,
               name: str = "FilterResponseNorm", *, rank: int = 2,
               epsilon: float = 1e-6, data_format: str = "channels_last",
               tlu: bool = True, prior: Optional[priors_lib.Prior] = None,
               validate_args: bool = False):
    parameters = dict(locals())
    cls = type(self).__name__
    channels = ops.positive_int(channels, "channels", cls)
    desc = f"{cls}(channels={channels})"
    config = NormConfig(
        desc=desc, features=channels, epsilon=check_epsilon(epsilon, desc),
        rank=check_rank(rank, 1, 3, desc),
        data_format=ops.normalize_data_format(data_format, desc),
        dtype=_float_dtype(dtype, desc))
    prior = priors_lib.normal() if prior is None else prior
    model = scale_offset_model(prior, channels, config.dtype, tau=bool(tlu))
    super().__init__(model, config, required=("gamma", "beta"),
                     validate_args=validate_args, name=name)
    self._parameters = parameters
    self._init_args = dict(
        channels=channels, dtype=config.dtype, name=name, rank=config.rank,
        epsilon=config.epsilon, data_format=config.data_format,
        tlu=bool(tlu), prior=prior, validate_args=validate_args)
    self.channels = channels
    self.output_feature_ndims = config.rank + 1
