"""The ground floor of configs: a class registry and the argument codec.

Every saveable jdlayers class registers itself where it is defined, with
`@register_class("Affine")` (as Keras' `register_keras_serializable`), under
its public path below `jdlayers` ("Affine", "priors.Horseshoe",
"models.Normal"). A config is `{"class": NAME, "config": {...}}`; the inner
dict holds the constructor arguments as JSON values, defaults included, so a
saved config does not depend on this version's defaults: nested objects as
configs, activations and functions by name (see `register_function`), dtypes
as strings, and likelihood priors as
`{"tfd": "HalfNormal", "parameters": {...}, "dtypes": {...}}`.

Layers, composites, priors and models encode their arguments here, and
`jdlayers.io` (JSON text, files) reads the registry; this module imports
nothing of jdlayers but `ops._args`, so any floor may import it. Decoding only
looks names up in fixed tables (registered classes, the activation names of
`jdlayers.ops`, registered functions, public `tfp.distributions` classes with
numeric parameters); it never evaluates code or unpickles anything.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable, Dict, List, Mapping, Optional

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from jdlayers.ops import _args

tfd = tfp.distributions

_CLASSES: Dict[str, type] = {}
_FUNCTIONS: Dict[str, Callable] = {}
_HINT = ("use a named activation (e.g. 'relu') or "
         "jdlayers.io.register_function(name, fn) before saving and loading")
_NUMERIC_DTYPES = ("float16", "float32", "float64", "int32", "int64")


# -- functions ---------------------------------------------------------------

def register_function(name: str, fn: Callable, *,
                      overwrite: bool = False) -> Callable:
  """Registers `fn` under `name`, so layers and likelihoods using it can be
  saved (as the name) and loaded (by looking the name up here).

  Register the same name before loading as before saving; a saved file only
  holds the name, never code.

  Args:
    name: A non-empty string, not one of the built-in activation names.
    fn: The callable (e.g. the `fn` of a `Lambda` or `models.General`).
    overwrite: Allow re-registering `name` to a different function.

  Returns:
    `fn`, unchanged.

  Raises:
    TypeError: If `fn` is not callable or `name` not a string.
    ValueError: For an empty or built-in name, or a name already registered
      to another function without `overwrite=True`.

  #### Example

  ```python
  import jdlayers as jdl, tensorflow as tf
  def square(x):
    return tf.square(x)
  jdl.io.register_function("square", square)
  text = jdl.io.to_json(jdl.Sequential(jdl.Affine(2, 2), square))
  ```
  """
  if not isinstance(name, str):
    raise TypeError(f"register_function: `name` must be a string; got "
                    f"{name!r}.")
  if not name:
    raise ValueError("register_function: `name` must not be empty.")
  if not callable(fn):
    raise TypeError(f"register_function: `fn` must be callable; got {fn!r}.")
  if name.lower() in _args._ACTIVATIONS:  # pylint: disable=protected-access
    raise ValueError(f"register_function: {name!r} is a built-in activation "
                     "name; choose another name.")
  old = _FUNCTIONS.get(name)
  if old is not None and old is not fn and not overwrite:
    raise ValueError(f"register_function: {name!r} is already registered to "
                     f"{old!r}; pass overwrite=True to replace it.")
  _FUNCTIONS[name] = fn
  return fn


def function_to_name(fn: Optional[Callable], owner: str,
                     arg: str) -> Optional[str]:
  """The saveable name of `fn` (a built-in activation or a registered one).

  Raises:
    TypeError: For any other callable, naming `owner` and `arg`.
  """
  if fn is None:
    return None
  name = _args.activation_name(fn)
  if isinstance(name, str):
    return name
  for name, registered in _FUNCTIONS.items():
    if registered is fn:
      return name
  label = getattr(fn, "__name__", type(fn).__name__)
  raise TypeError(f"{owner}: {arg} ({label}) is an arbitrary Python function "
                  f"and cannot be saved; {_HINT}.")


def function_from_name(name: Optional[str], owner: str,
                       arg: str) -> Optional[Callable]:
  """Looks a saved function name up (activations, then registered ones).

  Raises:
    ValueError: For an unknown name or a non-string.
  """
  if name is None:
    return None
  if not isinstance(name, str):
    raise ValueError(f"{owner}: `{arg}` must be a function name in a config; "
                     f"got {name!r}.")
  if name.lower() in _args._ACTIVATIONS:  # pylint: disable=protected-access
    return _args.get_activation(name, owner)
  if name in _FUNCTIONS:
    return _FUNCTIONS[name]
  builtin = sorted(_args._ACTIVATIONS)  # pylint: disable=protected-access
  raise ValueError(
      f"{owner}: unknown function {name!r} for `{arg}`; built-in activations "
      f"are {builtin}, registered functions {sorted(_FUNCTIONS)}. Register "
      "it with jdlayers.io.register_function(name, fn) before loading.")


# -- classes -----------------------------------------------------------------

def register_class(name: str) -> Callable[[type], type]:
  """Class decorator: makes a class saveable under `name`, its public path.

  The class offers `get_config()` and a `from_config(config)` classmethod.
  Each jdlayers class registers where it is defined, so the registry is
  complete once `jdlayers` is imported. Only exactly the registered class is
  saveable (a subclass is not, unless it registers itself).

  Args:
    name: The public path below `jdlayers`, e.g. "Affine" or
      "priors.Normal"; saved configs hold it.

  Returns:
    A decorator that registers the class and returns it unchanged.

  Raises:
    ValueError: For an empty name, or a name already registered to another
      class.

  #### Example

  ```python
  from jdlayers import _registry

  @_registry.register_class("priors.MyPrior")
  class MyPrior(jdl.priors.Prior):
    ...
  ```
  """
  if not isinstance(name, str) or not name:
    raise ValueError(f"register_class: `name` must be a non-empty string; "
                     f"got {name!r}.")

  def decorator(cls: type) -> type:
    old = _CLASSES.get(name)
    # A re-executed module (importlib.reload) re-registers its own class.
    if old is not None and (old.__module__, old.__qualname__) != (
        cls.__module__, cls.__qualname__):
      raise ValueError(f"register_class: {name!r} is already registered to "
                       f"{old.__module__}.{old.__qualname__}.")
    _CLASSES[name] = cls
    return cls

  return decorator


def known_classes() -> List[str]:
  """Sorted names of the classes `to_config`/`from_config` handle."""
  return sorted(_CLASSES)


def class_name(cls: type) -> Optional[str]:
  """The name `cls` itself is registered under (None for other classes)."""
  for name, registered in _CLASSES.items():
    if registered is cls:
      return name
  return None


def to_config(obj) -> Dict[str, Any]:
  """The JSON-able configuration of a jdlayers object.

  Args:
    obj: A layer or network distribution, a static layer (`Lambda`,
      `Flatten`, pooling), a prior, a likelihood or a `models.Model`.

  Returns:
    `{"class": name, "config": {constructor arguments}}`; children, priors
    and likelihoods nested the same way.

  Raises:
    TypeError: For an object of another class, or one holding an arbitrary
      Python function (a `params_model_fn`, a `Lambda` or `General` function
      that is neither an activation nor registered).

  #### Example

  ```python
  import jdlayers as jdl
  cfg = jdl.io.to_config(jdl.Affine(3, 2, activation="relu"))
  cfg["class"], cfg["config"]["activation"]  # 'Affine', 'relu'
  ```
  """
  name = class_name(type(obj))
  if name is None:
    known = known_classes()
    raise TypeError(f"{type(obj).__name__} ({obj!r:.80}) is not a saveable "
                    f"jdlayers class; saveable classes: {known}.")
  return {"class": name, "config": obj.get_config()}


def from_config(config: Mapping[str, Any]):
  """Rebuilds an object from `to_config`'s output (or its JSON round trip).

  Args:
    config: `{"class": name, "config": {...}}`.

  Returns:
    The object; its `to_config` equals `config`, and with the same seed it
    samples the same values and gives the same `log_prob` as the original.

  Raises:
    ValueError: For an unknown class name (the message lists the known ones)
      or an invalid config.

  #### Example

  ```python
  import jdlayers as jdl
  layer = jdl.io.from_config({"class": "Affine", "config": {
      "out_units": 3, "in_units": 2}})
  ```
  """
  if (not isinstance(config, Mapping) or "class" not in config
      or not isinstance(config.get("config", {}), Mapping)):
    raise ValueError(f"a config must be a dict {{'class': name, 'config': "
                     f"{{...}}}}; got {config!r:.200}.")
  extra = sorted(set(config) - {"class", "config"})
  if extra:
    raise ValueError(f"config of {config['class']!r} has unknown keys {extra}.")
  name = config["class"]
  cls = _CLASSES.get(name) if isinstance(name, str) else None
  if cls is None:
    raise ValueError(f"unknown class {name!r} in config; known classes: "
                     f"{known_classes()}.")
  try:
    return cls.from_config(dict(config.get("config", {})))
  except TypeError as e:  # e.g. an unexpected or missing argument
    raise ValueError(f"invalid config for {name}: {e}") from None


# -- constructor arguments ---------------------------------------------------

_OBJECT_ARGS = ("prior", "inner")
_OBJECT_LIST_ARGS = ("layers", "branches")
_FUNCTION_ARGS = ("activation", "fn", "observation_shape")


def encode_args(owner: str, args: Mapping[str, Any]) -> Dict[str, Any]:
  """JSON-able config of normalised constructor arguments.

  Objects (`prior`, `inner`, `layers`, `branches`) become nested configs,
  functions (`activation`, `fn`, `observation_shape`) names, `dtype` a
  string and tuples lists; a `params_model_fn` other than None is refused.

  Raises:
    TypeError: For an unsaveable function or object, naming `owner`.
  """
  out = {}
  for key, value in args.items():
    if key == "params_model_fn":
      if value is not None:
        raise TypeError(
            f"{owner}: params_model_fn is an arbitrary Python function and "
            "cannot be saved; use `prior=` with a jdlayers.priors prior "
            "instead.")
      continue
    if key in _FUNCTION_ARGS:
      value = function_to_name(value, owner, key)
    elif key == "dtype":
      value = tf.as_dtype(value).name
    elif key in _OBJECT_ARGS:
      value = None if value is None else _child(owner, key, value)
    elif key in _OBJECT_LIST_ARGS:
      value = [_child(owner, f"{key}[{i}]", v) for i, v in enumerate(value)]
    elif isinstance(value, tuple):
      value = list(value)
    out[key] = value
  return out


def _child(owner: str, arg: str, value):
  try:
    return to_config(value)
  except TypeError as e:
    raise TypeError(f"{owner}: {arg} cannot be saved: {e}") from None


def decode_args(owner: str, config: Mapping[str, Any]) -> Dict[str, Any]:
  """Inverse of `encode_args`: keyword arguments for the constructor."""
  out = {}
  for key, value in config.items():
    if key in _FUNCTION_ARGS:
      value = function_from_name(value, owner, key)
    elif key in _OBJECT_ARGS:
      value = None if value is None else from_config(value)
    elif key in _OBJECT_LIST_ARGS:
      if not isinstance(value, list):
        raise ValueError(f"{owner}: `{key}` must be a list of configs; got "
                         f"{value!r:.200}.")
      value = [from_config(v) for v in value]
    out[key] = value
  return out


# -- tfp distributions (likelihood priors) -----------------------------------

def encode_param(value, owner: str, arg: str):
  """A likelihood parameter: a number as is, a `tfd` prior as a dict."""
  if isinstance(value, tfd.Distribution):
    return distribution_to_config(value, owner, arg)
  return value


def decode_param(value, owner: str, arg: str):
  """Inverse of `encode_param`."""
  if isinstance(value, Mapping):
    return distribution_from_config(value, owner, arg)
  return value


def distribution_to_config(dist, owner: str, arg: str) -> Dict[str, Any]:
  """`{"tfd": class name, "parameters": {...}, "dtypes": {...}}` of a
  `tfp.distributions` object whose parameters are numbers or arrays.

  Raises:
    TypeError: For a distribution outside `tfp.distributions` or with a
      non-numeric parameter (another distribution, a bijector, a function).
  """
  cls = type(dist)
  name = cls.__name__
  if getattr(tfd, name, None) is not cls:
    raise TypeError(f"{owner}: the prior of `{arg}` ({name}) is not a "
                    "tfp.distributions class and cannot be saved.")
  params, dtypes = {}, {}
  for key, value in dist.parameters.items():
    if value is None or isinstance(value, bool):
      params[key] = value
    elif key == "name" and isinstance(value, str):
      params[key] = value
    elif isinstance(value, (numbers.Number, np.ndarray, np.generic, tf.Tensor,
                            tf.Variable)):
      attr = getattr(dist, key, None)
      dtype = getattr(attr, "dtype", None) or np.asarray(value).dtype
      dtype = tf.as_dtype(dtype)
      if dtype.name not in _NUMERIC_DTYPES:
        raise TypeError(f"{owner}: parameter {key!r} of the prior of `{arg}` "
                        f"has dtype {dtype.name}, which cannot be saved.")
      params[key] = np.asarray(value, dtype.as_numpy_dtype).tolist()
      dtypes[key] = dtype.name
    else:
      raise TypeError(f"{owner}: the prior of `{arg}` ({name}) has parameter "
                      f"{key}={value!r:.80}, which is not numeric; only "
                      "distributions with numeric parameters can be saved.")
  return {"tfd": name, "parameters": params, "dtypes": dtypes}


def distribution_from_config(config: Mapping[str, Any], owner: str,
                             arg: str) -> tfd.Distribution:
  """Rebuilds a `tfp.distributions` object from `distribution_to_config`.

  Only public `tfd` classes that subclass `tfd.Distribution` are looked up,
  and only JSON numbers, booleans, None and the `name` string are passed.

  Raises:
    ValueError: For an unknown class, unexpected keys or non-numeric values.
  """
  where = f"{owner}: the prior of `{arg}`"
  if set(config) != {"tfd", "parameters", "dtypes"}:
    raise ValueError(f"{where} must be a dict with keys 'tfd', 'parameters', "
                     f"'dtypes'; got keys {sorted(config)}.")
  name, params, dtypes = config["tfd"], config["parameters"], config["dtypes"]
  cls = None
  if isinstance(name, str) and name.isidentifier() and not name.startswith("_"):
    cls = getattr(tfd, name, None)
  if not (isinstance(cls, type) and issubclass(cls, tfd.Distribution)):
    raise ValueError(f"{where}: {name!r} is not a tfp.distributions "
                     "distribution.")
  if not isinstance(params, Mapping) or not isinstance(dtypes, Mapping):
    raise ValueError(f"{where}: 'parameters' and 'dtypes' must be dicts.")
  kwargs = {}
  for key, value in params.items():
    if key in dtypes:
      if dtypes[key] not in _NUMERIC_DTYPES or not _is_numeric(value):
        raise ValueError(f"{where}: parameter {key!r} must be numeric with a "
                         f"dtype in {list(_NUMERIC_DTYPES)}; got {value!r:.80}"
                         f" ({dtypes[key]!r}).")
      value = np.asarray(value, tf.as_dtype(dtypes[key]).as_numpy_dtype)
    elif not (value is None or isinstance(value, bool)
              or (key == "name" and isinstance(value, str))):
      raise ValueError(f"{where}: parameter {key!r}={value!r:.80} is neither "
                       "numeric (listed in 'dtypes'), boolean nor None.")
    kwargs[key] = value
  try:
    return cls(**kwargs)
  except (TypeError, ValueError) as e:
    raise ValueError(f"{where}: cannot build {name}: {e}") from None


def _is_numeric(value) -> bool:
  if isinstance(value, list):
    return all(_is_numeric(v) for v in value)
  return isinstance(value, numbers.Real) and not isinstance(value, bool)
