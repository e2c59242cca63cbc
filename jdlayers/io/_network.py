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

from jdlayers.compose import CompositeLayer
from jdlayers.io import _config, _files, _implied, _schema
from jdlayers.layers import _base
from jdlayers.models import Model

PathLike = _files.PathLike
_fail = _files.fail

# The two kinds' schemas: `save_*` write through them, `_files.read` checks
# every file of these kinds against them before reading any array.
DISTRIBUTION = _schema.Schema("distribution", "distribution",
                              {"config": _schema.Dict()})
NETWORK = _schema.Schema(
    "network", "network",
    {"config": _schema.Dict(), "sample_shape": _schema.List(_schema.Int()),
     "arrays": _schema.List(_schema.Str(), unique=True)},
    members=lambda meta: meta["arrays"],
    max_members=lambda meta: len(meta["arrays"]))


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
  return DISTRIBUTION.write(path, {"config": config}, {}, overwrite=overwrite)


def load_distribution(path: PathLike, *,
                      max_bytes: int = _files.DEFAULT_MAX_BYTES):
  """Loads what `save_distribution` saved.

  Args:
    path: The file.
    max_bytes: Refuse a file declaring a model whose one network draw
      exceeds this many bytes (building a model samples one network);
      None: no bound (only for files you trust).

  Returns:
    The distribution (or model), rebuilt from its configuration.

  Raises:
    FileNotFoundError: If `path` does not exist.
    FileFormatError: For a file of another kind, a newer format, corrupted
      data, an invalid configuration (e.g. an unknown class) or a model over
      `max_bytes`.
  """
  meta = _files.inspect(path, "distribution", max_bytes=max_bytes).meta
  config = meta["config"]
  if config.get("class") == "models.Model":
    return _implied.decode(path, config, "config",
                           max_bytes=max_bytes).build()
  return _implied.rebuild(path, config)


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
  return NETWORK.write(path, meta, arrays, overwrite=overwrite)


def load_network(path: PathLike, *, max_bytes: int = _files.DEFAULT_MAX_BYTES
                 ) -> Tuple[Any, Any]:
  """Loads what `save_network` saved.

  Every array's shape is checked against the configuration (sample shape
  plus the component's event shape) and its dtype against the component's,
  from the arrays' headers, before any array data is read or any model is
  built.

  Args:
    path: The file.
    max_bytes: Refuse a file whose arrays, or one draw of the network its
      configuration declares, exceed this many bytes (default 1 GiB);
      None: no bound (only for files you trust).

  Returns:
    `(distribution, network)`: the rebuilt distribution (or model) and the
    sampled network, which predicts exactly as the saved one did.

  Raises:
    FileNotFoundError: If `path` does not exist.
    FileFormatError: For a file of another kind, a newer format, corrupted
      or pickled data, an invalid configuration, missing, extra or
      mis-shaped arrays, or a file over `max_bytes`.
  """
  archive = _files.inspect(path, "network", max_bytes=max_bytes)
  meta, headers = archive.meta, archive.headers
  target = _implied.decode(path, meta["config"], "config",
                           max_bytes=max_bytes)
  specs = target.parts[:target.num_network_parts]
  sample_shape = tuple(meta["sample_shape"])
  expected = {name: sample_shape + event for name, event, _ in specs}
  _files.check_shapes(path, headers, expected)
  extra = sorted(set(headers) - set(expected))
  if extra:
    raise _fail(path, f"unexpected arrays {extra}; the configuration has "
                f"{sorted(expected)}.")
  if meta["arrays"] != [s[0] for s in specs]:
    raise _fail(path, f"metadata 'arrays' lists {meta['arrays']} but the "
                f"configuration's parts are {[s[0] for s in specs]}.")
  _implied.check_dtypes(path, headers, {n: d for n, _, d in specs})
  dist = target.build()
  arrays = archive.load()
  leaves = [tf.convert_to_tensor(arrays[name]) for name, _, _ in specs]
  return dist, tf.nest.pack_sequence_as(_template(target.network), leaves)


def _template(dist):
  """A value of `dist` with event shapes as leaves: its structure and static
  configuration."""
  if isinstance(dist, _base.StaticLayer):
    return dist.layer
  return dist.event_shape


def _check_static(expected, got, prefix: str, desc: str) -> None:
  """Raises unless `got` has the layer types and static configurations
  (activations, strides, ...) of `expected`, which the leaves do not show."""
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


def _network_dist(obj):
  return obj.network if isinstance(obj, Model) else obj


def _describe(obj) -> str:
  return getattr(obj, "_desc", None) or type(obj).__name__


_leaf_specs = _implied.leaf_specs
