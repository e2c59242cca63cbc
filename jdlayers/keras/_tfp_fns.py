"""tfp.layers' hook functions as `jdlayers.keras` hooks.

tfp.layers builds each part's posterior and prior with a function
`fn(dtype, shape, name, trainable, add_variable_fn) -> tfd.Distribution`
(`tfp.layers.default_mean_field_normal_fn()`,
`default_multivariate_normal_fn`, functions made with
`default_loc_scale_fn`, users' own). `TfpPosterior` turns such a function
into a jdlayers VI builder: its variables are created through the Keras
layer's `add_weight` (trainable, saved with the layer), and the function
is called again at every use with the same variables ("create or access
existing", as `tf.get_variable`), because a TFP distribution built around
a Keras 3 variable holds a copy of its value, not the variable.
"""

from __future__ import annotations

import inspect
from typing import Callable, Optional

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

_FACTORIES = ("default_mean_field_normal_fn", "default_loc_scale_fn")


def arity(fn, owner: str, arg: str, allowed=(2, 5)) -> int:
  """How `fn` is called: 2 (jdlayers builder `(spec, make_variable)` or
  prior `(dtype, shape)`) or 5 (tfp.layers' `(dtype, shape, name,
  trainable, add_variable_fn)`).

  Raises:
    TypeError: For a tfp.layers factory passed uncalled, or a callable that
      takes neither form.
  """
  if getattr(fn, "__name__", "") in _FACTORIES and getattr(
      fn, "__module__", "").startswith("tensorflow_probability"):
    raise TypeError(f"{owner}: `{arg}` is the factory tfp.layers."
                    f"{fn.__name__}; call it: `{arg}=tfp.layers."
                    f"{fn.__name__}()`.")
  try:
    sig = inspect.signature(fn)
  except (TypeError, ValueError):
    return allowed[0]  # builtins without a signature: try the first form
  # A callable taking both forms (`lambda *args: ...`) is tfp.layers' form:
  # these hooks are tfp.layers' (a jdlayers builder names its two arguments).
  for n in sorted(allowed, reverse=True):
    try:
      sig.bind(*range(n))
      return n
    except TypeError:
      pass
  forms = {2: ("a jdlayers builder (spec, make_variable), e.g. "
               "jdlayers.vi.mean_field_normal()" if "posterior" in arg else
               "a function (dtype, shape) -> tfd.Distribution"),
           5: "a tfp.layers function (dtype, shape, name, trainable, "
              "add_variable_fn) -> tfd.Distribution"}
  raise TypeError(f"{owner}: `{arg}` takes arguments {sig}; pass "
                  + " or ".join(forms[n] for n in allowed) + ".")


def as_event(d, shape, name: Optional[str], owner: str,
             arg: str) -> tfd.Distribution:
  """`d` as a distribution over one `shape` event named `name` (a scalar or
  `shape`-batched distribution is made i.i.d./independent over `shape`).
  With `name=None`, a `d` that already has that event is returned itself
  (tfp.layers hands divergence functions the very objects).

  Raises:
    TypeError: If `d` is not a `tfd.Distribution`.
    ValueError: If its shapes cannot make a `shape` event.
  """
  shape = tuple(int(s) for s in shape)
  if not isinstance(d, tfd.Distribution):
    raise TypeError(f"{owner}: `{arg}` must return a tfd.Distribution; got "
                    f"{type(d).__name__}.")
  event, batch = d.event_shape, d.batch_shape
  if event == shape and batch.rank == 0:
    if name is None:
      return d
    try:
      return d.copy(name=name)
    except (TypeError, ValueError):  # subclasses with other constructors
      return tfd.Independent(d, reinterpreted_batch_ndims=0, name=name)
  if event.rank == 0 and batch == shape:
    return tfd.Independent(d, reinterpreted_batch_ndims=len(shape), name=name)
  if event.rank == 0 and batch.rank == 0:
    return tfd.Sample(d, sample_shape=list(shape), name=name)
  raise ValueError(f"{owner}: `{arg}` returned {type(d).__name__} with batch "
                   f"shape {batch} and event shape {event}; expected event "
                   f"shape {list(shape)} (or a scalar distribution, or batch "
                   f"shape {list(shape)}).")


class TfpPosterior:
  """A jdlayers VI builder calling a tfp.layers posterior function.

  Args:
    fn: `(dtype, shape, name, trainable, add_variable_fn) ->
      tfd.Distribution` over a `shape` event.
    role: "kernel" or "bias": the `name` passed is f"{role}_posterior" as
      in tfp.layers, and variables are named `{role}_{suffix}` (e.g.
      `kernel_loc`, `kernel_untransformed_scale`).
    owner: Layer name for errors.
    arg: Argument name for errors.
  """

  def __init__(self, fn: Callable, role: str, owner: str, arg: str):
    self.fn, self.role, self.owner, self.arg = fn, role, owner, arg

  def __call__(self, spec, make_variable):
    prefix = f"{self.role}_posterior"
    made = {}

    def add_variable_fn(name, shape=None, initializer=None, regularizer=None,
                        constraint=None, dtype=None, trainable=True,
                        **unused):
      del trainable, unused  # the Keras layer's `trainable` applies
      key = name[len(prefix) + 1:] if name.startswith(prefix + "_") else name
      if key in made:
        return made[key]
      if regularizer is not None or constraint is not None:
        raise ValueError(
            f"{self.owner}: `{self.arg}` asks for a regularizer or constraint "
            f"on {name!r}, which jdlayers.keras layers do not apply; add "
            "the penalty through a divergence function (kernel_divergence_fn"
            "=...) or use jdlayers.vi.mean_field_normal(...).")
      dtype = tf.as_dtype(dtype or spec.dtype)
      shape = tuple(int(s) for s in (spec.shape if shape is None else shape))
      init = initializer or tf.zeros_initializer()
      made[key] = make_variable(
          key, shape, lambda: tf.cast(init(shape, dtype), dtype))
      return made[key]

    def make():
      d = self.fn(spec.dtype, list(spec.shape), prefix, True, add_variable_fn)
      return as_event(d, spec.shape, None, self.owner, self.arg)
    make()  # creates the variables now (inside the layer's build)
    return make

  def __repr__(self) -> str:
    return f"TfpPosterior({getattr(self.fn, '__name__', self.fn)!r})"
