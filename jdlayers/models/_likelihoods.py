"""Likelihood heads: network outputs (and noise latents) -> a distribution of y.

A likelihood turns the network's outputs `[*S, N, *out]` into a per-point
distribution with batch shape `[*S, N, *obs]`; `Model` reinterprets every
dim after `S` as event dims, so `log_prob(y)` has shape `S`. A parameter of a
likelihood (a noise scale, the Student-t degrees of freedom) is either a fixed
number or a `tfd.Distribution` prior, which makes it a latent of the model
named after the parameter (`"scale"`, `"df"`), sampled by MCMC with the weights.
"""

from __future__ import annotations

import inspect
import numbers
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from jdlayers import _registry

tfd = tfp.distributions


class Likelihood:
  """Base class of likelihood heads.

  Subclasses implement `_point(outputs, params)`: the per-point distribution
  for network outputs `[*S, N, *out]` and the parameters (fixed values or
  latents, each expanded to broadcast against the outputs).
  """

  def __init__(self, **params):
    self._fixed: Dict[str, float] = {}
    self._priors: Dict[str, tfd.Distribution] = {}
    for name, value in params.items():
      if isinstance(value, tfd.Distribution):
        if value.event_shape.rank not in (0, None) or value.batch_shape.rank:
          raise ValueError(
              f"{self.desc}: the prior of `{name}` must be scalar (batch and "
              f"event shape []); got batch {value.batch_shape}, event "
              f"{value.event_shape}.")
        self._priors[name] = value
      elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        if not value > 0:
          raise ValueError(f"{self.desc}: `{name}` must be > 0; got {value!r}.")
        self._fixed[name] = float(value)
      else:
        raise TypeError(f"{self.desc}: `{name}` must be a positive number or "
                        f"a tfd.Distribution prior; got {value!r}.")

  @property
  def desc(self) -> str:
    return type(self).__name__

  # -- configuration ------------------------------------------------------
  def _params_config(self) -> Dict[str, Any]:
    params = {**self._priors, **self._fixed}
    return {k: _registry.encode_param(v, f"models.{self.desc}", k)
            for k, v in params.items()}

  def get_config(self) -> Dict[str, Any]:
    """The constructor arguments as a JSON-able dict.

    Fixed parameters are numbers; `tfd` priors are
    `{"tfd": name, "parameters": {...}, "dtypes": {...}}`.

    Raises:
      TypeError: For a prior that is not a `tfp.distributions` class with
        numeric parameters, or (`General`) an unregistered function.

    #### Example

    ```python
    import jdlayers as jdl
    jdl.models.Normal(scale=0.1).get_config()  # {'scale': 0.1}
    ```
    """
    return self._params_config()

  @classmethod
  def from_config(cls, config: Mapping[str, Any]) -> "Likelihood":
    """Builds the likelihood from `get_config()`'s output.

    Raises:
      ValueError: For an invalid prior config or an unknown function name.
    """
    owner = f"models.{cls.__name__}"
    known = [p.name for p in inspect.signature(cls).parameters.values()
             if p.kind is p.POSITIONAL_OR_KEYWORD]
    unknown = sorted(set(config) - set(known))
    if unknown:
      raise ValueError(f"{owner}: unknown config keys {unknown}; expected "
                       f"some of {known}.")
    return cls(**{k: _registry.decode_param(v, owner, k)
                  for k, v in config.items()})

  @property
  def latents(self) -> Dict[str, tfd.Distribution]:
    """Name -> scalar prior of each parameter that is a latent, in order."""
    return dict(self._priors)

  def distribution(self, outputs, latents: Mapping[str, tf.Tensor],
                   sample_ndims: int) -> tfd.Distribution:
    """Distribution of the whole `y` given the network outputs.

    Args:
      outputs: `[*S, N, *out]` network outputs.
      latents: Name -> `[*S]` value of each latent parameter.
      sample_ndims: `len(S)`.

    Returns:
      A distribution with batch shape `S` and event shape `[N, *obs]`.
    """
    point = self.point_distribution(outputs, latents, sample_ndims)
    ndims = point.batch_shape.rank - sample_ndims
    return tfd.Independent(point, reinterpreted_batch_ndims=ndims)

  def point_distribution(self, outputs, latents: Mapping[str, tf.Tensor],
                         sample_ndims: int) -> tfd.Distribution:
    """Per-point distribution, batch shape `[*S, N, *obs]`."""
    core = outputs.shape.rank - sample_ndims
    params = dict(self._fixed)
    for name, value in latents.items():
      value = tf.cast(value, outputs.dtype)
      params[name] = tf.reshape(
          value, tf.concat([tf.shape(value), tf.ones([core], tf.int32)], 0))
    params = {k: tf.cast(v, outputs.dtype) for k, v in params.items()}
    return self._point(outputs, params)

  def _point(self, outputs, params) -> tfd.Distribution:
    raise NotImplementedError

  # -- prediction ---------------------------------------------------------
  def mean(self, point: tfd.Distribution) -> tf.Tensor:
    """Mean of each point's distribution (class probabilities for classes)."""
    return point.mean()

  def variance(self, point: tfd.Distribution) -> tf.Tensor:
    return point.variance()

  # -- validation ---------------------------------------------------------
  def observation_shape(self, out_shape: Tuple[int, ...]) -> Tuple[int, ...]:
    """Per-point shape of `y` for per-point output shape `out_shape`."""
    return tuple(out_shape)

  def check_outputs(self, out_shape: Tuple[int, ...]) -> None:
    """Raises ValueError if the network's per-point outputs do not fit."""

  def check_y(self, y: np.ndarray, out_shape: Tuple[int, ...],
              dtype: tf.DType) -> np.ndarray:
    """Validates `y` (`[N, *obs]`, or `[N]` for one output) and converts it.

    Raises:
      TypeError: For a dtype this likelihood cannot score.
      ValueError: For a shape or values outside the support.
    """
    obs = self.observation_shape(out_shape)
    if y.ndim == 1 and obs == (1,):
      y = y[:, None]  # `[N]` targets for a single-output network.
    if tuple(y.shape[1:]) != obs:
      raise ValueError(
          f"{self.desc}: y has shape {list(y.shape)} but the network outputs "
          f"{list(out_shape)} per point, so y must be [N, "
          f"{', '.join(map(str, obs))}]"
          f"{' (or [N])' if obs == (1,) else ''}.".replace("[N, ]", "[N]"))
    return self._check_values(y, dtype, out_shape)

  def _check_values(self, y: np.ndarray, dtype: tf.DType,
                    out_shape: Tuple[int, ...]) -> np.ndarray:
    if y.dtype == bool or not np.issubdtype(y.dtype, np.number):
      raise TypeError(f"{self.desc}: y must be numeric; got dtype {y.dtype}.")
    return y.astype(dtype.as_numpy_dtype)


def _integral(y: np.ndarray, desc: str, what: str) -> np.ndarray:
  if np.issubdtype(y.dtype, np.floating):
    raise TypeError(f"{desc}: y must hold integer {what}; got dtype {y.dtype}. "
                    "Convert with y.astype(int) if the values are integral.")
  if not (np.issubdtype(y.dtype, np.integer) or y.dtype == bool):
    raise TypeError(f"{desc}: y must hold integer {what}; got dtype {y.dtype}.")
  return y


@_registry.register_class("models.Normal")
class Normal(Likelihood):
  """Gaussian observations `y ~ Normal(outputs, scale)`.

  Args:
    scale: Noise scale: a positive number (fixed) or a scalar
      `tfd.Distribution` with positive support (a latent named "scale").

  #### Example

  ```python
  import jdlayers as jdl, tensorflow_probability as tfp
  fixed = jdl.models.Normal(scale=0.1)
  learnt = jdl.models.Normal(scale=tfp.distributions.HalfNormal(1.0))
  ```
  """

  def __init__(self, scale=1.0):
    super().__init__(scale=scale)

  def _point(self, outputs, params):
    return tfd.Normal(outputs, params["scale"])


@_registry.register_class("models.StudentT")
class StudentT(Likelihood):
  """Robust observations `y ~ StudentT(df, outputs, scale)`.

  Args:
    df: Degrees of freedom (number or scalar prior; default 4).
    scale: Noise scale (number or scalar prior; default 1).
  """

  def __init__(self, df=4.0, scale=1.0):
    super().__init__(df=df, scale=scale)

  def _point(self, outputs, params):
    return tfd.StudentT(params["df"], outputs, params["scale"])

  def variance(self, point):
    # Infinite for df <= 2 (TFP's default would raise or give NaN).
    df = point.df
    var = tf.square(point.scale) * df / (df - 2.)
    return tf.where(df > 2., var, tf.constant(np.inf, var.dtype))


@_registry.register_class("models.HeteroscedasticNormal")
class HeteroscedasticNormal(Likelihood):
  """Gaussian observations whose scale the network predicts.

  The network outputs `2 * d` values per point: the first `d` are the mean,
  the last `d` pass through softplus (plus `min_scale`) to give the scale.

  Args:
    min_scale: Floor added to the softplus scale, for numerical stability.
  """

  def __init__(self, min_scale: float = 1e-3):
    super().__init__()
    if not min_scale >= 0:
      raise ValueError(f"{self.desc}: `min_scale` must be >= 0; got "
                       f"{min_scale!r}.")
    self.min_scale = float(min_scale)

  def get_config(self):
    return {"min_scale": self.min_scale}

  def _point(self, outputs, params):
    loc, raw = tf.split(outputs, 2, axis=-1)
    return tfd.Normal(loc, tf.nn.softplus(raw) + self.min_scale)

  def check_outputs(self, out_shape):
    if not out_shape or out_shape[-1] % 2:
      raise ValueError(f"{self.desc}: the network must output an even number "
                       f"of values per point (means, then scales); it outputs "
                       f"{list(out_shape)}.")

  def observation_shape(self, out_shape):
    return tuple(out_shape[:-1]) + (out_shape[-1] // 2,)


@_registry.register_class("models.Poisson")
class Poisson(Likelihood):
  """Count observations `y ~ Poisson(exp(outputs))` (outputs are log rates)."""

  def _point(self, outputs, params):
    return tfd.Poisson(log_rate=outputs)

  def _check_values(self, y, dtype, out_shape):
    y = _integral(y, self.desc, "counts")
    if (y < 0).any():
      raise ValueError(f"{self.desc}: y must be non-negative counts; got "
                       f"minimum {y.min()}.")
    return y.astype(dtype.as_numpy_dtype)


@_registry.register_class("models.Bernoulli")
class Bernoulli(Likelihood):
  """Binary observations `y ~ Bernoulli(logits=outputs)`."""

  def _point(self, outputs, params):
    return tfd.Bernoulli(logits=outputs, dtype=tf.int32)

  def mean(self, point):
    return tf.math.sigmoid(point.logits)

  def variance(self, point):
    p = tf.math.sigmoid(point.logits)
    return p * (1. - p)

  def _check_values(self, y, dtype, out_shape):
    if np.issubdtype(y.dtype, np.floating):
      if not np.isin(y, (0., 1.)).all():
        raise ValueError(f"{self.desc}: y must be 0 or 1; got values such as "
                         f"{y[~np.isin(y, (0., 1.))].flat[0]!r}.")
      y = y.astype(np.int32)
    y = _integral(y, self.desc, "labels (0 or 1)")
    if not np.isin(y, (0, 1)).all():
      raise ValueError(f"{self.desc}: y must be 0 or 1; got values in "
                       f"[{y.min()}, {y.max()}].")
    return y.astype(np.int32)


@_registry.register_class("models.Categorical")
class Categorical(Likelihood):
  """Class labels `y ~ Categorical(logits=outputs)`; `y` is `[N]` int.

  `mean` gives class probabilities `[..., N, K]`.
  """

  def _point(self, outputs, params):
    return tfd.Categorical(logits=outputs, dtype=tf.int32)

  def observation_shape(self, out_shape):
    return tuple(out_shape[:-1])

  def check_outputs(self, out_shape):
    if not out_shape or out_shape[-1] < 2:
      raise ValueError(f"{self.desc}: the network must output >= 2 logits per "
                       f"point; it outputs {list(out_shape)}.")

  def mean(self, point):
    return tf.nn.softmax(point.logits)

  def variance(self, point):
    p = tf.nn.softmax(point.logits)
    return p * (1. - p)

  def _check_values(self, y, dtype, out_shape):
    y = _integral(y, self.desc, "class labels")
    k = out_shape[-1]
    if y.size and (y.min() < 0 or y.max() >= k):
      raise ValueError(f"{self.desc}: labels must be in [0, {k}) for a network "
                       f"with {k} outputs; got labels in [{y.min()}, "
                       f"{y.max()}].")
    return y.astype(np.int32)


@_registry.register_class("models.General")
class General(Likelihood):
  """Any likelihood: `fn(outputs, **latents) -> tfd.Distribution`.

  `fn` gets the outputs `[*S, N, *out]` and each latent expanded to broadcast
  against them, and returns a per-point distribution with batch shape
  `[*S, N, *obs]`.

  Args:
    fn: The callable.
    observation_shape: Per-point shape of `y` as a function of the per-point
      output shape (default: the same shape).
    dtype: "float" or "int": the dtype `y` is converted to.
    **latents: Scalar `tfd.Distribution` priors (or fixed numbers) passed to
      `fn` by name.

  #### Example

  ```python
  import jdlayers as jdl, tensorflow_probability as tfp
  tfd = tfp.distributions
  laplace = jdl.models.General(lambda out, scale: tfd.Laplace(out, scale),
                               scale=tfd.HalfNormal(1.0))
  ```
  """

  def __init__(self, fn: Callable, observation_shape: Optional[Callable] = None,
               dtype: str = "float", **latents):
    if not callable(fn):
      raise TypeError(f"General: `fn` must be callable; got {fn!r}.")
    if dtype not in ("float", "int"):
      raise ValueError(f"General: `dtype` must be 'float' or 'int'; got "
                       f"{dtype!r}.")
    super().__init__(**latents)
    self._fn, self._obs, self._dtype = fn, observation_shape, dtype

  def get_config(self):
    """As `Likelihood.get_config`; `fn` and `observation_shape` by name
    (registered with `jdlayers.io.register_function`), latents as an
    ordered list of `[name, value]` pairs."""
    owner = "models.General"
    return {"fn": _registry.function_to_name(self._fn, owner, "fn"),
            "observation_shape": _registry.function_to_name(
                self._obs, owner, "observation_shape"),
            "dtype": self._dtype,
            "latents": [list(kv) for kv in self._params_config().items()]}

  @classmethod
  def from_config(cls, config):
    owner = "models.General"
    config = dict(config)
    fn = _registry.function_from_name(config.pop("fn", None), owner, "fn")
    obs = _registry.function_from_name(config.pop("observation_shape", None),
                                     owner, "observation_shape")
    latents = config.pop("latents", [])
    if not (isinstance(latents, list) and all(
        isinstance(kv, list) and len(kv) == 2 and isinstance(kv[0], str)
        for kv in latents)):
      raise ValueError(f"{owner}: `latents` must be a list of [name, value] "
                       f"pairs; got {latents!r:.200}.")
    dtype = config.pop("dtype", "float")
    if config:
      raise ValueError(f"{owner}: unknown config keys {sorted(config)}.")
    kwargs = {k: _registry.decode_param(v, owner, k) for k, v in latents}
    return cls(fn, obs, dtype, **kwargs)

  def _point(self, outputs, params):
    dist = self._fn(outputs, **params)
    if not isinstance(dist, tfd.Distribution):
      raise TypeError(f"General: `fn` must return a tfd.Distribution; got "
                      f"{type(dist).__name__}.")
    return dist

  def observation_shape(self, out_shape):
    return tuple(self._obs(tuple(out_shape))) if self._obs else tuple(out_shape)

  def _check_values(self, y, dtype, out_shape):
    if self._dtype == "int":
      return _integral(y, self.desc, "values").astype(np.int32)
    return super()._check_values(y, dtype, out_shape)
