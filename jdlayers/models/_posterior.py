"""`Posterior`: a model pinned to data, over flat state parts for `tfp.mcmc`.

The state of a chain is a flat list of tensors: `tf.nest.flatten(network)`
followed by the likelihood's latents, each with leading chain dims `S`.
`log_prob(*parts)` is the unnormalized posterior density (shape `S`),
`bijectors` maps unconstrained space to each part's support, and `init`
draws starting states.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import tensorflow as tf
import tensorflow_probability as tfp

from jdlayers import _state, _validate
from jdlayers.compose._base import CompositeLayer
from jdlayers.layers import _base

tfd = tfp.distributions
tfb = tfp.bijectors

INIT_METHODS = ("prior", "shrunk")


class Posterior:
  """The unnormalized posterior `p(network, latents | x, y)` of a `Model`.

  Build it with `model.posterior(x, y)`.

  Attributes:
    model: The `Model`.
    x: `[N, *features]` inputs (a tensor of the network's dtype).
    y: `[N, *obs]` observations, validated.
    part_names: One name per state part, e.g. `"0/weights"`, `"scale"`.
    bijectors: One bijector per part, from unconstrained space to the part's
      support; pass to `tfp.mcmc.TransformedTransitionKernel`.

  #### Example

  ```python
  import jdlayers as jdl, numpy as np, tensorflow_probability as tfp
  model = jdl.models.Model(jdl.Affine(1, 2), jdl.models.Normal(scale=0.5))
  x = np.random.default_rng(0).normal(size=(30, 2)).astype(np.float32)
  post = model.posterior(x, x @ np.array([[1.], [-2.]], np.float32))
  kernel = tfp.mcmc.TransformedTransitionKernel(
      tfp.mcmc.HamiltonianMonteCarlo(post.log_prob, 0.05, 10),
      post.bijectors)
  states = tfp.mcmc.sample_chain(100, post.init(4, seed=0), kernel=kernel,
                                 trace_fn=None, seed=(1, 2))
  network, latents = post.unpack(states)   # weights [100, 4, 1, 2]
  ```
  """

  def __init__(self, model, x: tf.Tensor, y: tf.Tensor,
               out_shape: Tuple[int, ...]):
    self.model = model
    self.x, self.y = x, y
    self.out_shape = tuple(out_shape)
    self._core = 1 + len(out_shape)
    self._structure = model.probe
    self._num_net_parts = len(tf.nest.flatten(self._structure))
    self._latent_names = tuple(model.likelihood.latents)
    self.part_names: List[str] = (_part_names(self._structure) +
                                  list(self._latent_names))
    self.bijectors: List[tfb.Bijector] = _state.state_bijectors(
        model.network, model.likelihood.latents)

  def with_data(self, x: tf.Tensor, y: tf.Tensor) -> "Posterior":
    """The same posterior over other data of the same shapes, unchecked.

    For compiled loops that take the data as arguments (symbolic tensors);
    use `model.posterior(x, y)` for user data, which validates it.
    """
    return Posterior(self.model, x, y, self.out_shape)

  # -- structure ----------------------------------------------------------
  def unpack(self, parts: Sequence) -> Tuple[object, Dict[str, tf.Tensor]]:
    """Flat parts -> `(network, {latent name: value})`."""
    parts = list(parts)
    if len(parts) != len(self.part_names):
      raise ValueError(f"Posterior: expected {len(self.part_names)} state "
                       f"parts ({self.part_names}); got {len(parts)}.")
    k = self._num_net_parts
    network = tf.nest.pack_sequence_as(self._structure, parts[:k])
    return network, dict(zip(self._latent_names, parts[k:]))

  def flatten(self, network, latents: Optional[Dict] = None) -> List:
    """`(network, latents)` -> flat state parts (inverse of `unpack`)."""
    latents = latents or {}
    return tf.nest.flatten(network) + [latents[n] for n in self._latent_names]

  @property
  def distribution(self) -> tfd.Distribution:
    """The model's joint at `x` with `y` pinned (`JointDistributionPinned`)."""
    return self.model.joint(self.x).experimental_pin(y=self.y)

  # -- densities ----------------------------------------------------------
  def log_prob(self, *parts) -> tf.Tensor:
    """Unnormalized log posterior: log prior + log likelihood; shape `S`."""
    return self.log_prior(*parts) + self.log_likelihood(*parts)

  def log_prior(self, *parts) -> tf.Tensor:
    """Log prior of the network and the likelihood's latents; shape `S`.

    The data-free term: a target sharded over devices adds it once.
    """
    network, latents = self.unpack(parts)
    lp = self.model.network.log_prob(network)
    for name, prior in self.model.likelihood.latents.items():
      lp += prior.log_prob(latents[name])
    return lp

  def log_likelihood(self, *parts, pointwise: bool = False) -> tf.Tensor:
    """`log p(y | network, latents)`: shape `S`, or `[*S, N]` if pointwise."""
    network, latents = self.unpack(parts)
    out = network(self.x)
    sample_ndims = out.shape.rank - self._core
    lik = self.model.likelihood
    if not pointwise:
      return lik.distribution(out, latents, sample_ndims).log_prob(self.y)
    point = lik.point_distribution(out, latents, sample_ndims)
    lp = point.log_prob(self.y)
    extra = lp.shape.rank - sample_ndims - 1
    return tf.reduce_sum(lp, axis=list(range(-extra, 0))) if extra else lp

  # -- initial states -----------------------------------------------------
  def init(self, num_chains: int, seed=None, method: str = "shrunk",
           scale: float = 0.1) -> List[tf.Tensor]:
    """Initial states for `num_chains` chains.

    Args:
      num_chains: Number of chains `C` (> 0).
      seed: Stateless seed (int or pair).
      method: "prior": a prior draw per chain; "shrunk": a prior draw mapped
        to unconstrained space and multiplied by `scale`, which starts chains
        near the origin (small weights, scales near their bijector's value at
        0) where BNN posteriors are well behaved.
      scale: Shrink factor for "shrunk".

    Returns:
      List of parts, each `[num_chains, ...]`.

    Raises:
      ValueError: For `num_chains < 1` or an unknown method.
    """
    num_chains = _validate.count(num_chains, "num_chains", "Posterior.init",
                                 minimum=1)
    if method not in INIT_METHODS:
      raise ValueError(f"Posterior.init: `method` must be one of "
                       f"{INIT_METHODS}; got {method!r}.")
    net_seed, lat_seed = tfp.random.split_seed(_base.stateless_seed(seed))
    parts = tf.nest.flatten(self.model.network.sample(num_chains,
                                                      seed=net_seed))
    lat_seeds = tfp.random.split_seed(lat_seed, max(1, len(self._latent_names)))
    for prior, s in zip(self.model.likelihood.latents.values(), lat_seeds):
      parts.append(prior.sample(num_chains, seed=s))
    if method == "shrunk":
      parts = [b.forward(scale * b.inverse(p))
               for b, p in zip(self.bijectors, parts)]
    return parts

  def __repr__(self) -> str:
    return (f"<Posterior of {self.model!r}: N={int(self.x.shape[0])}, "
            f"{len(self.part_names)} parts>")


def _part_names(value, prefix: str = "") -> List[str]:
  """Names of `tf.nest.flatten(value)`'s leaves, e.g. ["0/weights", ...]."""
  names = _walk(value, prefix)
  n = len(tf.nest.flatten(value))
  return names if len(names) == n else [f"part{i}" for i in range(n)]


def _walk(value, prefix: str) -> List[str]:
  if isinstance(value, CompositeLayer):
    out = []
    for i, layer in enumerate(value.layers):
      out.extend(_walk(layer, f"{prefix}{i}/"))
    return out
  if isinstance(value, _base.SampledLayer):
    return [f"{prefix}{k}" for k in value.params]
  return [prefix.rstrip("/") or "param"] * len(tf.nest.flatten(value))
