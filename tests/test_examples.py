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


# What a CPU-only machine printed on every run before examples/_common.py's
# quiet_start: native load INFO lines, cuInit errors, TFP's TF32 warning.
NOISE = ("absl::InitializeLog", "I0000", "E0000", "cuInit", "TensorFloat-32",
         "WARNING:absl")


def _run_example(name, tmp_path, *args, env_update=None):
  # As a user runs it: no TF_CPP_MIN_LOG_LEVEL (conftest sets one for us).
  env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
  env.update(MPLBACKEND="Agg", **(env_update or {}))
  proc = subprocess.run(
      [sys.executable, str(EXAMPLES / f"{name}.py"), "--smoke", *args],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  # The examples start quietly: stderr holds only the samplers' progress.
  noisy = [l for l in proc.stderr.splitlines() if any(n in l for n in NOISE)]
  assert not noisy, noisy
  return proc.stdout


def test_hmc_regression_smoke_writes_png_and_metrics(tmp_path):
  out = tmp_path / "figs"
  stdout = _run_example("hmc_regression", tmp_path, "--out", str(out))
  png = out / "hmc_regression.png"
  assert png.read_bytes()[:8] == PNG_MAGIC
  for needle in ("compiling the sampler", "rhat", "ess_bulk",
                 "Convergence, judged on the function",
                 "inside the training data", "in the gap without data",
                 "held-out points", "test RMSE", "test NLL", f"wrote {png}"):
    assert needle in stdout
  # A rerun keeps the user's figure and writes a numbered one.
  stdout = _run_example("hmc_regression", tmp_path, "--out", str(out))
  assert f"wrote {out / 'hmc_regression-1.png'}" in stdout


def test_hmc_diabetes_smoke_reports_baseline_and_bnn(tmp_path):
  pytest.importorskip("sklearn")
  out = tmp_path / "figs"
  out.mkdir()
  (out / "hmc_diabetes.png").write_bytes(b"user data")
  stdout = _run_example("hmc_diabetes", tmp_path, "--out", str(out))
  assert "linear regression (OLS predictive)" in stdout
  assert "BNN, NUTS" in stdout and "test NLL" in stdout
  # The user's file is kept; the figure gets a numbered name.
  assert (out / "hmc_diabetes.png").read_bytes() == b"user data"
  png = out / "hmc_diabetes-1.png"
  assert png.read_bytes()[:8] == PNG_MAGIC and f"wrote {png}" in stdout


def test_binomial_band_of_hmc_regression():
  demo = _load("hmc_regression")
  # Binomial(80, 0.9): P(X < 62) and P(X > 79) are each below 0.0005, and
  # the band is the tightest such: P(X < 63), P(X > 78) exceed it.
  lo, hi = demo.binomial_band(80, 0.9)
  assert (lo, hi) == (62 / 80, 79 / 80)



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
  assert len(rows) == 3, stdout  # ELBO, MOPED-started VI, deterministic


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


def test_uncertainty_study_smoke_prints_every_seed_and_medians(tmp_path):
  pytest.importorskip("sklearn")
  stdout = _run_example("uncertainty_study", tmp_path)
  demo = _load("uncertainty_study")
  for variant in demo.VARIANTS:
    assert re.search(rf"^{re.escape(variant)}\s+0\s+[\d.]+\s+[\d.]+\s+"
                     r"[\d.]+\s+[\d.]+\s+(-|yes|no)$", stdout, re.M), variant
    assert re.search(rf"^{re.escape(variant)}\s+med\s", stdout, re.M), variant


def test_uncertainty_demo_smoke_prints_table_and_keeps_user_figures(
    tmp_path):
  pytest.importorskip("sklearn")
  out = tmp_path / "figs"
  out.mkdir()
  demo = _load("uncertainty_demo")
  user_file = out / demo.FIGURES["reliability"]
  user_file.write_bytes(b"user data")
  stdout = _run_example("uncertainty_demo", tmp_path, "--out-dir", str(out))
  assert user_file.read_bytes() == b"user data"
  for key, name in demo.FIGURES.items():
    png = out / (name.replace(".png", "-1.png") if key == "reliability"
                 else name)
    assert png.read_bytes()[:8] == PNG_MAGIC and f"wrote {png}" in stdout
  assert "training the deterministic CNN" in stdout  # says what it fits
  # One row per method: acc %, NLL, ECE %, Brier, then AUROC and FPR@95
  # for the rotated digits and for the noise images.
  row = re.compile(r"^(deterministic CNN|VI \(.*\)|Laplace \(.*\))\s+"
                   + r"\s+".join([r"[\d.]+"] * 8) + "$")
  rows = [l for l in stdout.splitlines() if row.match(l)]
  assert len(rows) == 4, stdout
