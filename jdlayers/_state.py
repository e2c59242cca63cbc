"""Helpers to hand sampled networks to `tfp.mcmc` as flat state parts."""

from __future__ import annotations

from typing import Iterator, List, Mapping, Optional, Tuple

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions
tfb = tfp.bijectors


def event_space_bijectors(dist) -> List[tfb.Bijector]:
  """Per-part bijectors from unconstrained space, in `tf.nest.flatten` order.

  `tf.nest.flatten(dist.sample(...))` are the state parts; this list, passed to
  `tfp.mcmc.TransformedTransitionKernel`, maps each part from unconstrained
  space to its support (identity for kernels and biases, `exp` for the
  horseshoe's scales). Each part's bijector is the support its prior
  declares (see `jdlayers.priors.with_support`; every built-in prior
  declares all of its parts), else its distribution's default event-space
  bijector. Supports must not depend on other components, which holds for
  every prior in `jdlayers.priors`.

  Args:
    dist: A layer or network distribution (any joint distribution, or a
      single distribution).

  Returns:
    A list of bijectors, one per state part.

  Raises:
    ValueError: If a part has neither a declared support nor a default
      bijector (e.g. a `tfd.MixtureSameFamily` in a user's prior); the
      message names the layer, the part and how to declare its support.

  #### Example

  ```python
  import jdlayers as jdl, tensorflow as tf
  net = jdl.Affine(2, 3, prior=jdl.priors.horseshoe())
  parts = tf.nest.flatten(net.sample(4, seed=0))
  bijectors = jdl.event_space_bijectors(net)   # len(bijectors) == len(parts)
  ```
  """
  out = []
  for layer, name, part in _leaf_parts(dist):
    out.append(support_bijector(part, f"layer {layer}, part {name!r} (state "
                                      f"part {len(out)})"))
  return out


def state_bijectors(network, latents: Optional[Mapping[str, tfd.Distribution]]
                    = None) -> List[tfb.Bijector]:
  """`event_space_bijectors(network)` followed by one bijector per latent.

  The state of a model's chain (or surrogate) is the network's parts and
  then the likelihood's latents (e.g. a noise scale), in `latents` order.

  Args:
    network: A layer or network distribution.
    latents: Optional mapping name -> prior of the likelihood's latents.

  Returns:
    A list of bijectors, one per state part.

  Raises:
    ValueError: As `event_space_bijectors`, for any part.
  """
  out = event_space_bijectors(network)
  for name, prior in (latents or {}).items():
    out.append(support_bijector(prior, f"likelihood latent {name!r}"))
  return out


def support_bijector(part: tfd.Distribution, where: str) -> tfb.Bijector:
  """The bijector onto one part's support: declared, else TFP's default.

  A support declared with `jdlayers.priors.with_support` is the
  distribution's default event-space bijector, seen through TFP's containers
  (`Sample`, `Independent`), so one call reads both.

  Args:
    part: The part's distribution.
    where: Names the part in the error message.

  Returns:
    A `tfb.Bijector`.

  Raises:
    ValueError: If the part has neither.
  """
  bijector = part.experimental_default_event_space_bijector()
  if bijector is None:
    raise ValueError(
        f"event_space_bijectors: {where} has no declared support, and its "
        f"distribution ({_describe(part)}) has no default event-space "
        "bijector in TFP, so MCMC and VI cannot map it to unconstrained "
        "space. Declare it: in a jdlayers.priors.Prior subclass, return the "
        "bijector from `kernel_support(spec)` (e.g. tfb.Identity() for real "
        "values, tfb.Softplus() for positive ones); in a params_model_fn, "
        "yield jdlayers.priors.with_support(dist, bijector, sample_shape, "
        "name=...) instead of tfd.Sample(dist, sample_shape, name=...).")
  return bijector


def _leaf_parts(dist) -> Iterator[Tuple[str, str, tfd.Distribution]]:
  """Yields `(layer description, part name, distribution)` per state part.

  A joint distribution's components are its parts, in model order (the
  order of `tf.nest.flatten` of a sample); a component that is itself a joint
  distribution (a composite's child layer) contributes its own parts.
  """
  if not tf.nest.flatten(dist.dtype):
    return  # A parameter-free layer (Lambda, Flatten, pooling): no part.
  if not isinstance(dist, tfd.JointDistribution):
    yield _layer_desc(dist), getattr(dist, "name", "part"), dist
    return
  # The components given one draw from the model (as TFP's own default
  # joint bijector reads them); supports do not depend on that draw.
  components = dist._get_single_sample_distributions()  # pylint: disable=protected-access
  names = dist._flat_resolve_names()  # pylint: disable=protected-access
  for name, comp in zip(names, components):
    # A child layer contributes its own parts (none for a parameter-free one).
    if isinstance(comp, tfd.JointDistribution) or not tf.nest.flatten(
        comp.dtype):
      yield from _leaf_parts(comp)
    else:
      yield _layer_desc(dist), name, comp


def _layer_desc(dist) -> str:
  config = getattr(dist, "config", None)
  return str(getattr(config, "desc", None) or getattr(dist, "name", None) or
             type(dist).__name__)


def _describe(dist) -> str:
  inner = dist
  while isinstance(inner, (tfd.Sample, tfd.Independent)):
    inner = inner.distribution
  if inner is dist:
    return type(dist).__name__
  return f"{type(dist).__name__} of {type(inner).__name__}"
