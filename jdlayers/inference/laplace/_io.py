"""The file kind of `LaplaceResult`s and their writer (loading: `_load`).

Kind "laplace_result" (schema `RESULT`): the metadata names the structure,
the parts, the subset and the model's configuration; the arrays are every
part at the point estimate (`param_{i}`), the prior precision per layer and
the curvature (`h` for "diag"/"full", `kron_a_{b}`/`kron_b_{b}` per KFAC
block). Loading checks the metadata and every array's shape against the
model before reading data, and never executes code.
"""

from __future__ import annotations

import json

import numpy as np

from jdlayers.inference.laplace import _structures
from jdlayers.io import _config, _schema

KIND = "laplace_result"
_S = _schema


def _members(meta) -> list:
  out = _schema.indexed("param_", len(meta["part_names"])) + [
      "prior_precision"]
  if meta["hessian"] == "kron":
    out += _schema.indexed("kron_a_", meta["num_blocks"])
    out += _schema.indexed("kron_b_", meta["num_blocks"])
  else:
    out.append("h")
  return out


RESULT = _schema.Schema(
    KIND, "Laplace result",
    {"hessian": _S.Str(_structures.KINDS),
     "part_names": _S.List(_S.Str(), unique=True),
     "subset": _S.List(_S.Str(), unique=True),
     "num_blocks": _S.Int(minimum=0),
     "num_examples": _S.Int(minimum=1),
     "log_likelihood": _S.Float(),
     "dtype": _S.Str(("float32", "float64")),
     "model": _S.Optional_(_S.Dict()),
     "model_error": _S.Optional_(_S.Str())},
    members=_members,
    max_members=lambda meta: len(meta["part_names"]) + 2 * meta[
        "num_blocks"] + 2)


def save(result, path, overwrite: bool = False) -> str:
  """Writes `result` to `path` (see `LaplaceResult.save`)."""
  try:
    config = _config.to_config(result.model)
    json.dumps(config, allow_nan=True)
    why = None
  except TypeError as e:
    config, why = None, str(e)
  arrays = {f"param_{i}": np.asarray(p) for i, p in enumerate(result.params)}
  arrays["prior_precision"] = result.prior_precision
  arrays.update(result.structure.arrays())
  meta = dict(hessian=result.hessian, part_names=result.part_names,
              subset=result.subset,
              num_blocks=len(getattr(result.structure, "blocks", ())),
              num_examples=result.num_examples,
              log_likelihood=result.log_likelihood,
              dtype=result.model.dtype.name, model=config, model_error=why)
  return RESULT.write(path, meta, arrays, overwrite=overwrite)
