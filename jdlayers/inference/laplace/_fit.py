"""`fit`: a Laplace approximation of a jdlayers model, as laplace-torch's."""

from __future__ import annotations

import numbers
from typing import Mapping, Optional, Union

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from jdlayers import _validate
from jdlayers.inference.laplace import (_curvature, _ggn, _map, _params,
                                        _select, _structures)
from jdlayers.inference.laplace._result import LaplaceResult

DEFAULT_MAX_MEMORY = 2 ** 30
TUNE = ("marglik", "marglik_per_layer")


def fit(model, x, y, *, params=None, hessian: str = "kron",
        subset: _select.Subset = "all",
        prior_precision: Union[float, Mapping[str, float], str] = 1.0,
        max_memory: Optional[int] = DEFAULT_MAX_MEMORY, seed=0,
        map_options: Optional[dict] = None) -> LaplaceResult:
  """Fits a Laplace approximation around a point estimate of `model`.

  The posterior of the chosen parts is `N(theta*, (H + diag(delta))^{-1})`:
  `theta*` the point estimate, `H` the generalized Gauss-Newton of the
  likelihood on `(x, y)`, `delta` the precision of a `N(0, 1/delta)` prior
  per layer. Parts outside the subset and the likelihood latents stay at
  `theta*`. The likelihood must be `Normal`, `Bernoulli` or `Categorical`.

  Memory (float64; `P` parameters in the subset): "diag" holds `8 P`
  bytes, "kron" `16 sum_l (out_l^2 + width_l^2)` (`width` = kernel columns
  `prod(size) * in` plus 1 for the bias), "full" `16 P^2` (briefly twice
  that while it is built). Computing `H`
  holds per-example Jacobians (`K P` numbers each, K outputs per point) for
  at most `min(16 MiB, max_memory)` bytes at once.

  Args:
    model: A `jdlayers.models.Model`.
    x: `[N, *features]` inputs.
    y: `[N, *obs]` observations.
    params: The point estimate (default: `map_estimate(model, x, y)`): flat
      parts, a sampled network, a `jdlayers.vi.Surrogate` (e.g. from
      `jdl.vi.fit(..., point_mass="*")`) or a trained Keras model of the
      same architecture (see `_params`).
    hessian: "kron" (KFAC, default), "diag" or "full".
    subset: "all", "last_layer", or a glob / list of globs over part names
      (e.g. "2/*").
    prior_precision: A positive number (every layer), a mapping from layer
      path (e.g. "0", "2") to number covering every layer of the subset,
      "marglik" (one precision maximising `log_marginal_likelihood`) or
      "marglik_per_layer" (one per layer).
    max_memory: Refuse a structure needing more bytes (None: no bound).
    seed: Stateless seed of the MAP fit (when `params` is None).
    map_options: Keyword arguments of `map_estimate` (steps, batch_size...).

  Returns:
    A `LaplaceResult`.

  Raises:
    ValueError: For an unknown `hessian`, a `subset` matching nothing (the
      message lists the part names), parts "kron" cannot cover, a likelihood
      without a GGN, bad prior precisions, or a structure over `max_memory`
      (before anything is allocated).
    TypeError: For an unsupported `params` or `subset`.

  #### Example

  ```python
  import jdlayers as jdl, numpy as np
  net = jdl.Sequential(jdl.Affine(16, 1, activation="tanh"), jdl.Affine(1, 16))
  model = jdl.models.Model(net, jdl.models.Normal(scale=0.1))
  x = np.linspace(-1, 1, 64, dtype=np.float32)[:, None]
  la = jdl.laplace.fit(model, x, np.sin(3 * x), hessian="kron",
                       prior_precision="marglik",
                       map_options=dict(steps=500))
  mean, var = la.predict(x)            # linearised (GLM) predictive
  nets = la.sample(20, seed=1)         # 20 networks: nets(x) -> [20, 64, 1]
  ```
  """
  where = "laplace.fit"
  if hessian not in _structures.KINDS:
    raise ValueError(f"{where}: `hessian` must be one of "
                     f"{list(_structures.KINDS)}; got {hessian!r}.")
  _ggn.check_head(model.likelihood, where)
  if max_memory is not None:
    max_memory = _validate.count(max_memory, "max_memory", where, minimum=1)
  post = model.posterior(x, y)
  structure = model.probe
  net_shapes = [tuple(p.shape) for p in tf.nest.flatten(structure)]
  num_net = len(net_shapes)
  selection = _select.select(post.part_names, num_net, net_shapes, subset,
                             where, _select.real_parts(model))
  blocks = (_select.kron_blocks(selection, structure, where)
            if hessian == "kron" else ())
  need = _structures.nbytes(hessian, selection.num_params, blocks)
  if max_memory is not None and need > max_memory:
    raise ValueError(
        f"{where}: hessian={hessian!r} over the subset "
        f"({selection.num_params:,} parameters in {len(selection.names)} "
        f"parts) needs {need:,} bytes, more than max_memory={max_memory:,}. "
        "Use a smaller subset (e.g. 'last_layer'), hessian='kron' or "
        "'diag', or raise max_memory.")
  delta0, tune = _parse_prior(prior_precision, selection, where)
  if params is None:
    parts = _map.map_estimate(model, x, y, seed=seed, **(map_options or {}))
  else:
    parts = _params.resolve(params, post, where)
  net_parts, latents = parts[:num_net], dict(zip(post.part_names[num_net:],
                                                 parts[num_net:]))
  transform = _ggn.pseudo_outputs(model.likelihood, latents)
  budget = min(_curvature.DEFAULT_CHUNK_BYTES, max_memory or 2 ** 62)
  if hessian == "kron":
    blocks = _select.kron_blocks(
        selection, tf.nest.pack_sequence_as(structure, net_parts), where)
    factors = _curvature.kfac(structure, net_parts, blocks, post.x,
                              transform, budget)
    struct = _structures.Kron(factors, blocks, selection.shapes,
                              selection.groups, selection.group_names)
  else:
    k = int(np.prod(post.out_shape))
    h = _curvature.ggn(structure, net_parts, selection.indices, post.x,
                       transform, k, selection.num_params, hessian, budget)
    cls = _structures.Diag if hessian == "diag" else _structures.Full
    struct = cls(h, selection.shapes, selection.groups, selection.group_names)
  log_lik = float(post.log_likelihood(*parts))
  result = LaplaceResult(model, parts, post.part_names, selection, struct,
                         delta0, log_lik, int(post.x.shape[0]))
  if tune:
    result.prior_precision = _tune(result, tune == "marglik_per_layer")
  return result


def _parse_prior(value, selection, where):
  groups = selection.group_names
  if isinstance(value, str):
    if value not in TUNE:
      raise ValueError(f"{where}: `prior_precision` must be a positive "
                       f"number, a mapping per layer, or one of {TUNE}; got "
                       f"{value!r}.")
    return np.ones(len(groups)), value
  if isinstance(value, Mapping):
    missing = [g for g in groups if g not in value]
    extra = [k for k in value if k not in groups]
    if missing or extra:
      raise ValueError(f"{where}: `prior_precision` per layer needs exactly "
                       f"the subset's layers {list(groups)}; missing "
                       f"{missing}, unknown {extra}.")
    vals = [_validate.real(value[g], f"prior_precision[{g!r}]", where,
                           low=0., low_open=True) for g in groups]
    return np.array(vals, np.float64), None
  if isinstance(value, numbers.Real) and not isinstance(value, bool):
    v = _validate.real(value, "prior_precision", where, low=0.,
                       low_open=True)
    return np.full(len(groups), v), None
  raise TypeError(f"{where}: `prior_precision` must be a positive number, a "
                  f"mapping per layer, or one of {TUNE}; got {value!r}.")


def _tune(result: LaplaceResult, per_layer: bool) -> np.ndarray:
  """Maximises the Laplace marginal likelihood in log prior precision."""
  g = len(result.prior_precision)
  # Per parameter, so that L-BFGS' first step (the gradient) stays O(1) in
  # log precision: unscaled, it is O(P) and overflows `exp`.
  scale = 1. / result.num_params

  def loss(eta):
    delta = tf.exp(eta) if per_layer else tf.fill([g], tf.exp(eta[0]))
    return -scale * result._lml(delta)  # pylint: disable=protected-access

  start = tf.zeros([g if per_layer else 1], tf.float64)
  opt = tfp.optimizer.lbfgs_minimize(
      lambda e: tfp.math.value_and_gradient(loss, e), start,
      tolerance=1e-14, f_relative_tolerance=1e-15, max_iterations=500)
  if opt.failed.numpy() or not np.all(np.isfinite(opt.position.numpy())):
    raise RuntimeError("laplace.fit: tuning the prior precision by the "
                       "marginal likelihood failed (L-BFGS did not converge); "
                       "pass a fixed prior_precision.")
  eta = opt.position.numpy()
  return np.exp(eta) if per_layer else np.full(g, np.exp(eta[0]))
