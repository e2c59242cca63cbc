"""`Surrogate`: a trainable posterior with the structure of a network.

A surrogate holds one trainable distribution per state part (kernels,
biases, hierarchical priors' latents, the likelihood's latents), in the
order of `tf.nest.flatten` of a sampled network followed by the likelihood's
latents, exactly as `Posterior.part_names`. Sampling it returns callable
networks, like sampling the prior; `apply` runs data through it with the
reparameterization, Flipout or local-reparameterization estimator;
`kl_divergence` scores it against the prior.
"""

from __future__ import annotations

import re
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from jdlayers import _state
from jdlayers import _validate
from jdlayers.compose._base import Composite
from jdlayers.inference import _predictive
from jdlayers.inference.vi import _builders, _estimators, _init, _io
from jdlayers.inference.vi._kl import (_kl_term, entropy_term,
                                       prior_components)
from jdlayers.layers import _base
from jdlayers.models._model import Model
from jdlayers.models._posterior import Posterior, _part_names

tfd = tfp.distributions

_ROLES = {"weights": "kernel", "kernel": "kernel", "bias": "bias"}


class Surrogate(tf.Module):
  """Trainable variational posterior over a network (and its model's latents).

  It builds in every mode TF runs: eagerly, inside a `tf.function` (on the
  trace that may create variables), or in a TF1 `tf.Graph` (initialise its
  variables with `tf.compat.v1.global_variables_initializer()`); the same
  `seed` gives the same initial values in each.

  Args:
    target: A `jdlayers.models.Model` (network plus likelihood latents) or a
      bare layer/network distribution.
    point_mass: Parts to approximate by a point mass (MAP, tfp's
      `is_singular=True`): True for all, a glob or list of globs over part
      names ("*/bias", "bias", "0/kernel"), or a predicate on the name.
    builders: Optional mapping from part-name globs to builders (see
      `mean_field_normal`); first match wins, before `point_mass`.
    default: Builder for every other part (default `mean_field_normal()`).
    divergence_fns: Optional mapping from part-name globs (as `builders`) to
      `fn(q, p, z) -> scalar` that replaces that part's term in
      `kl_divergence` (`q` the part's surrogate, `p` its prior given the
      parents' values, `z` the draw; non-scalar results are summed), as
      tfp.layers' `kernel_divergence_fn`; first match wins.
    seed: Stateless seed of the initial values.
    init: Optional point estimate to start the means at (MOPED-style, see
      `jdlayers.vi` docs): a sampled network with the structure of
      `network.sample()` (e.g. a MAP fit's), a fitted `Surrogate` (its
      means; e.g. `vi.fit(..., point_mass=True)`), a list of one value per
      part, or a dict from part names to values (others keep the default).
      Values lie in each part's support.
    init_scale: Optional initial scale of the normal parts: a number > 0 for
      every part, or `fn(value) -> scale` for the parts given an `init`
      value (MOPED: `lambda w: 0.1 * abs(w)`; floored at 1e-6). Default:
      the builder's (about 0.05).
    make_variable: Optional `(name, shape, dtype, initializer) -> variable`
      (Keras layers pass `add_weight`); default makes `tf.Variable`s.
    name: Module name.

  Attributes:
    part_names: One name per part, e.g. ["0/weights", "0/bias", "scale"].
    bijectors: Each part's prior event-space bijector.
    structure: A sampled network giving the structure of samples.

  Raises:
    TypeError: If `target` is neither a `Model` nor a layer distribution.
    ValueError: If `init` does not match the parts (count, names, shapes)
      or holds non-finite values, or a scale is not > 0.

  #### Example

  ```python
  import jdlayers as jdl, tensorflow as tf
  net = jdl.Sequential(jdl.Affine(8, 2, activation="relu"), jdl.Affine(1, 8))
  q = jdl.vi.Surrogate(net, seed=0)
  f = q.sample(4, seed=1)          # 4 callable networks, like net.sample
  f(tf.ones([5, 2])).shape         # [4, 5, 1]
  y = q.apply(tf.ones([5, 2]), estimator="flipout", seed=2)  # [5, 1]
  kl = q.kl_divergence()           # scalar
  ```
  """

  # Only the variables are state; the prior structures are not walked.
  _TF_MODULE_IGNORED_PROPERTIES = frozenset({
      "model", "network", "structure", "bijectors", "specs", "_leaves",
      "part_names",
      "_makers", "_latent_priors", "_divergence_fns", "_options"}).union(
          tf.Module._TF_MODULE_IGNORED_PROPERTIES)

  def __init__(self, target, *, point_mass=None,
               builders: Optional[Mapping[str, Callable]] = None,
               default: Optional[Callable] = None, seed=0,
               make_variable: Optional[Callable] = None,
               divergence_fns: Optional[Mapping[str, Callable]] = None,
               init=None, init_scale=None, name: str = "Surrogate"):
    super().__init__(name=re.sub(r"\W", "_", name))
    # What `save` needs to rebuild this surrogate (see `vi._io`).
    self._options = dict(point_mass=point_mass, builders=builders,
                         default=default, divergence_fns=divergence_fns)
    if isinstance(target, Model):
      self.model, network = target, target.network
      latent_priors = dict(target.likelihood.latents)
      structure = target.probe
    elif isinstance(target, tfd.Distribution) and hasattr(target, "sample"):
      self.model, network, latent_priors = None, target, {}
      structure = network.sample(seed=(0, 0))
    else:
      raise TypeError("Surrogate: `target` must be a jdlayers.models.Model or "
                      f"a layer/network distribution; got "
                      f"{type(target).__name__}.")
    self.network = network
    self.structure = structure
    self._latent_priors = latent_priors
    net_parts = tf.nest.flatten(structure)
    self._num_net_parts = len(net_parts)
    self.part_names: Tuple[str, ...] = tuple(_part_names(structure) +
                                             list(latent_priors))
    self.bijectors = _state.state_bijectors(network, latent_priors)
    shapes = [tuple(p.shape) for p in net_parts] + [
        tuple(p.event_shape) for p in latent_priors.values()]
    self.dtype = net_parts[0].dtype
    seed = tf.convert_to_tensor(_base.stateless_seed(seed), tf.int32)
    inits = _init.part_values(init, self.part_names, shapes,
                              self._num_net_parts, self.dtype)
    scales = _init.part_scales(init_scale, inits, self.part_names,
                               self.dtype)
    default = default or _builders.mean_field_normal()
    make_variable = make_variable or _tf_variable
    self.specs: List[_builders.PartSpec] = []
    self._makers = []
    self._variables: Dict[str, tf.Variable] = {}
    for i, (pname, shape, bij, value, scale) in enumerate(zip(
        self.part_names, shapes, self.bijectors, inits, scales)):
      role = (_ROLES.get(pname.rsplit("/", 1)[-1], "latent")
              if i < self._num_net_parts else "latent")
      # A seed tensor, not Python ints: construction also runs in graphs.
      spec = _builders.PartSpec(
          pname, shape, self.dtype, bij, role,
          tf.random.experimental.stateless_fold_in(seed, i), value, scale)
      builder = _builders.select_builder(spec, builders, point_mass, default)

      def make_var(vname, vshape, initializer, _p=pname):
        full = f"{_p}/{vname}"
        v = make_variable(full, tuple(vshape), self.dtype, initializer)
        self._variables[full] = v
        return v
      self.specs.append(spec)
      self._makers.append(builder(spec, make_var))
    self._divergence_fns = [
        next((fn for pattern, fn in (divergence_fns or {}).items()
              if _builders._matches(n, pattern)), None)  # pylint: disable=protected-access
        for n in self.part_names]
    # Leaf layers (path, sampled layer, prior, flat indices of its params).
    self._leaves = []
    flat = iter(range(self._num_net_parts))
    dists = dict(_leaf_distributions(network))
    for path, layer in _estimators.leaf_layers(structure):
      idx = [next(flat) for _ in range(len(layer))]
      self._leaves.append((path, layer, dists.get(path), idx))
    if next(flat, None) is not None:
      raise ValueError("Surrogate: could not match the network's parts to its "
                       "layers.")

  # -- distributions and samples -----------------------------------------
  @property
  def trainable_parameters(self) -> Dict[str, tf.Variable]:
    """Name -> variable, e.g. "0/kernel/loc"."""
    return dict(self._variables)

  def distributions(self) -> List[tfd.Distribution]:
    """The surrogate distribution of each part (built from the variables)."""
    return [make() for make in self._makers]

  def sample_parts(self, sample_shape=(), seed=None) -> List[tf.Tensor]:
    """Draws every part: a list `[*sample_shape, *part shape]`."""
    _validate.sample_shape(sample_shape, "Surrogate.sample")
    _validate.seed(seed, "Surrogate.sample")
    seeds = tfp.random.split_seed(_base.stateless_seed(seed),
                                  len(self._makers))
    return [d.sample(sample_shape, seed=s)
            for d, s in zip(self.distributions(), seeds)]

  def unpack(self, parts: Sequence) -> Tuple[object, Dict[str, tf.Tensor]]:
    """Flat parts -> `(network, {latent name: value})`."""
    parts = list(parts)
    k = self._num_net_parts
    network = tf.nest.pack_sequence_as(self.structure, parts[:k])
    return network, dict(zip(self._latent_priors, parts[k:]))

  def sample(self, sample_shape=(), seed=None):
    """Samples callable networks, as `network.sample` does for the prior.

    Args:
      sample_shape: Leading sample dims `S`.
      seed: Stateless seed (int or pair).

    Returns:
      A sampled network with parameters `[*S, ...]`.
    """
    return self.unpack(self.sample_parts(sample_shape, seed))[0]

  def mean_parts(self) -> List[tf.Tensor]:
    """Each part's surrogate mean (the location for normal surrogates;
    mapped through the bijector for constrained parts)."""
    out = []
    for d in self.distributions():
      q = _builders.normal_params(d)
      if q is not None:
        out.append(q[0])
      elif isinstance(d, tfd.TransformedDistribution):
        out.append(d.bijector.forward(d.distribution.mean()))
      else:
        out.append(d.mean())
    return out

  def log_prob(self, parts: Sequence) -> tf.Tensor:
    """`log q(parts)`, summed over parts; shape: the parts' sample dims."""
    if not isinstance(parts, (list, tuple)):
      parts = tf.nest.flatten(parts)
    return tf.add_n([d.log_prob(p) for d, p in zip(self.distributions(),
                                                    parts)])

  # -- data ------------------------------------------------------------------
  def apply(self, x, estimator="reparam", sample_shape=(), seed=None):
    """Runs `x` through the surrogate network with a gradient estimator.

    Args:
      x: `[*B, N, *features]` inputs.
      estimator: "reparam", "flipout" or "local" for every layer, or a
        mapping from layer paths ("0", "2/1"; "*" for the rest) to names.
        Layers not linear in a kernel (and parts other than kernels) use
        reparameterization.
      sample_shape: Independent weight draws `S`; `[]` draws once per call
        (Flipout and local reparameterization still decorrelate examples).
      seed: Stateless seed.

    Returns:
      `[*broadcast(B, S), N, *out]` outputs.
    """
    dists = self.distributions()
    seed = tf.convert_to_tensor(_base.stateless_seed(seed), tf.int32) if (
        seed is not None) else tfp.random.sanitize_seed(None)
    by_path = {}
    for j, (path, layer, _, idx) in enumerate(self._leaves):
      names = list(layer.params)
      by_path[path] = (j, {n: dists[i] for n, i in zip(names, idx)})

    def leaf(path, layer):
      j, layer_dists = by_path[path]
      est = _estimators.resolve(estimator, path, layer, "Surrogate.apply")
      return _LayerCall(layer, layer_dists, est, list(sample_shape),
                        tf.random.experimental.stateless_fold_in(seed, j),
                        path)

    return _estimators.replace_leaves(self.structure, leaf)(x)

  # -- KL ----------------------------------------------------------------------
  def kl_divergence(self, seed=None, analytic: bool = True,
                    parts: Optional[Sequence] = None) -> tf.Tensor:
    """`KL(q || prior)` over all parts: analytic where TFP has it, else MC.

    A normal surrogate of a part whose prior is an i.i.d. or independent
    family with a registered KL gets the exact KL (given its parents'
    values, for hierarchical priors); other parts get the one-sample Monte
    Carlo estimate `log q(z) - log p(z)`. A point-mass part contributes
    `-log p(value)`. Parts matched by `divergence_fns` use that function.

    Args:
      seed: Stateless seed of the draw `z` (needed for MC terms and
        hierarchical parents).
      analytic: False forces the Monte Carlo estimate everywhere.
      parts: Optional draw `z` to use (list of parts without sample dims).

    Returns:
      A scalar.
    """
    dists = self.distributions()
    if parts is None:
      parts = self.sample_parts((), seed=seed)
    total = tf.zeros([], self.dtype)
    for path, layer, prior, idx in self._leaves:
      values = [parts[i] for i in idx]
      comps = prior_components(prior, values, path)
      for i, p, z in zip(idx, comps, values):
        total += self._part_kl(i, dists[i], p, z, analytic)
    for i, p in zip(range(self._num_net_parts, len(parts)),
                    self._latent_priors.values()):
      total += self._part_kl(i, dists[i], p, parts[i], analytic)
    return total

  def entropy(self, seed=None, parts: Optional[Sequence] = None
              ) -> tf.Tensor:
    """`H(q)` over all parts: exact for normal parts, else `-log q(z)`.

    Point-mass parts contribute 0 (their entropy is a constant, left out as
    in `kl_divergence`). `elbo_terms` uses it for the temperature.

    Args:
      seed: Stateless seed of the draw `z` (for non-normal parts).
      parts: Optional draw `z` (list of parts without sample dims).

    Returns:
      A scalar.
    """
    dists = self.distributions()
    if parts is None:
      parts = self.sample_parts((), seed=seed)
    return tf.add_n([tf.cast(entropy_term(d, z), self.dtype)
                     for d, z in zip(dists, parts)])

  def _part_kl(self, i: int, q, p, z, analytic: bool) -> tf.Tensor:
    fn = self._divergence_fns[i]
    if fn is None:
      return _kl_term(q, p, z, analytic)
    return tf.reduce_sum(tf.cast(fn(q, p, z), self.dtype))

  # -- prediction ------------------------------------------------------------
  def predict(self, x, num_samples: int = 100, seed=0,
              batch_size: int = 256):
    """Posterior predictive at `x` from `num_samples` surrogate networks.

    Args:
      x: `[M, *features]` inputs.
      num_samples: Networks drawn from the surrogate.
      seed: Stateless seed.
      batch_size: Networks per forward pass.

    Returns:
      A `jdlayers.mcmc.Predictive` (leading dims `[num_samples, 1]`):
      `mean`, `std`, `interval`, `log_prob(y)`, `nll`, `rmse`, ...

    Raises:
      ValueError: If the surrogate was built from a bare network (no
        likelihood) or `num_samples < 1`.
    """
    if self.model is None:
      raise ValueError("Surrogate.predict needs a likelihood: build the "
                       "surrogate from a jdlayers.models.Model.")
    _validate.count(num_samples, "num_samples", "Surrogate.predict", 1)
    _validate.count(batch_size, "batch_size", "Surrogate.predict", 1)
    _validate.seed(seed, "Surrogate.predict")
    xt, out_shape = self.model.check_x(x)
    s1, s2 = tfp.random.split_seed(_base.stateless_seed(seed))
    states = [p.numpy()[:, None] for p in self.sample_parts([num_samples],
                                                            seed=s1)]
    posterior = Posterior(self.model, xt, None, out_shape)
    return _predictive.predict(posterior, states, x, seed=s2,
                               batch_size=batch_size)

  def save(self, path, *, overwrite: bool = False) -> str:
    """Saves the fitted surrogate (see `jdlayers.vi.save_surrogate`)."""
    return _io.save_surrogate(path, self, overwrite=overwrite)

  def __repr__(self) -> str:
    return (f"<Surrogate over {getattr(self.network, 'name', 'network')}: "
            f"{len(self.part_names)} parts, "
            f"{sum(int(np.prod(v.shape)) for v in self._variables.values())} "
            "trainable values>")


class _LayerCall:
  """A leaf layer of the network as seen by one estimator pass."""

  def __init__(self, layer, dists, estimator, sample_shape, seed, path):
    self._args = (layer, dists, estimator, sample_shape, seed, path)

  def __call__(self, x):
    layer, dists, estimator, sample_shape, seed, path = self._args
    return _estimators.apply_layer(layer, dists, x, estimator=estimator,
                                   sample_shape=sample_shape, seed=seed,
                                   path=path)


def _tf_variable(name, shape, dtype, initializer):
  del shape
  return tf.Variable(initializer(), dtype=dtype, name=re.sub(r"\W", "_", name))


def _leaf_distributions(dist, prefix: str = ""):
  """Yields `(path, layer distribution)` aligned with `leaf_layers`."""
  if isinstance(dist, Composite):
    for i, child in enumerate(dist.layers):
      yield from _leaf_distributions(child, f"{prefix}{i}/")
  elif not _base.is_static(dist):
    yield prefix.rstrip("/"), dist
