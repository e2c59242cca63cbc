"""`Bidirectional`: a forward and a backward recurrent layer, as Keras'."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping, Optional

import tensorflow as tf

from jdlayers import _registry
from jdlayers.layers import _base
from jdlayers.layers.recurrent import Recurrent, RecurrentConfig

MERGE_MODES = ("concat", "sum", "mul", "ave", None)
_HALVES = ("forward_", "backward_")


@dataclasses.dataclass(frozen=True)
class BidirectionalConfig:
  """Static configuration of a `Bidirectional` layer."""
  desc: str
  forward: RecurrentConfig
  backward: RecurrentConfig
  forward_type: type
  backward_type: type
  merge_mode: Optional[str] = "concat"


class BidirectionalLayer(_base.SampledLayer):
  """A sampled `Bidirectional`: `f(x, mask=None)`.

  Parameters: the forward layer's as `forward_<name>` and the backward
  layer's as `backward_<name>` (e.g. `forward_kernel`, `backward_bias`).
  """

  __slots__ = ()
  flipout_kernels = tuple(h + k for h in _HALVES
                          for k in ("kernel", "recurrent_kernel"))

  def _half(self, prefix: str, value_type, config):
    return value_type({k[len(prefix):]: v for k, v in self._params.items()
                       if k.startswith(prefix)}, config)

  @property
  def forward_layer(self):
    """The sampled forward layer (an `LSTMLayer` or `GRULayer`)."""
    c = self._config
    return self._half("forward_", c.forward_type, c.forward)

  @property
  def backward_layer(self):
    """The sampled backward layer."""
    c = self._config
    return self._half("backward_", c.backward_type, c.backward)

  def keras_weights(self):
    """The parameters in `keras.layers.Bidirectional`'s `get_weights()`
    order: the forward layer's, then the backward layer's (sample dims
    leading)."""
    return (self.forward_layer.keras_weights()
            + self.backward_layer.keras_weights())

  def __call__(self, x, mask=None):
    """Runs both layers and merges their outputs.

    Args:
      x: `[*B, N, T, input_size]`.
      mask: Optional boolean `[*B', N, T]` (both layers get it).

    Returns:
      `[*broadcast(B, S), N, (T,) units']`: units' = forward + backward units
      for "concat", else the (equal) units; a `(forward, backward)` pair for
      `merge_mode=None`. With `return_sequences`, the backward outputs are
      flipped back into input order, as Keras.
    """
    c = self._config
    y = self.forward_layer(x, mask=mask)
    y_rev = self.backward_layer(x, mask=mask)
    if c.forward.return_sequences:
      y_rev = tf.reverse(y_rev, [-2])
    if c.merge_mode == "concat":
      return tf.concat([y, y_rev], axis=-1)
    if c.merge_mode == "sum":
      return y + y_rev
    if c.merge_mode == "ave":
      return (y + y_rev) / 2
    if c.merge_mode == "mul":
      return y * y_rev
    return y, y_rev


@_registry.register_class("Bidirectional")
class Bidirectional(_base.LayerDistribution):
  """Distribution over bidirectional recurrent layers (as Keras').

  A joint distribution over a forward and a backward `LSTM`/`GRU` with
  independent random weights, each from its own layer's prior. As
  `keras.layers.Bidirectional`: the backward layer defaults to a copy of
  `layer` with `go_backwards=True`; the two must differ in `go_backwards`
  and agree in `return_sequences`; with `return_sequences` both give zeros
  at masked steps (Keras forces `zero_output_for_mask`) and the backward
  sequence is flipped back before merging.

  Args:
    layer: The forward `jdl.LSTM` or `jdl.GRU`.
    merge_mode: "concat" (default), "sum", "mul", "ave", or None (the
      sample returns the pair of outputs).
    backward_layer: Optional backward `jdl.LSTM` / `jdl.GRU`.
    name: Name of the distribution.
    validate_args: Passed to `JointDistributionCoroutine`.

  Raises:
    TypeError: If `layer` or `backward_layer` is not an LSTM or GRU.
    ValueError: For an unknown `merge_mode`, equal `go_backwards`,
      different `return_sequences`, `input_size` or dtype, or (for "sum",
      "mul", "ave") different `units`.

  #### Example

  ```python
  import jdlayers as jdl, tensorflow as tf
  bi = jdl.Bidirectional(jdl.LSTM(4, 3, return_sequences=True))
  f = bi.sample(2, seed=0)
  f(tf.ones([5, 7, 3])).shape  # [2, 5, 7, 8]
  ```
  """

  _value_type = BidirectionalLayer

  def __init__(self, layer: Recurrent, merge_mode: Optional[str] = "concat",
               backward_layer: Optional[Recurrent] = None,
               name: str = "Bidirectional", *, validate_args: bool = False):
    parameters = dict(locals())
    where = "Bidirectional"
    for arg, value in (("layer", layer), ("backward_layer", backward_layer)):
      if value is not None and not isinstance(value, Recurrent):
        raise TypeError(f"{where}: `{arg}` must be a jdl.LSTM or jdl.GRU; "
                        f"got {value!r}.")
    if layer is None:
      raise TypeError(f"{where}: `layer` must be a jdl.LSTM or jdl.GRU.")
    if merge_mode not in MERGE_MODES:
      raise ValueError(f"{where}: `merge_mode` must be one of "
                       f"{list(MERGE_MODES)}; got {merge_mode!r}.")
    given_backward = backward_layer
    if backward_layer is None:
      backward_layer = type(layer).from_config(
          {**layer.get_config(), "go_backwards": True})
    fwd, bwd = layer, backward_layer
    desc = f"{where}({fwd.config.desc}, merge_mode={merge_mode!r})"
    _check_pair(fwd, bwd, merge_mode, desc)
    # As Keras: returned sequences have zeros at masked steps.
    seq = fwd.config.return_sequences
    config = BidirectionalConfig(
        desc=desc,
        forward=dataclasses.replace(fwd.config, zero_output_for_mask=seq),
        backward=dataclasses.replace(bwd.config, zero_output_for_mask=seq),
        forward_type=fwd._value_type, backward_type=bwd._value_type,  # pylint: disable=protected-access
        merge_mode=merge_mode)
    fwd_model, bwd_model = fwd.param_model("forward_"), bwd.param_model(
        "backward_")

    def model():
      yield from fwd_model()
      yield from bwd_model()

    super().__init__(model, config,
                     required=BidirectionalLayer.flipout_kernels,
                     validate_args=validate_args, name=name)
    self._parameters = parameters
    self._init_args = dict(layer=layer, merge_mode=merge_mode,
                           backward_layer=given_backward, name=name,
                           validate_args=validate_args)
    self.forward_layer, self.backward_layer = fwd, bwd
    self.merge_mode = merge_mode
    self.input_size = fwd.input_size
    self.output_feature_ndims = 1

  def get_config(self) -> Dict[str, Any]:
    """The constructor arguments, the layers as nested configs."""
    args = dict(self._init_args)
    return dict(
        layer=_registry.to_config(args.pop("layer")),
        backward_layer=(None if args["backward_layer"] is None else
                        _registry.to_config(args.pop("backward_layer"))),
        **{k: v for k, v in args.items() if k != "backward_layer"})

  @classmethod
  def from_config(cls, config: Mapping[str, Any]):
    """Builds the layer from `get_config()`'s output."""
    config = dict(config)
    for key in ("layer", "backward_layer"):
      if config.get(key) is not None:
        config[key] = _registry.from_config(config[key])
    return cls(**config)


def _check_pair(fwd: Recurrent, bwd: Recurrent, merge_mode, desc: str):
  f, b = fwd.config, bwd.config
  if f.go_backwards == b.go_backwards:
    raise ValueError(f"{desc}: the forward and backward layers must differ "
                     f"in `go_backwards`; both have {f.go_backwards}.")
  if f.return_sequences != b.return_sequences:
    raise ValueError(f"{desc}: the forward and backward layers must agree in "
                     f"`return_sequences`; got {f.return_sequences} and "
                     f"{b.return_sequences}.")
  if fwd.input_size != bwd.input_size:
    raise ValueError(f"{desc}: the forward and backward layers must have the "
                     f"same `input_size`; got {fwd.input_size} and "
                     f"{bwd.input_size}.")
  if fwd.param_dtype != bwd.param_dtype:
    raise ValueError(f"{desc}: the forward and backward layers must have the "
                     f"same dtype; got {fwd.param_dtype.name} and "
                     f"{bwd.param_dtype.name}.")
  if merge_mode not in ("concat", None) and fwd.units != bwd.units:
    raise ValueError(f"{desc}: merge_mode={merge_mode!r} needs equal `units`; "
                     f"got {fwd.units} and {bwd.units}.")
