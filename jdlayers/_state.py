"""Helpers to hand sampled networks to `tfp.mcmc` as flat state parts."""

from __future__ import annotations

from typing import List

import tensorflow_probability as tfp

tfb = tfp.bijectors


def event_space_bijectors(dist) -> List[tfb.Bijector]:
  """Per-part bijectors from unconstrained space, in `tf.nest.flatten` order.

  `tf.nest.flatten(dist.sample(...))` are the state parts; this list, passed to
  `tfp.mcmc.TransformedTransitionKernel`, maps each part from unconstrained
  space to its support (identity for kernels and biases, a softplus-like map
  for the horseshoe's scales). Supports must not depend on other components,
  which holds for every prior in `jdlayers.priors`.

  Args:
    dist: A layer or network distribution.

  Returns:
    A list of bijectors, one per state part.

  #### Example

  ```python
  import jdlayers as jdl, tensorflow as tf
  net = jdl.Affine(2, 3, prior=jdl.priors.horseshoe())
  parts = tf.nest.flatten(net.sample(4, seed=0))
  bijectors = jdl.event_space_bijectors(net)   # len(bijectors) == len(parts)
  ```
  """
  return _flatten(dist.experimental_default_event_space_bijector())


def _flatten(bijector) -> List[tfb.Bijector]:
  # A joint distribution's default bijector is a Composition over its model's
  # components; a nested joint distribution contributes one such per child.
  if type(bijector).__name__ == "_DefaultJointBijector":
    out = []
    for b in bijector.bijectors:
      out.extend(_flatten(b))
    return out
  return [bijector]
