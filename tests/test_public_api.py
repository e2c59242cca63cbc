"""Pins the public surface: `jdlayers.__all__` changes only on purpose.

Adding a public name? Add it to `EXPECTED` below in the same change.
"""

import importlib

import jdlayers

EXPECTED = [
    "Affine", "AffineLayer", "AvgPool1D", "AvgPool2D", "AvgPool3D",
    "Bidirectional", "BidirectionalLayer", "Conv", "Conv1D", "Conv2D",
    "Conv3D", "ConvLayer", "ConvTranspose",
    "ConvTranspose1D", "ConvTranspose2D", "ConvTranspose3D",
    "ConvTransposeLayer", "Dense", "Embedding", "EmbeddingLayer",
    "FilterResponseNorm", "FilterResponseNormLayer", "Flatten",
    "FlattenLayer", "GRU", "GRULayer", "LSTM", "LSTMLayer", "Lambda",
    "LambdaLayer", "LayerDistribution", "LayerNorm", "LayerNormLayer",
    "MaxPool1D", "MaxPool2D", "MaxPool3D",
    "MultiHeadAttention", "MultiHeadAttentionLayer", "Parallel",
    "ParallelLayer", "Pool", "PoolLayer", "Residual",
    "ResidualLayer", "SampledLayer", "Sequential", "SequentialLayer",
    "StaticLayer", "__version__", "diagnostics", "event_space_bijectors", "io",
    "keras", "laplace", "mcmc", "metrics", "models", "ops", "priors", "vi",
]


def test_all_is_pinned():
  assert sorted(jdlayers.__all__) == EXPECTED


def test_all_has_no_duplicates():
  assert len(set(jdlayers.__all__)) == len(jdlayers.__all__)


def test_every_name_exists():
  missing = [n for n in jdlayers.__all__ if not hasattr(jdlayers, n)]
  assert not missing


def test_star_import_gives_exactly_all():
  namespace = {}
  exec("from jdlayers import *", namespace)  # pylint: disable=exec-used
  names = sorted(n for n in namespace if n != "__builtins__")
  assert names == EXPECTED


def test_version_is_a_string():
  assert isinstance(jdlayers.__version__, str)
  parts = jdlayers.__version__.split(".")
  assert len(parts) >= 2 and all(p.isdigit() for p in parts[:2])


def test_dense_is_affine():
  assert jdlayers.Dense is jdlayers.Affine


def test_priors_all_exist():
  for name in jdlayers.priors.__all__:
    assert hasattr(jdlayers.priors, name)


def test_testing_subpackage_importable():
  testing = importlib.import_module("jdlayers.testing")
  for name in testing.__all__:
    assert hasattr(testing, name)
