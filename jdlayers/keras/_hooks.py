"""The tfp.layers-style hooks of `jdlayers.keras`: posteriors, priors, KL.

* `*_posterior_fn`: a jdlayers VI builder (`jdlayers.vi.mean_field_normal()`,
  `jdlayers.vi.point_mass()` or a user builder `(spec, make_variable) ->
  make_dist`, see `jdlayers.inference.vi._builders`), or a tfp.layers
  posterior function `(dtype, shape, name, trainable, add_variable_fn) ->
  tfd.Distribution` such as `tfp.layers.default_mean_field_normal_fn()`
  (its variables are the layer's Keras weights, see `_tfp_fns`).
* `*_prior_fn`: a `jdlayers.priors.Prior` (its kernel or bias part is used)
  or a callable `(dtype, shape) -> tfd.Distribution` (tfp.layers'
  five-argument `(dtype, shape, name, trainable, add_variable_fn)` functions
  such as `tfp.layers.default_multivariate_normal_fn` work too, untrainable).
* `*_divergence_fn`: `(q, p, z) -> scalar`, the part's *unscaled* KL term;
  the layer applies `kl_weight / num_examples` to every term.

Meanings as in tfp.layers: an explicit None prior or divergence function
means "no KL term for this part", a None bias posterior "no bias". Not
passing an argument (`DEFAULT`) means jdlayers' default. Shapes and
distributions are in Keras' layout (see `_layout`).

Hooks are saved in a layer's config: builders and priors of jdlayers by
name and arguments, any other callable through Keras' serialization, which
needs it registered with `keras.saving.register_keras_serializable`.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Optional

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from jdlayers import io
from jdlayers import priors as priors_lib
from jdlayers.inference.vi import _builders
from jdlayers.inference.vi import _kl
from jdlayers.keras import _layout, _tfp_fns

tfd = tfp.distributions
Root = tfd.JointDistributionCoroutine.Root

_PRIOR_KEY = "jdlayers_prior"
_BUILDER_KEY = "jdlayers_builder"


@keras.saving.register_keras_serializable(package="jdlayers")
def default_divergence_fn(q: tfd.Distribution, p: tfd.Distribution,
                          z: tf.Tensor) -> tf.Tensor:
  """The default KL term of a part: exact where TFP has a closed form for a
  normal `q` against `p` (i.i.d. or independent priors), else `log q(z) -
  log p(z)`; `-log p(z)` for a point mass. Wrap it to reweight one part.

  Args:
    q: The part's surrogate distribution.
    p: Its prior (given the parents' values, for hierarchical priors).
    z: A draw from `q`.

  Returns:
    A scalar.

  #### Example

  ```python
  @keras.saving.register_keras_serializable(package="my_project")
  def half_kl(q, p, z):
    return 0.5 * jdl.keras.default_divergence_fn(q, p, z)
  layer = jdl.keras.Dense(10, kernel_divergence_fn=half_kl)
  ```
  """
  return _kl._kl_term(q, p, z, analytic=True)  # pylint: disable=protected-access


@keras.saving.register_keras_serializable(package="jdlayers")
def mc_divergence_fn(q: tfd.Distribution, p: tfd.Distribution,
                     z: tf.Tensor) -> tf.Tensor:
  """The one-sample Monte Carlo KL term `sum(log q(z) - log p(z))`.

  Args:
    q: The part's surrogate distribution.
    p: Its prior.
    z: A draw from `q`.

  Returns:
    A scalar.
  """
  return tf.reduce_sum(q.log_prob(z) - p.log_prob(z))


# -- checking ----------------------------------------------------------------

class _Default:
  """The value of a hook argument that was not passed (jdlayers' default),
  as opposed to an explicit None (tfp.layers' "no KL term" / "no bias")."""

  _instance = None

  def __new__(cls):
    if cls._instance is None:
      cls._instance = super().__new__(cls)
    return cls._instance

  def __repr__(self) -> str:
    return "DEFAULT"

  def __reduce__(self):
    return (_Default, ())


DEFAULT = _Default()


def check_builder(value, owner: str, arg: str):
  """DEFAULT, None, a jdlayers builder or a tfp.layers posterior function."""
  if value is DEFAULT or value is None:
    return value
  if not callable(value) or isinstance(value, priors_lib.Prior):
    raise TypeError(f"{owner}: `{arg}` must be a jdlayers VI builder such as "
                    "jdlayers.vi.mean_field_normal() or jdlayers.vi.point_mass()"
                    ", or a tfp.layers posterior function such as tfp.layers."
                    f"default_mean_field_normal_fn(); got {value!r:.80}.")
  if not isinstance(value, _builders._NamedBuilder):  # pylint: disable=protected-access
    _tfp_fns.arity(value, owner, arg)
  return value


def check_prior_fn(value, owner: str, arg: str):
  """DEFAULT, None, a `jdlayers.priors.Prior` or a prior function."""
  if value is DEFAULT or value is None or isinstance(value, priors_lib.Prior):
    return value
  if not callable(value):
    raise TypeError(f"{owner}: `{arg}` must be a jdlayers.priors prior or a "
                    "callable (dtype, shape) -> tfd.Distribution (or None for "
                    f"no KL term, as tfp.layers); got {value!r:.80}.")
  _tfp_fns.arity(value, owner, arg)
  return value


def check_divergence_fn(value, owner: str, arg: str):
  """DEFAULT, None or a callable `(q, p, z) -> scalar`."""
  if value is not DEFAULT and value is not None and not callable(value):
    raise TypeError(f"{owner}: `{arg}` must be a callable (q, p, z) -> scalar "
                    f"(or None for no KL term, as tfp.layers); got "
                    f"{value!r:.80}.")
  return value


def as_builder(value, role: str, perm, owner: str, arg: str, sink=None):
  """The jdlayers builder (jdlayers' layout) for a checked posterior hook.

  Args:
    value: A builder or a tfp.layers posterior function (not DEFAULT/None).
    role: "kernel" or "bias".
    perm: Keras -> jdlayers permutation of the part (None: same layout).
    owner, arg: For errors.
    sink: Optional dict: at build, `sink[role]` is set to the function
      making the part's distribution in Keras' layout.
  """
  builder = value
  if not isinstance(value, _builders._NamedBuilder) and (  # pylint: disable=protected-access
      _tfp_fns.arity(value, owner, arg) == 5):
    builder = _tfp_fns.TfpPosterior(value, role, owner, arg)
  if perm is None and sink is None:
    return builder
  return _KerasLayoutBuilder(builder, perm, role, sink)


class _KerasLayoutBuilder:
  """Runs a builder in Keras' layout; hands jdlayers the transposed view."""

  def __init__(self, builder, perm, role: str, sink):
    self._builder, self._perm, self._role, self._sink = (builder, perm, role,
                                                         sink)

  def __call__(self, spec, make_variable):
    keras_spec = dataclasses.replace(
        spec, shape=_layout.permute_shape(spec.shape,
                                          _layout.inverse(self._perm)))
    make = self._builder(keras_spec, make_variable)
    if not callable(make):
      raise TypeError(f"{spec.name}: the posterior builder returned "
                      f"{type(make).__name__}, not a function making the "
                      "distribution (see jdlayers.vi.mean_field_normal).")
    if self._sink is not None:
      self._sink[self._role] = make
    return lambda: _layout.transpose_dist(make(), self._perm)


# -- priors ------------------------------------------------------------------

class HookPrior(priors_lib.Prior):
  """A layer prior assembled from a base prior and per-part overrides.

  A part whose hook is None (tfp.layers' "no prior") gets a placeholder
  `Normal(0, 1)` the layer leaves out of the KL. Not saveable by itself:
  the Keras layer's config holds its pieces.
  """

  def __init__(self, base: priors_lib.Prior, kernel_fn, bias_fn, owner: str,
               kernel_perm=None):
    self._base, self._kernel_fn, self._bias_fn = base, kernel_fn, bias_fn
    self._owner, self._perm = owner, kernel_perm
    self.bias_scale = base.bias_scale

  def model(self, spec: priors_lib.ParamSpec) -> Callable:
    kernel_fn, bias_fn, perm = self._kernel_fn, self._bias_fn, self._perm

    def model_fn():
      if kernel_fn is DEFAULT:
        yield from self._base._kernel_model(spec)  # pylint: disable=protected-access
      elif kernel_fn is None:
        yield from priors_lib.normal()._kernel_model(spec)  # pylint: disable=protected-access
      elif isinstance(kernel_fn, priors_lib.Prior):
        yield from kernel_fn._kernel_model(spec)  # pylint: disable=protected-access
      else:
        keras_shape = _layout.permute_shape(spec.kernel_shape,
                                            _layout.inverse(perm))
        d = _part_prior(kernel_fn, spec.dtype, keras_shape, spec.kernel_name,
                        self._owner, "kernel_prior_fn")
        yield Root(_layout.transpose_dist(d, perm))
      if spec.bias_shape is None:
        return
      if bias_fn is DEFAULT or bias_fn is None or isinstance(
          bias_fn, priors_lib.Prior):
        prior = (self._base if bias_fn is DEFAULT else
                 bias_fn or priors_lib.normal())
        if hasattr(prior, "_bias_model"):  # priors that shape the bias
          yield from prior._bias_model(spec)  # pylint: disable=protected-access
          return
        yield Root(tfd.Sample(
            tfd.Normal(tf.constant(0., spec.dtype),
                       tf.constant(prior.bias_scale, spec.dtype)),
            sample_shape=list(spec.bias_shape), name="bias"))
      else:
        yield Root(_part_prior(bias_fn, spec.dtype, spec.bias_shape, "bias",
                               self._owner, "bias_prior_fn"))

    return model_fn

  def get_config(self) -> dict:
    raise TypeError(f"{self._owner}: a prior built from *_prior_fn hooks is "
                    "saved with its Keras layer (layer.get_config()), not on "
                    "its own.")

  __eq__ = object.__eq__
  __hash__ = object.__hash__

  def __repr__(self) -> str:
    return (f"HookPrior(base={self._base!r}, kernel={self._kernel_fn!r}, "
            f"bias={self._bias_fn!r})")


def layer_prior(prior, kernel_fn, bias_fn, owner: str,
                kernel_perm=None) -> priors_lib.Prior:
  """`prior` (default `priors.normal()`) with the kernel/bias overrides
  (DEFAULT: the base prior's part; None: a placeholder left out of the KL).

  Args:
    kernel_perm: Keras -> jdlayers permutation of the kernel (None: same
      layout): prior functions are called with Keras' kernel shape.
  """
  if prior is not None and not isinstance(prior, priors_lib.Prior):
    raise TypeError(f"{owner}: `prior` must be a jdlayers.priors prior (e.g. "
                    f"jdlayers.priors.normal(1.0)); got {prior!r:.80}.")
  base = priors_lib.normal() if prior is None else prior
  if kernel_fn is DEFAULT and bias_fn is DEFAULT:
    return base
  return HookPrior(base, kernel_fn, bias_fn, owner, kernel_perm)


def _part_prior(fn, dtype: tf.DType, shape, name: Optional[str], owner: str,
                arg: str, role: str = "") -> tfd.Distribution:
  """Calls a tfp-style prior function; returns its distribution over a
  `shape` event, named `name` (a scalar or `shape`-batched distribution is
  made i.i.d./independent over `shape`; `name=None`: the function's own
  object where it has that event)."""
  shape = tuple(int(s) for s in shape)
  if _tfp_fns.arity(fn, owner, arg) == 2:
    d = fn(dtype, shape)
  else:  # tfp.layers' five arguments; a prior has no variables here
    d = fn(dtype, list(shape), f"{role or name}_prior", False,
           _no_variables(owner, arg))
  return _tfp_fns.as_event(d, shape, name, owner, arg)


def keras_prior(fn, dtype: tf.DType, shape, owner: str, arg: str):
  """The distribution a prior function makes for a Keras-layout part."""
  return _part_prior(fn, dtype, shape, None, owner, arg,
                     role=arg.split("_")[0])


def _no_variables(owner: str, arg: str):
  def add_variable_fn(*args, **kwargs):
    del args, kwargs
    raise ValueError(f"{owner}: `{arg}` creates variables; jdlayers.keras "
                     "priors are fixed (tfp.layers' trainable priors are "
                     "empirical Bayes): use a fixed prior function, or a "
                     "hierarchical jdlayers prior (prior=jdlayers.priors."
                     "horseshoe()) whose scales are inferred.")
  return add_variable_fn


# -- serialization -------------------------------------------------------------

def serialize(value, owner: str, arg: str) -> Any:
  """A hook as a JSON-able value (see the module docstring).

  Raises:
    TypeError: For a callable that is neither a jdlayers builder/prior nor
      registered with `keras.saving.register_keras_serializable`.
  """
  if value is None:
    return None
  if isinstance(value, priors_lib.Prior):
    try:
      return {_PRIOR_KEY: io.to_config(value)}
    except TypeError as e:
      raise TypeError(f"{owner}: `{arg}` cannot be saved: {e}") from None
  if isinstance(value, _builders._NamedBuilder):  # pylint: disable=protected-access
    return {_BUILDER_KEY: value.name, "config": value.get_config()}
  target = value if inspect.isroutine(value) else type(value)
  registered = keras.saving.get_registered_name(target)
  if keras.saving.get_registered_object(registered) is not target:
    label = getattr(value, "__name__", type(value).__name__)
    raise TypeError(
        f"{owner}: `{arg}` ({label}) cannot be saved: register it with "
        "@keras.saving.register_keras_serializable(package=...) (a named "
        "function, or a class with get_config), or use a jdlayers builder "
        "(jdlayers.vi.mean_field_normal(), jdlayers.vi.point_mass()) or "
        "prior (jdlayers.priors).")
  return keras.saving.serialize_keras_object(value)


def deserialize(config: Any, owner: str, arg: str) -> Optional[Any]:
  """Inverse of `serialize`.

  Raises:
    ValueError: For an unknown builder, prior or registered name.
  """
  if config is None:
    return None
  if isinstance(config, dict) and _PRIOR_KEY in config:
    return io.from_config(config[_PRIOR_KEY])
  if isinstance(config, dict) and _BUILDER_KEY in config:
    return _builders.builder_from_config(config[_BUILDER_KEY],
                                         dict(config.get("config", {})))
  try:
    return keras.saving.deserialize_keras_object(config)
  except (TypeError, ValueError) as e:
    raise ValueError(f"{owner}: cannot load `{arg}` ({config!r:.120}): {e} "
                     "Register the function before loading.") from None


def check_part_hooks(posterior_fns, divergence_fns, owner: str):
  """Checks `posterior_fns` / `divergence_fns` (part-name glob -> hook).

  Returns:
    The two checked dicts.

  Raises:
    TypeError: For a key that is not a string glob, or a bad hook.
  """
  def glob(key):
    if not isinstance(key, str):
      raise TypeError(f"{owner}: keys of posterior_fns/divergence_fns must be "
                      f"part-name globs (strings such as '*kernel'); got "
                      f"{key!r}.")
    return key
  post = {glob(k): check_builder(v, owner, f"posterior_fns[{k!r}]")
          for k, v in (posterior_fns or {}).items()}
  div = {glob(k): check_divergence_fn(v, owner, f"divergence_fns[{k!r}]")
         for k, v in (divergence_fns or {}).items()}
  return post, div


def serialize_part_hooks(config: dict, posterior_fns, divergence_fns,
                         owner: str) -> None:
  """Writes the two part-hook maps into a layer's `config`, JSON-able."""
  for key, hooks in (("posterior_fns", posterior_fns),
                     ("divergence_fns", divergence_fns)):
    config[key] = {k: serialize(v, owner, f"{key}[{k!r}]")
                   for k, v in hooks.items()} or None


def deserialize_part_hooks(config: dict, owner: str) -> None:
  """Inverse of `serialize_part_hooks`, in place on a copy of the config."""
  for key in ("posterior_fns", "divergence_fns"):
    if config.get(key) is not None:
      config[key] = {k: deserialize(v, owner, f"{key}[{k!r}]")
                     for k, v in config[key].items()}
