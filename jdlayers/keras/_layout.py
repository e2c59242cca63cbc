"""Keras' kernel layout for the `jdlayers.keras` layers.

jdlayers' dense layer keeps `weights` as `[units, in]` (as `tf.nn` and the
anchor); Keras and tfp.layers keep a dense `kernel` as `[in, units]`. The
Keras layers store, create and expose everything in Keras' layout (the
variables, the hooks' distributions, `kernel_posterior`, `kernel_prior`)
and hand the jdlayers distribution a transposed *view*: a normal or point
mass stays a normal or point mass (so Flipout, local reparameterization
and the analytic KL keep working); any other family is wrapped in a
`Transpose` bijector, which `to_keras` unwraps again.

Convolutions already share Keras' layout (`[*k, in, out]`, transposed
`[*k, out, in]`): their permutation is None and nothing is transposed.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions
tfb = tfp.bijectors

Perm = Optional[Tuple[int, ...]]


def inverse(perm: Perm) -> Perm:
  """The permutation undoing `perm` (None stays None)."""
  if perm is None:
    return None
  out = [0] * len(perm)
  for i, p in enumerate(perm):
    out[p] = i
  return tuple(out)


def permute_shape(shape: Sequence[int], perm: Perm) -> Tuple[int, ...]:
  """`shape` after `tf.transpose(., perm)`."""
  shape = tuple(int(s) for s in shape)
  return shape if perm is None else tuple(shape[p] for p in perm)


def transpose_tensor(x, perm: Perm):
  """`tf.transpose(x, perm)` over the last `len(perm)` axes."""
  if perm is None:
    return x
  x = tf.convert_to_tensor(x)
  lead = x.shape.rank - len(perm)
  return tf.transpose(x, list(range(lead)) + [lead + p for p in perm])


def transpose_dist(d: tfd.Distribution, perm: Perm) -> tfd.Distribution:
  """A distribution over `transpose(z, perm)` for `z ~ d` (event axes).

  Exact, same family, for an (Independent) `Normal` or `Deterministic`
  whose parameters have the event's shape (or are scalars) and for an
  i.i.d. `Sample`; else `d` through a `Transpose` bijector. Undoes an
  earlier `transpose_dist` instead of stacking bijectors.
  """
  if perm is None or tuple(perm) == tuple(range(len(perm))):
    return d
  rank = len(perm)
  if isinstance(d, tfd.TransformedDistribution) and isinstance(
      d.bijector, tfb.Transpose) and tuple(
          tf.get_static_value(d.bijector.perm)) == inverse(perm):
    return d.distribution
  if isinstance(d, tfd.Sample) and d.distribution.batch_shape.rank == 0 and (
      d.distribution.event_shape.rank == 0) and d.event_shape.rank == rank:
    return tfd.Sample(d.distribution,
                      permute_shape(d.event_shape, perm), name=d.name)
  if isinstance(d, tfd.Independent) and d.event_shape.rank == rank and (
      d.distribution.batch_shape.rank == rank) and isinstance(
          d.distribution, (tfd.Normal, tfd.Deterministic)):
    base = d.distribution
    names = ("loc", "scale") if isinstance(base, tfd.Normal) else ("loc",)
    params = {}
    for n in names:
      value = tf.convert_to_tensor(getattr(base, n))
      if value.shape.rank not in (0, rank):
        break
      params[n] = value if value.shape.rank == 0 else transpose_tensor(
          value, perm)
    else:
      return tfd.Independent(type(base)(**params),
                             reinterpreted_batch_ndims=rank, name=d.name)
  return tfd.TransformedDistribution(
      d, tfb.Transpose(perm=list(perm)), name=d.name)


def keras_view(d: tfd.Distribution, perm: Perm) -> tfd.Distribution:
  """`d` (jdlayers' layout) as tfp.layers code expects it: in Keras'
  layout (`perm`: Keras -> jdlayers, undone here), an i.i.d. normal as
  tfp.layers' `Independent(Normal)` (so `tfd.kl_divergence(q, p)` of a
  normal posterior against it has its closed form, as in tfp.layers)."""
  d = transpose_dist(d, inverse(perm))
  if not isinstance(d, tfd.Sample):
    return d
  base = d.distribution
  # Peel draw-less wrappers (a prior's declared support is a `Sample` with
  # sample shape `[]` around the scalar).
  while isinstance(base, tfd.Sample) and (
      base.event_shape == base.distribution.event_shape):
    base = base.distribution
  if isinstance(base, tfd.Normal) and base.batch_shape.rank == 0 and (
      base.event_shape.rank == 0):
    shape = d.event_shape
    return tfd.Independent(
        tfd.Normal(tf.broadcast_to(base.loc, shape),
                   tf.broadcast_to(base.scale, shape)),
        reinterpreted_batch_ndims=shape.rank, name=d.name)
  return d
