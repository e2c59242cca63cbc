"""The examples run end to end (with --smoke) and write their outputs."""

import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

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


def _run_example(name, tmp_path, *args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", MPLBACKEND="Agg")
  proc = subprocess.run(
      [sys.executable, str(EXAMPLES / f"{name}.py"), "--smoke", *args],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


def test_hmc_regression_smoke_writes_png_and_metrics(tmp_path):
  out = tmp_path / "figs"
  stdout = _run_example("hmc_regression", tmp_path, "--out", str(out))
  png = out / "hmc_regression.png"
  assert png.read_bytes()[:8] == PNG_MAGIC
  for needle in ("rhat", "ess_bulk", "test RMSE", "test NLL", f"wrote {png}"):
    assert needle in stdout
  # A rerun keeps the user's figure and writes a numbered one.
  stdout = _run_example("hmc_regression", tmp_path, "--out", str(out))
  assert f"wrote {out / 'hmc_regression-1.png'}" in stdout


def test_hmc_diabetes_smoke_reports_baseline_and_bnn(tmp_path):
  pytest.importorskip("sklearn")
  stdout = _run_example("hmc_diabetes", tmp_path)
  assert "linear regression (OLS predictive)" in stdout
  assert "BNN, NUTS" in stdout and "test NLL" in stdout



def test_vi_digits_cnn_smoke_reports_both_models_and_writes_png(tmp_path):
  pytest.importorskip("sklearn")
  out = tmp_path / "figs"
  out.mkdir()
  user_file = out / "vi_digits_cnn_reliability.png"
  user_file.write_bytes(b"user data")
  stdout = _run_example("vi_digits_cnn", tmp_path, "--out-dir", str(out))
  # The user's file is kept; the figure gets a numbered name.
  assert user_file.read_bytes() == b"user data"
  png = out / "vi_digits_cnn_reliability-1.png"
  assert png.read_bytes()[:8] == PNG_MAGIC
  for needle in ("Bayesian CNN (VI", "deterministic CNN", "test acc",
                 "test NLL", "ECE", f"wrote {png}"):
    assert needle in stdout
  # One table row per model: accuracy %, NLL, ECE %, seconds.
  row = re.compile(r"^(Bayesian CNN \(VI.*\)|deterministic CNN)\s+"
                   r"[\d.]+%\s+[\d.]+\s+[\d.]+%\s+[\d.]+$")
  rows = [l for l in stdout.splitlines() if row.match(l)]
  assert len(rows) == 2, stdout


def test_keras_bayesian_cnn_smoke(tmp_path, capsys):
  demo = _load("keras_bayesian_cnn")
  assert demo.main(["--smoke", "--out-dir", str(tmp_path)]) == 0
  out = capsys.readouterr().out
  png = tmp_path / demo.FIGURE
  assert png.read_bytes()[:8] == PNG_MAGIC
  assert (tmp_path / demo.MODEL_FILE).is_file()
  assert "reloaded model predicts identically" in out
  for name in ("Bayesian CNN (4 draws)", "Keras CNN (deterministic)"):
    assert name in out and "ECE" in out
