"""`Variational`: any jdlayers layer or network distribution as a Keras layer."""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Union

import keras
import tensorflow as tf

from jdlayers import io
from jdlayers.keras import _hooks
from jdlayers.keras._base import VariationalLayer
from jdlayers.models._model import Model


@keras.saving.register_keras_serializable(package="jdlayers")
class Variational(VariationalLayer):
  """Wraps a jdlayers layer (or network) distribution as a Keras layer.

  The distribution is the prior (with its own priors, activations and
  input size); a `jdlayers.vi.Surrogate` over it holds the trainable
  posterior as this layer's weights. Calls and KL work as in
  `jdlayers.keras.Dense` (see `jdlayers.keras` for the KL convention).

  Args:
    distribution: A jdlayers layer distribution (`jdl.Conv2D(...)`,
      `jdl.Sequential(...)`, ...) or its `jdlayers.io.to_config` dict.
    estimator: "flipout" (default), "reparam" or "local" for every layer,
      or a mapping from layer paths ("0", "2/1"; "*" for the rest) to names;
      layers not linear in a kernel use "reparam".
    kernel_posterior_fn: Builder (or tfp.layers posterior function) for
      every layer's kernel (`weights` or `kernel`, in jdlayers' layout:
      a wrapped network has no Keras kernel); None: mean-field normal.
      `Variational` has no tfp.layers counterpart: its None hooks mean
      the default, unlike the named layers'.
    bias_posterior_fn: Builder for every layer's bias.
    kernel_divergence_fn: `(q, p, z) -> scalar` for every kernel's unscaled
      KL term.
    bias_divergence_fn: The same for every bias.
    posterior_fns: Mapping from part-name globs ("0/kernel", "*/bias",
      "global_scale") to builders; checked before the kernel/bias hooks.
    divergence_fns: Mapping from part-name globs to divergence functions;
      checked before the kernel/bias hooks.
    num_examples: Training-set size `N`; the added loss is
      `kl_weight * KL / N` (None: the unscaled KL).
    kl_weight: Multiplies the KL term.
    seed: Int seed of initial values and noise (None: random).
    **kwargs: `keras.layers.Layer` arguments; `dtype` defaults to the
      distribution's.

  Raises:
    TypeError: If `distribution` is not a jdlayers layer distribution (a
      `jdlayers.models.Model` is not: wrap its network).
    ValueError: If it has no random parameters, or for bad settings.

  #### Example

  ```python
  import jdlayers as jdl, keras
  block = jdl.Sequential(jdl.Conv2D(8, 3, 1, activation="relu"),
                         jdl.Flatten(), jdl.Affine(10, 8 * 8 * 8))
  model = keras.Sequential([keras.Input((8, 8, 1)),
                            jdl.keras.Variational(block, num_examples=1000)])
  ```
  """

  _allow_mapping = True

  def __init__(self, distribution, *,
               estimator: Union[str, Mapping[str, str]] = "flipout",
               kernel_posterior_fn: Optional[Callable] = None,
               bias_posterior_fn: Optional[Callable] = None,
               kernel_divergence_fn: Optional[Callable] = None,
               bias_divergence_fn: Optional[Callable] = None,
               posterior_fns: Optional[Mapping[str, Callable]] = None,
               divergence_fns: Optional[Mapping[str, Callable]] = None,
               num_examples: Optional[int] = None, kl_weight: float = 1.0,
               seed: Optional[int] = None, **kwargs):
    owner = type(self).__name__
    if isinstance(distribution, Mapping):
      distribution = io.from_config(distribution)
    if isinstance(distribution, Model) or not (
        hasattr(distribution, "sample") and hasattr(distribution, "log_prob")):
      raise TypeError(f"{owner}: `distribution` must be a jdlayers layer or "
                      "network distribution (e.g. jdl.Conv2D(...), "
                      "jdl.Sequential(...)); got "
                      f"{type(distribution).__name__}.")
    structure = distribution.sample(seed=(0, 0))
    parts = tf.nest.flatten(structure)
    if not parts:
      raise ValueError(f"{owner}: {distribution!r:.80} has no random "
                       "parameters to infer.")
    kwargs.setdefault("dtype", parts[0].dtype.name)
    super().__init__(estimator=estimator, num_examples=num_examples,
                     kl_weight=kl_weight, seed=seed, **kwargs)
    self._prior_distribution = distribution
    self._prior_sample = structure
    self.kernel_posterior_fn = _hooks.check_builder(
        kernel_posterior_fn, owner, "kernel_posterior_fn")
    self.bias_posterior_fn = _hooks.check_builder(
        bias_posterior_fn, owner, "bias_posterior_fn")
    self.kernel_divergence_fn = _hooks.check_divergence_fn(
        kernel_divergence_fn, owner, "kernel_divergence_fn")
    self.bias_divergence_fn = _hooks.check_divergence_fn(
        bias_divergence_fn, owner, "bias_divergence_fn")
    self._posterior_fns, self._divergence_fns = _hooks.check_part_hooks(
        posterior_fns, divergence_fns, owner)

  def _make_distribution(self, input_shape):
    del input_shape  # the distribution fixes its input size
    return self._prior_distribution

  def _surrogate_kwargs(self) -> Dict[str, Any]:
    owner = f"Variational '{self.name}'"
    # tfp.layers posterior functions become builders (jdlayers' layout: a
    # wrapped network has no Keras kernel to mirror).
    builders = {k: _hooks.as_builder(v, "posterior", None, owner,
                                     f"posterior_fns[{k!r}]")
                for k, v in self._posterior_fns.items()}
    divergences = dict(self._divergence_fns)
    for part, names in (("kernel", ("weights", "kernel")), ("bias", ("bias",))):
      for name in names:
        fn = getattr(self, f"{part}_posterior_fn")
        if fn is not None:
          builders.setdefault(name, _hooks.as_builder(
              fn, part, None, owner, f"{part}_posterior_fn"))
        fn = getattr(self, f"{part}_divergence_fn")
        if fn is not None:
          divergences.setdefault(name, fn)
    return dict(builders=builders, divergence_fns=divergences)

  def compute_output_shape(self, input_shape):
    network = self._prior_sample
    fn = tf.function(lambda x: network(x), autograph=False)  # pylint: disable=unnecessary-lambda
    spec = tf.TensorSpec(tuple(input_shape), self.variable_dtype)
    return tuple(fn.get_concrete_function(spec).structured_outputs.shape)

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    owner = f"Variational '{self.name}'"
    try:
      config["distribution"] = io.to_config(self._prior_distribution)
    except TypeError as e:
      raise TypeError(f"{owner}: the distribution cannot be saved: {e}"
                      ) from None
    for key in ("kernel_posterior_fn", "bias_posterior_fn",
                "kernel_divergence_fn", "bias_divergence_fn"):
      config[key] = _hooks.serialize(getattr(self, key), owner, key)
    _hooks.serialize_part_hooks(config, self._posterior_fns,
                                self._divergence_fns, owner)
    return config

  @classmethod
  def from_config(cls, config: Mapping[str, Any]):
    config = dict(config)
    for key in ("kernel_posterior_fn", "bias_posterior_fn",
                "kernel_divergence_fn", "bias_divergence_fn"):
      if key in config:
        config[key] = _hooks.deserialize(config[key], cls.__name__, key)
    _hooks.deserialize_part_hooks(config, cls.__name__)
    return super().from_config(config)

