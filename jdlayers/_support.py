"""Declared supports: a distribution that says which values it can take.

TFP maps a distribution's values to unconstrained space (for HMC and VI)
with its default event-space bijector, which TFP 0.25 leaves undefined for
some families (mixtures among them). `Supported` declares it instead, and
every prior in `jdlayers.priors` wraps its components' scalar distributions
in it. This module is on the ground floor: it imports nothing of jdlayers.
"""

from __future__ import annotations

from typing import Optional

import tensorflow_probability as tfp
from tensorflow_probability.python.internal import parameter_properties
from tensorflow_probability.python.internal import prefer_static as ps

tfd = tfp.distributions
tfb = tfp.bijectors

__all__ = ["Supported", "with_support"]


class Supported(tfd.Sample):
  """`tfd.Sample(distribution, sample_shape)` on a declared support.

  Its default event-space bijector is `support`, not the one TFP infers
  (TFP 0.25 infers none for mixtures). TFP's containers (`tfd.Sample`,
  `tfd.Independent`, joint distributions) pass it on, so a component that
  wraps its scalar distribution in `Supported` keeps its support however it
  is later reshaped. Build it with `with_support`.

  Args:
    distribution: The distribution drawn i.i.d. (any batch and event shape).
    sample_shape: Shape of the i.i.d. draws (default: one draw, `()`).
    support: A `tfb.Bijector` from unconstrained space onto the support of a
      whole draw `[*sample_shape, *event]`; an elementwise bijector
      (`Identity`, `Exp`, `Softplus`, `Sigmoid`) fits every shape.
    validate_args: As `tfd.Sample`.
    experimental_use_kahan_sum: As `tfd.Sample`.
    name: Name (default: `distribution.name`).
  """

  def __init__(self, distribution, sample_shape=(), support=None,
               validate_args=False, experimental_use_kahan_sum=False,
               name=None):
    parameters = dict(locals())
    if not isinstance(support, tfb.Bijector):
      raise TypeError("jdlayers.priors.Supported: `support` must be a "
                      "tfp.bijectors.Bijector from unconstrained space onto "
                      "the support (e.g. tfb.Identity() for real values); "
                      f"got {support!r}.")
    self._support = support
    super().__init__(distribution, sample_shape, validate_args=validate_args,
                     experimental_use_kahan_sum=experimental_use_kahan_sum,
                     name=name or distribution.name)
    self._parameters = parameters

  @classmethod
  def _parameter_properties(cls, dtype, num_classes=None):
    # As `tfd.Sample`'s, plus the bijector: it acts on a whole draw, so its
    # batch shape is read at the event's rank in unconstrained space.
    return dict(
        distribution=parameter_properties.BatchedComponentProperties(),
        sample_shape=parameter_properties.ShapeParameterProperties(),
        support=parameter_properties.BatchedComponentProperties(
            event_ndims=lambda d: d.support.inverse_event_ndims(
                d.event_shape.rank),
            event_ndims_tensor=lambda d: d.support.inverse_event_ndims(
                ps.rank_from_shape(d.event_shape_tensor()))))

  @property
  def support(self) -> tfb.Bijector:
    """The declared bijector from unconstrained space onto the support."""
    return self._support

  def _default_event_space_bijector(self):
    return self._support


def with_support(distribution: tfd.Distribution, support: tfb.Bijector,
                 sample_shape=(), name: Optional[str] = None) -> Supported:
  """Declares the support of `distribution` (see `Supported`).

  Use it in a `params_model_fn`, or in a `Prior` subclass, for a component
  whose distribution has no default event-space bijector (a mixture, say),
  so that `jdlayers.event_space_bijectors`, MCMC and VI can map it to
  unconstrained space.

  Args:
    distribution: Any distribution.
    support: Bijector from unconstrained space onto its support.
    sample_shape: I.i.d. draws to take (default `()`: `distribution` itself).
    name: Component name (default: `distribution.name`).

  Returns:
    A `Supported` distribution with the same density as
    `tfd.Sample(distribution, sample_shape)`.

  Raises:
    TypeError: If `support` is not a bijector.

  #### Example

  ```python
  import jdlayers as jdl, tensorflow_probability as tfp
  tfd, tfb = tfp.distributions, tfp.bijectors
  mix = tfd.MixtureSameFamily(tfd.Categorical(probs=[0.5, 0.5]),
                              tfd.Normal([0., 0.], [0.1, 1.]))
  def params_model_fn(out_units, in_units, dtype):
    yield tfd.JointDistributionCoroutine.Root(jdl.priors.with_support(
        mix, tfb.Identity(), [out_units, in_units], name="weights"))
  layer = jdl.Affine(3, 2, params_model_fn=params_model_fn)
  jdl.event_space_bijectors(layer)   # [Identity]
  ```
  """
  return Supported(distribution, sample_shape, support=support, name=name)
