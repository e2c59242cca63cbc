"""The on-disk container of every jdlayers file: arrays plus JSON metadata.

A jdlayers file is a zip archive written by `numpy.savez`: one `.npy` member
per array and a `__meta__` member holding UTF-8 JSON (`format`, `version`,
`kind`, and whatever the kind needs). Nothing in it can execute code on load:
arrays are read with `allow_pickle=False` and the metadata is parsed as JSON.

Writes are atomic: the archive goes to a temporary file in the target's
directory, is fsync'ed, and is then moved into place, so a crash mid-save
leaves any previous file intact. An existing file is only replaced with
`overwrite=True`.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from typing import Any, Dict, Iterable, Mapping, Tuple, Union

import numpy as np

FORMAT = "jdlayers"
VERSION = 1
META_KEY = "__meta__"

PathLike = Union[str, os.PathLike]


class FileFormatError(ValueError):
  """A jdlayers file is unreadable, corrupted, of the wrong kind or too new."""


def _fail(path, problem: str) -> FileFormatError:
  return FileFormatError(f"{os.fspath(path)}: {problem}")


def atomic_write_bytes(path: PathLike, data: bytes, *,
                       overwrite: bool = False) -> str:
  """Writes `data` to `path` atomically (temp file, fsync, rename).

  Args:
    path: Destination file.
    data: The bytes to write.
    overwrite: Replace an existing file; without it an existing `path`
      raises and is left untouched.

  Returns:
    The path written, as a string.

  Raises:
    FileExistsError: If `path` exists and `overwrite` is False.
  """
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  if not overwrite and os.path.exists(path):
    raise FileExistsError(f"{path} exists; pass overwrite=True to replace it "
                          "(nothing was written).")
  fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.",
                             suffix=".tmp", dir=directory)
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    if overwrite:
      os.replace(tmp, path)
    else:
      # link() refuses to clobber: a file created since the check above is
      # kept, not silently replaced.
      try:
        os.link(tmp, path)
      except FileExistsError:
        raise FileExistsError(f"{path} exists; pass overwrite=True to "
                              "replace it (nothing was written).") from None
      os.unlink(tmp)
    _fsync_dir(directory)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise
  return path


def _fsync_dir(directory: str) -> None:
  try:
    fd = os.open(directory, os.O_RDONLY)
  except OSError:  # e.g. platforms without directory handles
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


def write(path: PathLike, kind: str, meta: Mapping[str, Any],
          arrays: Mapping[str, Any], *, overwrite: bool = False) -> str:
  """Saves `arrays` and JSON `meta` as a jdlayers file of `kind`, atomically.

  Args:
    path: Destination (conventionally `*.jdl.npz`; any name works).
    kind: What the file holds, e.g. "network" or "mcmc_result".
    meta: JSON-serialisable metadata.
    arrays: Name -> numeric array; names must not start with "__".
    overwrite: Replace an existing file.

  Returns:
    The path written.

  Raises:
    FileExistsError: If `path` exists and `overwrite` is False.
    TypeError: For metadata that is not JSON or a non-numeric array.
  """
  import io  # pylint: disable=g-import-not-at-top
  full = {"format": FORMAT, "version": VERSION, "kind": kind, **dict(meta)}
  try:
    text = json.dumps(full, sort_keys=True, allow_nan=True)
  except TypeError as e:
    raise TypeError(f"{os.fspath(path)}: metadata is not JSON-serialisable: "
                    f"{e}") from None
  out = {META_KEY: np.frombuffer(text.encode("utf-8"), np.uint8)}
  for name, value in arrays.items():
    if name.startswith("__"):
      raise ValueError(f"array names may not start with '__'; got {name!r}.")
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
      raise TypeError(f"{os.fspath(path)}: array {name!r} has dtype "
                      f"{arr.dtype}; only numeric arrays are saved.")
    out[name] = arr
  buf = io.BytesIO()
  np.savez(buf, **out)
  return atomic_write_bytes(path, buf.getvalue(), overwrite=overwrite)


def read(path: PathLike, kinds: Union[str, Iterable[str]]
         ) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
  """Loads a jdlayers file, validating it; never unpickles anything.

  Args:
    path: The file.
    kinds: The kind (or kinds) the caller accepts.

  Returns:
    `(meta, arrays)`: the metadata dict and name -> numpy array.

  Raises:
    FileNotFoundError: If `path` does not exist.
    FileFormatError: For a file that is not a jdlayers archive, is truncated
      or corrupted, holds pickled/object data, comes from a newer format
      version, or holds another kind.
  """
  path = os.fspath(path)
  kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path}: no such file.")
  if not zipfile.is_zipfile(path):
    raise _fail(path, "not a jdlayers file (not a zip/npz archive; it may be "
                "truncated, or a pickle or other format, which is never "
                "loaded).")
  arrays = {}
  try:
    with np.load(path, allow_pickle=False) as npz:
      names = list(npz.files)
      if META_KEY not in names:
        raise _fail(path, f"not a jdlayers file (no {META_KEY!r} entry).")
      for name in names:
        arrays[name] = npz[name]
  except FileFormatError:
    raise
  except ValueError as e:
    if "pickle" in str(e).lower():
      raise _fail(path, "holds pickled (object) data, which is never loaded "
                  "because unpickling can execute code.") from None
    raise _fail(path, f"corrupted ({e}).") from None
  except Exception as e:  # zipfile.BadZipFile, zlib.error, EOFError, OSError
    raise _fail(path, f"truncated or corrupted ({type(e).__name__}: {e})."
                ) from None
  raw = arrays.pop(META_KEY)
  try:
    meta = json.loads(raw.tobytes().decode("utf-8"))
  except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
    raise _fail(path, f"corrupted metadata ({e}).") from None
  if not isinstance(meta, dict) or meta.get("format") != FORMAT:
    raise _fail(path, "not a jdlayers file (metadata lacks "
                f"format={FORMAT!r}).")
  version = meta.get("version")
  if not isinstance(version, int) or version < 1:
    raise _fail(path, f"invalid format version {version!r}.")
  if version > VERSION:
    raise _fail(path, f"written by a newer jdlayers (format version "
                f"{version}; this version reads up to {VERSION}). Upgrade "
                "jdlayers to load it.")
  if meta.get("kind") not in kinds:
    raise _fail(path, f"holds a {meta.get('kind')!r}, expected "
                f"{' or '.join(repr(k) for k in kinds)}.")
  for name, arr in arrays.items():
    if arr.dtype.kind not in "biuf":
      raise _fail(path, f"array {name!r} has dtype {arr.dtype}; only numeric "
                  "arrays are valid.")
  return meta, arrays


def check_shapes(path: PathLike, arrays: Mapping[str, np.ndarray],
                 expected: Mapping[str, Tuple[int, ...]]) -> None:
  """Raises `FileFormatError` unless `arrays` has exactly `expected` shapes.

  Args:
    path: The file (for the message).
    arrays: Loaded arrays.
    expected: Name -> shape (use -1 for a dim of any length).
  """
  missing = [n for n in expected if n not in arrays]
  if missing:
    raise _fail(path, f"missing arrays {missing}.")
  for name, shape in expected.items():
    got = arrays[name].shape
    ok = len(got) == len(shape) and all(e in (-1, g)
                                        for e, g in zip(shape, got))
    if not ok:
      raise _fail(path, f"array {name!r} has shape {list(got)} but the "
                  f"config implies {list(shape)}.")
