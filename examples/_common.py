"""Helpers shared by the examples: output paths that never clobber, data."""

from __future__ import annotations

import pathlib

import numpy as np

DATA = pathlib.Path(__file__).resolve().parent / "data"


def free_path(out_dir: pathlib.Path, filename: str,
              overwrite: bool) -> pathlib.Path:
  """`out_dir/filename`, or `stem-1.ext`, `stem-2.ext`, ... if that exists.

  An existing file is only replaced with `overwrite=True`: nothing a user saved
  is lost to a rerun.
  """
  path = pathlib.Path(out_dir) / filename
  if overwrite or not path.exists():
    return path
  k = 1
  while (path.parent / f"{path.stem}-{k}{path.suffix}").exists():
    k += 1
  return path.parent / f"{path.stem}-{k}{path.suffix}"


def load_split_csv(name: str):
  """Loads a bundled `split,x,y` CSV as float32 `(x_train, y_train, x_test,
  y_test)`, each `[N, 1]` (plain text: loading data never runs code)."""
  with open(DATA / name, encoding="utf-8") as fh:
    lines = [l.strip() for l in fh if l.strip() and not l.startswith("#")]
  header, rows = lines[0].split(","), [l.split(",") for l in lines[1:]]
  if header != ["split", "x", "y"]:
    raise ValueError(f"{name}: expected header split,x,y; got {header}.")
  out = []
  for split in ("train", "test"):
    sel = np.array([r[1:] for r in rows if r[0] == split], np.float32)
    out += [sel[:, :1], sel[:, 1:]]
  return tuple(out)
