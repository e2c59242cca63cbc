"""`map_estimate`: the posterior mode, the point a Laplace approximation needs.

Minimises `-(log prior + log likelihood) / N` by Adam on random minibatches
(the likelihood scaled by `N / batch`), in the unconstrained space of the
model's bijectors (weights are unconstrained already; a learnt noise scale
is optimised through its log, with no Jacobian term: the mode of the
density of the parameters themselves). The step runs in one `tf.function`;
the learning rate decays to zero on a cosine, which lets the last steps
settle near the mode.
"""

from __future__ import annotations

import math
from typing import List, Optional

import tensorflow as tf

from jdlayers import _validate
from jdlayers.layers._base import stateless_seed


def map_estimate(model, x, y, *, steps: int = 2000,
                 learning_rate: float = 1e-2,
                 batch_size: Optional[int] = 256, seed=0,
                 jit_compile: bool = False) -> List[tf.Tensor]:
  """The maximum a posteriori parameters of `model` given data.

  Args:
    model: A `jdlayers.models.Model`.
    x: `[N, *features]` inputs.
    y: `[N, *obs]` observations.
    steps: Adam steps.
    learning_rate: Peak learning rate (cosine decay to 0).
    batch_size: Examples per step (None or >= N: the full data).
    seed: Stateless seed of the initial point and the minibatches.
    jit_compile: Compile the step with XLA.

  Returns:
    The flat parts (network parts, then likelihood latents), no sample dims,
    in `model.posterior(x, y).part_names` order.

  Raises:
    ValueError: For bad counts or data (see `Model.posterior`).

  #### Example

  ```python
  import jdlayers as jdl, numpy as np
  model = jdl.models.Model(jdl.Affine(1, 2), jdl.models.Normal(0.5))
  x = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
  parts = jdl.laplace.map_estimate(model, x, x.sum(-1), steps=300)
  ```
  """
  where = "laplace.map_estimate"
  steps = _validate.count(steps, "steps", where, minimum=1)
  learning_rate = _validate.real(learning_rate, "learning_rate", where,
                                 low=0., low_open=True)
  post = model.posterior(x, y)
  n = int(post.x.shape[0])
  bs = n if batch_size is None else min(
      n, _validate.count(batch_size, "batch_size", where, minimum=1))
  init_seed, batch_seed = tf.unstack(tf.random.experimental.stateless_split(
      tf.convert_to_tensor(stateless_seed(seed)) if seed is not None
      else tf.constant([0, 0]), 2))
  init = post.init(1, seed=init_seed)
  bijectors = post.bijectors
  free = [tf.Variable(b.inverse(p[0])) for b, p in zip(bijectors, init)]
  moments = [(tf.Variable(tf.zeros_like(v)), tf.Variable(tf.zeros_like(v)))
             for v in free]
  lik = model.likelihood
  scale = float(n) / bs

  def loss_fn(xb, yb):
    parts = [b.forward(v) for b, v in zip(bijectors, free)]
    network, latents = post.unpack(parts)
    lp = model.network.log_prob(network)
    for name, prior in lik.latents.items():
      lp += prior.log_prob(latents[name])
    ll = lik.distribution(network(xb), latents, 0).log_prob(yb)
    return -(lp + scale * ll) / n

  def step(t):
    if bs < n:
      idx = tf.random.stateless_uniform(
          [bs], tf.random.experimental.stateless_fold_in(batch_seed, t),
          0, n, tf.int32)
      xb, yb = tf.gather(post.x, idx), tf.gather(post.y, idx)
    else:
      xb, yb = post.x, post.y
    with tf.GradientTape() as tape:
      loss = loss_fn(xb, yb)
    grads = tape.gradient(loss, free)
    tf_t = tf.cast(t, free[0].dtype) + 1.
    lr = learning_rate * 0.5 * (1. + tf.cos(math.pi * (tf_t - 1.) / steps))
    for v, (m, s), g in zip(free, moments, grads):
      m.assign(0.9 * m + 0.1 * g)
      s.assign(0.999 * s + 0.001 * tf.square(g))
      mhat = m / (1. - 0.9 ** tf_t)
      shat = s / (1. - 0.999 ** tf_t)
      v.assign_sub(tf.cast(lr, v.dtype) * mhat / (tf.sqrt(shat) + 1e-8))
    return loss

  compiled = tf.function(step, jit_compile=jit_compile, autograph=False)
  for t in range(steps):
    compiled(tf.constant(t))
  return [b.forward(tf.convert_to_tensor(v)) for b, v in zip(bijectors, free)]
