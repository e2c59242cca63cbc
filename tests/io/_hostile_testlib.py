"""Crafted hostile jdlayers files, made on the fly (never stored binaries).

Each `craft_*` writes one small file that would make a careless loader
inflate or allocate gigabytes. `python _hostile_testlib.py run DIR` loads
every file in DIR in a subprocess-friendly way and prints one JSON line per
file (the error, its type, seconds and the peak-RSS growth); the test runs
it under a memory limit, and the same script measured the loaders before
the fix.
"""

import io as stdio
import json
import os
import struct
import sys
import time
import zlib

import numpy as np

_MIB = 1 << 20
_ZEROS_BLOCK = None


def _zeros_deflate(n_mib: int) -> bytes:
  """A raw deflate stream (without the final block) of `n_mib` MiB of zeros,
  built from one compressed MiB repeated (cheap for gigabytes)."""
  global _ZEROS_BLOCK
  if _ZEROS_BLOCK is None:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    _ZEROS_BLOCK = c.compress(bytes(_MIB)) + c.flush(zlib.Z_FULL_FLUSH)
  return _ZEROS_BLOCK * n_mib


def npy_header(shape, dtype="<f4") -> bytes:
  buf = stdio.BytesIO()
  np.lib.format.write_array_header_1_0(
      buf, {"descr": np.dtype(dtype).str, "fortran_order": False,
            "shape": tuple(shape)})
  return buf.getvalue()


def stored(name: str, data: bytes):
  return (name, 0, data, zlib.crc32(data), len(data))


def array(name: str, a) -> tuple:
  buf = stdio.BytesIO()
  np.lib.format.write_array(buf, np.asarray(a), allow_pickle=False)
  return stored(name + ".npy", buf.getvalue())


def meta(kind: str, fields: dict) -> tuple:
  text = json.dumps({"format": "jdlayers", "version": 1, "kind": kind,
                     **fields}).encode()
  return array("__meta__", np.frombuffer(text, np.uint8))


def zeros_member(name: str, prefix: bytes, n_mib: int,
                 declared: int = None) -> tuple:
  """A deflated member: `prefix` then `n_mib` MiB of zeros; `declared` is the
  uncompressed size written in the zip headers (default: the true size).
  The CRC is not computed (a reader should refuse long before checking it).
  """
  c = zlib.compressobj(9, zlib.DEFLATED, -15)
  head = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
  data = head + _zeros_deflate(n_mib) + zlib.compressobj(
      9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)
  size = len(prefix) + n_mib * _MIB if declared is None else declared
  return (name, 8, data, 0, size)


def write_zip(path, members) -> str:
  """Writes a zip by hand (so sizes and data may disagree)."""
  out, central = bytearray(), bytearray()
  for name, method, data, crc, size in members:
    raw = name.encode()
    offset = len(out)
    out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21,
                       crc, len(data), size, len(raw), 0) + raw + data
    central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0,
                           method, 0, 0x21, crc, len(data), size, len(raw),
                           0, 0, 0, 0, 0, offset) + raw
  n = len(members)
  out += central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n,
                               len(central), len(out), 0)
  with open(path, "wb") as f:
    f.write(out)
  return str(path)


# -- configurations (built as JSON: building the objects would allocate) ----
def affine(out_units: int, in_units: int) -> dict:
  import jdlayers as jdl  # pylint: disable=g-import-not-at-top
  return jdl.io.to_config(jdl.Affine(out_units, in_units))


def mlp(widths) -> dict:
  import jdlayers as jdl  # pylint: disable=g-import-not-at-top
  # Layer and network distributions allocate nothing (only a Model, which
  # samples a probe network, would).
  return jdl.io.to_config(jdl.Sequential(*[
      jdl.Affine(o, i) for i, o in zip(widths[:-1], widths[1:])]))


def model(widths, scale: float = 0.1) -> dict:
  import jdlayers as jdl  # pylint: disable=g-import-not-at-top
  return {"class": "models.Model", "config": {
      "network": mlp(widths),
      "likelihood": jdl.io.to_config(jdl.models.Normal(scale=scale))}}


def _mlp_parts(widths):
  out = []
  for k, (i, o) in enumerate(zip(widths[:-1], widths[1:])):
    out += [(f"{k}/weights", (o, i)), (f"{k}/bias", (o,))]
  return out


# -- the crafted files ---------------------------------------------------
GIB_MIB = 3584  # 3.5 GiB of zeros per bomb member


def craft_bomb_declared(path) -> str:
  """A network file whose arrays honestly declare 3.5 GiB of zeros."""
  n = GIB_MIB * _MIB // 12
  head = npy_header((n, 1, 3))
  return write_zip(path, [
      meta("network", {"config": affine(1, 3), "sample_shape": [n],
                       "arrays": ["weights", "bias"]}),
      zeros_member("weights.npy", head, GIB_MIB, declared=len(head) + 12 * n),
      array("bias", np.zeros((n, 1), np.float32)[:0]),
  ])


def craft_bomb_lying(path) -> str:
  """A network file whose 24-byte `weights` member inflates to 3.5 GiB."""
  head = npy_header((1, 2, 3))
  return write_zip(path, [
      meta("network", {"config": affine(2, 3), "sample_shape": [1],
                       "arrays": ["weights", "bias"]}),
      zeros_member("weights.npy", head, GIB_MIB, declared=len(head) + 24),
      array("bias", np.zeros((1, 2), np.float32)),
  ])


def craft_non_npy(path) -> str:
  """A network file with an extra 3.5 GiB non-.npy member."""
  return write_zip(path, [
      meta("network", {"config": affine(2, 3), "sample_shape": [],
                       "arrays": ["weights", "bias"]}),
      array("weights", np.zeros((2, 3), np.float32)),
      array("bias", np.zeros((2,), np.float32)),
      zeros_member("payload.bin", b"", GIB_MIB),
  ])


def craft_surrogate(path, width: int) -> str:
  """A tiny surrogate whose target declares a 2-width-width-1 network."""
  small = _mlp_parts((2, 3, 3, 1))
  variables = [f"{n}/{v}" for n, _ in small for v in
               ("loc", "untransformed_scale")]
  shapes = {f"{n}/{v}": s for n, s in small for v in
            ("loc", "untransformed_scale")}
  return write_zip(path, [
      meta("surrogate", {
          "target": mlp((2, width, width, 1)), "point_mass": None,
          "builders": {}, "default": None,
          "part_names": [n for n, _ in small], "variables": variables,
          "history": None}),
      *[array(v, np.zeros(shapes[v], np.float32)) for v in variables]])


TRACE_FIELDS = ("target_log_prob", "log_accept_ratio", "is_accepted",
                "has_divergence", "num_leapfrog_steps", "step_size")


def result_contents(width: int, tiny_states: bool = True):
  """`(metadata fields, arrays)` of an MCMC result for a 1-width-width-1
  model: with `tiny_states`, states of one number whatever the model says;
  otherwise a valid result."""
  parts = _mlp_parts((1, width, width, 1))
  d, c, w = 2, 2, 1
  fields = {
      "kernel": "hmc", "adaptation": "step_size", "seconds": 1.0,
      "num_results": d, "num_draws": d, "num_chains": c, "num_warmup": w,
      "complete": True, "part_names": [n for n, _ in parts],
      "dtype": "float32", "seed": [0, 1], "diagnostics": None,
      "model": model((1, width, width, 1)), "model_error": None}
  arrays = {f"state_{i}": np.zeros((d, c) + ((1,) if tiny_states else s),
                                   np.float32)
            for i, (_, s) in enumerate(parts)}
  for prefix, steps in (("trace_", d), ("warmup_", w)):
    for f in TRACE_FIELDS:
      shape = (steps,) if f == "step_size" else (steps, c)
      dtype = bool if f in ("is_accepted", "has_divergence") else (
          np.int32 if f == "num_leapfrog_steps" else np.float32)
      arrays[prefix + f] = np.zeros(shape, dtype)
  arrays.update(x=np.zeros((4, 1), np.float32),
                y=np.zeros((4, 1), np.float32), seed=np.zeros(2, np.int32))
  return fields, arrays


def craft_result(path, width: int) -> str:
  """A tiny MCMC result whose model declares a 1-width-width-1 network."""
  fields, arrays = result_contents(width)
  return write_zip(path, [meta("mcmc_result", fields)] + [
      array(k, v) for k, v in arrays.items()])


CRAFTED = {
    "bomb_declared": ("network", craft_bomb_declared),
    "bomb_lying": ("network", craft_bomb_lying),
    "non_npy": ("network", craft_non_npy),
    "surrogate_6000": ("surrogate", lambda p: craft_surrogate(p, 6000)),
    "surrogate_40000": ("surrogate", lambda p: craft_surrogate(p, 40000)),
    "result_6000": ("result", lambda p: craft_result(p, 6000)),
    "result_40000": ("result", lambda p: craft_result(p, 40000)),
}


def craft_all(directory) -> dict:
  return {name: (kind, fn(os.path.join(directory, name + ".jdl.npz")))
          for name, (kind, fn) in CRAFTED.items()}


# -- the runner (in a subprocess, under a memory limit) ---------------------
def _hwm_mib() -> float:
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmHWM:"):
        return int(line.split()[1]) / 1024
  return float("nan")


def _reset_hwm() -> None:
  try:
    with open("/proc/self/clear_refs", "w") as f:
      f.write("5")
  except OSError:
    pass


def run(directory, limit_mib=None, names=None) -> None:
  """Loads each crafted file; prints a JSON line per file."""
  import resource  # pylint: disable=g-import-not-at-top
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  import jdlayers as jdl  # pylint: disable=g-import-not-at-top
  # Warm up TensorFlow (thread pools, kernels) with a normal round trip, so
  # that the limit is measured from a working process.
  net = jdl.Affine(2, 3)
  ok = os.path.join(directory, "normal.jdl.npz")
  jdl.io.save_network(ok, net, net.sample(4, seed=0), overwrite=True)
  _reset_hwm()
  base = _hwm_mib()
  jdl.io.load_network(ok)
  print(json.dumps({"name": "normal", "grew_mib": _hwm_mib() - base}),
        flush=True)
  if limit_mib is not None:
    with open("/proc/self/status") as f:
      vm = next(int(l.split()[1]) // 1024 for l in f
                if l.startswith("VmSize:"))
    limit = (vm + limit_mib) * _MIB
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    print(json.dumps({"name": "limit", "vm_mib": vm,
                      "limit_mib": vm + limit_mib}), flush=True)
  loaders = {"network": jdl.io.load_network,
             "surrogate": jdl.vi.load_surrogate,
             "result": jdl.mcmc.load_result}
  for name, (kind, _) in CRAFTED.items():
    if names and name not in names:
      continue
    path = os.path.join(directory, name + ".jdl.npz")
    _reset_hwm()
    base, t0 = _hwm_mib(), time.time()
    try:
      loaders[kind](path)
      error, etype = None, None
    except Exception as e:  # pylint: disable=broad-except
      error, etype = str(e)[:400], type(e).__name__
    print(json.dumps({"name": name, "file_kib": os.path.getsize(path) / 1024,
                      "error": error, "type": etype,
                      "seconds": time.time() - t0,
                      "grew_mib": _hwm_mib() - base}), flush=True)


if __name__ == "__main__":
  if sys.argv[1] == "craft":
    craft_all(sys.argv[2])
  else:
    run(sys.argv[2], None if sys.argv[3] == "none" else int(sys.argv[3]),
        sys.argv[4:])
