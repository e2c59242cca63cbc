"""Declarative schemas of jdlayers file kinds, used to write and to read.

A `Schema` lists a kind's metadata fields (each a `Field` with its type and
range) and derives the exact set of array names from the metadata. Writers
call `Schema.write`, which checks what is about to be written; `_files.read`
checks every file of a registered kind against the same schema before it
reads any array data, so a loader accepts exactly what its writer writes:
a missing, mistyped or out-of-range field, or a missing or extra array,
raises `FileFormatError` naming the file and the field.

#### Example

```python
from jdlayers.io import _schema
S = _schema.Schema("demo", "demo", {"n": _schema.Int(minimum=1)},
                   members=lambda meta: [f"a_{i}" for i in range(meta["n"])],
                   max_members=lambda meta: meta["n"])
S.check_meta("f.npz", {"n": 2})          # passes
```
"""

from __future__ import annotations

import math
from typing import (Any, Callable, Dict, Iterable, List, Mapping, Optional,
                    Sequence, Tuple)

from jdlayers.io import _files


class Field:
  """A metadata field: `check(value)` returns None or why it is invalid."""

  desc = "a value"

  def check(self, value) -> Optional[str]:
    del value
    return None


class Int(Field):
  """An int (not a bool, not a float such as 2.5 or 2.0) in a range."""

  def __init__(self, minimum: int = 0, maximum: Optional[int] = None):
    self.minimum, self.maximum = minimum, maximum
    hi = "" if maximum is None else f" and <= {maximum}"
    self.desc = f"an int >= {minimum}{hi}"

  def check(self, value):
    if not isinstance(value, int) or isinstance(value, bool):
      return "not an int"
    if value < self.minimum or (self.maximum is not None
                                and value > self.maximum):
      return "out of range"
    return None


class Float(Field):
  """A finite real number (ints accepted), at least `minimum`."""

  def __init__(self, minimum: float = -math.inf):
    self.minimum = minimum
    self.desc = "a finite number" + (f" >= {minimum}" if minimum > -math.inf
                                     else "")

  def check(self, value):
    if not isinstance(value, (int, float)) or isinstance(value, bool):
      return "not a number"
    if not math.isfinite(value) or value < self.minimum:
      return "out of range"
    return None


class Bool(Field):
  desc = "true or false"

  def check(self, value):
    return None if isinstance(value, bool) else "not a bool"


class Str(Field):
  """A string, optionally one of `choices`."""

  def __init__(self, choices: Optional[Iterable[str]] = None):
    self.choices = None if choices is None else tuple(choices)
    self.desc = "a string" if choices is None else f"one of {list(choices)}"

  def check(self, value):
    if not isinstance(value, str):
      return "not a string"
    if self.choices is not None and value not in self.choices:
      return "not a known value"
    return None


class Dict(Field):
  """A JSON object (its content is checked by whoever decodes it)."""
  desc = "an object"

  def check(self, value):
    return None if isinstance(value, dict) else "not an object"


class List(Field):
  """A list of `item`s, optionally of distinct values."""

  def __init__(self, item: Field, unique: bool = False):
    self.item, self.unique = item, unique
    self.desc = f"a list of {item.desc}" + (" (distinct)" if unique else "")

  def check(self, value):
    if not isinstance(value, list):
      return "not a list"
    for i, v in enumerate(value):
      why = self.item.check(v)
      if why:
        return f"item {i} ({v!r:.60}) is {why}"
    if self.unique and len(set(value)) != len(value):
      return "has repeated entries"
    return None


class Optional_(Field):  # pylint: disable=invalid-name
  """`inner` or null."""

  def __init__(self, inner: Field):
    self.inner = inner
    self.desc = f"{inner.desc} or null"

  def check(self, value):
    return None if value is None else self.inner.check(value)


class Mapping_(Field):  # pylint: disable=invalid-name
  """An object with string keys and `value` values (optionally fixed keys)."""

  def __init__(self, value: Field, keys: Optional[Sequence[str]] = None):
    self.value, self.keys = value, None if keys is None else tuple(keys)
    self.desc = (f"an object of {value.desc}" if keys is None else
                 f"an object with keys {list(keys)} of {value.desc}")

  def check(self, value):
    if not isinstance(value, dict):
      return "not an object"
    if self.keys is not None and sorted(value) != sorted(self.keys):
      return f"has keys {sorted(value)}"
    for k, v in value.items():
      why = self.value.check(v)
      if why:
        return f"entry {k!r:.60} is {why}"
    return None


class Either(Field):
  """Any one of `options` (e.g. a bool or a list of strings)."""

  def __init__(self, *options: Field):
    self.options = options
    self.desc = " or ".join(o.desc for o in options)

  def check(self, value):
    whys = [o.check(value) for o in self.options]
    return None if any(w is None for w in whys) else "not " + self.desc


class Record(Field):
  """An object with exactly the keys of `fields`, each checked."""

  def __init__(self, fields: Mapping[str, Field]):
    self.fields = dict(fields)
    self.desc = "{" + ", ".join(f"{k}: {f.desc}" for k, f in
                                self.fields.items()) + "}"

  def check(self, value):
    if not isinstance(value, dict):
      return "not an object"
    if sorted(value) != sorted(self.fields):
      return f"has keys {sorted(value)!r:.100}"
    for k, field in self.fields.items():
      why = field.check(value[k])
      if why:
        return f"entry {k!r} is {why}"
    return None


class Schema:
  """The metadata fields and array names of one file kind.

  Args:
    kind: The kind written in the file ("network", "mcmc_result", ...).
    title: How messages call it ("network", "result", "checkpoint").
    fields: Field name -> `Field`, in the order they are checked; all are
      required unless listed in `optional`. No other field is accepted.
    members: `meta -> array names` (after the fields passed).
    max_members: `meta -> the number of arrays the metadata implies`,
      computed without building the names (so that a huge count declared
      by a hostile file is refused before any list is made).
    optional: Fields that may be absent.
    checks: `meta -> None or why` cross-field checks (after the fields).
  """

  def __init__(self, kind: str, title: str, fields: Mapping[str, Field], *,
               members: Callable[[dict], Iterable[str]] = lambda meta: (),
               max_members: Callable[[dict], int] = lambda meta: 0,
               optional: Sequence[str] = (),
               checks: Sequence[Tuple[str, Callable[[dict], Optional[str]]]]
               = ()):
    self.kind, self.title = kind, title
    self.fields: Dict[str, Field] = dict(fields)
    self.members, self.max_members = members, max_members
    self.optional, self.checks = frozenset(optional), tuple(checks)
    _files.SCHEMAS[kind] = self

  def check_meta(self, path, meta: Mapping[str, Any]) -> None:
    """Raises `FileFormatError` naming the first invalid metadata field."""
    for name, field in self.fields.items():
      if name not in meta:
        if name in self.optional:
          continue
        raise _files.fail(path, f"{self.title} metadata lacks {name!r}.")
      why = field.check(meta[name])
      if why:
        raise _files.fail(path, f"{self.title} metadata lacks a valid "
                          f"{name!r}: {meta[name]!r:.100} is {why}; expected "
                          f"{field.desc}.")
    extra = sorted(set(meta) - set(self.fields) - set(_files.HEADER_FIELDS))
    if extra:
      raise _files.fail(path, f"{self.title} metadata has unknown fields "
                        f"{str(extra)[:200]}; this version writes "
                        f"{sorted(self.fields)}.")
    for name, check in self.checks:
      why = check(meta)
      if why:
        raise _files.fail(path, f"{self.title} metadata lacks a valid "
                          f"{name!r}: {why}.")

  def check_members(self, path, meta: Mapping[str, Any],
                    names: Sequence[str]) -> None:
    """Raises unless the arrays are exactly those `meta` implies."""
    n = self.max_members(meta)
    if n > len(names) + 1000:  # never build a huge list of missing names
      raise _files.fail(path, f"the metadata implies {n:,} arrays but the "
                        f"file holds {len(names):,}.")
    expected = list(self.members(meta))
    missing = sorted(set(expected) - set(names))
    extra = sorted(set(names) - set(expected))
    problems = ([f"missing arrays {str(missing)[:200]}"] if missing else []) + (
        [f"unexpected arrays {str(extra)[:200]}"] if extra else [])
    if problems:
      raise _files.fail(path, "; ".join(problems) + " (the metadata implies "
                        f"{str(expected)[:200]}).")

  def check(self, path, meta: Mapping[str, Any], names: Sequence[str]) -> None:
    self.check_meta(path, meta)
    self.check_members(path, meta, names)

  def write(self, path, meta: Mapping[str, Any], arrays: Mapping[str, Any], *,
            overwrite: bool = False) -> str:
    """Checks `meta` and `arrays` against the schema, then `_files.write`s.

    Raises:
      ValueError: If the writer produced what the reader would refuse (a
        bug; nothing is written).
    """
    try:
      self.check(path, dict(meta), list(arrays))
    except _files.FileFormatError as e:
      raise ValueError(f"refusing to write an invalid {self.title} file: "
                       f"{e}") from None
    return _files.write(path, self.kind, meta, arrays, overwrite=overwrite)


def indexed(prefix: str, n: int) -> List[str]:
  """`[prefix0, prefix1, ...]` (n names)."""
  return [f"{prefix}{i}" for i in range(n)]
