"""Helpers shared by the examples and benchmarks: a quiet TensorFlow start,
output paths that never clobber, bundled data."""

from __future__ import annotations

import os
import pathlib
import re
import sys
import tempfile
import warnings

import numpy as np

DATA = pathlib.Path(__file__).resolve().parent / "data"

# INFO lines that TensorFlow's native libraries print while they load, before
# absl logging is initialised, so that TF_CPP_MIN_LOG_LEVEL cannot hide them
# (oneDNN notice, "Could not find cuda drivers"): e.g.
# "I0000 00:00:1795914748.056766    3114 port.cc:153] oneDNN custom ...".
_LOAD_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|I\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] )")


def quiet_start(tf32: bool = False):
  """Imports TensorFlow and TFP without their start-up log lines; returns tf.

  Call it before anything else imports TensorFlow. It sets
  `TF_CPP_MIN_LOG_LEVEL=3` (which hides native ERROR lines such as the
  CPU-only machine's "failed call to cuInit") unless the user set a level,
  and drops the INFO lines the native libraries print while loading, which
  the level does not reach, whenever the level hides INFO (1 or more). Every
  other line printed during the import (a real warning or error) is passed
  on. With `TF_CPP_MIN_LOG_LEVEL=0` nothing is filtered. If TensorFlow is
  already loaded, it changes nothing.

  Args:
    tf32: whether to keep TensorFloat-32 matmuls on Ampere+ GPUs. Off by
      default: MCMC and small float32 models want full float32 precision
      (TFP warns about TF32 for that reason), and turning it off before TFP
      loads is what keeps that warning from firing. No effect on CPUs.

  Returns:
    The `tensorflow` module.
  """
  if "tensorflow" in sys.modules:
    # Imported by the caller (a test importing an example, a notebook): too
    # late to filter, and its process-wide settings are the caller's.
    return sys.modules["tensorflow"]
  level = os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  if level.strip() in ("", "0"):
    return _import_tf(tf32)  # the user asked for INFO lines
  sys.stderr.flush()
  saved = os.dup(2)
  ok = False
  # The lines come from C++ straight to file descriptor 2, so the descriptor
  # itself is redirected while the libraries load.
  with tempfile.TemporaryFile() as tmp:
    os.dup2(tmp.fileno(), 2)
    try:
      tf = _import_tf(tf32)
      ok = True
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      tmp.seek(0)
      for line in tmp.read().decode("utf-8", "replace").splitlines(True):
        if not (ok and _LOAD_NOISE.match(line)):
          sys.stderr.write(line)
  return tf


def _import_tf(tf32: bool):
  """Imports tf (and TFP, which loads a second copy of the native logging),
  with absl's Python logging at ERROR and TF32 as asked."""
  # Imported here, not at the top: quiet_start must redirect stderr first.
  import absl.logging  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  absl.logging.set_verbosity(absl.logging.ERROR)
  tf.get_logger().setLevel("ERROR")
  if not tf32:
    tf.config.experimental.enable_tensor_float_32_execution(False)
  else:
    warnings.filterwarnings("ignore", message="TensorFloat-32")
  import tensorflow_probability  # pylint: disable=g-import-not-at-top,unused-import
  return tf


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
