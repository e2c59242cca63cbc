"""Recurrent layers: `LSTM` and `GRU` distributions (Keras 3 layouts).

A sample is a callable `f(x, mask=None)` running the sampled cells over
`[*B, N, T, input_size]` sequences with `jdlayers.ops.lstm` / `ops.gru` (one
time loop for all sampled networks). `Bidirectional` (in
`bidirectional.py`) pairs a forward and a backward layer.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Union

import tensorflow as tf
import tensorflow_probability as tfp

from jdlayers import _registry
from jdlayers import ops
from jdlayers import priors as priors_lib
from jdlayers.layers import _base
from jdlayers.layers.affine import _float_dtype

tfd = tfp.distributions
tfb = tfp.bijectors
Root = tfd.JointDistributionCoroutine.Root
Activation = Union[str, Callable, None]


@dataclasses.dataclass(frozen=True)
class RecurrentConfig:
  """Static configuration of a recurrent layer."""
  desc: str
  cell: str  # "lstm" or "gru"
  units: int
  activation: Optional[Callable] = tf.math.tanh
  recurrent_activation: Optional[Callable] = tf.math.sigmoid
  return_sequences: bool = False
  go_backwards: bool = False
  zero_output_for_mask: bool = False
  reset_after: bool = True


class RecurrentLayer(_base.SampledLayer):
  """A sampled LSTM or GRU: `f(x, mask=None)`.

  Parameters (Keras 3 layouts): `kernel` `[*S, input_size, G*units]`,
  `recurrent_kernel` `[*S, units, G*units]`, `bias` (`[*S, 4*units]` for an
  LSTM; `[*S, 2, 3*units]` for a GRU with `reset_after`, else
  `[*S, 3*units]`), plus any extra latents of the prior.
  """

  __slots__ = ()
  # `jdl.vi` flipout passes these as `ops.Perturbed` kernels.
  flipout_kernels = ("kernel", "recurrent_kernel")

  def __call__(self, x, mask=None):
    """Runs the sampled cells over the sequences.

    Args:
      x: `[*B, N, T, input_size]`; `B` broadcasts against the sample shape.
      mask: Optional boolean `[*B', N, T]` (True = a real step); masked steps
        carry the state over and repeat the previous output, as Keras.

    Returns:
      `[*broadcast(B, S), N, units]`, or `[*broadcast(B, S), N, T, units]`
      with `return_sequences` (in reversed order with `go_backwards`).
    """
    c, p = self._config, self._params
    kwargs = dict(mask=mask, activation=c.activation,
                  recurrent_activation=c.recurrent_activation,
                  return_sequences=c.return_sequences,
                  go_backwards=c.go_backwards,
                  zero_output_for_mask=c.zero_output_for_mask, layer=c.desc)
    if c.cell == "lstm":
      return ops.lstm(x, p["kernel"], p["recurrent_kernel"], p.get("bias"),
                      **kwargs)
    return ops.gru(x, p["kernel"], p["recurrent_kernel"], p.get("bias"),
                   reset_after=c.reset_after, **kwargs)

  def keras_weights(self):
    """The parameters in `keras.layers.LSTM`/`GRU`'s `get_weights()` order.

    Returns:
      `[kernel, recurrent_kernel(, bias)]` tensors with their sample dims
      `S` leading; for `S = []`, `keras_layer.set_weights(f.keras_weights())`
      gives Keras this sample.
    """
    names = ("kernel", "recurrent_kernel", "bias")
    return [self._params[n] for n in names if n in self._params]


class LSTMLayer(RecurrentLayer):
  """A sampled `LSTM` (gates i, f, c, o)."""
  __slots__ = ()


class GRULayer(RecurrentLayer):
  """A sampled `GRU` (gates z, r, h)."""
  __slots__ = ()


class Recurrent(_base.LayerDistribution):
  """Shared constructor of `LSTM` and `GRU` (see their docstrings)."""

  _cell = ""
  _gates = 0

  def _setup(self, parameters, *, units, input_size, dtype, name, activation,
             recurrent_activation, use_bias, return_sequences, go_backwards,
             zero_output_for_mask, prior, validate_args, **extra):
    cls = type(self).__name__
    units = ops.positive_int(units, "units", cls)
    input_size = ops.positive_int(input_size, "input_size", cls)
    desc = f"{cls}(units={units}, input_size={input_size})"
    if name not in (None, cls):
      desc += f" '{name}'"
    dtype = _float_dtype(dtype, desc)
    for arg, value in (("use_bias", use_bias),
                       ("return_sequences", return_sequences),
                       ("go_backwards", go_backwards),
                       ("zero_output_for_mask", zero_output_for_mask),
                       *extra.items()):
      if not isinstance(value, bool):
        raise TypeError(f"{desc}: `{arg}` must be True or False; got "
                        f"{value!r}.")
    prior = priors_lib.normal() if prior is None else prior
    if not isinstance(prior, priors_lib.Prior):
      raise TypeError(f"{desc}: `prior` must be a jdlayers.priors.Prior; got "
                      f"{prior!r}.")
    config = RecurrentConfig(
        desc=desc, cell=self._cell, units=units,
        activation=ops.get_activation(activation, desc),
        recurrent_activation=ops.get_activation(recurrent_activation, desc),
        return_sequences=return_sequences, go_backwards=go_backwards,
        zero_output_for_mask=zero_output_for_mask,
        reset_after=extra.get("reset_after", True))
    self.units, self.input_size, self.use_bias = units, input_size, use_bias
    self.prior, self.param_dtype = prior, dtype
    self.unit_forget_bias = extra.get("unit_forget_bias", False)
    self.reset_after = config.reset_after
    super().__init__(self.param_model(), config,
                     required=("kernel", "recurrent_kernel"),
                     forbidden=() if use_bias else ("bias",),
                     validate_args=validate_args, name=name or cls)
    self._parameters = parameters
    self._init_args = dict(
        units=units, input_size=input_size, dtype=dtype, name=name,
        activation=config.activation,
        recurrent_activation=config.recurrent_activation,
        use_bias=use_bias, return_sequences=return_sequences,
        go_backwards=go_backwards,
        zero_output_for_mask=zero_output_for_mask, **extra, prior=prior,
        validate_args=validate_args)
    self.output_feature_ndims = 1

  def bias_shape(self):
    """Shape of `bias` (Keras 3's), or None without bias."""
    if not self.use_bias:
      return None
    g = self._gates * self.units
    return (2, g) if self._cell == "gru" and self.reset_after else (g,)

  def param_specs(self, prefix: str = ""):
    """The `ParamSpec`s of `kernel` and `recurrent_kernel` (which carries
    the bias), their names prefixed with `prefix` (as `Bidirectional`)."""
    g = self._gates * self.units
    return (
        priors_lib.ParamSpec(
            kernel_name=prefix + "kernel", kernel_shape=(self.input_size, g),
            bias_shape=None, out_axis=1, fan_in=self.input_size, fan_out=g,
            dtype=self.param_dtype, latent_prefix=prefix),
        priors_lib.ParamSpec(
            kernel_name=prefix + "recurrent_kernel",
            kernel_shape=(self.units, g), bias_shape=self.bias_shape(),
            out_axis=1, fan_in=self.units, fan_out=g, dtype=self.param_dtype,
            bias_name=prefix + "bias",
            latent_prefix=prefix + "recurrent_kernel_"))

  def param_model(self, prefix: str = "") -> Callable:
    """The coroutine model over this layer's parameters, names prefixed
    with `prefix`: kernel, recurrent kernel, bias (Keras' weight order)."""
    model = priors_lib.joint_model(self.prior, self.param_specs(prefix))
    if not (self.unit_forget_bias and self.use_bias):
      return model
    offset = [0.] * (4 * self.units)
    offset[self.units:2 * self.units] = [1.] * self.units
    return _shift_part(model, prefix + "bias",
                       tf.constant(offset, self.param_dtype))

  def get_config(self):
    config = super().get_config()
    config["recurrent_activation"] = _registry.function_to_name(
        self._init_args["recurrent_activation"], self._desc,
        "recurrent_activation")
    return config

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    act = config.pop("recurrent_activation", "sigmoid")
    layer_kwargs = _registry.decode_args(cls.__name__, config)
    layer_kwargs["recurrent_activation"] = _registry.function_from_name(
        act, cls.__name__, "recurrent_activation")
    return cls(**layer_kwargs)


def _shift_part(model: Callable, name: str, offset: tf.Tensor) -> Callable:
  """`model` with the component `name` shifted by `offset` (its support
  too), e.g. an LSTM's forget-gate biases centred at 1."""

  def shifted():
    gen = model()
    value = None
    while True:
      try:
        d = gen.send(value)
      except StopIteration:
        return
      root = isinstance(d, Root)
      dist = d.distribution if root else d
      if dist.name == name:
        dist = _shifted(dist, offset, name)
        d = Root(dist) if root else dist
      value = yield d

  return shifted


def _shifted(dist: tfd.Distribution, offset: tf.Tensor, name: str):
  shift = tfb.Shift(offset)
  moved = tfd.TransformedDistribution(dist, shift, name=name)
  support = dist.experimental_default_event_space_bijector()
  if support is None:
    return moved
  return priors_lib.Supported(moved, (), support=tfb.Chain([shift, support]),
                              name=name)


_COMMON_DOC = """
  Inputs `[*B, N, T, input_size]` give `[*broadcast(B, S), N, units]`, or
  `[..., N, T, units]` with `return_sequences`; a sample is called as
  `f(x, mask=None)` with an optional boolean mask `[*B', N, T]` (Keras'
  semantics: masked steps carry the state over and repeat the previous
  output, or give zeros with `zero_output_for_mask`). Every sampled network
  runs in one time loop over T (`tf.scan`), under `tf.function` and XLA.
  `jdl.vi` flipout perturbs `kernel` and `recurrent_kernel` (one kernel per
  sequence: the same signs at every step).
"""


@_registry.register_class("LSTM")
class LSTM(Recurrent):
  """Distribution over LSTM layers with Keras 3's weights and gate order.

  Parameters: `kernel` `[input_size, 4*units]`, `recurrent_kernel`
  `[units, 4*units]`, `bias` `[4*units]`, gates (i, f, c, o) as
  `keras.layers.LSTM`: `layer.set_weights([kernel, recurrent_kernel,
  bias])` moves a sample into Keras.
  {common}
  Args:
    units: Size of the state and output.
    input_size: Features per step of the input.
    dtype: float32 or float64.
    name: Name of the distribution.
    activation: Cell activation (default "tanh"; None: identity).
    recurrent_activation: Gate activation (default "sigmoid").
    use_bias: Whether there is a bias.
    return_sequences: Return every step's output, not only the last.
    go_backwards: Process sequences in reverse (outputs in that order).
    zero_output_for_mask: Zeros as the output of masked steps.
    unit_forget_bias: The prior of the forget-gate biases is centred at 1
      (Keras' initialisation, here a prior mean: `Normal(1, bias_scale)`
      for the default prior); the other biases stay centred at 0. The
      shift is part of the bias' support, so MCMC and VI start it at Keras'
      initial value 1; `jdl.vi` then estimates the bias' KL term by Monte
      Carlo (pass False for a bias prior centred at 0 with an exact KL).
    prior: A `jdlayers.priors.Prior` for each kernel and the bias (default
      `priors.normal(1.0)`, i.i.d. `Normal(0, 1)`, as `jdl.Affine`); a
      hierarchical prior gets its own latents per kernel (e.g.
      `global_scale` and `recurrent_kernel_global_scale`).
    validate_args: Passed to `JointDistributionCoroutine`.

  Raises:
    ValueError: For non-positive sizes or an unknown activation name.
    TypeError: For a non-floating dtype, non-bool flags or a bad `prior`.

  #### Example

  ```python
  import jdlayers as jdl, tensorflow as tf
  f = jdl.LSTM(4, 3, return_sequences=True).sample(2, seed=0)
  f(tf.ones([5, 7, 3])).shape  # [2, 5, 7, 4]
  ```
  """

  _value_type = LSTMLayer
  _cell, _gates = "lstm", 4

  def __init__(self, units: int, input_size: int, dtype=tf.float32,
               name: str = "LSTM", *, activation: Activation = "tanh",
               recurrent_activation: Activation = "sigmoid",
               use_bias: bool = True, return_sequences: bool = False,
               go_backwards: bool = False, zero_output_for_mask: bool = False,
               unit_forget_bias: bool = True,
               prior: Optional[priors_lib.Prior] = None,
               validate_args: bool = False):
    parameters = dict(locals())
    self._setup(parameters, units=units, input_size=input_size, dtype=dtype,
                name=name, activation=activation,
                recurrent_activation=recurrent_activation, use_bias=use_bias,
                return_sequences=return_sequences, go_backwards=go_backwards,
                zero_output_for_mask=zero_output_for_mask,
                unit_forget_bias=unit_forget_bias, prior=prior,
                validate_args=validate_args)


@_registry.register_class("GRU")
class GRU(Recurrent):
  """Distribution over GRU layers with Keras 3's weights and gate order.

  Parameters: `kernel` `[input_size, 3*units]`, `recurrent_kernel`
  `[units, 3*units]`, `bias` `[2, 3*units]` (input and recurrent biases)
  with `reset_after=True` (Keras 3's default) or `[3*units]`, gates
  (z, r, h) as `keras.layers.GRU`.
  {common}
  Args:
    units, input_size, dtype, name, activation, recurrent_activation,
      use_bias, return_sequences, go_backwards, zero_output_for_mask,
      prior, validate_args: As `LSTM`.
    reset_after: Apply the reset gate after the recurrent matmul (Keras 3's
      default) or before it.

  Raises:
    ValueError, TypeError: As `LSTM`.

  #### Example

  ```python
  import jdlayers as jdl, tensorflow as tf
  f = jdl.GRU(4, 3).sample(seed=0)
  f(tf.ones([5, 7, 3])).shape  # [5, 4]
  ```
  """

  _value_type = GRULayer
  _cell, _gates = "gru", 3

  def __init__(self, units: int, input_size: int, dtype=tf.float32,
               name: str = "GRU", *, activation: Activation = "tanh",
               recurrent_activation: Activation = "sigmoid",
               use_bias: bool = True, return_sequences: bool = False,
               go_backwards: bool = False, zero_output_for_mask: bool = False,
               reset_after: bool = True,
               prior: Optional[priors_lib.Prior] = None,
               validate_args: bool = False):
    parameters = dict(locals())
    self._setup(parameters, units=units, input_size=input_size, dtype=dtype,
                name=name, activation=activation,
                recurrent_activation=recurrent_activation, use_bias=use_bias,
                return_sequences=return_sequences, go_backwards=go_backwards,
                zero_output_for_mask=zero_output_for_mask,
                reset_after=reset_after, prior=prior,
                validate_args=validate_args)


LSTM.__doc__ = LSTM.__doc__.replace("{common}", _COMMON_DOC)
GRU.__doc__ = GRU.__doc__.replace("{common}", _COMMON_DOC)
