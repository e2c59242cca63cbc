"""The two halves of every layer: a distribution and its sampled value.

`SampledLayer` is the value type: an immutable callable whose `tf.nest` leaves
are exactly its random tensors (via TF's `__tf_flatten__` protocol) and whose
static configuration rides along as nest metadata, so
`tf.nest.pack_sequence_as(layer, tf.nest.flatten(layer))` rebuilds it.

`LayerDistribution` is a `tfd.JointDistributionCoroutine` whose samples are
`SampledLayer`s; `StaticLayer` is the distribution of a layer without random
parameters (a point mass whose leafless samples add 0 to log_prob).
"""

from __future__ import annotations

import collections.abc
import numbers
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

import tensorflow as tf
import tensorflow_probability as tfp

from jdlayers import _registry
from jdlayers import _validate
from jdlayers.layers import _static_support, _values

tfd = tfp.distributions
Root = tfd.JointDistributionCoroutine.Root


class SampledLayer:
  """An immutable layer value: random tensors as leaves, static config aside.

  Attributes are the parameter names (e.g. `layer.kernel`, `layer.bias`) plus
  `config`, the static configuration.
  """

  # __weakref__: `tf.function(sampled_layer)` keys its cache by weak reference.
  __slots__ = ("_params", "_config", "__weakref__")

  def __init__(self, params: Any = None, config: Any = None):
    # TFP re-wraps values with `type(structure)(value)`; accept a same-typed
    # value and copy it.
    if isinstance(params, SampledLayer):
      config = params._config if config is None else config
      params = params._params
    object.__setattr__(self, "_params", dict(params or {}))
    object.__setattr__(self, "_config", config)

  # -- tf.nest protocol ---------------------------------------------------
  def __tf_flatten__(self):
    names = tuple(self._params)
    return (self._config, names), tuple(self._params[n] for n in names)

  @classmethod
  def __tf_unflatten__(cls, metadata, components):
    config, names = metadata
    return cls(dict(zip(names, components)), config)

  def __len__(self) -> int:
    return len(self._params)

  # -- access ---------------------------------------------------------------
  def __getattr__(self, name: str):
    if name.startswith("__"):
      raise AttributeError(name)
    try:
      params = object.__getattribute__(self, "_params")
    except AttributeError:
      raise AttributeError(name) from None
    if name in params:
      return params[name]
    raise AttributeError(f"{type(self).__name__} has no parameter or attribute "
                         f"{name!r}; parameters: {list(params)}.")

  def __setattr__(self, name, value):
    raise AttributeError(f"{type(self).__name__} is immutable.")

  @property
  def params(self) -> Dict[str, tf.Tensor]:
    """A copy of the name -> tensor mapping of the random parameters."""
    return dict(self._params)

  @property
  def config(self):
    """The static (non-random) configuration."""
    return self._config

  def __repr__(self) -> str:
    parts = [f"{k}={_shape_str(v)}" for k, v in self._params.items()]
    desc = getattr(self._config, "desc", None) or type(self).__name__
    return f"<{type(self).__name__} {desc} {' '.join(parts)}>".replace("  ", " ")

  def __call__(self, x):
    raise NotImplementedError


def _shape_str(v) -> str:
  shape = getattr(v, "shape", None)
  dtype = getattr(v, "dtype", None)
  if shape is None:
    return repr(v)
  name = getattr(dtype, "name", dtype)
  return f"{name}{list(shape)}"


def stateless_seed(seed):
  """Maps a Python int seed to a stateless `(0, seed)` pair.

  TFP treats an int seed as stateful (a new draw on every call); jdlayers
  promises that the same seed gives the same sample, so ints become stateless
  pairs. Pairs and seed tensors pass through; None stays random.
  """
  if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
    return tf.constant([0, int(seed) % (2 ** 31)], tf.int32)
  return seed


class StatelessSeedMixin:
  """The shared entry of every jdlayers distribution (layers, composites).

  Makes `sample` and `experimental_sample_and_log_prob` deterministic for
  int seeds (see `stateless_seed`), checks `sample_shape` once for all of
  them, and checks every value given to `log_prob` (and `prob`,
  `log_prob_parts`, ...) against the distribution's structure before TFP
  sees it (see `_values.check_value`).
  """

  def sample(self, sample_shape=(), seed=None, name="sample", **kwargs):
    """Samples layers; the same `seed` (int or pair) gives the same layers.

    Raises:
      TypeError, ValueError: For a `sample_shape` that is not an int >= 0,
        a sequence of them or an integer tensor (e.g. -1, 2.5, True).
    """
    _validate.sample_shape(sample_shape, f"{_where(self)}.sample")
    return super().sample(sample_shape, seed=stateless_seed(seed), name=name,
                          **kwargs)

  def experimental_sample_and_log_prob(self, sample_shape=(), seed=None,
                                       name="sample_and_log_prob", **kwargs):
    _validate.sample_shape(sample_shape,
                           f"{_where(self)}.experimental_sample_and_log_prob")
    return super().experimental_sample_and_log_prob(
        sample_shape, seed=stateless_seed(seed), name=name, **kwargs)

  def _resolve_value(self, *args, allow_partially_specified=False, **kwargs):
    # TFP's one entry for the value of log_prob, prob and their *_parts.
    if not allow_partially_specified:
      value = _lone_value(args, kwargs)
      if value is not _NO_VALUE:
        _values.check_value(self.event_shape, self.dtype, value, _where(self),
                            as_args=len(args) > 1)
    return super()._resolve_value(
        *args, allow_partially_specified=allow_partially_specified, **kwargs)

  def __call__(self, *args, **kwargs):
    # Without this, `net(x)` says "'Sequential' object is not callable".
    raise TypeError(
        f"{_where(self)} is a distribution over networks, not a network: "
        "draw one with `f = dist.sample(seed=0)` (or `dist.sample(n, "
        "seed=0)` for n of them) and call the sample, `f(x)`.")


_NO_VALUE = object()


def _lone_value(args, kwargs):
  """The value of a `log_prob(value)`-style call, else `_NO_VALUE` (calls by
  part name are checked by TFP itself)."""
  if len(args) == 1 and not kwargs:
    return args[0]
  if not args and set(kwargs) == {"value"}:
    return kwargs["value"]
  if len(args) > 1 and not kwargs:
    return tuple(args)
  return _NO_VALUE


def _where(dist) -> str:
  config = getattr(dist, "_config", None)
  return getattr(config, "desc", None) or type(dist).__name__


class ConfigMixin:
  """`get_config`/`from_config` from the normalised constructor arguments.

  Subclasses store them as `self._init_args` (defaults included); see
  `jdlayers.io.to_config` for how values are encoded.
  """

  _init_args: Dict[str, Any]

  @property
  def _desc(self) -> str:
    return self._config.desc

  def get_config(self) -> Dict[str, Any]:
    """The constructor arguments as a JSON-able dict.

    Returns:
      Name -> value; activations and functions by name, dtype as a string,
      priors and child layers as nested `{"class", "config"}` dicts.

    Raises:
      TypeError: If the layer holds a `params_model_fn` or a function that
        is neither a named activation nor registered with
        `jdlayers.io.register_function`.

    #### Example

    ```python
    import jdlayers as jdl
    jdl.Affine(3, 2, activation="tanh").get_config()["activation"]  # 'tanh'
    ```
    """
    return _registry.encode_args(self._desc, self._init_args)

  @classmethod
  def from_config(cls, config: Mapping[str, Any]):
    """Builds the layer from `get_config()`'s output.

    Raises:
      ValueError: For an unknown function or class name in `config`.
      TypeError: For unexpected or missing arguments.
    """
    return cls(**_registry.decode_args(cls.__name__, config))


class LayerDistribution(StatelessSeedMixin, ConfigMixin,
                        tfd.JointDistributionCoroutine):
  """A `JointDistributionCoroutine` whose samples are `SampledLayer`s.

  Subclasses build a model (a generator of component distributions), pick the
  value type and the static config; this base resolves the component names,
  checks the required ones exist, and (un)flattens values.
  """

  _value_type = SampledLayer

  def __init__(self, model: Callable, config: Any, required: Sequence[str],
               forbidden: Sequence[str] = (),
               validate_args: bool = False, name: Optional[str] = None):
    super().__init__(model, validate_args=validate_args, name=name)
    self._config = config
    names = tuple(self._flat_resolve_names())
    self._names = names
    missing = [r for r in required if r not in names]
    if missing:
      raise ValueError(
          f"{config.desc}: the prior / params_model_fn yields components "
          f"{list(names)} but lacks {missing}; name the distributions with "
          f"`name=` (e.g. tfd.Sample(tfd.Normal(0., 1.), shape, "
          f"name={missing[0]!r})).")
    bad = [n for n in forbidden if n in names]
    if bad:
      raise ValueError(f"{config.desc}: use_bias=False but the prior / "
                       f"params_model_fn yields {bad}.")

  @property
  def config(self):
    """The static configuration shared by every sample of this layer."""
    return self._config

  @property
  def param_names(self):
    """Names of the random components, in model order."""
    return self._names

  def _model_unflatten(self, xs):
    return self._value_type(dict(zip(self._names, xs)), self._config)

  def _model_flatten(self, value):
    if isinstance(value, SampledLayer):
      params = value._params  # pylint: disable=protected-access
    elif isinstance(value, collections.abc.Mapping):
      params = value
    else:
      return tuple(value)
    try:
      return tuple(params[n] for n in self._names)
    except KeyError as e:
      raise ValueError(f"{self._config.desc}: value lacks parameter {e}; "
                       f"expected {list(self._names)}, got "
                       f"{list(params)}.") from None


class StaticSampledLayer(SampledLayer):
  """A sampled parameter-free layer: no `tf.nest` leaves, no tensors.

  Its sample shape (`sample_shape`) is static nest metadata, as its config
  is: `tf.nest.flatten` gives `[]` whatever the shape, so networks and MCMC
  state parts are unchanged, and `log_prob` can still return `zeros(S)`.
  """

  __slots__ = ("_sample_shape",)

  def __init__(self, params: Any = None, config: Any = None,
               sample_shape: Optional[Sequence[int]] = None):
    if isinstance(params, StaticSampledLayer) and sample_shape is None:
      sample_shape = params._sample_shape
    super().__init__(params, config)
    if self._params:
      raise ValueError(f"{type(self).__name__} holds no parameters; got "
                       f"{list(self._params)}.")
    object.__setattr__(self, "_sample_shape", tuple(sample_shape or ()))

  def __tf_flatten__(self):
    return (self._config, self._sample_shape), ()

  @classmethod
  def __tf_unflatten__(cls, metadata, components):
    config, sample_shape = metadata
    return cls({}, config, sample_shape)

  @property
  def sample_shape(self) -> tuple:
    """The sample shape `S` it was drawn with (its `log_prob` has shape S)."""
    return self._sample_shape

  def with_sample_shape(self, sample_shape: Sequence[int]):
    """The same layer recorded with another sample shape."""
    return type(self)({}, self._config, tuple(sample_shape))

  def __repr__(self) -> str:
    shape = f" sample_shape={list(self._sample_shape)}" if (
        self._sample_shape) else ""
    return f"<{type(self).__name__} {self._config.desc}{shape}>"


class StaticLayer(ConfigMixin, tfd.Distribution):
  """The distribution of a layer without random parameters (a point mass).

  A real `tfd.Distribution`, as the TFP anchor's `Lambda`: it can be yielded
  in any `JointDistributionCoroutine`. `sample(S)` gives the layer recorded
  with sample shape `S` (a `StaticSampledLayer`: no tensors, so no state
  parts), `log_prob` of it is `zeros(S)`, and `dtype`, `batch_shape` and
  `event_shape` are the leafless layer itself. Composites keep it out of
  their state; a composite of only such layers is parameter-free too.

  Two limits come from TFP's joint machinery, which reads shapes from
  tensors: a joint whose parts are all parameter-free gives a `[]`-shaped
  `log_prob` (its `log_prob_parts` keep `S`), and a joint's default
  event-space bijector maps such a part through unchanged but cannot give a
  log-det-Jacobian over it; `jdlayers.event_space_bijectors` (one bijector
  per state part) has no such part.

  Args:
    layer: The `StaticSampledLayer` it always samples.
    dtype: dtype of the (zero) `log_prob`.
    name: Name.
    parameters: The constructor arguments (for `parameters` and `copy`).
  """

  def __init__(self, layer: StaticSampledLayer, dtype=tf.float32,
               name: Optional[str] = None,
               parameters: Optional[Dict[str, Any]] = None):
    super().__init__(dtype=layer, validate_args=False, allow_nan_stats=True,
                     reparameterization_type=tfd.FULLY_REPARAMETERIZED,
                     parameters=dict(parameters or {}),
                     name=name or type(self).__name__)
    self._layer = layer
    self._config = layer.config
    self._lp_dtype = tf.as_dtype(dtype)

  @property
  def _desc(self) -> str:
    return self._config.desc

  @property
  def config(self):
    """The static configuration of the layer."""
    return self._config

  @property
  def layer(self) -> StaticSampledLayer:
    """The layer it samples (with sample shape `[]`)."""
    return self._layer

  # A point mass over a leafless value: its shapes are that same structure.
  @property
  def batch_shape(self):
    return self._layer

  def batch_shape_tensor(self, name="batch_shape_tensor"):
    return self._layer

  @property
  def event_shape(self):
    return self._layer

  def event_shape_tensor(self, name="event_shape_tensor"):
    return self._layer

  def _call_sample_n(self, sample_shape, seed, **kwargs):
    del seed, kwargs  # Nothing random.
    return self._layer.with_sample_shape(
        _static_support.static_sample_shape(sample_shape, self._desc))

  def _call_sample_and_log_prob(self, sample_shape, seed, **kwargs):
    value = self._call_sample_n(sample_shape, seed)
    return value, tf.zeros(value.sample_shape, self._lp_dtype)

  def _zeros(self, value, method: str):
    if not isinstance(value, StaticSampledLayer):
      raise TypeError(f"{self._desc}.{method}: expects a sample of this layer "
                      f"(`.sample(...)`); got {type(value).__name__}.")
    return tf.zeros(value.sample_shape, self._lp_dtype)

  def _call_log_prob(self, value, name, **kwargs):
    return self._zeros(value, "log_prob")

  def _call_unnormalized_log_prob(self, value, name, **kwargs):
    return self._zeros(value, "unnormalized_log_prob")

  def _call_prob(self, value, name, **kwargs):
    return tf.ones_like(self._zeros(value, "prob"))

  def _default_event_space_bijector(self):
    return _static_support.StaticIdentity()

  # See `_static_support`: lets a joint distribution containing this layer
  # rebuild a sample of it without losing the sample shape.
  def _get_single_sample_distributions(self, candidate_dists=None):
    return (_static_support.SHAPE_PART,)

  def _model_flatten(self, value):
    shape = getattr(value, "sample_shape", ())
    return (list(shape),)

  def _model_unflatten(self, xs):
    (shape,) = tuple(xs)
    return self._layer.with_sample_shape(
        _static_support.static_sample_shape(shape, self._desc))

  def __call__(self, x):
    return self._layer(x)

  def __repr__(self) -> str:
    return f"<{type(self).__name__} {self._desc}>"


def is_static(layer) -> bool:
  """True for layers with no random parameters (plain callables included)."""
  if isinstance(layer, StaticLayer):
    return True
  return callable(layer) and not hasattr(layer, "log_prob")
