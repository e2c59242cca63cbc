"""examples/sequence_uncertainty.py runs end to end (--smoke) and writes its
figures without replacing a user's file."""

import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Start-up lines a quiet example must not print (see test_examples.py).
NOISE = ("absl::InitializeLog", "I0000", "E0000", "cuInit", "TensorFloat-32",
         "WARNING:absl")


def _load():
  sys.path.insert(0, str(EXAMPLES))
  spec = importlib.util.spec_from_file_location(
      "sequence_uncertainty", EXAMPLES / "sequence_uncertainty.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_sequence_uncertainty_smoke_prints_table_and_keeps_user_figure(
    tmp_path):
  pytest.importorskip("sklearn")
  pytest.importorskip("matplotlib")
  out = tmp_path / "figs"
  out.mkdir()
  user_file = out / "sequence_uncertainty_reliability.png"
  user_file.write_bytes(b"user data")
  # As a user runs it: no TF_CPP_MIN_LOG_LEVEL (conftest sets one for us).
  env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
  env["MPLBACKEND"] = "Agg"
  proc = subprocess.run(
      [sys.executable, str(EXAMPLES / "sequence_uncertainty.py"), "--smoke",
       "--out-dir", str(out)],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  noisy = [l for l in proc.stderr.splitlines() if any(n in l for n in NOISE)]
  assert not noisy, noisy
  stdout = proc.stdout
  # The user's figure is kept; the new one gets a numbered name.
  assert user_file.read_bytes() == b"user data"
  for png in (out / "sequence_uncertainty_reliability-1.png",
              out / "sequence_uncertainty_ood.png"):
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert f"wrote {png}" in stdout
  # One row per method: acc %, NLL, ECE %, Brier, two AUROCs, seconds.
  row = re.compile(r"^(deterministic|MAP|VI \(.*\)|HMC \(ChEES\))\s+"
                   + r"\s+".join([r"[\d.]+"] * 7) + "$")
  methods = [l.split("  ")[0] for l in stdout.splitlines() if row.match(l)]
  assert methods == ["deterministic", "MAP", "VI (ELBO)",
                     "VI (MAP start, KL x0.03)", "HMC (ChEES)"], stdout
  assert "HMC: 2 chains x 4 draws" in stdout


def test_sequences_and_shifted_sets():
  pytest.importorskip("sklearn")
  demo = _load()
  x_tr, y_tr, x_te, y_te = demo.load_sequences()
  assert x_tr.shape == (1347, 8, 8) and x_te.shape == (450, 8, 8)
  assert y_tr.shape == (1347,) and set(np.unique(y_te)) == set(range(10))
  ood = demo.ood_sets(x_te, 0)
  # Column-read digits: the step-t input is column t of the image.
  np.testing.assert_array_equal(ood["columns"][:, 3, 5], x_te[:, 5, 3])
  assert ood["noise"].shape == x_te.shape
  assert 0. <= ood["noise"].min() and ood["noise"].max() <= 1.
