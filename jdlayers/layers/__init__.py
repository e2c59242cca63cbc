"""Layer distributions (one module per op family) and their sampled types."""

from jdlayers.layers._base import LayerDistribution, SampledLayer, StaticLayer
from jdlayers.layers.affine import Affine, AffineConfig, AffineLayer, Dense
from jdlayers.layers.attention import (AttentionConfig, MultiHeadAttention,
                                       MultiHeadAttentionLayer)
from jdlayers.layers.conv import (Conv, Conv1D, Conv2D, Conv3D, ConvConfig,
                                  ConvLayer)
from jdlayers.layers.embedding import (Embedding, EmbeddingConfig,
                                       EmbeddingLayer)
from jdlayers.layers.conv_transpose import (ConvTranspose, ConvTranspose1D,
                                            ConvTranspose2D, ConvTranspose3D,
                                            ConvTransposeLayer)
from jdlayers.layers.bidirectional import (Bidirectional,
                                           BidirectionalConfig,
                                           BidirectionalLayer)
from jdlayers.layers.recurrent import (GRU, LSTM, GRULayer, LSTMLayer,
                                       Recurrent, RecurrentConfig,
                                       RecurrentLayer)
from jdlayers.layers.norm import (FilterResponseNorm,
                                  FilterResponseNormLayer, FixedLayerNorm,
                                  FixedLayerNormLayer, LayerNorm,
                                  LayerNormLayer, NormConfig)
from jdlayers.layers.static import (AvgPool1D, AvgPool2D, AvgPool3D, Flatten,
                                    FlattenLayer, Lambda, LambdaLayer,
                                    MaxPool1D, MaxPool2D, MaxPool3D, Pool,
                                    PoolLayer)

__all__ = [
    "FilterResponseNorm", "FilterResponseNormLayer", "FixedLayerNorm",
    "FixedLayerNormLayer", "LayerNorm", "LayerNormLayer", "NormConfig",
    "Affine", "AffineConfig", "AffineLayer", "AttentionConfig", "AvgPool1D",
    "AvgPool2D",
    "AvgPool3D", "Conv", "Conv1D", "Conv2D", "Conv3D", "ConvConfig",
    "ConvLayer", "ConvTranspose", "ConvTranspose1D", "ConvTranspose2D",
    "ConvTranspose3D", "ConvTransposeLayer", "Dense", "Embedding",
    "EmbeddingConfig", "EmbeddingLayer", "Flatten",
    "FlattenLayer", "Lambda", "LambdaLayer", "LayerDistribution", "MaxPool1D",
    "MaxPool2D", "MaxPool3D", "MultiHeadAttention",
    "MultiHeadAttentionLayer", "Pool", "PoolLayer", "SampledLayer",
    "StaticLayer", "Bidirectional", "BidirectionalConfig",
    "BidirectionalLayer", "GRU", "GRULayer", "LSTM", "LSTMLayer", "Recurrent",
    "RecurrentConfig", "RecurrentLayer",
]
