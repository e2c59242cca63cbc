"""examples/keras_bayesian_cnn.py runs end to end with --smoke."""

import importlib.util
import pathlib

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _load(name):
  spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


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
