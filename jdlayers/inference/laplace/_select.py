"""Which network parts the Laplace approximation covers, grouped by layer.

A subset is `"all"` (every network part), `"last_layer"` (the parts of the
last layer that has parameters) or a glob (or list of globs) over the part
names of `Posterior.part_names`, e.g. `"2/*"` or `["0/kernel", "3/*"]`.
Likelihood latents (a learnt noise scale) are never in the subset: they stay
at their point estimate.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from jdlayers import _state
from jdlayers.compose._base import CompositeLayer
from jdlayers.layers import _base
from jdlayers.layers.affine import AffineLayer
from jdlayers.layers.conv import ConvLayer
from jdlayers.layers.conv_transpose import ConvTransposeLayer

KERNEL_NAMES = ("weights", "kernel")
KRON_LAYERS = (AffineLayer, ConvLayer, ConvTransposeLayer)

Subset = Union[str, Sequence[str]]


@dataclasses.dataclass(frozen=True)
class Selection:
  """The parts a Laplace approximation covers.

  Attributes:
    indices: Positions of the chosen parts in the posterior's flat state.
    names: Their part names.
    groups: Per chosen part, its layer's path (`"0"`, `"1/2"`; `""` for a
      network that is a single layer): the unit of a per-layer prior.
    shapes: Per chosen part, its shape.
  """
  indices: Tuple[int, ...]
  names: Tuple[str, ...]
  groups: Tuple[str, ...]
  shapes: Tuple[Tuple[int, ...], ...]

  @property
  def sizes(self) -> Tuple[int, ...]:
    out = []
    for s in self.shapes:
      n = 1
      for d in s:
        n *= int(d)
      out.append(n)
    return tuple(out)

  @property
  def num_params(self) -> int:
    return sum(self.sizes)

  @property
  def group_names(self) -> Tuple[str, ...]:
    """Distinct layer paths, in order."""
    return tuple(dict.fromkeys(self.groups))


def layers_by_path(network, prefix: str = "") -> Dict[str, object]:
  """Layer path -> sampled layer, for every layer with parameters."""
  if isinstance(network, CompositeLayer):
    out = {}
    for i, layer in enumerate(network.layers):
      out.update(layers_by_path(layer, f"{prefix}{i}/"))
    return out
  if isinstance(network, _base.SampledLayer) and len(network):
    return {prefix.rstrip("/"): network}
  return {}


def group_of(name: str) -> str:
  """The layer path of part `name` ("1/0/kernel" -> "1/0")."""
  return name.rsplit("/", 1)[0] if "/" in name else ""


def real_parts(model) -> List[bool]:
  """Per network part of `model`, whether its support is the whole real
  line (its event-space bijector is the identity): only those get a
  Gaussian."""
  out = []
  for b, part in zip(_state.event_space_bijectors(model.network),
                     tf.nest.flatten(model.probe)):
    shape = tuple(part.shape)
    probe = tf.constant(np.linspace(-2.5, 2.5, max(1, int(np.prod(
        shape, dtype=np.int64)))).reshape(shape), part.dtype)
    out.append(bool(np.allclose(b.forward(probe), probe, rtol=0,
                                atol=1e-6)))
  return out


def select(part_names: Sequence[str], num_net_parts: int, shapes,
           subset: Subset, where: str,
           real: Optional[Sequence[bool]] = None) -> Selection:
  """Resolves `subset` against the network's part names.

  "all" and "last_layer" take the real-valued parts (weights, biases), not
  a constrained one such as a hierarchical prior's scales.

  Raises:
    TypeError: For a subset that is not a string or a list of strings.
    ValueError: For a glob matching no network part (the message lists the
      part names), one matching a constrained part, or an empty network.
  """
  real = [True] * num_net_parts if real is None else list(real)
  names = list(part_names[:num_net_parts])
  if not names:
    raise ValueError(f"{where}: the network has no parameters to "
                     "approximate.")
  if isinstance(subset, str):
    patterns = [subset]
  elif isinstance(subset, (list, tuple)) and subset and all(
      isinstance(s, str) for s in subset):
    patterns = list(subset)
  else:
    raise TypeError(f"{where}: `subset` must be 'all', 'last_layer', a glob "
                    f"over part names or a list of globs; got {subset!r}.")
  chosen = set()
  for pattern in patterns:
    ok = [n for n, r in zip(names, real) if r]
    if pattern == "all":
      hits = ok
    elif pattern == "last_layer":
      last = group_of(ok[-1]) if ok else ""
      hits = [n for n in ok if group_of(n) == last]
    else:
      hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
      bad = [n for n in hits if n not in ok]
      if bad:
        raise ValueError(f"{where}: `subset` {pattern!r} matches {bad}, "
                         "whose support is not the real line (a scale); the "
                         "Laplace approximation covers real-valued parts: "
                         f"{ok}.")
    if not hits:
      raise ValueError(f"{where}: `subset` {pattern!r} matches no network "
                       f"part; the parts are {names} (or use 'all' / "
                       "'last_layer').")
    chosen.update(hits)
  idx = tuple(i for i, n in enumerate(names) if n in chosen)
  return Selection(indices=idx, names=tuple(names[i] for i in idx),
                   groups=tuple(group_of(names[i]) for i in idx),
                   shapes=tuple(tuple(int(d) for d in shapes[i])
                                for i in idx))


@dataclasses.dataclass(frozen=True)
class Block:
  """One layer's chosen kernel and/or bias, as a KFAC block.

  Attributes:
    group: The layer path.
    layer: The layer at the point estimate (a sampled Affine, Conv or
      ConvTranspose layer).
    kernel: Index in the selection of its kernel, or None.
    bias: Index in the selection of its bias, or None.
    out: Output units / channels.
    cols: Kernel columns (`in` for dense, `prod(size) * in` for conv).
  """
  group: str
  layer: object
  kernel: Optional[int]
  bias: Optional[int]
  out: int
  cols: int

  @property
  def width(self) -> int:
    """Columns of the block's matrix: kernel columns (if chosen) + bias."""
    return (self.cols if self.kernel is not None else 0) + (
        1 if self.bias is not None else 0)


def kron_blocks(selection: Selection, network, where: str) -> List[Block]:
  """Groups the selection into KFAC blocks, one per layer.

  Raises:
    ValueError: If a chosen part is not the kernel or bias of an Affine,
      Conv or ConvTranspose layer (say which parts are, and that "diag" and
      "full" take any part).
  """
  layers = layers_by_path(network)
  blocks: Dict[str, dict] = {}
  for j, (name, group) in enumerate(zip(selection.names, selection.groups)):
    layer = layers.get(group)
    param = name[len(group) + 1:] if group else name
    if not isinstance(layer, KRON_LAYERS) or param not in (
        KERNEL_NAMES + ("bias",)):
      raise ValueError(
          f"{where}: hessian='kron' covers the kernel and bias of Affine, "
          f"Conv and ConvTranspose layers; part {name!r} is "
          f"{param!r} of {type(layer).__name__}. Choose a subset without it, "
          "or use hessian='diag' or 'full' (any part).")
    b = blocks.setdefault(group, {"layer": layer, "kernel": None,
                                  "bias": None})
    b["bias" if param == "bias" else "kernel"] = j
  out = []
  for group, b in blocks.items():
    layer = b["layer"]
    kernel = layer.params[_kernel_name(layer)]
    shape = [int(d) for d in kernel.shape]
    if isinstance(layer, AffineLayer):
      n_out, cols = shape[0], shape[1]
    elif isinstance(layer, ConvLayer):
      n_out, cols = shape[-1], _prod(shape[:-1])
    else:  # transposed: [*size, out, in]
      n_out, cols = shape[-2], _prod(shape[:-2]) * shape[-1]
    out.append(Block(group, layer, b["kernel"], b["bias"], n_out, cols))
  return out


def _kernel_name(layer) -> str:
  return "weights" if isinstance(layer, AffineLayer) else "kernel"


def _prod(xs) -> int:
  n = 1
  for x in xs:
    n *= int(x)
  return n
