"""The examples' calibration and OOD figures (examples/_calibration.py)."""

import importlib.util
import pathlib

import numpy as np
import pytest

import jdlayers as jdl

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _load():
  spec = importlib.util.spec_from_file_location(
      "_calibration", EXAMPLES / "_calibration.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


cal = _load()

# Four examples, three classes. Top-label confidences 0.9, 0.6, 0.55, 0.4;
# predictions 0, 1, 2, 2; labels 0, 0, 2, 1 -> right, wrong, right, wrong.
# (The numbers themselves are tested in tests/metrics/.)
PROBS = np.array([[0.90, 0.05, 0.05],
                  [0.30, 0.60, 0.10],
                  [0.25, 0.20, 0.55],
                  [0.30, 0.30, 0.40]])
LABELS = np.array([0, 0, 2, 1])


def test_reliability_diagram_writes_png(tmp_path):
  rng = np.random.default_rng(1)
  probs = rng.dirichlet(np.ones(5), size=300)
  labels = rng.integers(0, 5, size=300)
  sharp = probs ** 2 / (probs ** 2).sum(1, keepdims=True)
  path = cal.reliability_diagram({"a": (probs, labels), "b": (sharp, labels)},
                                 tmp_path / "rel.png")
  assert path.read_bytes()[:8] == PNG_MAGIC


def test_merge_sparse_bins_by_hand():
  # Ten bins; counts 0,0,0,1,0,2,0,0,1,0 (PROBS above). min_count 2:
  # {bin 3, bin 5} -> 3 examples, then {bin 8} is short and joins it.
  r = jdl.metrics.reliability(PROBS, LABELS, num_bins=10)
  m = cal.merge_sparse_bins(r, 2)
  np.testing.assert_array_equal(m["count"], [4])
  np.testing.assert_allclose(m["edges"], [0.3, 0.9])
  np.testing.assert_allclose(m["confidence"], [(0.4 + 0.6 + 0.55 + 0.9) / 4])
  np.testing.assert_allclose(m["accuracy"], [0.5])
  # min_count 1 keeps every non-empty bin, each with its own edges.
  m = cal.merge_sparse_bins(r, 1)
  np.testing.assert_array_equal(m["count"], [1, 2, 1])
  # Empty bins join the group on their right.
  np.testing.assert_allclose(m["edges"], [0.3, 0.4, 0.6, 0.9])
  np.testing.assert_allclose(m["accuracy"], [0., 0.5, 1.])


def test_merged_bins_equal_reliability_on_the_wider_bins():
  # Two classes: top-label confidences in (0.5, 1], i.e. the upper ten of 20
  # bins. Bins alternately hold 3 and 5 examples, so with min_count 6 every
  # merged bin is one pair of fine bins: exactly the 10-bin reliability.
  rng = np.random.default_rng(2)
  conf, labels = [], []
  for m in range(10, 20):
    n = 3 if m % 2 == 0 else 5
    conf += list(rng.uniform(m / 20 + 1e-6, (m + 1) / 20, size=n))
    labels += list(rng.integers(0, 2, size=n))
  conf = np.asarray(conf)
  probs = np.stack([conf, 1 - conf], axis=1)
  fine = jdl.metrics.reliability(probs, labels, num_bins=20)
  coarse = jdl.metrics.reliability(probs, labels, num_bins=10)
  m = cal.merge_sparse_bins(fine, 6)
  np.testing.assert_array_equal(m["count"], coarse["count"][5:])
  np.testing.assert_allclose(m["edges"], coarse["edges"][5:])
  np.testing.assert_allclose(m["confidence"], coarse["confidence"][5:])
  np.testing.assert_allclose(m["accuracy"], coarse["accuracy"][5:])


def test_merge_sparse_bins_rejects_bad_min_count():
  r = jdl.metrics.reliability(PROBS, LABELS, num_bins=10)
  with pytest.raises(ValueError, match="min_count"):
    cal.merge_sparse_bins(r, 0)


def test_reliability_diagram_takes_draws(tmp_path):
  # [S, N, K] draws are drawn as their predictive mean, via jdl.metrics.
  rng = np.random.default_rng(3)
  draws = rng.dirichlet(np.ones(4), size=(5, 200))
  labels = rng.integers(0, 4, size=200)
  path = cal.reliability_diagram({"draws": (draws, labels)},
                                 tmp_path / "rel.png")
  assert path.read_bytes()[:8] == PNG_MAGIC
  with pytest.raises(ValueError, match="metrics.reliability: `labels`"):
    cal.reliability_diagram({"bad": (draws, labels[:3])}, tmp_path / "x.png")


def test_ood_histogram_writes_png(tmp_path):
  rng = np.random.default_rng(4)
  path = cal.ood_histogram(
      {"a": (rng.normal(size=300), rng.normal(1., size=100)),
       "constant": (np.zeros(5), np.zeros(5))}, tmp_path / "ood.png")
  assert path.read_bytes()[:8] == PNG_MAGIC
  with pytest.raises(ValueError, match="metrics.ood_auroc: `scores_out` is "
                     "empty"):
    cal.ood_histogram({"a": ([0.], [])}, tmp_path / "bad.png")
