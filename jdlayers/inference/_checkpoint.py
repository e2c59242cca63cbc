"""Checkpoints of a running `Sampler`: fingerprint, write, validate, restore.

A checkpoint is a jdlayers file (`jdlayers.io`) of kind "mcmc_checkpoint"
holding everything the next step needs, so that a resumed run continues
bit-identically: the chain state, every leaf of the kernel results (adapted
step size, dual-averaging and mass-matrix state included), the step counter
(the seed of step `t` is `fold_in(run_seed, t)`), the draws and traces so far
and the wall time. Its metadata carries a fingerprint of the run's settings
and data, checked before anything is restored.
"""

from __future__ import annotations

import hashlib
import inspect
import os
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import tensorflow as tf

from jdlayers.inference import _kernels
from jdlayers.io import _files

KIND = "mcmc_checkpoint"


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
  return _kernels.Trace(*[arrays[prefix + k] for k in _kernels.Trace._fields])


def trace_shapes(prefix: str, steps: int, chains: int) -> Dict[str, tuple]:
  return {prefix + k: (steps,) if k == "step_size" else (steps, chains)
          for k in _kernels.Trace._fields}


# -- fingerprint -------------------------------------------------------------
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
def write(sampler, path, *, overwrite: bool) -> str:
  """Writes the sampler's checkpoint atomically."""
  arrays = {f"state_{i}": p.numpy() for i, p in enumerate(sampler.state)}
  kr, leaves = sampler._kr_leaves  # pylint: disable=protected-access
  if kr is not sampler.kernel_results:
    leaves = flatten_results(sampler.kernel_results)
  arrays.update({f"kr_{i}": np.asarray(a) for i, a in enumerate(leaves)})
  arrays.update({f"draws_{i}": d for i, d in enumerate(sampler.draws())})
  arrays.update(trace_arrays("trace_", sampler.full_trace()))
  meta = dict(step=int(sampler.step), total_steps=int(sampler.total_steps),
              complete=bool(sampler.done), wall_time=float(sampler.wall_time),
              num_state_parts=len(sampler.state),
              num_kernel_results=sum(k.startswith("kr_") for k in arrays),
              fingerprint=sampler.fingerprint)
  return _files.write(path, KIND, meta, arrays, overwrite=overwrite)


def read(path) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
  """Reads a checkpoint; checks it is one (kind, version, integrity)."""
  meta, arrays = _files.read(path, KIND)
  for key, types in (("step", int), ("num_state_parts", int),
                     ("num_kernel_results", int), ("wall_time", (int, float)),
                     ("fingerprint", dict)):
    if not isinstance(meta.get(key), types) or isinstance(meta[key], bool):
      raise _files.FileFormatError(f"{os.fspath(path)}: checkpoint metadata "
                                   f"lacks a valid {key!r}.")
  return meta, arrays


def restore(sampler, path, meta, arrays) -> None:
  """Puts a checkpoint's state, results, draws and traces into `sampler`."""
  step, burnin = int(meta["step"]), sampler.num_burnin_steps
  if not 0 <= step <= sampler.total_steps:
    raise _files.FileFormatError(f"{os.fspath(path)}: step {step} is outside "
                                 f"this run's 0..{sampler.total_steps}.")
  c = sampler.num_chains
  shapes = {}
  for i, p in enumerate(sampler.state):
    shapes[f"state_{i}"] = tuple(p.shape)
    shapes[f"draws_{i}"] = (max(0, step - burnin),) + tuple(p.shape)
  shapes.update(trace_shapes("trace_", step, c))
  _files.check_shapes(path, arrays, shapes)
  ref = _kernels.trace(sampler.kernel_results, 0)
  dtypes = {f"trace_{k}": tf.convert_to_tensor(v).dtype
            for k, v in ref._asdict().items()}
  for i, p in enumerate(sampler.state):
    dtypes[f"state_{i}"] = dtypes[f"draws_{i}"] = p.dtype
  for name, dtype in dtypes.items():
    if arrays[name].dtype != dtype.as_numpy_dtype:
      raise _files.FileFormatError(
          f"{os.fspath(path)}: array {name!r} is {arrays[name].dtype}; "
          f"expected {dtype.name}.")
  n = int(meta["num_kernel_results"])
  missing = [f"kr_{i}" for i in range(n) if f"kr_{i}" not in arrays]
  if missing:
    raise _files.FileFormatError(f"{os.fspath(path)}: missing arrays "
                                 f"{missing}.")
  kr = unflatten_results(path, sampler.kernel_results,
                         [arrays[f"kr_{i}"] for i in range(n)])
  state = [tf.constant(arrays[f"state_{i}"])
           for i in range(len(sampler.state))]
  sampler.state, sampler.kernel_results = state, kr
  sampler.step, sampler.wall_time = step, float(meta["wall_time"])
  draws = [arrays[f"draws_{i}"] for i in range(len(state))]
  sampler._draws = [draws] if draws[0].shape[0] else []  # pylint: disable=protected-access
  sampler._traces = [trace_from_arrays("trace_", arrays)] if step else []  # pylint: disable=protected-access
