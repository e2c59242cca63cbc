"""Loading surrogates saved by `vi._io.save_surrogate` / `Surrogate.save`.

Kept apart from `_io` (which `Surrogate.save` uses) because loading builds a
`Surrogate` and a `History`: imports run downward, so the saver sits below
`_surrogate` and the loader above it.
"""

from __future__ import annotations

from typing import Optional

from jdlayers.inference.vi import _io
from jdlayers.inference.vi._fit import History
from jdlayers.inference.vi._surrogate import Surrogate
from jdlayers.io import _files, _implied


def load_surrogate(path, *,
                   max_bytes: Optional[int] = _files.DEFAULT_MAX_BYTES):
  """Loads a surrogate saved by `save_surrogate` / `Surrogate.save`.

  The metadata, the arrays' headers and the variables the configuration
  implies are checked against each other (and against `max_bytes`) before
  any array data is read or any model or variable is built.

  Args:
    path: The file.
    max_bytes: Refuse a file whose arrays, or one draw of the network its
      target declares, exceed this many bytes (default 1 GiB); None: no
      bound (only for files you trust).

  Returns:
    A `Surrogate` (with `history` when one was saved) whose samples and
    predictions equal the saved one's for the same seed.

  Raises:
    FileNotFoundError: If `path` does not exist.
    jdlayers.io.FileFormatError: For a file that is not a jdlayers
      surrogate, is corrupted or too new, names unknown classes or
      builders, holds metadata or arrays that disagree with its
      configuration, or exceeds `max_bytes`.

  #### Example

  ```python
  q2 = jdl.vi.load_surrogate("q.jdl.npz")   # q2.predict(x) equals q's
  ```
  """
  archive = _files.inspect(path, _io.KIND, max_bytes=max_bytes)
  meta, headers = archive.meta, archive.headers
  target = _implied.decode(path, meta["target"], "target",
                           max_bytes=max_bytes)
  builders, default = _io.decode_options(path, meta)
  names = [p[0] for p in target.parts]
  if names != meta["part_names"]:
    raise _files.fail(path, f"the configuration gives parts {names} but the "
                      f"file lists {meta['part_names']}.")
  if not target.parts:
    raise _files.fail(path, "the target has no random parts.")
  dtype = target.parts[0][2]
  try:
    expected = _io.implied_variables([p[:2] for p in target.parts], dtype,
                                     builders, meta["point_mass"], default)
  except Exception as e:  # pylint: disable=broad-except
    raise _files.fail(path, f"invalid surrogate configuration: {e}") from None
  extra = sorted(set(headers) - set(expected))
  if extra:
    raise _files.fail(path, f"unexpected arrays {extra}.")
  _files.check_shapes(path, headers, expected)
  if meta["variables"] != list(expected):
    raise _files.fail(path, f"metadata 'variables' lists "
                      f"{meta['variables']} but the configuration implies "
                      f"{list(expected)}.")
  _implied.check_dtypes(path, headers, {n: dtype for n in expected})
  try:
    q = Surrogate(target.build(), point_mass=meta["point_mass"],
                  builders=builders, default=default)
  except _files.FileFormatError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise _files.fail(path, f"invalid surrogate configuration: {e}") from None
  if list(q.part_names) != meta["part_names"]:
    raise _files.fail(path, f"the configuration gives parts "
                      f"{list(q.part_names)} but the file lists "
                      f"{meta['part_names']}.")
  arrays = archive.load()
  for name, v in q.trainable_parameters.items():
    v.assign(arrays[name])
  if meta["history"]:
    q.history = History(**meta["history"])
  return q
