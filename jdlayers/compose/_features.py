"""Feature sizes known at construction, for composites' early checks.

`Sequential(Affine(4, 3), Affine(2, 5))` cannot work (4 outputs feed 5
inputs) and `Parallel(Affine(4, 3), Affine(5, 3), combine="sum")` cannot
either; both are found here from the children's static sizes instead of at
the first call. Only what is certain is checked: a layer whose sizes are
not known statically (a `Lambda` of an arbitrary function, a `Flatten`, a
raw TFP distribution) makes the size unknown, so a valid network is never
refused.

A size lives on an axis: -1 for features and channels_last channels,
`-(rank + 1)` for channels_first channels. Sizes on different axes are
never compared.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

from jdlayers.compose._residual import Residual
from jdlayers.layers.static import Pool
from jdlayers.ops import _args


@dataclasses.dataclass(frozen=True)
class Features:
  """Static input and output feature sizes of a layer.

  Attributes:
    inp: Input size on `axis` (None: unknown).
    out: Output size on `axis` (None: unknown).
    axis: The (negative) axis the sizes are on; None for a passthrough
      that keeps every size.
    arg: The constructor argument naming the input size ("in_units",
      "in_channels"), for messages.
    passthrough: The layer keeps the size on `axis` (pooling, activations).
  """
  inp: Optional[int]
  out: Optional[int]
  axis: Optional[int] = -1
  arg: str = "in_units"
  passthrough: bool = False


def describe(layer) -> str:
  """The layer's description for messages (e.g. "Affine(out_units=4, ...)")."""
  for get in (lambda l: l._desc, lambda l: l.config.desc,  # pylint: disable=protected-access
              lambda l: l.layer.config.desc):
    try:
      return str(get(layer))
    except AttributeError:
      continue
  return getattr(layer, "__name__", None) or type(layer).__name__


def features(layer) -> Optional[Features]:
  """The static sizes of a child of a composite; None where unknown."""
  own = getattr(layer, "feature_sizes", None)
  if isinstance(own, Features):
    return own
  if isinstance(layer, Residual):
    inner = features(layer.layers[0])
    if inner is None or inner.passthrough:
      return inner
    size = inner.inp if inner.inp is not None else inner.out
    return dataclasses.replace(inner, inp=size, out=size)
  if hasattr(layer, "in_units") and hasattr(layer, "out_units"):
    return Features(layer.in_units, layer.out_units)
  if hasattr(layer, "in_channels") and hasattr(layer, "out_channels"):
    return Features(layer.in_channels, layer.out_channels,
                    _channel_axis(layer.config), "in_channels")
  if isinstance(layer, Pool):
    return Features(None, None, _channel_axis(layer.layer.config),
                    passthrough=True)
  fn = _function(layer)
  if fn is not None and isinstance(_args.activation_name(fn), str):
    # A named activation (tf.nn.relu, "tanh", ...) keeps every size.
    return Features(None, None, axis=None, passthrough=True)
  return None


def _function(layer):
  """The function a `Lambda` (or a plain callable) applies, if any."""
  if not hasattr(layer, "log_prob") and callable(layer):
    return layer
  try:
    return layer.layer.config.fn
  except AttributeError:
    return None


def _channel_axis(config) -> int:
  first = getattr(config, "data_format", "channels_last") == "channels_first"
  return -(config.rank + 1) if first else -1


def _unit(arg: str) -> str:
  return "channels" if arg == "in_channels" else "features"


def check_chain(children: Sequence, owner: str) -> Optional[Features]:
  """Checks that each child's input size matches the output before it.

  Args:
    children: The layers in the order they are applied.
    owner: The composite's description, for messages.

  Returns:
    The chain's own `Features` (None where nothing is known).

  Raises:
    ValueError: Naming both layers, their positions and the two sizes, when
      a layer's statically known output size differs from the next sized
      layer's input size on the same axis.
  """
  first = None       # Features of the first sized child, if nothing before
  blind = False      # it could change sizes
  last = None        # (position, layer, Features) of the last sized output
  for i, child in enumerate(children):
    f = features(child)
    if f is not None and f.passthrough:
      if f.axis is not None:  # pooling keeps only the size on its axis
        blind = True
        if last is not None and f.axis != last[2].axis:
          last = None
      continue
    if f is None:
      blind, last = True, None
      continue
    if first is None and not blind:
      first = f
    blind = True
    if (last is not None and f.inp is not None and last[2].out is not None
        and f.axis == last[2].axis and f.inp != last[2].out):
      j, prev, pf = last
      raise ValueError(
          f"{owner}: layer {j} {describe(prev)} outputs {pf.out} "
          f"{_unit(f.arg)} but layer {i} {describe(child)} expects "
          f"{f.arg}={f.inp}; make them equal (or put a layer that maps "
          f"{pf.out} to {f.inp} {_unit(f.arg)} between them).")
    last = (i, child, f) if f.out is not None else None
  out = last[2] if last is not None else None
  if first is not None and out is not None:
    if first.axis != out.axis:
      return None
    return Features(first.inp, out.out, out.axis, first.arg)
  if first is not None:
    return Features(first.inp, None, first.axis, first.arg)
  if out is not None:
    return Features(None, out.out, out.axis)
  return None


def check_branches(branches: Sequence, combine: str, axis: int,
                   owner: str) -> Optional[Features]:
  """Checks branches that see the same input and are combined.

  Args:
    branches: The branch layers.
    combine: "sum" or "concat".
    axis: The concat axis (negative).
    owner: The composite's description, for messages.

  Returns:
    The block's own `Features` (None where nothing is known).

  Raises:
    ValueError: Naming both branches and sizes, when two branches expect
      different input sizes on the same axis (they get the same input), or
      when `combine="sum"` adds outputs of different sizes (neither 1).
  """
  fs = [features(b) for b in branches]
  sized = [(i, f) for i, f in enumerate(fs)
           if f is not None and not f.passthrough]
  for what, attr in (("expects", "inp"), ("outputs", "out")):
    if what == "outputs" and combine != "sum":
      break
    seen = {}
    for i, f in sized:
      size = getattr(f, attr)
      if size is None:
        continue
      j, other = seen.setdefault(f.axis, (i, size))
      if other != size and (what == "expects" or 1 not in (size, other)):
        unit = _unit(f.arg)
        tail = ("every branch gets the same input" if what == "expects" else
                "combine='sum' adds the branches' outputs")
        raise ValueError(
            f"{owner}: branch {j} {describe(branches[j])} {what} {other} "
            f"{unit} but branch {i} {describe(branches[i])} {what} {size}; "
            f"{tail}.")
  if len(sized) != len(fs) or not fs:
    return None
  axes = {f.axis for _, f in sized}
  if len(axes) != 1:
    return None
  (ax,) = axes
  inps = {f.inp for _, f in sized}
  inp = inps.pop() if len(inps) == 1 else None
  outs = [f.out for _, f in sized]
  if None in outs:
    out = None
  elif combine == "sum":
    out = max(outs)
  else:
    out = sum(outs) if axis == ax else None
  return Features(inp, out, ax, sized[0][1].arg)
