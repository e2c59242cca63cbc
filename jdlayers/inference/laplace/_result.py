"""`LaplaceResult`: a Gaussian posterior around a point estimate.

`N(theta*, (H + diag(delta))^{-1})` over the chosen parts (the rest stay at
`theta*`), with `H` the GGN (diagonal, KFAC or full) and `delta` the prior
precision of each parameter's layer.
"""

from __future__ import annotations

from typing import List

import numpy as np
import tensorflow as tf

from jdlayers import _validate
from jdlayers.inference.laplace import _curvature, _ggn, _io, _predictive

PRED_TYPES = ("glm", "mc")
LINK_APPROX = ("probit", "mc")


class LaplaceResult:
  """A fitted Laplace approximation (build it with `jdl.laplace.fit`).

  Attributes:
    model: The `jdlayers.models.Model`.
    params: Every part at the point estimate (network, then latents).
    part_names: Their names.
    subset: Names of the parts with a Gaussian posterior.
    hessian: "diag", "kron" or "full".
    prior_precision: Per layer of the subset (`layer_names` order), `[G]`.
    layer_names: The subset's layer paths.
    log_likelihood: `log p(y | theta*)` on the fitting data.
    num_params: Parameters in the subset.
  """

  def __init__(self, model, params, part_names, selection, structure,
               prior_precision, log_likelihood: float, num_examples: int):
    self.model = model
    self.params: List[tf.Tensor] = list(params)
    self.part_names = list(part_names)
    self.selection = selection
    self.structure = structure
    self.prior_precision = np.asarray(prior_precision, np.float64)
    self.log_likelihood = float(log_likelihood)
    self.num_examples = int(num_examples)

  # -- description ----------------------------------------------------------
  @property
  def hessian(self) -> str:
    return self.structure.kind

  @property
  def subset(self) -> List[str]:
    return list(self.selection.names)

  @property
  def layer_names(self) -> List[str]:
    return list(self.selection.group_names)

  @property
  def num_params(self) -> int:
    return self.selection.num_params

  @property
  def _num_net(self) -> int:
    return len(tf.nest.flatten(self.model.probe))

  @property
  def map_network(self):
    """The network at the point estimate (a callable, no sample dims)."""
    return tf.nest.pack_sequence_as(self.model.probe,
                                    self.params[:self._num_net])

  @property
  def latents(self):
    names = self.part_names[self._num_net:]
    return dict(zip(names, self.params[self._num_net:]))

  def _theta(self) -> tf.Tensor:
    return tf.concat([tf.reshape(tf.cast(self.params[i], tf.float64), [-1])
                      for i in self.selection.indices], 0)

  def _delta(self, prior_precision=None) -> tf.Tensor:
    if prior_precision is None:
      return tf.constant(self.prior_precision)
    value = np.broadcast_to(np.asarray(prior_precision, np.float64),
                            self.prior_precision.shape)
    if not (np.all(np.isfinite(value)) and np.all(value > 0)):
      raise ValueError(f"LaplaceResult: prior precisions must be finite and "
                       f"> 0; got {prior_precision!r}.")
    return tf.constant(value)

  # -- the posterior --------------------------------------------------------
  def log_marginal_likelihood(self, prior_precision=None) -> float:
    """The Laplace estimate of `log p(y)` (MacKay 1992; as laplace-torch).

    `log p(y | theta*) - 1/2 sum delta theta*^2 + 1/2 sum log delta
    - 1/2 log det(H + diag(delta))`: the Gaussian integral of the posterior
    around `theta*` with prior `N(0, 1/delta)` on the subset (the rest of
    the network is held fixed). Exact for Bayesian linear regression when
    `theta*` is the posterior mode under that prior.

    Args:
      prior_precision: A scalar or `[G]` per layer (default: the fitted).

    Returns:
      A float.
    """
    return float(self._lml(self._delta(prior_precision)))

  def _lml(self, delta) -> tf.Tensor:
    theta = self._theta()
    d = self.structure.expand(delta)
    return (self.log_likelihood - 0.5 * tf.reduce_sum(d * theta ** 2)
            + 0.5 * tf.reduce_sum(tf.math.log(d))
            - 0.5 * self.structure.logdet(delta))

  def sample_parts(self, n: int, seed=0) -> List[tf.Tensor]:
    """`n` draws of every network part, `[n, *shape]` (non-subset: tiled)."""
    n = _validate.count(n, "n", "LaplaceResult.sample", minimum=1)
    seed = _predictive.seed_pair(seed)
    flat = self.structure.sample_flat(n, self._delta(), seed)
    devs = self.structure.split(flat)
    parts = [tf.repeat(p[None], n, axis=0)
             for p in self.params[:self._num_net]]
    for j, i in enumerate(self.selection.indices):
      parts[i] = parts[i] + tf.cast(devs[j], parts[i].dtype)
    return parts

  def sample(self, n: int, seed=0):
    """`n` networks from the approximate posterior, like `net.sample(n)`.

    Args:
      n: Number of networks.
      seed: Stateless seed (int or pair); the same seed gives the same
        networks (None: fresh ones on every call).

    Returns:
      A sampled network whose parameters have a leading dim `n`; call it on
      `x [N, ...]` for `[n, N, *out]`.
    """
    return tf.nest.pack_sequence_as(self.model.probe,
                                    self.sample_parts(n, seed))

  # -- predictions ----------------------------------------------------------
  def _jacobians(self, x, max_memory: int):
    """Yields `(f_mean [n, K], J [n, K, P])` over chunks of checked `x`."""
    net_parts = self.params[:self._num_net]
    f_mean = tf.reshape(self.map_network(x), [int(x.shape[0]), -1])
    k = int(f_mean.shape[-1])
    per = (k * self.num_params + sum(int(tf.size(p)) for p in net_parts)
           ) * net_parts[0].dtype.size
    identity = lambda f: tf.reshape(f, [tf.shape(f)[0], -1])
    for sl in _curvature.chunks(int(x.shape[0]), per, max_memory):
      jac = _ggn.per_example_jacobian(self.model.probe, net_parts,
                                      self.selection.indices, x[sl], identity)
      yield tf.cast(f_mean[sl], tf.float64), tf.cast(jac, tf.float64)

  def functional_variance(self, x, max_memory: int = 2 ** 24):
    """The linearised network's mean and covariance at `x`.

    Args:
      x: `[N, *features]`.
      max_memory: Bytes of per-example Jacobians held at once.

    Returns:
      `(f_mean [N, K], f_cov [N, K, K])`, K the flattened outputs per point.
    """
    x, _ = self.model.check_x(x)
    means, covs = [], []
    for mean, jac in self._jacobians(x, max_memory):
      means.append(mean)
      covs.append(self.structure.functional_cov(jac, self._delta()))
    return tf.concat(means, 0).numpy(), tf.concat(covs, 0).numpy()

  def optimize_prior_precision(self, x_val, y_val, grid=None,
                               link_approx: str = "probit",
                               n_samples: int = 100, seed=0) -> np.ndarray:
    """Picks the prior precision minimising the GLM predictive's NLL on
    held-out data (laplace-torch's "gridsearch"), and keeps it.

    The marginal likelihood trusts the model; on small data with a MAP
    that fits its training set almost exactly it can leave the predictive
    under-confident, and a validation split corrects that.

    Args:
      x_val: `[M, *features]` held-out inputs (not the fitting data).
      y_val: `[M, *obs]` held-out observations.
      grid: Candidate scalar precisions (default `logspace(-4, 6, 41)`),
        each applied to every layer.
      link_approx: As in `predict`.
      n_samples: As in `predict` (for `link_approx="mc"`).
      seed: As in `predict`.

    Returns:
      The chosen precision per layer, `[G]` (also `self.prior_precision`).

    Raises:
      ValueError: For an empty or non-positive grid, or bad data.
    """
    where = "LaplaceResult.optimize_prior_precision"
    grid = np.logspace(-4, 6, 41) if grid is None else np.ravel(
        np.asarray(grid, np.float64))
    if not grid.size or not np.all(np.isfinite(grid) & (grid > 0)):
      raise ValueError(f"{where}: `grid` must hold positive finite "
                       f"precisions; got {grid!r:.200}.")
    if link_approx not in LINK_APPROX:
      raise ValueError(f"{where}: `link_approx` must be one of "
                       f"{LINK_APPROX}; got {link_approx!r}.")
    lik = self.model.likelihood
    post = self.model.posterior(x_val, y_val)
    y = post.y.numpy()
    totals = np.zeros(len(grid))
    start = 0
    for mean, jac in self._jacobians(post.x, 2 ** 24):
      n = int(mean.shape[0])
      for i, g in enumerate(grid):
        delta = tf.fill([len(self.prior_precision)], tf.constant(
            g, tf.float64))
        cov = self.structure.functional_cov(jac, delta).numpy()
        pred = _predictive.glm(lik, self.latents, mean.numpy(), cov,
                               post.out_shape, link_approx, n_samples, seed)
        totals[i] += _predictive.nll_sum(lik, pred, y[start:start + n])
      start += n
    self.prior_precision = np.full(len(self.prior_precision),
                                   grid[int(np.argmin(totals))])
    return self.prior_precision

  def predict(self, x, pred_type: str = "glm", link_approx: str = "probit",
              n_samples: int = 100, seed=0):
    """The posterior predictive at `x`.

    Args:
      x: `[N, *features]`.
      pred_type: "glm" (the network linearised at `theta*`, a Gaussian over
        outputs) or "mc" (averages `n_samples` sampled networks).
      link_approx: For "glm" with classes: "probit" (softmax/sigmoid of
        `f / sqrt(1 + pi/8 var f)`, MacKay 1992) or "mc" (`n_samples`
        draws of the Gaussian outputs).
      n_samples: Monte Carlo draws.
      seed: Stateless seed of the draws.

    Returns:
      Class probabilities `[N, K]` (Categorical), success probabilities
      `[N, *out]` (Bernoulli), or a `Prediction(mean, variance)` (Normal).

    Raises:
      ValueError: For unknown `pred_type` / `link_approx`.
    """
    where = "LaplaceResult.predict"
    if pred_type not in PRED_TYPES:
      raise ValueError(f"{where}: `pred_type` must be one of {PRED_TYPES}; "
                       f"got {pred_type!r}.")
    if link_approx not in LINK_APPROX:
      raise ValueError(f"{where}: `link_approx` must be one of "
                       f"{LINK_APPROX}; got {link_approx!r}.")
    n_samples = _validate.count(n_samples, "n_samples", where, minimum=1)
    xt, out_shape = self.model.check_x(x)
    if pred_type == "mc":
      f = self.sample(n_samples, seed)(xt)
      return _predictive.moments(self.model.likelihood, self.latents, f)
    mean, cov = self.functional_variance(xt)
    return _predictive.glm(self.model.likelihood, self.latents, mean, cov,
                           out_shape, link_approx, n_samples, seed)

  # -- files --------------------------------------------------------------
  def save(self, path, overwrite: bool = False) -> str:
    """Saves the result to a pickle-free jdlayers file, atomically.

    The file holds every part at the point estimate, the curvature, the
    prior precisions, `log p(y | theta*)` and the model's configuration
    (when `jdlayers.io` can serialise it; else `load` needs the model).
    About `4 * params + structure bytes` (see `fit`); no data.

    Args:
      path: Destination, e.g. "la.jdl.npz".
      overwrite: Replace an existing file.

    Returns:
      The path written.

    Raises:
      FileExistsError: If `path` exists and `overwrite` is False.

    #### Example

    ```python
    la.save("la.jdl.npz")
    same = jdl.laplace.load("la.jdl.npz")
    ```
    """
    return _io.save(self, path, overwrite=overwrite)

  def __repr__(self) -> str:
    return (f"<LaplaceResult hessian={self.hessian!r}: {self.num_params} "
            f"parameters in {len(self.subset)} parts, prior precision "
            f"{np.round(self.prior_precision, 4).tolist()}>")
