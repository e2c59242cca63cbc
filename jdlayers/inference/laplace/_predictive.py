"""Predictive distributions from output moments or output draws.

Shared by `LaplaceResult.predict` and the validation search of
`LaplaceResult.optimize_prior_precision`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from jdlayers.inference.laplace import _ggn
from jdlayers.layers._base import stateless_seed
from jdlayers.models import _likelihoods


class Prediction(NamedTuple):
  """A regression predictive: `mean` and `variance` of `y`, `[N, *out]`
  (the variance includes the noise)."""
  mean: np.ndarray
  variance: np.ndarray


def seed_pair(seed) -> tf.Tensor:
  """A stateless seed pair: ints and pairs as everywhere in jdlayers; None
  draws a fresh one (different results on every call)."""
  if seed is None:
    return tf.random.uniform([2], 0, 2 ** 31 - 1, tf.int32)
  return tf.convert_to_tensor(stateless_seed(seed), tf.int32)


def moments(lik, latents, f):
  """From output draws `f [S, N, *out]`: probabilities or `Prediction`."""
  if isinstance(lik, _likelihoods.Normal):
    s = float(_ggn.noise_scale(lik, latents, tf.float64))
    f = tf.cast(f, tf.float64)
    return Prediction(tf.reduce_mean(f, 0).numpy(),
                      (tf.math.reduce_variance(f, 0) + s * s).numpy())
  if isinstance(lik, _likelihoods.Bernoulli):
    return tf.reduce_mean(tf.math.sigmoid(f), 0).numpy()
  return tf.reduce_mean(tf.nn.softmax(f), 0).numpy()


def glm(lik, latents, mean, cov, out_shape, link_approx: str,
        n_samples: int, seed):
  """From the linearised outputs `N(mean [N, K], cov [N, K, K])`."""
  n = mean.shape[0]
  var = np.diagonal(cov, axis1=1, axis2=2)
  if isinstance(lik, _likelihoods.Normal):
    s = float(_ggn.noise_scale(lik, latents, tf.float64))
    return Prediction(mean.reshape((n,) + out_shape),
                      (var + s * s).reshape((n,) + out_shape))
  if link_approx == "probit":
    logits = tf.constant(mean / np.sqrt(1. + math.pi / 8. * var))
    if isinstance(lik, _likelihoods.Bernoulli):
      return tf.math.sigmoid(logits).numpy().reshape((n,) + out_shape)
    return tf.nn.softmax(logits).numpy()
  chol = tf.linalg.cholesky(tf.constant(cov) + 1e-10 * tf.eye(
      cov.shape[-1], dtype=tf.float64))
  seed = seed_pair(seed)
  z = tf.random.stateless_normal([n_samples, n, cov.shape[-1], 1], seed,
                                 dtype=tf.float64)
  f = mean[None] + tf.squeeze(tf.matmul(chol, z), -1)
  return moments(lik, latents, tf.reshape(f, (n_samples, n) + out_shape))


def nll_sum(lik, pred, y) -> float:
  """Summed negative log predictive density of `y` (`[N, *obs]`)."""
  y = np.asarray(y)
  if isinstance(lik, _likelihoods.Normal):
    y = y.reshape(pred.mean.shape)
    return float(np.sum(0.5 * np.log(2 * np.pi * pred.variance) +
                        0.5 * (y - pred.mean) ** 2 / pred.variance))
  p = np.clip(np.asarray(pred, np.float64), 1e-300, 1.)
  if isinstance(lik, _likelihoods.Bernoulli):
    y = y.reshape(p.shape)
    return float(-np.sum(np.where(y > 0, np.log(p), np.log1p(-np.minimum(
        p, 1. - 1e-16)))))
  return float(-np.sum(np.log(p[np.arange(len(y)), y.astype(int)])))
