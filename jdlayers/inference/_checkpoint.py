"""Checkpoints of a running `Sampler`: fingerprint, write, validate, restore.

A checkpoint is a small manifest file (a jdlayers file, `jdlayers.io`, of
kind "mcmc_checkpoint") plus segment files next to it. The manifest holds
everything the next step needs, so that a resumed run continues
bit-identically: the chain state, every leaf of the kernel results (adapted
step size, dual-averaging and mass-matrix state included), the step counter
(the seed of step `t` is `fold_in(run_seed, t)`) and the wall time, and it
names the segments. Each segment (kind "mcmc_checkpoint_segment", named
`<checkpoint>.<run id>.<start>-<stop>.seg.jdl.npz`) holds the draws and
traces of the steps `[start, stop)` between two checkpoints, so a checkpoint
writes only what is new, never the whole history again. The segment is
written before the manifest, both atomically: whatever crash or full disk
interrupts a write, the manifest on disk names complete segments only. The
manifest's metadata carries a fingerprint of the run's settings and data,
checked before anything is restored.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import re
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import tensorflow as tf

from jdlayers.inference import _checkpoint_schema as _schema
from jdlayers.inference import _kernels
from jdlayers.io import _files

KIND, SEGMENT_KIND = _schema.KIND, _schema.SEGMENT_KIND
SUFFIX = _schema.SUFFIX


# -- shared helpers (also used by `MCMCResult.save`) -------------------------
def array_digest(a) -> str:
  """sha256 of an array's dtype, shape and bytes."""
  a = np.ascontiguousarray(np.asarray(a))
  h = hashlib.sha256(f"{a.dtype.str}{list(a.shape)}".encode())
  h.update(a.tobytes())
  return h.hexdigest()


def trace_arrays(prefix: str, trace: _kernels.Trace) -> Dict[str, np.ndarray]:
  """`Trace` -> `{prefix + field: array}`."""
  return {prefix + k: np.asarray(v) for k, v in trace._asdict().items()}


def trace_from_arrays(prefix: str, arrays) -> _kernels.Trace:
  """`{prefix + field: array}` -> `Trace`; fields a file lacks are NaN.

  Files written before a field existed (`trace_fields` in their metadata
  names what they hold) load with that field NaN-filled, shaped as
  `step_size`.
  """
  steps = len(arrays[prefix + "step_size"])
  return _kernels.Trace(*[
      arrays[prefix + k] if prefix + k in arrays else
      np.full((steps,), np.nan, arrays[prefix + "step_size"].dtype)
      for k in _kernels.Trace._fields])


def trace_shapes(prefix: str, steps: int, chains: int,
                 fields=_kernels.Trace._fields) -> Dict[str, tuple]:
  return {prefix + k: (steps,) if k in _kernels.PER_STEP else (steps, chains)
          for k in fields}


# -- fingerprint -------------------------------------------------------------
# `make_kernel` settings newer than the checkpoint format (see
# `check_fingerprint`).
ADDED_SETTINGS = ("max_leapfrog_steps",)


def _kernel_settings(kernel_kwargs) -> Dict[str, Any]:
  """`make_kernel`'s keyword arguments with its defaults filled in."""
  params = inspect.signature(_kernels.make_kernel).parameters
  out = {k: p.default for k, p in params.items()
         if p.kind == p.KEYWORD_ONLY and k != "num_adaptation_steps"}
  out.update(kernel_kwargs)
  out.pop("kernel", None)
  return {k: _jsonable(v) for k, v in out.items()}


def _jsonable(v):
  if isinstance(v, (bool, str)) or v is None:
    return v
  if isinstance(v, (int, np.integer)):
    return int(v)
  if isinstance(v, (float, np.floating)):
    return float(v)
  a = np.asarray(v)
  return a.tolist() if a.dtype.kind in "biuf" else repr(v)


def fingerprint(sampler, init) -> Dict[str, Any]:
  """The settings and data a checkpoint is only valid for.

  Args:
    sampler: A `Sampler` (after its kernel and initial state are built).
    init: The `init` argument it was given ("shrunk", "prior" or parts).

  Returns:
    A flat JSON-able dict: setting name -> value.
  """
  post = sampler.posterior
  fp = dict(kernel=sampler.kernel_name, num_chains=sampler.num_chains,
            num_results=sampler.num_results,
            num_burnin_steps=sampler.num_burnin_steps,
            adaptation=sampler.adaptation, jit_compile=sampler.jit_compile,
            seed=[int(s) for s in sampler.seed.numpy()],
            dtype=post.model.dtype.name)
  # Defaults filled in; "adaptation" stays the resolved one (set above).
  fp = {**_kernel_settings(sampler.kernel_kwargs), **fp}
  if isinstance(init, str):
    fp["init"], fp["init_scale"] = init, float(sampler.init_scale)
  else:
    fp["init"] = "parts sha256 " + hashlib.sha256("".join(
        array_digest(p) for p in init).encode()).hexdigest()
  fp["parts"] = [[n, list(p.shape)] for n, p in
                 zip(post.part_names, sampler.state)]
  fp["x_sha256"] = array_digest(post.x.numpy())
  fp["y_sha256"] = array_digest(post.y.numpy())
  fp["model"] = repr(post.model)
  # The prior and likelihood enter through the density at the initial state.
  fp["log_prob_at_init"] = [float(v) for v in
                            post.log_prob(*sampler.init_state).numpy()]
  return fp


def check_fingerprint(path, saved: Dict[str, Any],
                      current: Dict[str, Any]) -> None:
  """Raises `ValueError` naming every setting in which the runs differ."""
  diffs = []
  # Settings added since a checkpoint was written held their default then.
  saved = {**{k: v for k, v in _kernel_settings({}).items()
              if k in ADDED_SETTINGS}, **saved}
  for key in sorted(set(saved) | set(current)):
    a, b = saved.get(key, "<absent>"), current.get(key, "<absent>")
    if key == "log_prob_at_init" and isinstance(a, list) and len(a) == len(b):
      same = np.allclose(a, b, rtol=1e-6, atol=0., equal_nan=True)
    else:
      same = a == b
    if not same:
      what = ("the model (log density at the initial state)"
              if key == "log_prob_at_init" else key)
      diffs.append(f"{what}: {_short(a)} in the checkpoint, {_short(b)} now")
  if diffs:
    raise ValueError(
        f"{os.fspath(path)}: this checkpoint belongs to a different run; "
        + "; ".join(diffs) + ". Resume with the settings and data it was "
        "written with, or delete the file (or pick another `checkpoint` "
        "path) to start afresh.")


def _short(v) -> str:
  s = repr(v)
  return s if len(s) <= 80 else s[:77] + "..."


# -- kernel results ----------------------------------------------------------
def flatten_results(kernel_results) -> List[np.ndarray]:
  """Every tensor leaf of the kernel results (composites expanded)."""
  return [np.asarray(leaf) for leaf in
          tf.nest.flatten(kernel_results, expand_composites=True)]


def unflatten_results(path, template, leaves: Sequence[np.ndarray]):
  """Packs saved leaves into the structure of `template` (bootstrap results).

  Raises:
    FileFormatError: If the count, a shape or a dtype disagrees.
  """
  ref = tf.nest.flatten(template, expand_composites=True)
  if len(ref) != len(leaves):
    raise _files.FileFormatError(
        f"{os.fspath(path)}: the checkpoint holds {len(leaves)} kernel-result "
        f"tensors but this kernel has {len(ref)}.")
  out = []
  for i, (r, a) in enumerate(zip(ref, leaves)):
    r = tf.convert_to_tensor(r)
    if tuple(a.shape) != tuple(r.shape) or a.dtype != r.dtype.as_numpy_dtype:
      raise _files.FileFormatError(
          f"{os.fspath(path)}: kernel-result tensor {i} is {a.dtype} "
          f"{list(a.shape)} but this kernel expects {r.dtype.name} "
          f"{r.shape.as_list()}.")
    out.append(tf.constant(a))
  return tf.nest.pack_sequence_as(template, out, expand_composites=True)


# -- files -------------------------------------------------------------------
def new_run_id() -> str:
  """A random id for a fresh run's segment names (stale files never clash)."""
  return os.urandom(6).hex()


def segment_name(path, run_id: str, start: int, stop: int) -> str:
  """Basename of the segment holding steps `[start, stop)` of `path`'s run."""
  return f"{os.path.basename(os.fspath(path))}.{run_id}.{start}-{stop}{SUFFIX}"


def write(sampler, path, *, overwrite: bool) -> List[list]:
  """Writes the steps since the last checkpoint as a segment, then the manifest.

  Both files are written atomically, the segment first, so the manifest on
  disk always names complete segments: a crash (or full disk) at any point
  leaves the last good checkpoint resumable.

  Args:
    sampler: The `Sampler` (its `_segments` are the committed segments).
    path: The checkpoint (manifest) path.
    overwrite: Replace an existing manifest (False only for a fresh run's
      first write, which refuses to clobber a file created since).

  Returns:
    The segment list the manifest now holds (`[[name, start, stop], ...]`).

  Raises:
    CheckpointWriteError: If a file cannot be written; it carries the draws
      so far as `partial_result`.
  """
  path = os.fspath(path)
  segments = [list(seg) for seg in sampler._segments]  # pylint: disable=protected-access
  start, stop = (segments[-1][2] if segments else 0), int(sampler.step)
  target, new_segment = path, None
  try:
    if stop > start:
      name = segment_name(path, sampler._run_id, start, stop)  # pylint: disable=protected-access
      target = os.path.join(os.path.dirname(os.path.abspath(path)), name)
      # A file of this name is never one the user saved: it can only be
      # this run's own segment, orphaned by a crash before its manifest.
      _schema.SEGMENT.write(target, _segment_meta(sampler, start, stop),
                            _segment_arrays(sampler, start, stop),
                            overwrite=True)
      new_segment = target
      segments.append([name, start, stop])
    target = path
    _schema.MANIFEST.write(path, _manifest_meta(sampler, segments),
                           _manifest_arrays(sampler), overwrite=overwrite)
  except OSError as e:
    if new_segment is not None:  # not named by any manifest: remove it
      _remove_quietly(new_segment)
    raise CheckpointWriteError(sampler, path, target, e) from e
  return segments


def _segment_meta(sampler, start: int, stop: int) -> Dict[str, Any]:
  b = sampler.num_burnin_steps
  return dict(run_id=sampler._run_id, start=start, stop=stop,  # pylint: disable=protected-access
              num_state_parts=len(sampler.state),
              num_draws=max(0, stop - b) - max(0, start - b),
              trace_fields=list(_kernels.Trace._fields))


def _segment_arrays(sampler, start: int, stop: int) -> Dict[str, np.ndarray]:
  b = sampler.num_burnin_steps
  lo, hi = max(0, start - b), max(0, stop - b)
  arrays = {f"draws_{i}": buf[lo:hi]
            for i, buf in enumerate(sampler._draw_buf)}  # pylint: disable=protected-access
  arrays.update(trace_arrays("trace_", _kernels.Trace(
      *[buf[start:stop] for buf in sampler._trace_buf])))  # pylint: disable=protected-access
  return arrays


def _manifest_meta(sampler, segments) -> Dict[str, Any]:
  return dict(step=int(sampler.step), total_steps=int(sampler.total_steps),
              complete=bool(sampler.done), wall_time=float(sampler.wall_time),
              num_state_parts=len(sampler.state),
              num_kernel_results=len(_leaves(sampler)),
              run_id=sampler._run_id, segments=segments,  # pylint: disable=protected-access
              fingerprint=sampler.fingerprint)


def _manifest_arrays(sampler) -> Dict[str, np.ndarray]:
  arrays = {f"state_{i}": p.numpy() for i, p in enumerate(sampler.state)}
  arrays.update({f"kr_{i}": a for i, a in enumerate(_leaves(sampler))})
  return arrays


def _leaves(sampler) -> List[np.ndarray]:
  kr, leaves = sampler._kr_leaves  # pylint: disable=protected-access
  if kr is not sampler.kernel_results:
    leaves = flatten_results(sampler.kernel_results)
  return [np.asarray(a) for a in leaves]


def _remove_quietly(path: str) -> None:
  try:
    os.unlink(path)
  except OSError:
    pass


class CheckpointWriteError(OSError):
  """A checkpoint could not be written; the run stopped, its draws are kept.

  Raised by `Sampler.run` / `jdlayers.mcmc.sample` (an `OSError`, with the
  cause's `errno`) instead of losing the run: the draws made so far are in
  `partial_result`, and the checkpoint on disk still holds its last good
  step, from which `resume=True` continues bit-identically.

  Attributes:
    path: The checkpoint path.
    filename: The file whose write failed (the checkpoint or a segment).
    partial_result: `MCMCResult` of every draw so far (`complete` is False
      unless the run had ended).
    checkpoint_step: The step the checkpoint on disk holds (None: none yet).
  """

  def __init__(self, sampler, path: str, failed: str, cause: OSError):
    self.path, self.checkpoint_step = path, sampler.checkpoint_step
    self.partial_result = sampler.result()
    held = ("no checkpoint was written yet" if self.checkpoint_step is None
            else f"the checkpoint holds step {self.checkpoint_step}; fix the "
            "cause and rerun with resume=True to continue from there")
    self.message = (
        f"mcmc: writing checkpoint {path!r} failed at step {sampler.step} of "
        f"{sampler.total_steps} (file {failed!r}: {type(cause).__name__}: "
        f"{cause}). The run stopped; its {self.partial_result.num_draws} "
        f"draws so far are in this error's `partial_result`; {held}.")
    super().__init__(cause.errno, self.message, failed)

  def __str__(self) -> str:  # OSError's would be "[Errno n] ...: 'file'"
    return self.message


def read(path) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
  """Reads a checkpoint's manifest, checked against `_schema.MANIFEST`."""
  return _files.read(path, KIND)


def restore(sampler, path, meta, arrays) -> None:
  """Puts a checkpoint's state, results, draws and traces into `sampler`.

  Every count in the metadata is checked against this run (and the arrays
  present) before it sizes anything, so a crafted file cannot make it
  allocate or loop beyond the run's own size.
  """
  path = os.fspath(path)
  step = meta["step"]  # types, ranges and members: checked by the schema
  if step > sampler.total_steps:
    raise _files.FileFormatError(f"{path}: step {step} is outside this run's "
                                 f"0..{sampler.total_steps}.")
  parts = len(sampler.state)
  if meta["num_state_parts"] != parts:
    raise _files.FileFormatError(
        f"{path}: the checkpoint holds {_short(meta['num_state_parts'])} state "
        f"parts but this run has {parts}.")
  n = meta["num_kernel_results"]
  num_ref = len(tf.nest.flatten(sampler.kernel_results, expand_composites=True))
  if n != num_ref:
    raise _files.FileFormatError(
        f"{path}: the checkpoint holds {_short(n)} kernel-result tensors but "
        f"this kernel has {num_ref}.")
  expected = {f"state_{i}": tuple(p.shape) for i, p in enumerate(sampler.state)}
  _files.check_shapes(path, arrays, expected)
  for i, p in enumerate(sampler.state):
    _check_dtype(path, arrays, f"state_{i}", p.dtype)
  kr = unflatten_results(path, sampler.kernel_results,
                         [arrays[f"kr_{i}"] for i in range(n)])
  segments = [list(seg) for seg in meta["segments"]]
  for name, start, stop in segments:
    _restore_segment(sampler, path, meta["run_id"], name, start, stop)
  sampler.state = [tf.constant(arrays[f"state_{i}"]) for i in range(parts)]
  sampler.kernel_results = kr
  sampler.step, sampler.wall_time = step, float(meta["wall_time"])
  sampler._segments = segments  # pylint: disable=protected-access
  sampler._run_id = meta["run_id"]  # pylint: disable=protected-access
  _remove_orphans(path, meta["run_id"], step)


def _check_dtype(path, arrays, name, dtype) -> None:
  if arrays[name].dtype != dtype.as_numpy_dtype:
    raise _files.FileFormatError(f"{path}: array {name!r} is "
                                 f"{arrays[name].dtype}; expected {dtype.name}.")


def _restore_segment(sampler, path, run_id, name, start, stop) -> None:
  if not _segment_pattern(r"[^/\\\x00]{1,255}?", re.escape(run_id), start,
                          stop).fullmatch(name):
    raise _files.FileFormatError(
        f"{path}: segment file name {_short(name)} is not one of this "
        f"checkpoint's (*.{run_id}.{start}-{stop}{SUFFIX}, in its directory).")
  seg_path = os.path.join(os.path.dirname(os.path.abspath(path)), name)
  b = sampler.num_burnin_steps
  lo, hi = max(0, start - b), max(0, stop - b)
  # This run's own sizes bound what the file may hold (the default 1 GiB
  # bound of `_files.read` would refuse a large legitimate segment).
  size = sum((hi - lo) * buf[0].nbytes for buf in sampler._draw_buf)  # pylint: disable=protected-access
  size += sum((stop - start) * buf[0].nbytes for buf in sampler._trace_buf)  # pylint: disable=protected-access
  try:
    meta, arrays = _files.read(seg_path, SEGMENT_KIND, max_bytes=size)
  except FileNotFoundError:
    raise _files.FileFormatError(
        f"{path}: its segment file {seg_path!r} (steps {start}..{stop}) is "
        "missing; a checkpoint is the file plus its segment files, which "
        "must be kept (and moved) together.") from None
  if (meta["run_id"], meta["start"], meta["stop"]) != (run_id, start, stop):
    raise _files.FileFormatError(
        f"{seg_path}: not the segment {start}..{stop} of run {run_id} that "
        f"{path} names.")
  shapes = {f"draws_{i}": (hi - lo,) + tuple(p.shape)
            for i, p in enumerate(sampler.state)}
  fields = _kernels.trace_fields(meta)
  shapes.update(trace_shapes("trace_", stop - start, sampler.num_chains,
                             fields))
  _files.check_shapes(seg_path, arrays, shapes)
  ref = _kernels.trace(sampler.kernel_results, 0)
  for i, p in enumerate(sampler.state):
    _check_dtype(seg_path, arrays, f"draws_{i}", p.dtype)
    sampler._draw_buf[i][lo:hi] = arrays[f"draws_{i}"]  # pylint: disable=protected-access
  for k, buf in zip(_kernels.Trace._fields, sampler._trace_buf):  # pylint: disable=protected-access
    if k not in fields:  # a segment written before the field existed
      buf[start:stop] = np.nan
      continue
    _check_dtype(seg_path, arrays, f"trace_{k}",
                 tf.convert_to_tensor(getattr(ref, k)).dtype)
    buf[start:stop] = arrays[f"trace_{k}"]


def _segment_pattern(prefix: str, run_id: str, start, stop) -> "re.Pattern":
  return re.compile(f"{prefix}\\.{run_id}\\.{start}-{stop}{re.escape(SUFFIX)}")


def _remove_orphans(path, run_id: str, step: int) -> None:
  """Deletes this run's segments past the manifest's last step.

  Only a crash between writing a segment and its manifest leaves one; its
  name (random run id included) is this run's own, so nobody else's file.
  """
  directory = os.path.dirname(os.path.abspath(path))
  pattern = _segment_pattern(re.escape(os.path.basename(path)),
                             re.escape(run_id), r"(\d+)", r"(\d+)")
  try:
    names = os.listdir(directory)
  except OSError:
    return
  for name in names:
    m = pattern.fullmatch(name)
    if m and int(m.group(1)) >= step:
      _remove_quietly(os.path.join(directory, name))
