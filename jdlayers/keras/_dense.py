"""`Dense`: the variational densely-connected layer (Keras' layout)."""

from __future__ import annotations

from typing import Any, Dict, Optional

import keras

from jdlayers import layers as jdl_layers
from jdlayers import ops
from jdlayers import priors as priors_lib
from jdlayers.keras._hooks import DEFAULT
from jdlayers.keras._layers import _Named, _register


@_register
class Dense(_Named):
  """Variational densely-connected layer: `activation(x @ kernel + bias)`.

  Weights are drawn from a trainable posterior (mean-field normal by
  default) on every call with the chosen estimator; each part's KL
  divergence to its prior, scaled by `kl_weight / num_examples`, is added
  with `add_loss` (one loss per part, as tfp.layers). Keras' layout: the
  kernel is `[in, units]` as `keras.layers.Dense` and tfp.layers; the
  default variables are `kernel_loc`, `kernel_untransformed_scale`,
  `bias_loc`, `bias_untransformed_scale` (with point-mass posteriors,
  `kernel_loc`, `bias_loc`: `set_weights(keras_dense.get_weights())`).

  The hooks mean what they mean in tfp.layers: `kernel_prior_fn=None`,
  `bias_prior_fn=None` or a None divergence function leave that part out
  of the KL; `bias_posterior_fn=None` means no bias. Defaults (arguments
  not passed) differ from tfp.layers' in two ways: the bias is mean-field
  normal with a `Normal(0, 1)` prior (tfp.layers: a point mass without
  prior), and the KL is scaled by `kl_weight / num_examples`.

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
    kernel_posterior_fn: A jdlayers VI builder for the kernel (default
      `jdlayers.vi.mean_field_normal()`; `jdlayers.vi.point_mass()` for
      MAP) or a tfp.layers posterior function `(dtype, shape, name,
      trainable, add_variable_fn)` (`tfp.layers.default_mean_field_normal_fn
      ()`; its variables become this layer's Keras weights).
    kernel_posterior_tensor_fn: `d -> tensor`, the kernel draw from the
      posterior `d` (Keras layout) with `estimator="reparam"`, as
      tfp.layers (e.g. `lambda d: d.mean()`); None: a seeded sample.
      Flipout and local reparameterization draw their own noise (jdlayers'
      Flipout does not pass it through this function, unlike tfp.layers').
    kernel_prior_fn: A `Prior` or a callable `(dtype, shape) ->
      tfd.Distribution` (or tfp.layers' five-argument form) over the
      `[in, units]` kernel; None: no kernel KL term.
    kernel_divergence_fn: `(q, p, z) -> scalar`, the kernel's unscaled KL
      term, called as tfp.layers calls it: the posterior and prior the hooks
      made (Keras layout) and the forward pass' kernel draw (None under
      Flipout and local reparameterization); default
      `default_divergence_fn` (analytic where available); None: no kernel
      KL term.
    bias_posterior_fn: Builder or tfp.layers function for the bias
      (default mean-field normal; tfp.layers' default is a point mass,
      `jdlayers.vi.point_mass()`); None: no bias.
    bias_posterior_tensor_fn: `d -> tensor`, the bias draw, with every
      estimator (as tfp.layers); None: a seeded sample (local
      reparameterization folds a normal bias into its noise instead).
    bias_prior_fn: As `kernel_prior_fn`, for the bias (default
      `Normal(0, 1)`; tfp.layers' default is None).
    bias_divergence_fn: As `kernel_divergence_fn`, for the bias.
    num_examples: Training-set size `N`; the added loss is
      `kl_weight * KL / N` (None: the unscaled KL). See `jdlayers.keras`.
    kl_weight: Multiplies the KL term.
    seed: Int seed of initial values and noise (None: random, or from
      `keras.utils.set_random_seed`). tfp.layers functions draw their
      initial values with their own initializers.
    **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

  Raises:
    ValueError: For a bad size, estimator, `num_examples` or seed,
      `kernel_posterior_fn=None`, and (at build) an input without a known
      last dimension.
    TypeError: For hooks of the wrong kind or a non-bool `use_bias`.

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
  _kernel_perm = (1, 0)  # Keras [in, units] -> jdlayers [units, in]

  def __init__(self, units: int, activation=None, use_bias: bool = True, *,
               estimator: str = "flipout",
               prior: Optional[priors_lib.Prior] = None,
               kernel_posterior_fn=DEFAULT, kernel_posterior_tensor_fn=None,
               kernel_prior_fn=DEFAULT, kernel_divergence_fn=DEFAULT,
               bias_posterior_fn=DEFAULT, bias_posterior_tensor_fn=None,
               bias_prior_fn=DEFAULT, bias_divergence_fn=DEFAULT,
               num_examples: Optional[int] = None, kl_weight: float = 1.0,
               seed: Optional[int] = None, **kwargs):
    super().__init__(
        activation=activation, use_bias=use_bias, prior=prior,
        kernel_posterior_fn=kernel_posterior_fn,
        kernel_posterior_tensor_fn=kernel_posterior_tensor_fn,
        kernel_prior_fn=kernel_prior_fn,
        kernel_divergence_fn=kernel_divergence_fn,
        bias_posterior_fn=bias_posterior_fn,
        bias_posterior_tensor_fn=bias_posterior_tensor_fn,
        bias_prior_fn=bias_prior_fn, bias_divergence_fn=bias_divergence_fn,
        estimator=estimator, num_examples=num_examples, kl_weight=kl_weight,
        seed=seed, **kwargs)
    self.units = ops.positive_int(units, "units", type(self).__name__)
    self.input_spec = keras.InputSpec(min_ndim=2)

  def _variable_name(self, name: str) -> str:
    if name.startswith("weights/"):
      name = "kernel/" + name[len("weights/"):]
    return super()._variable_name(name)

  def _make_distribution(self, input_shape):
    in_units = input_shape[-1]
    if in_units is None:
      raise ValueError(f"Dense '{self.name}': the last dimension of the "
                       f"inputs must be known; got shape {input_shape}.")
    self.input_spec = keras.InputSpec(min_ndim=2, axes={-1: int(in_units)})
    return jdl_layers.Affine(self.units, int(in_units), self.variable_dtype,
                             use_bias=self.has_bias, prior=self._layer_prior)

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (self.units,)

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config["units"] = self.units
    return config
