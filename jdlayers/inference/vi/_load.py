"""Loading surrogates saved by `vi._io.save_surrogate` / `Surrogate.save`.

Kept apart from `_io` (which `Surrogate.save` uses) because loading builds a
`Surrogate` and a `History`: imports run downward, so the saver sits below
`_surrogate` and the loader above it.
"""

from __future__ import annotations

import os

from jdlayers.inference.vi import _builders, _io
from jdlayers.inference.vi._fit import History
from jdlayers.inference.vi._surrogate import Surrogate
from jdlayers.io import _config, _files


def load_surrogate(path):
  """Loads a surrogate saved by `save_surrogate` / `Surrogate.save`.

  Args:
    path: The file.

  Returns:
    A `Surrogate` (with `history` when one was saved) whose samples and
    predictions equal the saved one's for the same seed.

  Raises:
    FileNotFoundError: If `path` does not exist.
    jdlayers.io.FileFormatError: For a file that is not a jdlayers
      surrogate, is corrupted or too new, names unknown classes or
      builders, or holds arrays that disagree with its configuration.
  """
  meta, arrays = _files.read(path, _io.KIND)
  where = os.fspath(path)
  try:
    target = _config.from_config(meta["target"])
    builders = {k: _builders.builder_from_config(b["name"], b["config"])
                for k, b in (meta.get("builders") or {}).items()}
    default = meta.get("default")
    default = default and _builders.builder_from_config(default["name"],
                                                        default["config"])
    q = Surrogate(target, point_mass=meta.get("point_mass"),
                  builders=builders or None, default=default)
  except (KeyError, TypeError, ValueError, AttributeError) as e:
    raise _files.FileFormatError(f"{where}: invalid surrogate configuration: "
                                 f"{e}") from None
  if list(q.part_names) != list(meta.get("part_names", [])):
    raise _files.FileFormatError(
        f"{where}: the configuration gives parts {list(q.part_names)} but "
        f"the file lists {meta.get('part_names')}.")
  variables = q.trainable_parameters
  expected = {name: tuple(v.shape) for name, v in variables.items()}
  extra = sorted(set(arrays) - set(expected))
  if extra:
    raise _files.FileFormatError(f"{where}: unexpected arrays {extra}.")
  _files.check_shapes(where, arrays, expected)
  for name, v in variables.items():
    v.assign(arrays[name].astype(v.dtype.as_numpy_dtype))
  if meta.get("history"):
    q.history = History(**meta["history"])
  return q
