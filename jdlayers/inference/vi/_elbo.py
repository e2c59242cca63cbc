"""The evidence lower bound, per example, with minibatch scaling.

Convention (stated once, used everywhere in jdlayers): the training loss is
the negative ELBO divided by the dataset size `N`,

    loss = -(1/N) ELBO = -(1/N) sum_i E_q[log p(y_i | x_i, w)] + KL(q || p) / N,

estimated on a minibatch `B` by the batch mean of the negative
log-likelihood plus `KL / N`. This is unbiased for every batch size, keeps
the loss on the scale of a per-example NLL (comparable across datasets and
batch sizes), and equals tfp.layers' recipe of
`kernel_divergence_fn = kl / num_examples` with a mean-reduced loss. Multiply
by `N` for the ELBO itself.

Two knobs change the objective (both 1 for the ELBO):

* `kl_weight` (beta) multiplies the whole KL:
  `loss = nll + beta * KL / N`. This is likelihood tempering: the optimum is
  the variational fit to `p(y | x, w)^(1 / beta) p(w)`.
* `temperature` (T) tempers the whole posterior as Wenzel et al. (2020),
  `p_T(w | D) ~ exp(-U(w) / T)` with `U = -sum_i log p(y_i | x_i, w) -
  log p(w)`: minimising `KL(q || p_T)`, times `T / N`, gives

      loss = nll + (E_q[-log p(w)] - T * H(q)) / N
           = nll + (KL + (1 - T) * H(q)) / N,

  so `T` multiplies only the entropy `H(q)` of the surrogate: `T < 1` (a
  cold posterior) narrows q, `T > 1` widens it. Unlike `kl_weight`, it
  leaves the prior's weight against the data unchanged (at a point mass
  both are MAP). With both, `loss = nll + beta * (KL + (1 - T) H(q)) / N`.
  The reported `kl` is always the plain `KL(q || p)` estimate.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf
import tensorflow_probability as tfp


class ELBOTerms(NamedTuple):
  """One minibatch estimate: `loss = nll + kl_weight * kl / num_examples`
  (with `temperature` T != 1, `kl + (1 - T) * H(q)` in place of `kl`)."""
  loss: tf.Tensor
  nll: tf.Tensor
  kl: tf.Tensor


def elbo_terms(surrogate, x, y, *, num_examples: int, estimator="flipout",
               num_samples: int = 1, seed=None, analytic_kl: bool = True,
               kl_weight=1.0, mask=None, temperature: float = 1.0,
               total=None, replicas: int = 1) -> ELBOTerms:
  """Minibatch estimate of the per-example negative ELBO and its parts.

  Args:
    surrogate: A `Surrogate` built from a `Model`.
    x: `[B, *features]` minibatch inputs.
    y: `[B, *obs]` minibatch observations (validated by the caller).
    num_examples: Dataset size `N` used to scale the KL.
    estimator: Per-layer estimator(s), see `Surrogate.apply`.
    num_samples: Monte Carlo draws averaged per step.
    seed: Stateless seed pair.
    analytic_kl: Use closed-form KL terms where available.
    kl_weight: Multiplies the KL term (1 for the ELBO; < 1 to anneal): a
      number or a scalar tensor (a tensor is not baked into a graph).
    mask: Optional `[B]` 0/1 weights: padded examples (0) are left out of
      the batch mean, so a padded last batch gives the same estimate.
    temperature: Posterior temperature T > 0 (module docstring): scales the
      surrogate's entropy in the loss; 1 for the ELBO.
    total: Optional scalar, the real examples of the global batch when this
      is one replica's shard of it: the NLL is summed over the shard and
      divided by `total` (default: this batch's count), so the replicas'
      terms add up to the global batch's mean.
    replicas: The replicas whose terms are summed (1 without a strategy):
      the KL part is divided by it, so the sum counts it once per step.

  Returns:
    `ELBOTerms(loss, nll, kl)`: scalars; `nll` is the batch mean negative
    log-likelihood, `kl` the full (unscaled) KL estimate (with `total` and
    `replicas`, this replica's shares of them).
  """
  model = surrogate.model
  s_kl, s_fwd = tfp.random.split_seed(seed)
  shape = [num_samples] if num_samples > 1 else []
  parts = surrogate.sample_parts(shape, seed=s_kl)
  _, latents = surrogate.unpack(parts)
  out = surrogate.apply(x, estimator=estimator, sample_shape=shape,
                        seed=s_fwd)
  point = model.likelihood.point_distribution(out, latents, len(shape))
  lp = point.log_prob(y)  # [*S, B, *obs']
  extra = lp.shape.rank - len(shape) - 1
  if extra:
    lp = tf.reduce_sum(lp, axis=list(range(-extra, 0)))
  if mask is None and total is None:
    nll = -tf.reduce_mean(lp)
  else:
    mask = tf.ones(tf.shape(lp)[-1:], lp.dtype) if mask is None else tf.cast(
        mask, lp.dtype)
    count = (tf.reduce_sum(mask) if total is None else tf.cast(
        total, lp.dtype)) * (num_samples if shape else 1)
    nll = -tf.reduce_sum(lp * mask) / count
  draws = ([[p[i] for p in parts] for i in range(num_samples)] if shape
           else [parts])
  # Each of `replicas` shards carries 1/replicas of the KL: summed, it
  # counts once per step however the batch was split.
  kl = tf.add_n([surrogate.kl_divergence(analytic=analytic_kl, parts=z)
                 for z in draws]) / (len(draws) * replicas)
  divergence = kl
  if temperature != 1:  # a Python float: T = 1 adds nothing to the graph
    entropy = tf.add_n([surrogate.entropy(parts=z) for z in draws]) / (
        len(draws) * replicas)
    divergence = kl + tf.cast(1. - temperature, kl.dtype) * entropy
  weight = tf.cast(kl_weight, nll.dtype) / num_examples
  loss = nll + weight * tf.cast(divergence, nll.dtype)
  return ELBOTerms(loss, nll, kl)
