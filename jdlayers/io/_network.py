"""Save and load distributions, models and sampled networks.

Two kinds of jdlayers file (see `_files` for the container):

- "distribution": metadata `config` (`to_config` of a layer or network
  distribution, or of a `models.Model`); no arrays.
- "network": metadata `config` (as above), `sample_shape` and `arrays` (the
  leaf names in `tf.nest.flatten` order), plus one array per leaf named by
  its path: the child index in each composite, then the parameter, e.g.
  "0/kernel", "2/bias", "1/0/weights"; a single layer's are "weights",
  "bias". Every array is `[*sample_shape, *event_shape]` of its component.
"""

from __future__ import annotations

from typing import Any, List, Tuple

import numpy as np
import tensorflow as tf

from jdlayers.io import _config, _files
from jdlayers.layers import _base

PathLike = _files.PathLike
_fail = _files._fail  # pylint: disable=protected-access


def save_distribution(path: PathLike, dist_or_model, *,
                      overwrite: bool = False) -> str:
  """Saves a layer/network distribution or a model's configuration.

  Args:
    path: Destination file (conventionally `*.jdl.npz`).
    dist_or_model: Anything `jdlayers.io.to_config` accepts.
    overwrite: Replace an existing file (atomically).

  Returns:
    The path written.

  Raises:
    TypeError: If the object cannot be saved (nothing is written).
    FileExistsError: If `path` exists and `overwrite` is False.

  #### Example

  ```python
  import jdlayers as jdl
  net = jdl.Sequential(jdl.Affine(8, 2, activation="relu"), jdl.Affine(1, 8))
  jdl.io.save_distribution("net.jdl.npz", net)
  same = jdl.io.load_distribution("net.jdl.npz")
  ```
  """
  config = _config.to_config(dist_or_model)
  return _files.write(path, "distribution", {"config": config}, {},
                      overwrite=overwrite)


def load_distribution(path: PathLike):
  """Loads what `save_distribution` saved.

  Returns:
    The distribution (or model), rebuilt from its configuration.

  Raises:
    FileNotFoundError: If `path` does not exist.
    FileFormatError: For a file of another kind, a newer format, corrupted
      data or an invalid configuration (e.g. an unknown class).
  """
  meta, _ = _files.read(path, "distribution")
  return _rebuild(path, meta)


def save_network(path: PathLike, distribution, network, *,
                 overwrite: bool = False) -> str:
  """Saves a sampled network with its distribution's configuration.

  Args:
    path: Destination file.
    distribution: The layer or network distribution `network` was sampled
      from, or a `models.Model` (its `network`).
    network: A sampled layer or network, with any leading sample dims
      (e.g. `dist.sample([chains, draws])` or an MCMC state rebuilt with
      `tf.nest.pack_sequence_as`).
    overwrite: Replace an existing file (atomically).

  Returns:
    The path written.

  Raises:
    TypeError: If the distribution cannot be saved (nothing is written).
    ValueError: If `network` does not fit `distribution` (layer types and
      static configuration such as activations, event shapes, sample dims
      or dtypes).
    FileExistsError: If `path` exists and `overwrite` is False.

  #### Example

  ```python
  import jdlayers as jdl, tensorflow as tf
  net = jdl.Sequential(jdl.Affine(8, 2, activation="relu"), jdl.Affine(1, 8))
  fs = net.sample(4, seed=0)
  jdl.io.save_network("fs.jdl.npz", net, fs)
  net2, fs2 = jdl.io.load_network("fs.jdl.npz")  # fs2(x) == fs(x) exactly
  ```
  """
  config = _config.to_config(distribution)
  net_dist = _network_dist(distribution)
  specs = _leaf_specs(net_dist)
  leaves = tf.nest.flatten(network)
  desc = _describe(distribution)
  if len(leaves) != len(specs):
    raise ValueError(f"save_network: the network has {len(leaves)} random "
                     f"tensors but {desc} has {len(specs)} "
                     f"({[s[0] for s in specs]}); was it sampled from it?")
  _check_static(_template(net_dist), network, "", desc)
  arrays, sample_shape = {}, None
  for (name, event, dtype), leaf in zip(specs, leaves):
    arr = np.asarray(leaf)
    k = arr.ndim - len(event)
    if k < 0 or tuple(arr.shape[k:]) != event:
      raise ValueError(f"save_network: {name!r} has shape {list(arr.shape)}, "
                       f"which does not end in the event shape {list(event)} "
                       f"of {desc}.")
    if sample_shape is None:
      sample_shape = tuple(arr.shape[:k])
    elif tuple(arr.shape[:k]) != sample_shape:
      raise ValueError(f"save_network: {name!r} has sample dims "
                       f"{list(arr.shape[:k])} but earlier parts have "
                       f"{list(sample_shape)}.")
    if arr.dtype != dtype.as_numpy_dtype:
      raise ValueError(f"save_network: {name!r} has dtype {arr.dtype}, "
                       f"{desc} expects {dtype.name}.")
    arrays[name] = arr
  meta = {"config": config, "sample_shape": list(sample_shape or ()),
          "arrays": [s[0] for s in specs]}
  return _files.write(path, "network", meta, arrays, overwrite=overwrite)


def load_network(path: PathLike) -> Tuple[Any, Any]:
  """Loads what `save_network` saved.

  Every array's shape is checked against the configuration (sample shape
  plus the component's event shape) and its dtype against the component's.

  Returns:
    `(distribution, network)`: the rebuilt distribution (or model) and the
    sampled network, which predicts exactly as the saved one did.

  Raises:
    FileNotFoundError: If `path` does not exist.
    FileFormatError: For a file of another kind, a newer format, corrupted
      or pickled data, an invalid configuration, or missing, extra or
      mis-shaped arrays.
  """
  meta, arrays = _files.read(path, "network")
  dist = _rebuild(path, meta)
  net_dist = _network_dist(dist)
  specs = _leaf_specs(net_dist)
  sample_shape = meta.get("sample_shape")
  if not (isinstance(sample_shape, list) and all(
      isinstance(d, int) and not isinstance(d, bool) and d >= 0
      for d in sample_shape)):
    raise _fail(path, f"invalid sample_shape {sample_shape!r}.")
  expected = {name: tuple(sample_shape) + event for name, event, _ in specs}
  _files.check_shapes(path, arrays, expected)
  extra = sorted(set(arrays) - set(expected))
  if extra:
    raise _fail(path, f"unexpected arrays {extra}; the configuration has "
                f"{sorted(expected)}.")
  leaves = []
  for name, _, dtype in specs:
    if arrays[name].dtype != dtype.as_numpy_dtype:
      raise _fail(path, f"array {name!r} has dtype {arrays[name].dtype} "
                  f"but the configuration implies {dtype.name}.")
    leaves.append(tf.convert_to_tensor(arrays[name]))
  return dist, tf.nest.pack_sequence_as(_template(net_dist), leaves)


def _template(dist):
  """A value of `dist` with event shapes as leaves: its structure and static
  configuration."""
  if isinstance(dist, _base.StaticLayer):
    return dist.layer
  return dist.event_shape


def _check_static(expected, got, prefix: str, desc: str) -> None:
  """Raises unless `got` has the layer types and static configurations
  (activations, strides, ...) of `expected`, which the leaves do not show."""
  # pylint: disable-next=g-import-not-at-top
  from jdlayers.compose import CompositeLayer
  where = f"part {prefix.rstrip('/')!r} of the network" if prefix else (
      "the network")
  if type(got) is not type(expected) or (
      getattr(got, "config", None) != expected.config):
    raise ValueError(
        f"save_network: {where} ({type(got).__name__}) has "
        f"{getattr(got, 'config', None)!r:.200} but {desc} expects "
        f"({type(expected).__name__}) {expected.config!r:.200}; save a "
        "network with the distribution it was sampled from.")
  if isinstance(expected, CompositeLayer):
    for i, (e, g) in enumerate(zip(expected.layers, got.layers)):
      _check_static(e, g, f"{prefix}{i}/", desc)


def _rebuild(path, meta):
  if "config" not in meta:
    raise _fail(path, "no 'config' in the metadata.")
  try:
    return _config.from_config(meta["config"])
  except (ValueError, TypeError, KeyError, AttributeError, IndexError,
          RecursionError) as e:
    raise _fail(path, f"invalid configuration: {e}") from None


def _network_dist(obj):
  from jdlayers.models import Model  # pylint: disable=g-import-not-at-top
  return obj.network if isinstance(obj, Model) else obj


def _describe(obj) -> str:
  return getattr(obj, "_desc", None) or type(obj).__name__


def _leaf_specs(dist) -> List[Tuple[str, Tuple[int, ...], tf.DType]]:
  """`(path name, event shape, dtype)` of each random tensor, in
  `tf.nest.flatten` order."""
  if isinstance(dist, _base.StaticLayer):
    return []
  out = []
  _walk(dist.event_shape, dist.dtype, "", out)
  return out


def _walk(shapes, dtypes, prefix: str, out: list) -> None:
  # pylint: disable-next=g-import-not-at-top
  from jdlayers.compose import CompositeLayer
  if isinstance(shapes, CompositeLayer):
    for i, (s, d) in enumerate(zip(shapes.layers, dtypes.layers)):
      _walk(s, d, f"{prefix}{i}/", out)
  elif isinstance(shapes, _base.SampledLayer):
    dts = dtypes.params
    for name, shape in shapes.params.items():
      out.append((prefix + name, tuple(tf.TensorShape(shape).as_list()),
                  tf.as_dtype(dts[name])))
  else:
    raise TypeError(f"cannot save a network part of type "
                    f"{type(shapes).__name__}.")
