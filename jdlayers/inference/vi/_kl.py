"""KL terms of a surrogate against a layer's prior, part by part."""

from __future__ import annotations

from typing import List, Sequence

import tensorflow as tf
import tensorflow_probability as tfp

from jdlayers._support import Supported
from jdlayers.inference.vi import _builders

tfd = tfp.distributions
Root = tfd.JointDistributionCoroutine.Root


@tf.autograph.experimental.do_not_convert
def prior_components(prior, values: Sequence, path: str = ""
                     ) -> List[tfd.Distribution]:
  """The prior's component distributions given the values of their parents.

  Runs the layer's coroutine model, sending `values` (one per component, in
  model order), so a hierarchical prior's kernel distribution is conditioned
  on the sampled scales.
  """
  gen = prior._model_coroutine()  # pylint: disable=protected-access
  out = []
  try:
    d = next(gen)
    for v in values:
      out.append(d.distribution if isinstance(d, Root) else d)
      d = gen.send(v)
  except StopIteration:
    pass
  if len(out) != len(values):
    raise ValueError(f"vi: layer {path!r}: its prior yields {len(out)} "
                     f"components but the surrogate has {len(values)} parts.")
  return out


@tf.autograph.experimental.do_not_convert
def _kl_term(q: tfd.Distribution, p: tfd.Distribution, z, analytic: bool):
  """One part's contribution to `KL(q || p)` (see `kl_divergence`)."""
  qn = _builders.normal_params(q)
  if qn is not None and qn[1] is None:  # point mass: cross-entropy only
    return -tf.reduce_sum(p.log_prob(z))
  if analytic and qn is not None:
    kl = elementwise_kl(tfd.Normal(*qn), p)
    if kl is not None:
      return kl
  return tf.reduce_sum(q.log_prob(z) - p.log_prob(z))


@tf.autograph.experimental.do_not_convert
def entropy_term(q: tfd.Distribution, z):
  """One part's entropy `H(q)`: exact for a normal surrogate, else the
  one-sample estimate `-log q(z)`; 0 for a point mass, whose (minus
  infinite) entropy is a constant left out as in its KL term."""
  qn = _builders.normal_params(q)
  if qn is not None and qn[1] is None:
    return tf.zeros([], z.dtype)
  if qn is not None:
    return tf.reduce_sum(tfd.Normal(*qn).entropy())
  return -tf.reduce_sum(q.log_prob(z))


@tf.autograph.experimental.do_not_convert
def elementwise_kl(q_base: tfd.Distribution, p: tfd.Distribution):
  """Exact `KL(Independent(q_base) || p)` for i.i.d./independent priors, or
  None when TFP has no closed form (or the shapes do not line up)."""
  k = q_base.batch_shape.rank
  if isinstance(p, tfd.Sample) and p.distribution.batch_shape.rank == 0 and (
      p.distribution.event_shape.rank == 0):
    base = p.distribution
  elif isinstance(p, tfd.Independent) and (
      p.distribution.event_shape.rank == 0 and
      tf.get_static_value(p.reinterpreted_batch_ndims) == k):
    base = p.distribution
  elif p.event_shape.rank == 0 and p.batch_shape.rank == 0 and k == 0:
    base = p
  else:
    return None
  base = _undeclared(base)
  try:
    kl = tfd.kl_divergence(q_base, base)
  except NotImplementedError:
    return None
  return tf.reduce_sum(kl)


def _undeclared(dist: tfd.Distribution) -> tfd.Distribution:
  """`dist` without the support declarations of `jdlayers.priors` (one draw
  of a `Supported` is its distribution), so TFP's KL registry sees the
  family it has closed forms for."""
  while isinstance(dist, Supported) and (
      tf.get_static_value(tf.size(dist.sample_shape)) == 0):
    dist = dist.distribution
  return dist
