"""`LayerNormalization`: variational layer normalisation (Keras' arguments)."""

from __future__ import annotations

from typing import Any, Dict, Optional

import keras

from jdlayers import priors as priors_lib
from jdlayers.keras._core_base import CoreLayer
from jdlayers.layers import norm as jdl_norm

_register = keras.saving.register_keras_serializable(package="jdlayers")


@_register
class LayerNormalization(CoreLayer):
  """Variational layer normalisation over the last axis.

  `gamma * (x - mean) / sqrt(var + epsilon) + beta` with Keras' formula
  (biased variance, `epsilon` added to it) and weights (`gamma`, `beta`
  `[features]`), the scale and offset drawn on every call from a trainable
  posterior (reparameterization: they are not kernels, so there is no
  Flipout), and the scaled KL divergence to the prior (`jdl.LayerNorm`'s:
  `gamma ~ Normal(1, 1)`, `beta ~ Normal(0, 1)`) added with `add_loss`.
  The prior and the surrogate describe `gamma - 1`: the `gamma_loc`
  variable holds `gamma - 1` (subtract 1 when copying in a Keras layer's
  `gamma`).

  Args:
    axis: Only the last axis (-1, or its positive index).
    epsilon: Added to the variance (Keras' default 1e-3).
    center: Whether there is an offset `beta`.
    scale: Whether there is a scale `gamma` (`center=False, scale=False`
      leaves nothing to infer: use `keras.layers.LayerNormalization`).
    rms_scaling: Only False.
    estimator: Only "reparam".
    prior: A `jdlayers.priors.Prior` for `gamma - 1` and `beta` (default
      `priors.normal()`).
    posterior_fns, divergence_fns, num_examples, kl_weight, seed,
      **kwargs: As `jdlayers.keras.LSTM` (part names "gamma", "beta").

  Raises:
    ValueError: For another axis, `rms_scaling`, neither `center` nor
      `scale`, a non-positive `epsilon` or another estimator.

  #### Example

  ```python
  import jdlayers as jdl, numpy as np
  ln = jdl.keras.LayerNormalization(num_examples=100, seed=0)
  y = ln(np.random.normal(size=[4, 7, 8]).astype("float32"))  # [4, 7, 8]
  ```
  """

  _estimators_allowed = ("reparam",)

  def __init__(self, axis: int = -1, epsilon: float = 1e-3,
               center: bool = True, scale: bool = True,
               rms_scaling: bool = False, *, estimator: str = "reparam",
               prior: Optional[priors_lib.Prior] = None,
               posterior_fns=None, divergence_fns=None,
               num_examples: Optional[int] = None, kl_weight: float = 1.0,
               seed: Optional[int] = None, **kwargs):
    super().__init__(estimator=estimator, prior=prior,
                     posterior_fns=posterior_fns,
                     divergence_fns=divergence_fns,
                     num_examples=num_examples, kl_weight=kl_weight,
                     seed=seed, **kwargs)
    owner = type(self).__name__
    if isinstance(axis, (list, tuple)) and len(axis) == 1:
      axis = axis[0]
    if isinstance(axis, bool) or not isinstance(axis, int):
      raise ValueError(f"{owner}: `axis` must be the last axis (-1); got "
                       f"{axis!r}.")
    for arg, value in (("center", center), ("scale", scale),
                       ("rms_scaling", rms_scaling)):
      if not isinstance(value, bool):
        raise TypeError(f"{owner}: `{arg}` must be True or False; got "
                        f"{value!r:.80}.")
    if rms_scaling:
      raise ValueError(f"{owner}: `rms_scaling=True` is not supported.")
    if not (center or scale):
      raise ValueError(f"{owner}: `center=False, scale=False` leaves no "
                       "weights to infer; use keras.layers.LayerNormalization.")
    if not float(epsilon) > 0:
      raise ValueError(f"{owner}: `epsilon` must be > 0; got {epsilon!r}.")
    self.axis, self.epsilon = axis, float(epsilon)
    self.center, self.scale, self.rms_scaling = center, scale, False
    self.supports_masking = True

  def _make_distribution(self, input_shape):
    owner = f"{type(self).__name__} '{self.name}'"
    rank = len(input_shape)
    if self.axis not in (-1, rank - 1) or input_shape[-1] is None:
      raise ValueError(f"{owner}: only the last axis (-1) can be normalised, "
                       f"and its size must be known; got axis={self.axis} "
                       f"for inputs of shape {tuple(input_shape)}.")
    if rank < 2:
      raise ValueError(f"{owner}: expected inputs [batch, ..., features]; got "
                       f"shape {tuple(input_shape)}.")
    self.input_spec = keras.InputSpec(ndim=rank,
                                      axes={-1: int(input_shape[-1])})
    return jdl_norm.LayerNorm(
        int(input_shape[-1]), self.variable_dtype, name=self.name,
        epsilon=self.epsilon, center=self.center, scale=self.scale,
        rank=rank - 2, **self._prior_kwargs())

  def call(self, inputs):
    """Normalises with this call's scale/offset draw; adds the scaled KL.

    Args:
      inputs: `[N, ..., features]`.

    Returns:
      The same shape.
    """
    return self._out(self._draw()(self._float(inputs)))

  def compute_output_shape(self, input_shape):
    return tuple(input_shape)

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update(axis=self.axis, epsilon=self.epsilon, center=self.center,
                  scale=self.scale, rms_scaling=False)
    return config
