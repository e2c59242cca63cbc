"""jdlayers: Bayesian neural network layers as TFP joint distributions.

A layer is a `tfd.JointDistributionCoroutine` over its kernel and bias; a
sample of it is a callable layer. See DESIGN.md and the README.
"""

from jdlayers import diagnostics, io, metrics, models, ops, priors
from jdlayers.compose import (Parallel, ParallelLayer, Residual, ResidualLayer,
                              Sequential, SequentialLayer)
from jdlayers.layers import (Affine, AffineLayer, AvgPool1D, AvgPool2D,
                             AvgPool3D, Conv, Conv1D, Conv2D, Conv3D,
                             ConvLayer, ConvTranspose, ConvTranspose1D,
                             ConvTranspose2D, ConvTranspose3D,
                             ConvTransposeLayer, Dense, Embedding,
                             EmbeddingLayer, Flatten, FlattenLayer,
                             Lambda, LambdaLayer, LayerDistribution, MaxPool1D,
                             MaxPool2D, MaxPool3D, MultiHeadAttention,
                             MultiHeadAttentionLayer, Pool, PoolLayer,
                             SampledLayer, StaticLayer)
from jdlayers.layers import (GRU, LSTM, Bidirectional, BidirectionalLayer,
                             GRULayer, LSTMLayer)
from jdlayers.layers import (FilterResponseNorm, FilterResponseNormLayer,
                             LayerNorm, LayerNormLayer)
from jdlayers._state import event_space_bijectors
from jdlayers.inference import laplace, mcmc, vi

__version__ = "0.1.0"

__all__ = [
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


def __getattr__(name):
  # `jdlayers.keras` imports Keras 3; load it on first use only, so that
  # `import jdlayers` stays as light as TensorFlow Probability.
  if name == "keras":
    import importlib  # pylint: disable=g-import-not-at-top
    return importlib.import_module("jdlayers.keras")
  raise AttributeError(f"module 'jdlayers' has no attribute {name!r}")
