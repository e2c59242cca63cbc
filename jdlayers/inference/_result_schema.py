"""The schema of an MCMC result file (kind "mcmc_result"), written down once.

`MCMCResult.save` writes through `RESULT` and `load_result` reads through
it (via `jdlayers.io` `_files.inspect`), so a loader accepts exactly what
the writer writes: the metadata fields below with their types and ranges,
and exactly the arrays `state_{i}` (one per part name), `trace_{field}` and
`warmup_{field}` (one per `Trace` field), `x`, `y` and `seed`. `shapes`
gives every array's shape from the metadata and the model's part shapes.
"""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

from jdlayers.inference import _kernels
from jdlayers.io import _schema

KIND = "mcmc_result"
TRACE_FIELDS = _kernels.Trace._fields
# Trace field -> allowed numpy dtype kinds.
TRACE_KINDS = {"is_accepted": "b", "has_divergence": "b",
               "num_leapfrog_steps": "iu"}

_S = _schema


def _consistent(meta) -> str:
  if meta["num_draws"] > meta["num_results"]:
    return (f"num_draws={meta['num_draws']} exceeds num_results="
            f"{meta['num_results']}")
  if meta["complete"] != (meta["num_draws"] == meta["num_results"]):
    return (f"complete={meta['complete']} with {meta['num_draws']} of "
            f"{meta['num_results']} draws")
  return ""


def _members(meta) -> list:
  return (_schema.indexed("state_", len(meta["part_names"]))
          + [f"trace_{k}" for k in _kernels.trace_fields(meta)]
          + [f"warmup_{k}" for k in _kernels.trace_fields(meta)]
          + ["x", "y", "seed"])


RESULT = _schema.Schema(
    KIND, "result",
    {"kernel": _S.Str(_kernels.KERNELS),
     "adaptation": _S.Str(_kernels.ADAPTATIONS),
     "seconds": _S.Float(minimum=0.),
     "num_results": _S.Int(minimum=0),
     "num_draws": _S.Int(minimum=0),
     "num_chains": _S.Int(minimum=1),
     "num_warmup": _S.Int(minimum=0),
     "complete": _S.Bool(),
     "part_names": _S.List(_S.Str(), unique=True),
     "dtype": _S.Str(("float16", "float32", "float64")),
     "seed": _S.List(_S.Int(minimum=-2 ** 63, maximum=2 ** 64 - 1)),
     "diagnostics": _S.Optional_(_S.Dict()),
     "model": _S.Optional_(_S.Dict()),
     "model_error": _S.Optional_(_S.Str()),
     # Absent in files written before `trajectory_length` existed.
     "trace_fields": _S.List(_S.Str(TRACE_FIELDS), unique=True)},
    optional=("trace_fields",),
    members=_members,
    max_members=lambda meta: len(meta["part_names"]) + 2 * len(TRACE_FIELDS)
    + 3,
    checks=[("num_draws", _consistent)])


def shapes(meta, part_shapes: Sequence[Tuple[int, ...]]
           ) -> Dict[str, Tuple[int, ...]]:
  """Every array's expected shape (x and y excepted, see `load_result`).

  Args:
    meta: Checked result metadata.
    part_shapes: Event shape of each part, in `part_names` order.
  """
  d, c, w = meta["num_draws"], meta["num_chains"], meta["num_warmup"]
  out = {f"state_{i}": (d, c) + tuple(s) for i, s in enumerate(part_shapes)}
  for prefix, steps in (("trace_", d), ("warmup_", w)):
    out.update({prefix + k: (steps,) if k in _kernels.PER_STEP else (steps, c)
                for k in _kernels.trace_fields(meta)})
  out["seed"] = (len(meta["seed"]),)
  return out
