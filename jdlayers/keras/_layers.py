"""Keras-named variational layers: the shared `_Named` base and `Dense`.

The named layers (`Dense` here, the convolutions in `_conv`) take Keras'
arguments and defaults, infer the input size in `build`, and build the
matching jdlayers distribution (`jdlayers.Affine`, `Conv`, `ConvTranspose`)
with a `jdlayers.vi.Surrogate` over it; see `_base` for the estimators, the
KL convention and seeds, `_hooks` for the tfp.layers-style hooks.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional

import keras

from jdlayers import layers as jdl_layers
from jdlayers import ops
from jdlayers import priors as priors_lib
from jdlayers.keras import _hooks
from jdlayers.keras._base import VariationalLayer

_register = keras.saving.register_keras_serializable(package="jdlayers")

# (config key, kind) of the per-part hooks of the named layers.
_PART_HOOKS = (("kernel_posterior_fn", "builder"),
               ("kernel_prior_fn", "prior"),
               ("kernel_divergence_fn", "divergence"),
               ("bias_posterior_fn", "builder"),
               ("bias_prior_fn", "prior"),
               ("bias_divergence_fn", "divergence"))
_CHECKS = {"builder": _hooks.check_builder, "prior": _hooks.check_prior_fn,
           "divergence": _hooks.check_divergence_fn}


class _Named(VariationalLayer):
  """Shared part of `Dense` and the convolutions: activation, bias, prior
  and the tfp.layers-style hooks (see `_hooks`)."""

  _kernel_name = "kernel"

  def __init__(self, *, activation=None, use_bias: bool = True,
               prior: Optional[priors_lib.Prior] = None,
               kernel_posterior_fn: Optional[Callable] = None,
               kernel_prior_fn=None,
               kernel_divergence_fn: Optional[Callable] = None,
               bias_posterior_fn: Optional[Callable] = None,
               bias_prior_fn=None,
               bias_divergence_fn: Optional[Callable] = None, **kwargs):
    super().__init__(**kwargs)
    owner = type(self).__name__
    self.activation = keras.activations.get(activation)
    self.use_bias = bool(use_bias)
    hooks = dict(kernel_posterior_fn=kernel_posterior_fn,
                 kernel_prior_fn=kernel_prior_fn,
                 kernel_divergence_fn=kernel_divergence_fn,
                 bias_posterior_fn=bias_posterior_fn,
                 bias_prior_fn=bias_prior_fn,
                 bias_divergence_fn=bias_divergence_fn)
    for key, kind in _PART_HOOKS:
      setattr(self, key, _CHECKS[kind](hooks[key], owner, key))
    self._layer_prior = _hooks.layer_prior(prior, kernel_prior_fn,
                                           bias_prior_fn, owner)
    self.prior = prior

  def _surrogate_kwargs(self) -> Dict[str, Any]:
    builders, divergences = {}, {}
    for part, name in (("kernel", self._kernel_name), ("bias", "bias")):
      if getattr(self, f"{part}_posterior_fn") is not None:
        builders[name] = getattr(self, f"{part}_posterior_fn")
      if getattr(self, f"{part}_divergence_fn") is not None:
        divergences[name] = getattr(self, f"{part}_divergence_fn")
    return dict(builders=builders, divergence_fns=divergences)

  def _postprocess(self, y):
    return self.activation(y)

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    owner = f"{type(self).__name__} '{self.name}'"
    config.update(activation=keras.activations.serialize(self.activation),
                  use_bias=self.use_bias,
                  prior=_hooks.serialize(self.prior, owner, "prior"))
    for key, _ in _PART_HOOKS:
      config[key] = _hooks.serialize(getattr(self, key), owner, key)
    return config

  @classmethod
  def from_config(cls, config: Mapping[str, Any]):
    config = dict(config)
    owner = cls.__name__
    for key in ("prior",) + tuple(k for k, _ in _PART_HOOKS):
      if key in config:
        config[key] = _hooks.deserialize(config[key], owner, key)
    return super().from_config(config)


@_register
class Dense(_Named):
  """Variational densely-connected layer: `activation(x @ W^T + b)`.

  Weights are drawn from a trainable posterior (mean-field normal by
  default) on every call with the chosen estimator; the KL divergence to
  the prior, scaled by `kl_weight / num_examples`, is added with
  `add_loss`. The weights have jdlayers' layout `[units, in]` (Keras'
  kernel transposed); variables are `weights_loc`,
  `weights_untransformed_scale`, `bias_loc`, `bias_untransformed_scale`.

  Args:
    units: Output units.
    activation: A Keras activation (name or callable); None is linear.
    use_bias: Whether the layer has a bias.
    estimator: "flipout" (default: per-example noise at about twice the
      cost of a deterministic layer), "reparam" (one weight draw shared by
      the batch) or "local" (local reparameterization, exact for normal
      posteriors).
    prior: A `jdlayers.priors.Prior` for weights and bias (default
      `priors.normal()`, `Normal(0, 1)` as tfp.layers).
    kernel_posterior_fn: A jdlayers VI builder for the weights (default
      `jdlayers.vi.mean_field_normal()`; `jdlayers.vi.point_mass()` for MAP).
    kernel_prior_fn: A `Prior` or a callable `(dtype, shape) ->
      tfd.Distribution` overriding the prior of the weights.
    kernel_divergence_fn: `(q, p, z) -> scalar`, the weights' unscaled KL
      term (default `default_divergence_fn`: analytic where available).
    bias_posterior_fn: Builder for the bias (default mean-field normal;
      tfp.layers' default is `jdlayers.vi.point_mass()`).
    bias_prior_fn: As `kernel_prior_fn`, for the bias.
    bias_divergence_fn: As `kernel_divergence_fn`, for the bias.
    num_examples: Training-set size `N`; the added loss is
      `kl_weight * KL / N` (None: the unscaled KL). See `jdlayers.keras`.
    kl_weight: Multiplies the KL term.
    seed: Int seed of initial values and noise (None: random, or from
      `keras.utils.set_random_seed`).
    **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

  Raises:
    ValueError: For a bad size, estimator, `num_examples` or seed, and
      (at build) an input without a known last dimension.
    TypeError: For hooks of the wrong kind.

  #### Example

  ```python
  import jdlayers as jdl, keras
  model = keras.Sequential([
      keras.Input((4,)),
      jdl.keras.Dense(16, "relu", num_examples=1000, seed=1),
      jdl.keras.Dense(3, num_examples=1000, seed=2)])
  model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
      from_logits=True))
  ```
  """

  _kernel_name = "weights"

  def __init__(self, units: int, activation=None, use_bias: bool = True, *,
               estimator: str = "flipout",
               prior: Optional[priors_lib.Prior] = None,
               kernel_posterior_fn: Optional[Callable] = None,
               kernel_prior_fn=None,
               kernel_divergence_fn: Optional[Callable] = None,
               bias_posterior_fn: Optional[Callable] = None,
               bias_prior_fn=None,
               bias_divergence_fn: Optional[Callable] = None,
               num_examples: Optional[int] = None, kl_weight: float = 1.0,
               seed: Optional[int] = None, **kwargs):
    super().__init__(
        activation=activation, use_bias=use_bias, prior=prior,
        kernel_posterior_fn=kernel_posterior_fn,
        kernel_prior_fn=kernel_prior_fn,
        kernel_divergence_fn=kernel_divergence_fn,
        bias_posterior_fn=bias_posterior_fn, bias_prior_fn=bias_prior_fn,
        bias_divergence_fn=bias_divergence_fn, estimator=estimator,
        num_examples=num_examples, kl_weight=kl_weight, seed=seed, **kwargs)
    self.units = ops.positive_int(units, "units", type(self).__name__)
    self.input_spec = keras.InputSpec(min_ndim=2)

  def _make_distribution(self, input_shape):
    in_units = input_shape[-1]
    if in_units is None:
      raise ValueError(f"Dense '{self.name}': the last dimension of the "
                       f"inputs must be known; got shape {input_shape}.")
    self.input_spec = keras.InputSpec(min_ndim=2, axes={-1: int(in_units)})
    return jdl_layers.Affine(self.units, int(in_units), self.variable_dtype,
                             use_bias=self.use_bias, prior=self._layer_prior)

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (self.units,)

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config["units"] = self.units
    return config
