"""`LSTM` and `GRU`: variational recurrent layers (Keras' arguments).

They wrap `jdl.LSTM` / `jdl.GRU` (Keras 3's weight layouts and gate
orders; one time loop for the whole batch) and behave as Keras' layers
for masks (`Embedding(mask_zero=True)` in front, or `keras.layers.Masking`)
and inside `keras.layers.Bidirectional`, which builds the backward copy
from this layer's config.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import keras
import numpy as np
import tensorflow as tf

from jdlayers.layers import recurrent as jdl_recurrent
from jdlayers import ops
from jdlayers import priors as priors_lib
from jdlayers.keras._core_base import CoreLayer

_register = keras.saving.register_keras_serializable(package="jdlayers")
_MASK = 0x7FFFFFFF


class _Recurrent(CoreLayer):
  """Shared constructor and call of `LSTM` and `GRU`."""

  _core = ""

  def __init__(self, units: int, activation="tanh",
               recurrent_activation="sigmoid", use_bias: bool = True, *,
               dropout: float = 0.0, recurrent_dropout: float = 0.0,
               return_sequences: bool = False, return_state: bool = False,
               go_backwards: bool = False, stateful: bool = False,
               unroll: bool = False, zero_output_for_mask: bool = False,
               estimator: str = "flipout",
               prior: Optional[priors_lib.Prior] = None,
               posterior_fns=None, divergence_fns=None,
               num_examples: Optional[int] = None, kl_weight: float = 1.0,
               seed: Optional[int] = None, **kwargs):
    owner = type(self).__name__
    flags = dict(use_bias=use_bias, return_sequences=return_sequences,
                 return_state=return_state, go_backwards=go_backwards,
                 stateful=stateful, unroll=unroll,
                 zero_output_for_mask=zero_output_for_mask)
    for arg, value in flags.items():
      if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: `{arg}` must be True or False; got "
                        f"{value!r:.80}.")
    # Unsupported Keras features fail here, not as a wrong model.
    for arg, value, why in (
        ("dropout", dropout, "the posterior's weight noise replaces it; put "
         "a keras.layers.Dropout in front for input dropout"),
        ("recurrent_dropout", recurrent_dropout, "the posterior's weight "
         "noise replaces it"),
        ("return_state", return_state, "the states are not returned"),
        ("stateful", stateful, "states are not kept across batches")):
      if value:
        raise ValueError(f"{owner}: `{arg}={value!r}` is not supported "
                         f"({why}).")
    self._user_seed = seed
    if go_backwards and seed is not None:
      # keras.layers.Bidirectional builds the backward layer from this
      # layer's config: the same seed would give it the forward layer's
      # initial values and noise stream.
      derived = np.random.SeedSequence([int(seed) & _MASK, 1])
      seed = int(derived.generate_state(1)[0]) & _MASK
    super().__init__(estimator=estimator, prior=prior,
                     posterior_fns=posterior_fns,
                     divergence_fns=divergence_fns,
                     num_examples=num_examples, kl_weight=kl_weight,
                     seed=seed, **kwargs)
    self.units = ops.positive_int(units, "units", owner)
    self.activation = keras.activations.get(activation)
    self.recurrent_activation = keras.activations.get(recurrent_activation)
    self.dropout, self.recurrent_dropout = 0.0, 0.0
    for key, value in flags.items():
      setattr(self, key, bool(value))
    self.supports_masking = True
    self.input_spec = keras.InputSpec(min_ndim=3)

  def _core_kwargs(self) -> Dict[str, Any]:
    return {}

  def _make_distribution(self, input_shape):
    owner = f"{type(self).__name__} '{self.name}'"
    if len(input_shape) < 3 or input_shape[-1] is None:
      raise ValueError(f"{owner}: expected inputs [batch, timesteps, "
                       f"features] with known features; got shape "
                       f"{tuple(input_shape)}.")
    features = int(input_shape[-1])
    self.input_spec = keras.InputSpec(min_ndim=3, axes={-1: features})
    # `zero_output_for_mask` is read here: Bidirectional sets it after
    # construction.
    return getattr(jdl_recurrent, self._core)(
        self.units, features, self.variable_dtype, name=self.name,
        activation=self.activation,
        recurrent_activation=self.recurrent_activation,
        use_bias=self.use_bias, return_sequences=self.return_sequences,
        go_backwards=self.go_backwards,
        zero_output_for_mask=bool(self.zero_output_for_mask),
        **self._core_kwargs(), **self._prior_kwargs())

  def call(self, inputs, initial_state=None, mask=None, training=None):
    """Runs this call's weight draw over the sequences; adds the scaled KL.

    Args:
      inputs: `[N, T, features]`.
      initial_state: Must be None (the state starts at zero).
      mask: Optional boolean `[N, T]` (Keras' masking: masked steps carry
        the state over).
      training: Unused (weights are sampled in training and prediction).

    Returns:
      `[N, units]`, or `[N, T, units]` with `return_sequences`.

    Raises:
      ValueError: For an `initial_state`.
    """
    del training
    if initial_state is not None:
      raise ValueError(f"{type(self).__name__} '{self.name}': "
                       "`initial_state` is not supported (the state starts "
                       "at zero).")
    if isinstance(mask, (list, tuple)):
      mask = mask[0]
    if mask is not None:
      mask = tf.cast(mask, tf.bool)
    return self._out(self._draw()(self._float(inputs), mask=mask))

  def compute_mask(self, inputs, mask=None):
    del inputs
    if isinstance(mask, (list, tuple)):
      mask = mask[0]
    return mask if self.return_sequences else None

  def compute_output_shape(self, input_shape):
    if self.return_sequences:
      return tuple(input_shape[:2]) + (self.units,)
    return (input_shape[0], self.units)

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update(
        units=self.units,
        activation=keras.activations.serialize(self.activation),
        recurrent_activation=keras.activations.serialize(
            self.recurrent_activation),
        use_bias=self.use_bias, dropout=self.dropout,
        recurrent_dropout=self.recurrent_dropout,
        return_sequences=self.return_sequences,
        return_state=self.return_state, go_backwards=self.go_backwards,
        stateful=self.stateful, unroll=self.unroll,
        zero_output_for_mask=bool(self.zero_output_for_mask),
        seed=self._user_seed)
    return config


_DOC = """Variational {name} layer (Keras 3's arguments, weights and masking).

  `kernel` `[features, {g}*units]`, `recurrent_kernel` `[units, {g}*units]`
  and `bias` ({bias}) in `keras.layers.{name}`'s layout and gate order
  ({gates}), drawn on every call from a trainable posterior; the scaled KL
  divergence to the prior (`jdl.{name}`'s) is added with `add_loss`. With
  "flipout" (the default) every sequence sees its own pseudo-independent
  kernel and recurrent kernel, the same at every step. A Keras mask
  (`jdlayers.keras.Embedding(mask_zero=True)`, `keras.layers.Masking`)
  is consumed as Keras does; `keras.layers.Bidirectional(jdl.keras.{name}(
  ...))` works (its backward copy gets its own seed).

  Args:
    units: Size of the state and output.
    activation: Cell activation (default "tanh").
    recurrent_activation: Gate activation (default "sigmoid").
    use_bias: Whether the layer has a bias.{extra}
    dropout, recurrent_dropout: Only 0 (the posterior is the noise).
    return_sequences: Return every step's output `[N, T, units]`.
    return_state, stateful: Only False.
    go_backwards: Process the sequence in reverse (outputs in that order).
    unroll: Accepted for Keras compatibility; the loop is one `tf.scan`.
    zero_output_for_mask: Zeros as the output of masked steps.
    estimator: "flipout" (default) or "reparam" (one weight draw per call).
    prior: A `jdlayers.priors.Prior` for both kernels and the bias (default
      `priors.normal()`{prior_note}).
    posterior_fns: Mapping from part-name globs ("kernel",
      "recurrent_kernel", "bias", "*") to VI builders (default mean-field
      normal; `jdlayers.vi.point_mass()` for MAP).
    divergence_fns: Mapping from part-name globs to `(q, p, z) -> scalar`
      unscaled KL terms.
    num_examples: Training-set size `N`; the added loss is
      `kl_weight * KL / N` (None: the unscaled KL). See `jdlayers.keras`.
    kl_weight: Multiplies the KL term.
    seed: Int seed of initial values and noise (None: random).
    **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

  Raises:
    ValueError: For non-positive `units`, dropout, `return_state`,
      `stateful`, an unknown estimator, and (at build) inputs that are not
      `[N, T, features]`.
    TypeError: For non-bool flags.

  #### Example

  ```python
  import jdlayers as jdl, keras
  model = keras.Sequential([
      keras.Input((None,), dtype="int32"),
      jdl.keras.Embedding(100, 8, mask_zero=True, num_examples=500),
      jdl.keras.{name}(16, num_examples=500),
      jdl.keras.Dense(2, num_examples=500)])
  ```
  """


@_register
class LSTM(_Recurrent):
  __doc__ = _DOC.format(
      name="LSTM", g=4, bias="`[4*units]`", gates="i, f, c, o",
      extra=("\n    unit_forget_bias: Centre the prior of the forget-gate "
             "biases at 1\n      (Keras' initialisation, here a prior "
             "mean). The surrogate works\n      relative to that centre: "
             "`bias_loc` holds `bias - 1` on the forget\n      gates (so the "
             "posterior starts at Keras' initial forget bias of 1);\n      "
             "subtract 1 there when copying in a Keras LSTM's weights."),
      prior_note=", forget-gate biases centred at 1 with `unit_forget_bias`")
  _core = "LSTM"

  def __init__(self, units: int, activation="tanh",
               recurrent_activation="sigmoid", use_bias: bool = True, *,
               unit_forget_bias: bool = True, **kwargs):
    super().__init__(units, activation, recurrent_activation, use_bias,
                     **kwargs)
    if not isinstance(unit_forget_bias, (bool, np.bool_)):
      raise TypeError(f"LSTM: `unit_forget_bias` must be True or False; got "
                      f"{unit_forget_bias!r:.80}.")
    self.unit_forget_bias = bool(unit_forget_bias)

  def _core_kwargs(self) -> Dict[str, Any]:
    return {"unit_forget_bias": self.unit_forget_bias}

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config["unit_forget_bias"] = self.unit_forget_bias
    return config


@_register
class GRU(_Recurrent):
  __doc__ = _DOC.format(
      name="GRU", g=3, bias="`[2, 3*units]` with `reset_after`, else "
      "`[3*units]`", gates="z, r, h",
      extra=("\n    reset_after: Apply the reset gate after the recurrent "
             "matmul (Keras 3's\n      default)."), prior_note="")
  _core = "GRU"

  def __init__(self, units: int, activation="tanh",
               recurrent_activation="sigmoid", use_bias: bool = True, *,
               reset_after: bool = True, **kwargs):
    super().__init__(units, activation, recurrent_activation, use_bias,
                     **kwargs)
    if not isinstance(reset_after, (bool, np.bool_)):
      raise TypeError(f"GRU: `reset_after` must be True or False; got "
                      f"{reset_after!r:.80}.")
    self.reset_after = bool(reset_after)

  def _core_kwargs(self) -> Dict[str, Any]:
    return {"reset_after": self.reset_after}

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config["reset_after"] = self.reset_after
    return config
