"""Checks a value given to `log_prob` against a distribution's structure.

Every layer and composite runs this one check before TFP sees a value (see
`StatelessSeedMixin._resolve_value`), so a dict that lacks a parameter, a
list that is too short, a transposed kernel or another network's sample is
reported with the distribution, the part's path (e.g. "1/kernel"), the
expected and the given shapes, instead of a `KeyError: 0` or a bare
broadcasting error from deep inside TFP.

The expected structure is the distribution's own `event_shape` and `dtype`:
a sampled layer (`.params`: name -> shape) or a sampled composite
(`.layers`: one entry per child). It is read by duck typing, so this module
needs nothing above it.
"""

from __future__ import annotations

import collections.abc
import itertools
from typing import List, Optional, Tuple

import numpy as np
import tensorflow as tf


def _is_composite(structure) -> bool:
  return hasattr(structure, "layers") and not hasattr(structure, "params")


def _has_leaves(structure) -> bool:
  if _is_composite(structure):
    return any(_has_leaves(c) for c in structure.layers)
  return bool(getattr(structure, "params", None))


def _desc(structure) -> str:
  config = getattr(structure, "config", None)
  return getattr(config, "desc", None) or type(structure).__name__


def _kind(value) -> str:
  if isinstance(value, (list, tuple)):
    return f"a {type(value).__name__} of {len(value)}"
  shape = _shape(value)
  if shape is not None and hasattr(value, "shape"):
    return f"a tensor of shape {shape}"
  return f"a {type(value).__name__}"


def _shape(value) -> Optional[List[Optional[int]]]:
  shape = getattr(value, "shape", None)
  if shape is None:
    try:
      shape = np.shape(value)
    except (TypeError, ValueError):
      return None
  shape = tf.TensorShape(shape)
  return None if shape.rank is None else shape.as_list()


def check_value(event_shape, dtype, value, desc: str,
                as_args: bool = False) -> None:
  """Raises if `value` does not fit a distribution with this structure.

  Args:
    event_shape: The distribution's `event_shape` (a sampled layer of
      `TensorShape`s, or a sampled composite of them).
    dtype: The distribution's `dtype`, of the same structure.
    value: A sampled layer/network, a dict of parameters, or a list of
      parameters (layers) or of children's values (composites). Parts may
      carry leading sample dims `[*S, *event_shape]`; the `S` of all parts
      must broadcast.
    desc: The distribution's description, for messages.
    as_args: `value` is the tuple of a `log_prob(weights, bias)`-style call
      (a layer's parameters in order); a single list or tuple is not a
      layer value (TFP cannot rebuild a layer from it).

  Raises:
    TypeError: For a value of the wrong kind or a tensor of the wrong dtype.
    ValueError: For a missing part, a wrong number of parts, a part whose
      trailing (event) shape differs, or sample dims that do not broadcast.
  """
  leads: List[Tuple[str, list]] = []
  _check(event_shape, dtype, value, "", desc, leads, as_args)
  _check_leads(leads, desc)


def _check(shapes, dtypes, value, prefix: str, desc: str, leads,
           as_args: bool = False) -> None:
  at = f" at '{prefix.rstrip('/')}'" if prefix else ""
  if _is_composite(shapes):
    children, kinds = shapes.layers, dtypes.layers
    random = [i for i, c in enumerate(children) if _has_leaves(c)]
    if _is_composite(value):
      parts = tuple(value.layers)
    elif isinstance(value, (list, tuple)):
      parts = tuple(value)
    else:
      raise TypeError(
          f"{desc}: log_prob expects{at} a sample of {_desc(shapes)} or a "
          f"list of its {len(children)} layers; got {_kind(value)}.")
    if len(parts) != len(children):
      raise ValueError(
          f"{desc}: the value given to log_prob{at} has {len(parts)} layers; "
          f"{_desc(shapes)} has {len(children)} ({len(random)} with random "
          "parameters). Pass a sample of this network (net.sample(...)) or "
          f"a list of {len(children)} layers (None for those without "
          "parameters).")
    for i in random:
      _check(children[i], kinds[i], parts[i], f"{prefix}{i}/", desc, leads)
    return
  if not hasattr(shapes, "params"):
    return  # not a layer's structure (e.g. a model's joint): TFP checks it
  expected = dict(shapes.params)
  names = list(expected)
  if hasattr(value, "params") and not isinstance(value, collections.abc.Mapping):
    given = dict(value.params)
  elif isinstance(value, collections.abc.Mapping):
    given = dict(value)
  elif isinstance(value, (list, tuple)) and as_args:
    if len(value) != len(names):
      raise ValueError(
          f"{desc}: log_prob got {len(value)} parameters; {_desc(shapes)} "
          f"has {len(names)} ({[prefix + n for n in names]}).")
    given = dict(zip(names, value))
  else:
    raise TypeError(
        f"{desc}: log_prob expects{at} a sample of {_desc(shapes)} or a dict "
        f"of its parameters {{{', '.join(repr(n) for n in names)}: ...}}; "
        f"got {_kind(value)}.")
  missing = [prefix + n for n in names if given.get(n) is None]
  if missing:
    raise ValueError(
        f"{desc}: the value given to log_prob lacks {missing} "
        f"({_desc(shapes)} has {[prefix + n for n in names]}; got "
        f"{[prefix + str(k) for k in given]}).")
  for n in names:
    _check_part(given[n], expected[n], getattr(dtypes, "params", {}).get(n),
                prefix + n, _desc(shapes), desc, leads)


def _check_part(part, event, dtype, path, owner, desc, leads) -> None:
  event = tf.TensorShape(event).as_list()
  got = _shape(part)
  if got is None:
    return  # unknown rank: nothing is known statically
  k = len(event)
  tail = got[len(got) - k:] if k else []
  if len(got) < k or any(g is not None and e is not None and g != e
                         for g, e in zip(tail, event)):
    raise ValueError(
        f"{desc}: part '{path}' of {owner} has shape {got}; expected "
        f"[*sample_shape, {', '.join(map(str, event))}] (event shape "
        f"{event}). Is it transposed, or a sample of another network?")
  if (dtype is not None and isinstance(part, (tf.Tensor, tf.Variable))
      and part.dtype != tf.as_dtype(dtype)):
    raise TypeError(f"{desc}: part '{path}' of {owner} has dtype "
                    f"{part.dtype.name}; expected {tf.as_dtype(dtype).name}.")
  leads.append((path, got[:len(got) - k]))


def _broadcast(a: list, b: list) -> Optional[list]:
  out = []
  for x, y in itertools.zip_longest(reversed(a), reversed(b), fillvalue=1):
    if x == 1 or x is None and y not in (1, None):
      out.append(y)
    elif y == 1 or y is None or x == y:
      out.append(x)
    else:
      return None
  return out[::-1]


def _check_leads(leads, desc: str) -> None:
  """The sample dims of all parts must broadcast (their log_probs add up)."""
  acc: list = []
  for i, (path, lead) in enumerate(leads):
    nxt = _broadcast(acc, lead)
    if nxt is None:
      other = next((p for p, l in leads[:i] if _broadcast(l, lead) is None),
                   leads[0][0])
      first = dict(leads)[other]
      raise ValueError(
          f"{desc}: the parts of the value given to log_prob have sample "
          f"dims that do not broadcast: '{other}' has {first}, '{path}' has "
          f"{lead}. Pass one sample (net.sample(...)), not parts of "
          "different samples.")
    acc = nxt
