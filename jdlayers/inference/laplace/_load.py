"""`load`: reads a `LaplaceResult` back, checking it before reading data."""

from __future__ import annotations

import os
from typing import Optional

import numpy as np
import tensorflow as tf

from jdlayers.inference.laplace import _select, _structures
from jdlayers.inference.laplace._io import KIND
from jdlayers.inference.laplace._result import LaplaceResult
from jdlayers.io import _files, _implied


def load(path, model=None, *,
         max_bytes: Optional[int] = _files.DEFAULT_MAX_BYTES
         ) -> LaplaceResult:
  """Loads a `LaplaceResult` saved with `LaplaceResult.save`.

  Args:
    path: The file.
    model: The model (needed when the file holds no configuration, e.g. a
      `Lambda` of an unregistered function; otherwise it replaces the
      saved one and must have the same parts).
    max_bytes: Refuse a file whose arrays exceed this many bytes (default
      1 GiB; None: no bound, only for files you trust).

  Returns:
    The result: same samples (per seed), predictions and marginal
    likelihood as the saved one.

  Raises:
    FileNotFoundError: If `path` does not exist.
    jdlayers.io.FileFormatError: For a corrupted file, another kind, or
      metadata/arrays that disagree with the model.
    ValueError: If the file holds no model and `model` is None.

  #### Example

  ```python
  la.save("la.jdl.npz")
  same = jdl.laplace.load("la.jdl.npz")
  ```
  """
  where = os.fspath(path)
  archive = _files.inspect(path, KIND, max_bytes=max_bytes)
  meta, headers = archive.meta, archive.headers
  if model is None:
    model = _implied.decode_model(path, meta,
                                  "pass the model: load(path, model=...)",
                                  max_bytes=max_bytes).build()
  probe = tf.nest.flatten(model.probe)
  latents = list(model.likelihood.latents.items())
  from_model = [tuple(p.shape) for p in probe] + [
      tuple(d.event_shape) for _, d in latents]
  names = meta["part_names"]
  if len(names) != len(from_model):
    raise _files.fail(path, f"the file holds parts {names} but the model has "
                      f"{len(from_model)} parts.")
  shapes = {f"param_{i}": s for i, s in enumerate(from_model)}
  try:
    selection = _select.select(names, len(probe),
                               [tuple(p.shape) for p in probe],
                               list(meta["subset"]) or ["-"], "subset",
                               _select.real_parts(model))
  except ValueError as e:
    raise _files.fail(path, str(e)) from None
  if list(selection.names) != list(meta["subset"]):
    raise _files.fail(path, f"subset {meta['subset']} is not a set of the "
                      "model's network parts.")
  shapes["prior_precision"] = (len(selection.group_names),)
  p = selection.num_params
  if meta["hessian"] != "kron":
    shapes["h"] = (p,) if meta["hessian"] == "diag" else (p, p)
  _files.check_shapes(path, headers, shapes)
  for i, ref in enumerate(probe):
    if headers[f"param_{i}"].dtype != ref.dtype.as_numpy_dtype:
      raise _files.fail(path, f"part {names[i]!r} is "
                        f"{headers[f'param_{i}'].dtype}; the model's is "
                        f"{ref.dtype.name}.")
  arrays = archive.load()
  params = [tf.constant(arrays[f"param_{i}"]) for i in range(len(names))]
  network = tf.nest.pack_sequence_as(model.probe, params[:len(probe)])
  bad = [k for k, v in arrays.items() if not np.all(np.isfinite(v))]
  if bad:
    raise _files.fail(path, f"arrays {sorted(bad)} hold NaN or inf.")
  delta = arrays["prior_precision"]
  if not (np.all(np.isfinite(delta)) and np.all(delta > 0)):
    raise _files.fail(path, "prior_precision must be finite and > 0.")
  args = (selection.shapes, selection.groups, selection.group_names)
  if meta["hessian"] == "kron":
    try:
      blocks = _select.kron_blocks(selection, network, where)
    except ValueError as e:
      raise _files.fail(path, str(e)) from None
    if len(blocks) != meta["num_blocks"]:
      raise _files.fail(path, f"num_blocks={meta['num_blocks']} but the "
                        f"subset has {len(blocks)} layers.")
    _files.check_shapes(path, headers, {
        **{f"kron_a_{i}": (b.width, b.width) for i, b in enumerate(blocks)},
        **{f"kron_b_{i}": (b.out, b.out) for i, b in enumerate(blocks)}})
    struct = _structures.Kron(
        [(arrays[f"kron_a_{i}"], arrays[f"kron_b_{i}"])
         for i in range(len(blocks))], blocks, *args)
  elif meta["hessian"] == "diag":
    struct = _structures.Diag(arrays["h"], *args)
  else:
    struct = _structures.Full(arrays["h"], *args)
  return LaplaceResult(model, params, names, selection, struct, delta,
                       meta["log_likelihood"], meta["num_examples"])
