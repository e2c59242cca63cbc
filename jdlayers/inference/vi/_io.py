"""Saving fitted surrogates (kind "surrogate"); `_load` reads them back.

The file holds the target's JSON configuration (a `Model` or a network
distribution, via `jdlayers.io.to_config`), the surrogate's options
(`point_mass` patterns, built-in builders by name and config), its loss
history, and every variable's value as an array named after the variable
("0/kernel/loc"). Loading rebuilds the target and the surrogate from the
configuration and assigns the arrays after checking names and shapes, so
the loaded surrogate samples and predicts bit-identically for a seed.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from jdlayers.inference.vi import _builders
from jdlayers.io import _config, _files, _schema

KIND = "surrogate"

_S = _schema
_BUILDER = _S.Record({
    "name": _S.Str((_builders.MeanFieldNormal.name, _builders.PointMass.name)),
    "config": _S.Mapping_(_S.Float())})
_HISTORY = _S.Mapping_(_S.List(_S.Float()),
                       keys=("loss", "nll", "kl", "step_loss", "seconds"))

# The file's schema, used by `save_surrogate` to write and by
# `load_surrogate` (through `_files.inspect`) to check.
SURROGATE = _schema.Schema(
    KIND, "surrogate",
    {"target": _S.Dict(),
     "point_mass": _S.Either(_S.Optional_(_S.Bool()), _S.List(_S.Str())),
     "builders": _S.Mapping_(_BUILDER),
     "default": _S.Optional_(_BUILDER),
     "part_names": _S.List(_S.Str(), unique=True),
     "variables": _S.List(_S.Str(), unique=True),
     "history": _S.Optional_(_HISTORY)},
    members=lambda meta: meta["variables"],
    max_members=lambda meta: len(meta["variables"]))


def implied_variables(parts: Sequence[Tuple[str, Tuple[int, ...]]], dtype,
                      builders, point_mass, default
                      ) -> Dict[str, Tuple[int, ...]]:
  """Variable name -> shape that `Surrogate` would create, allocating nothing.

  Each part's builder is selected as `Surrogate` does and called with a
  `make_variable` that only records names and shapes (builders create
  variables only through it; their initializers are not called).

  Args:
    parts: `(part name, event shape)` of each part, in order.
    dtype: The surrogate's dtype (its first part's).
    builders, point_mass, default: As `Surrogate` takes them.
  """
  out: Dict[str, Tuple[int, ...]] = {}
  default = default or _builders.mean_field_normal()
  for pname, shape in parts:
    spec = _builders.PartSpec(pname, tuple(shape), tf.as_dtype(dtype),
                              None, "", (0, 0))
    builder = _builders.select_builder(spec, builders, point_mass, default)

    def record(vname, vshape, initializer, _p=pname):
      del initializer
      out[f"{_p}/{vname}"] = tuple(vshape)
    builder(spec, record)
  return out


def decode_options(path, meta) -> Tuple[Optional[Dict[str, Any]], Any]:
  """`(builders, default)` from checked metadata; errors name the file."""
  try:
    builders = {k: _builders.builder_from_config(b["name"], b["config"])
                for k, b in meta["builders"].items()}
    default = meta["default"]
    default = default and _builders.builder_from_config(default["name"],
                                                        default["config"])
  except (TypeError, ValueError) as e:
    raise _files.fail(path, f"invalid surrogate configuration (builders): "
                      f"{e}") from None
  return builders or None, default



def _builder_config(builder, what: str) -> Optional[Dict[str, Any]]:
  if builder is None:
    return None
  if isinstance(builder, _builders._NamedBuilder):  # pylint: disable=protected-access
    return {"name": builder.name, "config": builder.get_config()}
  raise TypeError(f"Surrogate.save: {what} is a custom builder "
                  f"({builder!r}); only the built-in builders "
                  "(mean_field_normal, point_mass) can be saved, since "
                  "loading never runs code. Save the network's parameters "
                  "with jdlayers.io.save_network instead.")


def save_surrogate(path, surrogate, *, overwrite: bool = False) -> str:
  """Saves a (fitted) surrogate atomically; no pickle.

  Args:
    path: Destination file (e.g. "q.jdl.npz").
    surrogate: A `jdlayers.vi.Surrogate` with built-in builders.
    overwrite: Replace an existing file (otherwise it is an error).

  Returns:
    The path written.

  Raises:
    FileExistsError: If `path` exists and `overwrite` is False.
    TypeError: For custom builders, predicate `point_mass` or divergence
      functions, or a target with unsaveable functions (these are code).

  #### Example

  ```python
  q = jdl.vi.fit(model, x, y, epochs=5)
  q.save("q.jdl.npz")
  q2 = jdl.vi.load_surrogate("q.jdl.npz")   # q2.predict(x) equals q's
  ```
  """
  opts = surrogate._options  # pylint: disable=protected-access
  pm = opts["point_mass"]
  if callable(pm) and not isinstance(pm, bool):
    raise TypeError("Surrogate.save: `point_mass` is a predicate (code); use "
                    "True or name patterns to make the surrogate saveable.")
  if isinstance(pm, str):
    pm = [pm]
  elif pm not in (None, True, False):
    pm = [str(p) for p in pm]
  if opts["divergence_fns"]:
    raise TypeError("Surrogate.save: custom `divergence_fns` are code and "
                    "cannot be saved.")
  target = surrogate.model if surrogate.model is not None else (
      surrogate.network)
  meta = {
      "target": _config.to_config(target),
      "point_mass": pm,
      "builders": {k: _builder_config(b, f"builders[{k!r}]")
                   for k, b in (opts["builders"] or {}).items()},
      "default": _builder_config(opts["default"], "default"),
      "part_names": list(surrogate.part_names),
      "variables": list(surrogate.trainable_parameters),
      "history": (surrogate.history.as_dict()
                  if getattr(surrogate, "history", None) else None),
  }
  arrays = {name: np.asarray(v.numpy())
            for name, v in surrogate.trainable_parameters.items()}
  return SURROGATE.write(path, meta, arrays, overwrite=overwrite)
