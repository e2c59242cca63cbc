"""`CoreLayer`: the Keras wrapper of one jdlayers layer family.

The shared part of `Embedding`, `LSTM`, `GRU`, `LayerNormalization` and
`MultiHeadAttention`: the layer distribution (the prior) is built once the
input shape is known, a `jdlayers.vi.Surrogate` over it holds the
posterior as the Keras weights (`VariationalLayer`), and each call draws
one sampled layer with the layer's estimator (`jdlayers.vi`'s
`sampled_layer`: Flipout for the kernels the layer names in its
`flipout_kernels`, reparameterization for the rest) and calls it with the
layer's own arguments (several inputs, masks), so the wrappers hold no
tensor math of their own.

Hooks are jdlayers' (these layers have no tfp.layers counterpart):
`posterior_fns` and `divergence_fns` map part-name globs (`"*kernel"`,
`"bias"`, `"*"`) to VI builders and `(q, p, z) -> scalar` divergence
functions, as `jdlayers.keras.Variational`.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import tensorflow as tf
import tensorflow_probability as tfp

from jdlayers import priors as priors_lib
from jdlayers.inference.vi import _estimators
from jdlayers.keras import _hooks
from jdlayers.keras._base import VariationalLayer


class CoreLayer(VariationalLayer):
  """Base of the wrappers of the newer jdlayers layer families.

  Subclasses set `_estimators_allowed` and implement `_make_distribution`
  and `call` (through `_draw`).

  Args:
    estimator: One of the class' `_estimators_allowed`.
    prior: A `jdlayers.priors.Prior` for every part (default: the layer
      distribution's own default).
    posterior_fns: Optional mapping from part-name globs to VI builders
      (`jdlayers.vi.mean_field_normal()`, `jdlayers.vi.point_mass()`);
      other parts are mean-field normal.
    divergence_fns: Optional mapping from part-name globs to `(q, p, z) ->
      scalar`, the part's unscaled KL term (default: analytic where TFP
      has it, else one Monte Carlo sample).
    **kwargs: `VariationalLayer` arguments (`num_examples`, `kl_weight`,
      `seed`) and `keras.layers.Layer` ones.

  Raises:
    ValueError: For an estimator the layer does not support.
    TypeError: For a prior, builder or divergence function of the wrong
      kind.
  """

  _estimators_allowed: Tuple[str, ...] = ("flipout", "reparam")

  def __init__(self, *, estimator: str = "flipout",
               prior: Optional[priors_lib.Prior] = None,
               posterior_fns: Optional[Mapping[str, Callable]] = None,
               divergence_fns: Optional[Mapping[str, Callable]] = None,
               **kwargs):
    super().__init__(estimator=estimator, **kwargs)
    owner = type(self).__name__
    if self.estimator not in self._estimators_allowed:
      raise ValueError(
          f"{owner}: estimator {estimator!r} is not available for this layer;"
          f" expected one of {list(self._estimators_allowed)}.")
    if prior is not None and not isinstance(prior, priors_lib.Prior):
      raise TypeError(f"{owner}: `prior` must be a jdlayers.priors prior (e.g. "
                      f"jdlayers.priors.normal(1.0)); got {prior!r:.80}.")
    self.prior = prior
    self._posterior_fns, self._divergence_fns = _hooks.check_part_hooks(
        posterior_fns, divergence_fns, owner)

  def _surrogate_kwargs(self) -> Dict[str, Any]:
    owner = f"{type(self).__name__} '{self.name}'"
    builders = {k: _hooks.as_builder(v, "posterior", None, owner,
                                     f"posterior_fns[{k!r}]")
                for k, v in self._posterior_fns.items()}
    return dict(builders=builders, divergence_fns=dict(self._divergence_fns))

  def _prior_kwargs(self) -> Dict[str, Any]:
    """`prior=` for the layer distribution (absent: its default)."""
    return {} if self.prior is None else {"prior": self.prior}

  def _draw(self):
    """This call's sampled layer (one draw, the layer's estimator); adds
    the layer's `kl_weight * KL / N` with `add_loss`.

    Returns:
      A callable jdlayers sampled layer with parameters of the surrogate's
      dtype (Flipout kernels as `ops.Perturbed`).
    """
    q = self._surrogate
    s_fwd, s_kl = tfp.random.split_seed(self._next_seed(), 2)
    dists = dict(zip(q.part_names, q.distributions()))
    layer = _estimators.sampled_layer(
        q.structure, dists, estimator=self.estimator, sample_shape=[],
        seed=s_fwd, path=self.name)
    for loss in self.kl_losses(seed=s_kl):
      self.add_loss(loss)
    return layer

  def _float(self, x):
    return tf.cast(x, self._surrogate.dtype)

  def _out(self, y):
    return tf.cast(y, self.compute_dtype)

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    owner = f"{type(self).__name__} '{self.name}'"
    config["prior"] = _hooks.serialize(self.prior, owner, "prior")
    _hooks.serialize_part_hooks(config, self._posterior_fns,
                                self._divergence_fns, owner)
    return config

  @classmethod
  def from_config(cls, config: Mapping[str, Any]):
    config = dict(config)
    owner = cls.__name__
    if config.get("prior") is not None:
      config["prior"] = _hooks.deserialize(config["prior"], owner, "prior")
    _hooks.deserialize_part_hooks(config, owner)
    return super().from_config(config)

