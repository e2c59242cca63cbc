"""The examples run end to end (with --smoke) and write their outputs."""

import importlib.util
import os
import pathlib
import subprocess
import sys

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _load(name):
  spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_prior_predictive_smoke_writes_png(tmp_path):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", MPLBACKEND="Agg")
  out = tmp_path / "figs"
  proc = subprocess.run(
      [sys.executable, str(EXAMPLES / "prior_predictive.py"), "--smoke",
       "--out", str(out)],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  png = out / "prior_predictive.png"
  assert png.read_bytes()[:8] == PNG_MAGIC
  assert f"wrote {png}" in proc.stdout
  assert "[4, 3, 10]" in proc.stdout  # S=4 CNNs applied to N=3 images


def test_prior_predictive_never_overwrites_without_flag(tmp_path):
  demo = _load("prior_predictive")
  assert demo.free_path(tmp_path, False) == tmp_path / "prior_predictive.png"
  (tmp_path / "prior_predictive.png").write_bytes(b"user data")
  (tmp_path / "prior_predictive-1.png").write_bytes(b"user data")
  assert demo.free_path(tmp_path, False) == tmp_path / "prior_predictive-2.png"
  assert demo.free_path(tmp_path, True) == tmp_path / "prior_predictive.png"
