"""Runs Python snippets in subprocesses with logical CPU devices or as workers.

Logical devices must be configured before TensorFlow initialises, and a
`MultiWorkerMirroredStrategy` reads `TF_CONFIG` once per process, so every
distributed test runs its code in fresh processes. Each snippet prints one
line `JSON: {...}` with its results; the helpers return that dict. Every
process is bounded by a timeout and killed (its whole process group) on any
exit path.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import textwrap
import time
from typing import List

ROOT = pathlib.Path(__file__).resolve().parents[2]

# Prepended to every snippet: quiet TF, `num_devices` logical CPUs, imports.
PRELUDE = """
import json, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import tensorflow as tf
tf.get_logger().setLevel("ERROR")
_n = {num_devices}
if _n > 1:
  _cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(
      _cpu, [tf.config.LogicalDeviceConfiguration()] * _n)
import jdlayers as jdl

def emit(**kw):
  print("JSON: " + json.dumps(kw), flush=True)
"""


def _env(extra=None):
  env = dict(os.environ)
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
  env.update(extra or {})
  return env


def _start(code: str, num_devices: int, env=None) -> subprocess.Popen:
  src = PRELUDE.format(num_devices=int(num_devices)) + textwrap.dedent(code)
  return subprocess.Popen(
      [sys.executable, "-c", src], cwd=str(ROOT), env=_env(env),
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      start_new_session=True)  # its own group: killpg reaches its children


def _kill(proc: subprocess.Popen) -> None:
  if proc.poll() is None:
    try:
      os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
      pass
  proc.wait()


def _parse(proc, out: str, err: str) -> dict:
  lines = [l for l in out.splitlines() if l.startswith("JSON: ")]
  if proc.returncode != 0 or not lines:
    raise AssertionError(f"subprocess failed (rc={proc.returncode}):\n"
                         f"stdout:\n{out[-3000:]}\nstderr:\n{err[-5000:]}")
  return json.loads(lines[-1][len("JSON: "):])


def run_snippet(code: str, num_devices: int = 1, timeout: float = 240,
                env=None) -> dict:
  """Runs `code` with `num_devices` logical CPUs; returns its `emit` dict."""
  proc = _start(code, num_devices, env)
  try:
    out, err = proc.communicate(timeout=timeout)
  except subprocess.TimeoutExpired:
    _kill(proc)
    raise AssertionError(f"subprocess timed out after {timeout} s")
  finally:
    _kill(proc)
  return _parse(proc, out, err)


def free_ports(n: int) -> List[int]:
  """`n` distinct free TCP ports on 127.0.0.1."""
  socks = []
  try:
    for _ in range(n):
      s = socket.socket()
      s.bind(("127.0.0.1", 0))
      socks.append(s)
    return [s.getsockname()[1] for s in socks]
  finally:
    for s in socks:
      s.close()


def run_workers(code: str, num_workers: int = 2,
                timeout: float = 240) -> List[dict]:
  """Runs `code` as `num_workers` workers of one cluster on 127.0.0.1.

  Each gets `TF_CONFIG` (cluster of all workers, its own task index), as
  `MultiWorkerMirroredStrategy` documents. Returns each worker's dict, in
  task order; kills every worker on timeout or failure.
  """
  ports = free_ports(num_workers)
  cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
  procs = [_start(code, 1, {"TF_CONFIG": json.dumps(
      {"cluster": cluster, "task": {"type": "worker", "index": i}})})
           for i in range(num_workers)]
  deadline = time.monotonic() + timeout
  results = []
  try:
    for proc in procs:
      left = max(1.0, deadline - time.monotonic())
      try:
        out, err = proc.communicate(timeout=left)
      except subprocess.TimeoutExpired:
        raise AssertionError(f"worker timed out after {timeout} s")
      results.append(_parse(proc, out, err))
  finally:
    for proc in procs:
      _kill(proc)
  return results
