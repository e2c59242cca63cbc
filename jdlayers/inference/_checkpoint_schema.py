"""The schemas of MCMC checkpoint files, written down once (`jdlayers.io`).

A checkpoint is a manifest (kind "mcmc_checkpoint": the chain state
`state_{i}`, the kernel-result leaves `kr_{i}`, and the segment list) plus
one segment file per checkpoint (kind "mcmc_checkpoint_segment": the draws
`draws_{i}` and traces `trace_{field}` of steps `[start, stop)`). The writer
(`_checkpoint.write`) and `_files.read` both check files against these
schemas, so a reader accepts exactly what is written; the counts that size
the array lists are compared with the arrays present before any list is
built.
"""

from __future__ import annotations

import re

from jdlayers.inference import _kernels
from jdlayers.io import _schema

KIND = "mcmc_checkpoint"
SEGMENT_KIND = "mcmc_checkpoint_segment"
SUFFIX = ".seg.jdl.npz"
RUN_ID = re.compile("[0-9a-f]{12}")

_S = _schema


class _RunId(_schema.Field):
  desc = "12 lowercase hex digits"

  def check(self, value):
    if not isinstance(value, str) or not RUN_ID.fullmatch(value):
      return "not a run id"
    return None


class _Segment(_schema.Field):
  """`[file name, start, stop]` with `0 <= start < stop`."""
  desc = "[file name, start step, stop step]"

  def check(self, value):
    if not (isinstance(value, list) and len(value) == 3
            and isinstance(value[0], str)):
      return "not [name, start, stop]"
    for v in value[1:]:
      why = _S.Int(0).check(v)
      if why:
        return why
    return None if value[1] < value[2] else "an empty step range"


def _tiles(meta) -> str:
  """The segments cover `[0, step)` in order."""
  segments, step = meta["segments"], meta["step"]
  if step > meta["total_steps"]:
    return f"step {step} exceeds total_steps {meta['total_steps']}"
  at = 0
  for _, start, stop in segments:
    if start != at:
      break
    at = stop
  else:
    if at == step:
      return ""
  return (f"the segments cover steps 0..{at}, not 0..{step} "
          "(they must tile the steps in order)")


MANIFEST = _schema.Schema(
    KIND, "checkpoint",
    {"step": _S.Int(0), "total_steps": _S.Int(1), "complete": _S.Bool(),
     "wall_time": _S.Float(minimum=0.), "num_state_parts": _S.Int(1),
     "num_kernel_results": _S.Int(0), "run_id": _RunId(),
     "segments": _S.List(_Segment()), "fingerprint": _S.Dict()},
    members=lambda meta: (_schema.indexed("state_", meta["num_state_parts"])
                          + _schema.indexed("kr_",
                                            meta["num_kernel_results"])),
    max_members=lambda meta: (meta["num_state_parts"]
                              + meta["num_kernel_results"]),
    checks=[("segments", _tiles)])


def _segment_consistent(meta) -> str:
  if meta["stop"] <= meta["start"]:
    return f"stop {meta['stop']} <= start {meta['start']}"
  if meta["num_draws"] > meta["stop"] - meta["start"]:
    return (f"{meta['num_draws']} draws in steps {meta['start']}.."
            f"{meta['stop']}")
  return ""


SEGMENT = _schema.Schema(
    SEGMENT_KIND, "checkpoint segment",
    {"run_id": _RunId(), "start": _S.Int(0), "stop": _S.Int(1),
     "num_state_parts": _S.Int(1), "num_draws": _S.Int(0),
     # Absent in segments written before `trajectory_length` existed.
     "trace_fields": _S.List(_S.Str(_kernels.Trace._fields), unique=True)},
    members=lambda meta: (_schema.indexed("draws_", meta["num_state_parts"])
                          + [f"trace_{k}" for k in _kernels.trace_fields(meta)]),
    max_members=lambda meta: (meta["num_state_parts"]
                              + len(_kernels.Trace._fields)),
    checks=[("stop", _segment_consistent)], optional=("trace_fields",))
