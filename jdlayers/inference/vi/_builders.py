"""Per-part surrogate families: mean-field normal, point mass, user builders.

A *builder* makes the trainable distribution of one state part (a kernel, a
bias, a hierarchical prior's scale, a likelihood's noise scale). It is called
once as `builder(spec, make_variable)`, creates its variables through
`make_variable(name, shape, initializer)`, and returns a zero-argument
function that builds the part's distribution from those variables (called
inside every training step, so it must only read variables). The
distribution lives in the part's constrained space (apply `spec.bijector`
to a distribution over unconstrained space) and has event shape
`spec.shape` and batch shape `[]`.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from typing import Callable, Optional, Tuple, Union

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions
tfb = tfp.bijectors

Builder = Callable[..., Callable[[], tfd.Distribution]]


@dataclasses.dataclass(frozen=True)
class PartSpec:
  """What a builder knows about the part it approximates.

  Attributes:
    name: Part name, e.g. "0/kernel", "1/bias", "scale".
    shape: Event shape of the part, e.g. `(3, 3, 1, 16)`.
    dtype: Floating dtype.
    bijector: The prior's event-space bijector (unconstrained -> support);
      identity for kernels and biases.
    role: "kernel", "bias" or "latent" (any other part).
    seed: Stateless seed of the initial values: a pair of ints or an int32
      tensor of shape `[2]` (symbolic when built inside a graph).
    init: Optional initial value of the part (in its support, shape
      `shape`), e.g. a MAP or deterministic fit's weights; builders start
      their location there (MOPED, Krishnan et al. 2020).
    init_scale: Optional initial scale, a positive tensor broadcastable to
      `shape` (in unconstrained space for constrained parts).
  """
  name: str
  shape: Tuple[int, ...]
  dtype: tf.DType
  bijector: tfb.Bijector
  role: str
  seed: Union[Tuple[int, int], tf.Tensor] = (0, 0)
  init: Optional[tf.Tensor] = None
  init_scale: Optional[tf.Tensor] = None


def _is_identity(bijector) -> bool:
  """True for `Identity`, seen through `tfd.Sample`'s wrapper bijector."""
  while "DefaultSampleBijector" in type(bijector).__name__:
    bijector = bijector.bijector
  return isinstance(bijector, tfb.Identity)


def _init_normal(spec: PartSpec, mean: float, stddev: float, salt: int):
  seed = tf.random.experimental.stateless_fold_in(
      tf.convert_to_tensor(spec.seed, tf.int32), salt)

  def init():
    return tf.random.stateless_normal(spec.shape, seed, mean, stddev,
                                      spec.dtype)
  return init


def _init_loc(spec: PartSpec, stddev: float):
  """The initial unconstrained location: `spec.init` mapped back through the
  bijector, or `N(0, stddev)` draws."""
  if spec.init is None:
    return _init_normal(spec, 0., stddev, 1)
  value = spec.init
  if spec.bijector is not None and not _is_identity(spec.bijector):
    value = spec.bijector.inverse(value)
  return lambda: tf.cast(value, spec.dtype)


def _init_rho(spec: PartSpec, mean: float, stddev: float):
  """The initial `rho` with `softplus(rho) + eps = spec.init_scale`, or
  `N(mean, stddev)` draws."""
  if spec.init_scale is None:
    return _init_normal(spec, mean, stddev, 2)
  eps = float(np.finfo(spec.dtype.as_numpy_dtype).eps)
  scale = tf.broadcast_to(tf.cast(spec.init_scale, spec.dtype), spec.shape)
  # softplus^-1 of a floored scale: MOPED's `delta * |w|` is 0 at w = 0.
  floor = tf.cast(_MIN_INIT_SCALE, spec.dtype)
  return lambda: tfp.math.softplus_inverse(tf.maximum(scale - eps, floor))


# Smallest initial scale the builders set (above float32's eps).
_MIN_INIT_SCALE = 1e-6


def mean_field_normal(loc_stddev: float = 0.1,
                      untransformed_scale_mean: float = -3.0,
                      untransformed_scale_stddev: float = 0.1) -> Builder:
  """Independent normal per entry, scale `softplus(rho) + eps` (as tfp).

  Initial values follow `tfp.layers.default_mean_field_normal_fn`:
  `loc ~ N(0, loc_stddev)`, `rho ~ N(-3, 0.1)` (so the scale starts near
  0.05). Parts with a constrained support get the normal in unconstrained
  space, pushed through the prior's event-space bijector. A part given an
  initial value (`Surrogate(init=...)`) starts its location there, and
  one given `init_scale` starts its scale there.

  Args:
    loc_stddev: Spread of the initial locations.
    untransformed_scale_mean: Mean of the initial `rho`.
    untransformed_scale_stddev: Spread of the initial `rho`.

  Returns:
    A builder (see the module docstring).

  #### Example

  ```python
  import jdlayers as jdl
  q = jdl.vi.Surrogate(jdl.Affine(2, 3),
                       builders={"bias": jdl.vi.mean_field_normal(0.01)})
  ```
  """
  return MeanFieldNormal(loc_stddev=float(loc_stddev),
                         untransformed_scale_mean=float(
                             untransformed_scale_mean),
                         untransformed_scale_stddev=float(
                             untransformed_scale_stddev))


def point_mass(loc_stddev: float = 0.1) -> Builder:
  """A point mass (`tfd.Deterministic`): MAP for this part, as tfp's
  `is_singular=True`. Its KL term is `-log p(value)` (the entropy, minus
  infinity, is a constant dropped from the objective).

  Args:
    loc_stddev: Spread of the initial values (in unconstrained space).

  Returns:
    A builder.
  """
  return PointMass(loc_stddev=float(loc_stddev))


class _NamedBuilder:
  """A built-in builder: callable as `builder(spec, make_variable)`, with a
  JSON config (`get_config`) so that Keras layers can save it."""

  name = ""

  def __init__(self, **config):
    self._config = config

  def get_config(self) -> dict:
    """The factory's keyword arguments."""
    return dict(self._config)

  def __eq__(self, other) -> bool:
    return type(self) is type(other) and self._config == other._config

  def __hash__(self) -> int:
    return hash((self.name, tuple(sorted(self._config.items()))))

  def __repr__(self) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in self._config.items())
    return f"jdlayers.vi.{self.name}({args})"


class MeanFieldNormal(_NamedBuilder):
  """The builder `mean_field_normal(...)` returns."""

  name = "mean_field_normal"

  def __call__(self, spec: PartSpec, make_variable):
    c = self._config
    loc = make_variable("loc", spec.shape, _init_loc(spec, c["loc_stddev"]))
    rho = make_variable("untransformed_scale", spec.shape,
                        _init_rho(spec, c["untransformed_scale_mean"],
                                  c["untransformed_scale_stddev"]))
    eps = float(np.finfo(spec.dtype.as_numpy_dtype).eps)
    ndims = len(spec.shape)

    def make():
      base = tfd.Independent(
          tfd.Normal(tf.convert_to_tensor(loc),
                     eps + tf.nn.softplus(tf.convert_to_tensor(rho))),
          reinterpreted_batch_ndims=ndims)
      if _is_identity(spec.bijector):
        return base
      return tfd.TransformedDistribution(base, spec.bijector)
    return make


class PointMass(_NamedBuilder):
  """The builder `point_mass(...)` returns."""

  name = "point_mass"

  def __call__(self, spec: PartSpec, make_variable):
    loc = make_variable("loc", spec.shape,
                        _init_loc(spec, self._config["loc_stddev"]))
    ndims = len(spec.shape)

    def make():
      value = spec.bijector.forward(tf.convert_to_tensor(loc))
      return tfd.Independent(tfd.Deterministic(value),
                             reinterpreted_batch_ndims=ndims)
    return make


def builder_from_config(name: str, config: dict) -> Builder:
  """Rebuilds a built-in builder from its `name` and `get_config()`.

  Raises:
    ValueError: For an unknown builder name.
  """
  factories = {"mean_field_normal": mean_field_normal,
               "point_mass": point_mass}
  if name not in factories:
    raise ValueError(f"vi: unknown builder {name!r}; built-in builders are "
                     f"{sorted(factories)}.")
  return factories[name](**config)


def select_builder(spec: PartSpec, builders, point_mass_parts, default
                   ) -> Builder:
  """The builder for `spec`: user patterns first, then point mass, default.

  Patterns are `fnmatch` globs over part names ("*/bias", "0/kernel") or a
  bare parameter name ("bias" matches every layer's bias).
  """
  for pattern, builder in (builders or {}).items():
    if _matches(spec.name, pattern):
      return builder
  if _selected(spec.name, point_mass_parts):
    return point_mass()
  return default


def _matches(name: str, pattern: str) -> bool:
  return fnmatch.fnmatchcase(name, pattern) or name.rsplit("/", 1)[-1] == pattern


def _selected(name: str, which) -> bool:
  if which is None or which is False:
    return False
  if which is True:
    return True
  if callable(which):
    return bool(which(name))
  if isinstance(which, str):
    which = (which,)
  return any(_matches(name, p) for p in which)


def normal_params(dist: tfd.Distribution
                  ) -> Optional[Tuple[tf.Tensor, Optional[tf.Tensor]]]:
  """`(loc, scale)` of an (Independent) Normal, `(value, None)` of a point
  mass, or None for any other family (flipout/local need these two)."""
  inner = dist.distribution if isinstance(dist, tfd.Independent) else dist
  if isinstance(inner, tfd.Normal):
    return inner.loc, inner.scale
  if isinstance(inner, tfd.Deterministic):
    return inner.loc, None
  return None
