"""What a saved configuration implies, found without building anything big.

A hostile file may declare a huge network in a few bytes of JSON. Building
a layer or network *distribution* from its configuration allocates nothing
(the parameters' event shapes come from the layer configurations), but
building a `models.Model` samples one network (its probe) and a surrogate
allocates variables. So loaders decode a configuration here, compute the
parameter shapes it implies, compare them with the file's array headers and
with `max_bytes`, and only then build the model (`Target.build`).

#### Example

```python
import jdlayers as jdl
from jdlayers.io import _implied
cfg = jdl.io.to_config(jdl.Affine(3, 2))
t = _implied.decode("f.npz", cfg, "config", max_bytes=1 << 20)
[(n, s) for n, s, _ in t.parts]  # [('weights', (3, 2)), ('bias', (3,))]
```
"""

from __future__ import annotations

import math
import os
from typing import List, Optional, Tuple

import tensorflow as tf

from jdlayers.compose import CompositeLayer
from jdlayers.io import _config, _files
from jdlayers.layers import _base
from jdlayers.models import Model

PartSpec = Tuple[str, Tuple[int, ...], tf.DType]


def rebuild(path, config, field: str = "config"):
  """`from_config(config)`; any failure is a `FileFormatError` naming `path`
  and `field` (a config that `from_config` rejects, or whose values overflow
  or mistype deeper down)."""
  where = "" if field == "config" else f" ({field})"
  try:
    return _config.from_config(config)
  except Exception as e:  # pylint: disable=broad-except
    raise _files.fail(path, f"invalid configuration{where}: "
                      f"{type(e).__name__ + ': ' if not isinstance(e, ValueError) else ''}"
                      f"{str(e)[:500]}") from None


def leaf_specs(dist) -> List[PartSpec]:
  """`(path name, event shape, dtype)` of each random tensor of a layer or
  network distribution, in `tf.nest.flatten` order; allocates nothing."""
  if isinstance(dist, _base.StaticLayer):
    return []
  out: List[PartSpec] = []
  _walk(dist.event_shape, dist.dtype, "", out)
  return out


def _walk(shapes, dtypes, prefix: str, out: list) -> None:
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


class Target:
  """A decoded configuration: the network distribution, the likelihood (for
  a `models.Model`), the parts one draw has, and `build()`.

  Attributes:
    network: The layer or network distribution (built: allocates nothing).
    likelihood: The likelihood, or None for a bare network.
    parts: `(name, shape, dtype)` of the network's random tensors, then of
      the likelihood's latents.
    num_network_parts: How many of `parts` are the network's.
  """

  def __init__(self, path, network, likelihood, parts: List[PartSpec],
               num_network_parts: int, field: str):
    self.path, self.network, self.likelihood = path, network, likelihood
    self.parts, self.num_network_parts = parts, num_network_parts
    self._field = field

  @property
  def nbytes(self) -> int:
    """Bytes of one draw of every part."""
    return sum(math.prod(s) * d.size for _, s, d in self.parts)

  def build(self):
    """The object the configuration describes (a `Model` samples its probe
    network here, which is why `decode` checks the size first)."""
    if self.likelihood is None:
      return self.network
    try:
      return Model(self.network, self.likelihood)
    except Exception as e:  # pylint: disable=broad-except
      raise _files.fail(self.path, f"invalid configuration ({self._field}): "
                        f"{str(e)[:500]}") from None


def decode(path, config, field: str, *, max_bytes: Optional[int]) -> Target:
  """Decodes a network or `models.Model` configuration without sampling.

  Args:
    path: The file (for messages).
    config: `to_config` of a layer/network distribution or of a Model.
    field: The metadata field it came from (for messages).
    max_bytes: Refuse a configuration whose one draw (every parameter once)
      exceeds this many bytes; None: no bound.

  Returns:
    A `Target`.

  Raises:
    FileFormatError: For an invalid configuration or one over `max_bytes`.
  """
  likelihood = None
  if isinstance(config, dict) and config.get("class") == "models.Model":
    inner = config.get("config")
    if (sorted(config) != ["class", "config"] or not isinstance(inner, dict)
        or sorted(inner) != ["likelihood", "network"]):
      raise _files.fail(path, f"invalid configuration ({field}): a "
                        "models.Model config needs exactly 'network' and "
                        "'likelihood'.")
    network = rebuild(path, inner["network"], f"{field}.network")
    likelihood = rebuild(path, inner["likelihood"], f"{field}.likelihood")
  else:
    network = rebuild(path, config, field)
  try:
    parts = leaf_specs(network)
    n = len(parts)
    if likelihood is not None:
      for name, prior in dict(likelihood.latents).items():
        parts.append((name, tuple(tf.TensorShape(prior.event_shape).as_list()),
                      tf.as_dtype(prior.dtype)))
    if any(d is None for _, s, _ in parts for d in s):
      raise ValueError("a part has an unknown dimension")
  except Exception as e:  # pylint: disable=broad-except
    raise _files.fail(path, f"invalid configuration ({field}): it does not "
                      f"describe a saveable network ({str(e)[:300]}).") from None
  target = Target(path, network, likelihood, parts, n, field)
  if max_bytes is not None and target.nbytes > max_bytes:
    count = sum(math.prod(s) for _, s, _ in parts)
    raise _files.fail(path, f"the configuration ({field}) declares a network "
                      f"of {count:,} parameters ({target.nbytes:,} bytes per "
                      f"draw), more than max_bytes={max_bytes:,}; pass a "
                      "larger max_bytes to load it if you trust the file.")
  return target


def decode_model(path, meta, how: str, *, max_bytes: Optional[int]
                 ) -> Target:
  """Decodes the `models.Model` configuration a result file saved.

  Args:
    path: The file.
    meta: Its checked metadata, with `model` (a configuration or None) and
      `model_error` (why none was saved).
    how: The end of the message when none was saved, e.g. "pass the model:
      load(path, model=...)".
    max_bytes: As `decode`.

  Returns:
    A `Target` with a likelihood.

  Raises:
    ValueError: If the file holds no model configuration.
    FileFormatError: For an invalid configuration, or one of a network
      without a likelihood.
  """
  if meta["model"] is None:
    raise ValueError(f"{os.fspath(path)}: the file holds no model "
                     f"configuration (at save: {meta.get('model_error')}); "
                     f"{how}.")
  target = decode(path, meta["model"], "model", max_bytes=max_bytes)
  if target.likelihood is None:
    raise _files.fail(path, "invalid configuration (model): not a "
                      "models.Model.")
  return target


def check_dtypes(path, headers, expected: dict) -> None:
  """Raises unless each `headers[name].dtype` is `expected[name]`."""
  for name, dtype in expected.items():
    got = headers[name].dtype
    if got != tf.as_dtype(dtype).as_numpy_dtype:
      raise _files.fail(path, f"array {name!r} has dtype {got} but the "
                        f"configuration implies {tf.as_dtype(dtype).name}.")

