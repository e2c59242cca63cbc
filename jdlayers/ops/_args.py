"""Normalisation of static layer arguments (sizes, strides, padding, ...).

Every function here raises a `ValueError`/`TypeError` naming the layer and the
argument, so a user's mistake is reported at construction time.
"""

from __future__ import annotations

import numbers
from typing import Callable, Optional, Sequence, Tuple, Union

import tensorflow as tf

IntOrTuple = Union[int, Sequence[int]]

_ACTIVATIONS = {
    "linear": None,
    "relu": tf.nn.relu,
    "relu6": tf.nn.relu6,
    "leaky_relu": tf.nn.leaky_relu,
    "elu": tf.nn.elu,
    "selu": tf.nn.selu,
    "gelu": tf.nn.gelu,
    "silu": tf.nn.silu,
    "swish": tf.nn.silu,
    "tanh": tf.math.tanh,
    "sigmoid": tf.math.sigmoid,
    "softplus": tf.math.softplus,
    "softsign": tf.math.softsign,
    "exponential": tf.math.exp,
    "softmax": tf.nn.softmax,
    "log_softmax": tf.nn.log_softmax,
}


def normalize_tuple(value: IntOrTuple, rank: int, arg: str, layer: str,
                    minimum: int = 1) -> Tuple[int, ...]:
  """Turns an int or a sequence into a `rank`-tuple of ints >= `minimum`.

  Args:
    value: An int, or a sequence of `rank` ints.
    rank: Number of spatial dimensions.
    arg: Argument name, for error messages.
    layer: Layer description, for error messages.
    minimum: Smallest allowed entry.

  Returns:
    A tuple of `rank` Python ints.

  Raises:
    ValueError: On a wrong length or an entry below `minimum`.
    TypeError: On a non-integer entry.
  """
  if isinstance(value, numbers.Integral) and not isinstance(value, bool):
    values = (int(value),) * rank
  else:
    try:
      values = tuple(value)
    except TypeError:
      raise TypeError(f"{layer}: `{arg}` must be an int or a tuple of {rank} "
                      f"ints; got {value!r}.") from None
    if len(values) != rank:
      raise ValueError(f"{layer}: `{arg}` (={value!r}) must have {rank} "
                       f"entries for a rank-{rank} layer, got {len(values)}.")
    for v in values:
      if not isinstance(v, numbers.Integral) or isinstance(v, bool):
        raise TypeError(f"{layer}: `{arg}` must contain ints; got {value!r}.")
    values = tuple(int(v) for v in values)
  for v in values:
    if v < minimum:
      raise ValueError(f"{layer}: `{arg}` (={value!r}) must be >= {minimum}.")
  return values


def positive_int(value, arg: str, layer: str) -> int:
  """Checks that `value` is a positive Python integer and returns it."""
  if (not isinstance(value, numbers.Integral) or isinstance(value, bool)
      or value < 1):
    raise ValueError(f"{layer}: `{arg}` must be a positive integer; "
                     f"got {value!r}.")
  return int(value)


def normalize_padding(padding: str, rank: int, layer: str,
                      allow_causal: bool = True) -> str:
  """Returns "VALID", "SAME" or "CAUSAL" for a case-insensitive `padding`."""
  if not isinstance(padding, str):
    raise TypeError(f"{layer}: `padding` must be a string; got {padding!r}.")
  p = padding.upper()
  allowed = ["VALID", "SAME"]
  if allow_causal and rank == 1:
    allowed.append("CAUSAL")
  if p not in allowed:
    raise ValueError(f"{layer}: unknown `padding` {padding!r}; expected one of "
                     f"{[a.lower() for a in allowed]}.")
  return p


def normalize_data_format(data_format: Optional[str], layer: str) -> str:
  """Returns "channels_last" or "channels_first" (None means channels_last)."""
  if data_format is None:
    return "channels_last"
  if isinstance(data_format, str):
    df = data_format.lower()
    aliases = {"channels_last": "channels_last", "channels_first":
               "channels_first", "nwc": "channels_last", "nhwc":
               "channels_last", "ndhwc": "channels_last", "ncw":
               "channels_first", "nchw": "channels_first", "ncdhw":
               "channels_first"}
    if df in aliases:
      return aliases[df]
  raise ValueError(f"{layer}: unknown `data_format` {data_format!r}; expected "
                   "'channels_last' or 'channels_first'.")


def check_strides_dilations(strides: Tuple[int, ...],
                            dilations: Tuple[int, ...], layer: str) -> None:
  """TF convolutions cannot combine strides and dilations above 1."""
  if max(strides) > 1 and max(dilations) > 1:
    raise ValueError(f"{layer}: `strides` (={strides}) and `dilations` "
                     f"(={dilations}) cannot both exceed 1.")


def get_activation(activation, layer: str = "layer") -> Optional[Callable]:
  """Resolves an activation given as None, a callable or a name like "relu".

  Returns:
    A callable, or None for the identity.
  """
  if activation is None:
    return None
  if isinstance(activation, str):
    key = activation.lower()
    if key not in _ACTIVATIONS:
      raise ValueError(f"{layer}: unknown `activation` {activation!r}; expected "
                       f"a callable or one of {sorted(_ACTIVATIONS)}.")
    return _ACTIVATIONS[key]
  if not callable(activation):
    raise TypeError(f"{layer}: `activation` must be a callable or a name; got "
                    f"{activation!r}.")
  return activation


def activation_name(activation: Optional[Callable]):
  """The registered name of an activation callable, else the callable."""
  if activation is None:
    return None
  for name, fn in _ACTIVATIONS.items():
    if fn is activation:
      return name
  return activation
