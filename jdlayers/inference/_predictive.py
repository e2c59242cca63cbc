"""Posterior predictive summaries from draws of a `Posterior`'s state."""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from jdlayers.layers._base import stateless_seed


@dataclasses.dataclass
class Predictive:
  """Posterior predictive at `M` inputs, from `D` draws of `C` chains.

  Attributes:
    outputs: `[D, C, M, *out]` raw network outputs.
    means: `[D, C, M, *obs]` the likelihood's mean per draw (the function
      values of a regression; class probabilities for `Categorical`).
    samples: `[D, C, M, *obs]` one observation drawn per network.
    mean: `[M, *obs]` posterior predictive mean.
    std: `[M, *obs]` posterior predictive standard deviation (noise plus
      uncertainty about the function).
  """
  outputs: np.ndarray
  means: np.ndarray
  samples: np.ndarray
  mean: np.ndarray
  std: np.ndarray
  _posterior: object = dataclasses.field(repr=False, default=None)
  _states: Sequence = dataclasses.field(repr=False, default=())
  _x: object = dataclasses.field(repr=False, default=None)

  def interval(self, prob: float = 0.9, of: str = "y"
               ) -> Tuple[np.ndarray, np.ndarray]:
    """Equal-tailed credible interval, each bound `[M, *obs]`.

    Args:
      prob: Probability mass inside the interval, in (0, 1).
      of: "y" for new observations (from `samples`), "mean" for the function
        (from `means`).
    """
    if not 0. < prob < 1.:
      raise ValueError(f"Predictive.interval: `prob` must be in (0, 1); got "
                       f"{prob!r}.")
    if of not in ("y", "mean"):
      raise ValueError(f"Predictive.interval: `of` must be 'y' or 'mean'; got "
                       f"{of!r}.")
    a = self.samples if of == "y" else self.means
    a = a.reshape((-1,) + a.shape[2:]).astype(np.float64)
    lo, hi = np.quantile(a, [(1. - prob) / 2., (1. + prob) / 2.], axis=0)
    return lo, hi

  def log_prob(self, y) -> np.ndarray:
    """Log posterior predictive density of observed `y` per point, `[M]`.

    `log (1/K) sum_k p(y_m | theta_k)` over the `K = D * C` draws.
    """
    post = self._posterior.model.posterior(self._x, y)
    lls = []
    for part in _batches(self._states, 256):
      lls.append(post.log_likelihood(*part, pointwise=True).numpy())
    ll = np.concatenate(lls).astype(np.float64)  # [K, M]
    return (tf.reduce_logsumexp(ll, axis=0) - np.log(ll.shape[0])).numpy()

  def nll(self, y) -> float:
    """Mean negative log predictive density per point."""
    return float(-np.mean(self.log_prob(y)))

  def rmse(self, y) -> float:
    """Root mean squared error of the predictive mean against `y`."""
    y = np.asarray(y, np.float64).reshape(self.mean.shape)
    return float(np.sqrt(np.mean((self.mean - y) ** 2)))


def _batches(states, batch_size: int):
  """Flattens `[D, C, ...]` states to `[D*C, ...]` and yields batches."""
  flat = [np.reshape(s, (-1,) + s.shape[2:]) for s in states]
  k = flat[0].shape[0]
  for i in range(0, k, batch_size):
    yield [tf.constant(f[i:i + batch_size]) for f in flat]


def predict(posterior, states, x, seed=None, batch_size: int = 256
            ) -> Predictive:
  """Applies every drawn network to `x` (see `MCMCResult.predict`)."""
  model = posterior.model
  x, out_shape = model.check_x(x)
  lik = model.likelihood
  core = 1 + len(out_shape)
  d, c = states[0].shape[:2]
  seed = stateless_seed(0 if seed is None else seed)
  outs, means, variances, samples = [], [], [], []
  for i, part in enumerate(_batches(states, batch_size)):
    network, latents = posterior.unpack(part)
    out = network(x)
    point = lik.point_distribution(out, latents, out.shape.rank - core)
    outs.append(out.numpy())
    means.append(lik.mean(point).numpy())
    variances.append(lik.variance(point).numpy())
    s = tf.random.experimental.stateless_fold_in(seed, i)
    samples.append(point.sample(seed=s).numpy())
  reshape = lambda a: np.concatenate(a).reshape((d, c) + np.concatenate(
      a).shape[1:])
  outputs, means, variances, samples = map(
      reshape, (outs, means, variances, samples))
  m = means.astype(np.float64)
  mean = m.mean(axis=(0, 1))
  var = variances.astype(np.float64).mean(axis=(0, 1)) + m.var(axis=(0, 1))
  return Predictive(outputs=outputs, means=means, samples=samples, mean=mean,
                    std=np.sqrt(var), _posterior=posterior, _states=states,
                    _x=x)
