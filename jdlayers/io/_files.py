"""The on-disk container of every jdlayers file: arrays plus JSON metadata.

A jdlayers file is a zip archive written by `numpy.savez`: one `.npy` member
per array and a `__meta__.npy` member holding UTF-8 JSON (`format`,
`version`, `kind`, and whatever the kind needs). Nothing in it can execute
code on load: arrays are read with `allow_pickle=False` and the metadata is
parsed as JSON.

Reading is safe for files from strangers. Before any array data is read or
inflated, `read` checks the member list (only `.npy` members, no duplicates,
stored or deflated), the metadata (format, version, kind, then the kind's
`_schema.Schema`: field types and ranges, and the exact array names they
imply), and every array's `.npy` header (parsed without reading data: a
numeric dtype from an allow-list, a shape whose size matches the member's
declared size). Arrays totalling more than `max_bytes` (default
`DEFAULT_MAX_BYTES`, 1 GiB) are refused; data is then inflated in chunks
into preallocated arrays and never past a member's declared size, so a zip
bomb that lies about its size is stopped there. Every problem raises
`FileFormatError` naming the file and the member or field.

Writes are atomic (see `_atomic`): the archive goes to a temporary file
`.{name}.jdltmp-{pid}-{random}` in the target's directory, is fsync'ed, and
is then moved into place, so a crash mid-save leaves any previous file
intact; temporaries left by writers that were killed are removed by the next
save of the same target. An existing file is only replaced with
`overwrite=True`. A failed write (e.g. a full disk) raises `OSError` with
its errno, naming the target.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import zipfile
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple, Union

import numpy as np

from jdlayers.io._atomic import (atomic_write_bytes,  # pylint: disable=unused-import
                                 remove_stale_temporaries)

FORMAT = "jdlayers"
VERSION = 1
META_KEY = "__meta__"
HEADER_FIELDS = ("format", "version", "kind")
DEFAULT_MAX_BYTES = 1 << 30
"""Default bound on the total size of a file's arrays (1 GiB)."""

# The metadata is small JSON; a larger `__meta__` is refused unread. Parsed
# JSON takes up to ~20x its text, so a `__meta__` over `_MAX_DEFLATED_META`
# must be stored uncompressed (as `write` does): its size is then backed by
# the file's own, never inflated from a few bytes.
MAX_META_BYTES = 32 << 20
_MAX_DEFLATED_META = 1 << 20
_MAX_NPY_HEADER = 10000
_CHUNK = 1 << 20
# Exactly the dtypes `write` produces (native byte order).
_DTYPES = frozenset(np.dtype(t).str for t in (
    "?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8"))

# kind -> `_schema.Schema` (registered by the schema's module).
SCHEMAS: Dict[str, Any] = {}

PathLike = Union[str, os.PathLike]


class FileFormatError(ValueError):
  """A jdlayers file is unreadable, corrupted, of the wrong kind or too new."""


def fail(path, problem: str) -> FileFormatError:
  """A `FileFormatError` whose message starts with the file's path."""
  return FileFormatError(f"{os.fspath(path)}: {problem}")


_fail = fail


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


@dataclasses.dataclass(frozen=True)
class Header:
  """An array member's `.npy` header: what reading it would produce."""
  shape: Tuple[int, ...]
  dtype: np.dtype
  fortran_order: bool
  offset: int  # bytes before the data

  @property
  def nbytes(self) -> int:
    return math.prod(self.shape) * self.dtype.itemsize


class Archive:
  """A checked jdlayers file whose array data is not read yet.

  Attributes:
    path: The file.
    meta: The metadata (checked against the kind's schema).
    headers: Array name -> `Header` (checked: allowed dtype, sizes agree).
  """

  def __init__(self, path: str, meta: Dict[str, Any],
               headers: Dict[str, Header], members: Dict[str, str]):
    self.path, self.meta, self.headers = path, meta, headers
    self._members = members

  def load(self, names: Optional[Iterable[str]] = None
           ) -> Dict[str, np.ndarray]:
    """Reads the arrays `names` (default: all), each capped at its header.

    Raises:
      FileFormatError: If a member is corrupted or changed since it was
        checked.
    """
    names = list(self.headers) if names is None else list(names)
    out = {}
    try:
      with zipfile.ZipFile(self.path) as zf:
        for name in names:
          out[name] = _read_array(self.path, zf, self._members[name],
                                  self.headers[name])
    except FileFormatError:
      raise
    except Exception as e:  # BadZipFile, zlib.error, EOFError, OSError
      raise fail(self.path, f"truncated or corrupted ({type(e).__name__}: "
                 f"{e}).") from None
    return out


def inspect(path: PathLike, kinds: Union[str, Iterable[str]], *,
            max_bytes: Optional[int] = DEFAULT_MAX_BYTES) -> Archive:
  """Checks a jdlayers file without reading any array data.

  Args:
    path: The file.
    kinds: The kind (or kinds) the caller accepts.
    max_bytes: Refuse files whose arrays total more bytes than this (None:
      no bound; only for files you trust).

  Returns:
    An `Archive`: metadata and array headers, with `load` to read arrays.

  Raises:
    FileNotFoundError: If `path` does not exist.
    FileFormatError: For a file that is not a jdlayers archive, is truncated
      or corrupted, holds pickled/object data or members other than `.npy`
      arrays, comes from a newer format version, holds another kind,
      disagrees with its kind's schema, or exceeds `max_bytes`.
  """
  path = os.fspath(path)
  kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path}: no such file.")
  if not zipfile.is_zipfile(path):
    raise fail(path, "not a jdlayers file (not a zip/npz archive; it may be "
               "truncated, or a pickle or other format, which is never "
               "loaded).")
  try:
    with zipfile.ZipFile(path) as zf:
      members = _members(path, zf)
      meta = _read_meta(path, zf, members, kinds)
      names = [n for n in members if n != META_KEY]
      schema = SCHEMAS.get(meta["kind"])
      if schema is not None:
        schema.check(path, meta, names)
      headers = {n: _read_header(path, zf, members[n], n) for n in names}
  except FileFormatError:
    raise
  except Exception as e:  # BadZipFile, zlib.error, EOFError, OSError
    raise fail(path, f"truncated or corrupted ({type(e).__name__}: {e})."
               ) from None
  total = sum(h.nbytes for h in headers.values())
  if max_bytes is not None and total > max_bytes:
    big = max(headers, key=lambda n: headers[n].nbytes)
    raise fail(path, f"its arrays hold {total:,} bytes, more than max_bytes="
               f"{max_bytes:,} (the largest, {big!r}, is "
               f"{list(headers[big].shape)} {headers[big].dtype}); pass a "
               "larger max_bytes to load it if you trust the file.")
  return Archive(path, meta, headers, members)


def read(path: PathLike, kinds: Union[str, Iterable[str]], *,
         max_bytes: Optional[int] = DEFAULT_MAX_BYTES
         ) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
  """Loads a jdlayers file, validating it first; never unpickles anything.

  Args:
    path: The file.
    kinds: The kind (or kinds) the caller accepts.
    max_bytes: Bound on the arrays' total size (see `inspect`).

  Returns:
    `(meta, arrays)`: the metadata dict and name -> numpy array.

  Raises:
    FileNotFoundError: If `path` does not exist.
    FileFormatError: As `inspect`, or for corrupted array data.
  """
  archive = inspect(path, kinds, max_bytes=max_bytes)
  return archive.meta, archive.load()


def _members(path: str, zf: zipfile.ZipFile) -> Dict[str, str]:
  """Array name -> zip member name, after checking the member list."""
  out = {}
  for info in zf.infolist():
    name = info.filename
    if not name.endswith(".npy") or info.is_dir():
      raise fail(path, f"holds member {name[:100]!r}, which is not a .npy "
                 "array; a jdlayers file holds only .npy arrays.")
    if info.flag_bits & 0x1:
      raise fail(path, f"member {name[:100]!r} is encrypted.")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
      raise fail(path, f"member {name[:100]!r} uses compression method "
                 f"{info.compress_type}; only stored or deflated members "
                 "are read.")
    key = name[:-4]
    if key in out:
      raise fail(path, f"holds member {name[:100]!r} twice.")
    out[key] = name
  if META_KEY not in out:
    raise fail(path, f"not a jdlayers file (no {META_KEY!r} entry).")
  return out


def _read_meta(path: str, zf: zipfile.ZipFile, members: Dict[str, str],
               kinds: Tuple[str, ...]) -> Dict[str, Any]:
  header = _read_header(path, zf, members[META_KEY], META_KEY)
  if (header.dtype != np.uint8 or len(header.shape) != 1
      or header.nbytes > MAX_META_BYTES):
    raise fail(path, f"corrupted metadata ({META_KEY!r} is "
               f"{list(header.shape)} {header.dtype}; expected at most "
               f"{MAX_META_BYTES:,} bytes of uint8 JSON).")
  if (zf.getinfo(members[META_KEY]).compress_type != zipfile.ZIP_STORED
      and header.nbytes > _MAX_DEFLATED_META):
    raise fail(path, f"corrupted metadata ({META_KEY!r} is compressed and "
               f"inflates to {header.nbytes:,} bytes; jdlayers stores "
               "metadata uncompressed).")
  raw = _read_array(path, zf, members[META_KEY], header)
  try:
    meta = json.loads(raw.tobytes().decode("utf-8"))
  except (UnicodeDecodeError, ValueError, RecursionError) as e:
    raise fail(path, f"corrupted metadata ({str(e)[:200]}).") from None
  if not isinstance(meta, dict) or meta.get("format") != FORMAT:
    raise fail(path, "not a jdlayers file (metadata lacks "
               f"format={FORMAT!r}).")
  version = meta.get("version")
  if not isinstance(version, int) or isinstance(version, bool) or version < 1:
    raise fail(path, f"invalid format version {version!r:.40}.")
  if version > VERSION:
    raise fail(path, f"written by a newer jdlayers (format version "
               f"{version}; this version reads up to {VERSION}). Upgrade "
               "jdlayers to load it.")
  if meta.get("kind") not in kinds:
    raise fail(path, f"holds a {meta.get('kind')!r:.60}, expected "
               f"{' or '.join(repr(k) for k in kinds)}.")
  return meta


def _parse_header(path: str, f, name: str) -> Header:
  fmt = np.lib.format
  try:
    version = fmt.read_magic(f)
    if version == (1, 0):
      shape, fortran, dtype = fmt.read_array_header_1_0(
          f, max_header_size=_MAX_NPY_HEADER)
    elif version == (2, 0):
      shape, fortran, dtype = fmt.read_array_header_2_0(
          f, max_header_size=_MAX_NPY_HEADER)
    else:
      raise ValueError(f"unsupported .npy version {version}")
  except (ValueError, TypeError, SyntaxError, EOFError) as e:
    raise fail(path, f"array {name!r} is not a valid .npy array "
               f"({str(e)[:200]}).") from None
  if dtype.hasobject:
    raise fail(path, f"holds pickled (object) data in array {name!r}, which "
               "is never loaded because unpickling can execute code.")
  if dtype.str not in _DTYPES:
    raise fail(path, f"array {name!r} has dtype {dtype}; only numeric arrays "
               "(bool, int, uint, float) are valid.")
  if any(d < 0 for d in shape):
    raise fail(path, f"array {name!r} has invalid shape {list(shape)}.")
  return Header(tuple(shape), dtype, bool(fortran), f.tell())


def _read_header(path: str, zf: zipfile.ZipFile, member: str,
                 name: str) -> Header:
  info = zf.getinfo(member)
  with zf.open(info) as f:
    header = _parse_header(path, f, name)
  declared = info.file_size - header.offset
  if declared != header.nbytes:
    raise fail(path, f"array {name!r}: its header implies "
               f"{list(header.shape)} {header.dtype} ({header.nbytes:,} "
               f"bytes) but the member holds {declared:,} bytes of data.")
  return header


def _read_array(path: str, zf: zipfile.ZipFile, member: str,
                header: Header) -> np.ndarray:
  """Reads one array into a preallocated buffer, never past its size."""
  info = zf.getinfo(member)
  if info.file_size - header.offset != header.nbytes:
    raise fail(path, f"array {member[:-4]!r} changed while being read.")
  flat = np.empty(math.prod(header.shape), header.dtype)
  view = memoryview(flat.view(np.uint8))
  with zf.open(info) as f:
    if _parse_header(path, f, member[:-4]) != header:
      raise fail(path, f"array {member[:-4]!r} changed while being read.")
    pos = 0
    while pos < header.nbytes:
      n = f.readinto(view[pos:pos + _CHUNK])
      if not n:
        raise fail(path, f"array {member[:-4]!r} is truncated ({pos:,} of "
                   f"{header.nbytes:,} bytes).")
      pos += n
    if f.read(1):  # also completes the CRC check
      raise fail(path, f"array {member[:-4]!r} holds more data than its "
                 "header declares.")
  order = "F" if header.fortran_order else "C"
  return flat.reshape(header.shape, order=order)


def check_shapes(path: PathLike, arrays: Mapping[str, Any],
                 expected: Mapping[str, Tuple[int, ...]]) -> None:
  """Raises `FileFormatError` unless `arrays` has exactly `expected` shapes.

  Args:
    path: The file (for the message).
    arrays: Name -> array or `Header` (anything with `.shape`).
    expected: Name -> shape; every dim a non-negative int (no wildcards:
      the metadata fixes every dim).
  """
  missing = [n for n in expected if n not in arrays]
  if missing:
    raise fail(path, f"missing arrays {missing}.")
  for name, shape in expected.items():
    if any(not isinstance(e, int) or e < 0 for e in shape):
      raise fail(path, f"the metadata implies an invalid shape "
                 f"{list(shape)} for array {name!r}.")
    got = tuple(arrays[name].shape)
    if got != tuple(shape):
      raise fail(path, f"array {name!r} has shape {list(got)} but the "
                 f"config implies {list(shape)}.")
