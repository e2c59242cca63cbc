"""Pure tensor math: batched dense/conv/conv-transpose/pool for any rank.

No distributions and no variables live here; the layers in `jdlayers.layers`
call these ops with sampled parameters.
"""

from jdlayers.ops._attention import multi_head_attention
from jdlayers.ops._args import (activation_name, check_strides_dilations,
                                get_activation, normalize_data_format,
                                normalize_padding, normalize_tuple,
                                positive_int)
from jdlayers.ops._conv import IMPLS, conv, conv_transpose
from jdlayers.ops._dense import dense
from jdlayers.ops._embedding import embedding_lookup
from jdlayers.ops._norm import filter_response_norm, layer_norm
from jdlayers.ops._perturbed import Perturbed, linear, signs
from jdlayers.ops._pool import pool
from jdlayers.ops._recurrent import gru, lstm
from jdlayers.ops._shapes import (broadcast_batch_shape, check_input,
                                  conv_output_length,
                                  conv_transpose_output_length)

__all__ = [
    "IMPLS", "activation_name", "broadcast_batch_shape", "check_input",
    "check_strides_dilations", "conv", "conv_output_length", "conv_transpose",
    "conv_transpose_output_length", "dense", "embedding_lookup",
    "filter_response_norm", "get_activation", "gru", "layer_norm", "lstm",
    "multi_head_attention",
    "normalize_data_format", "normalize_padding", "normalize_tuple",
    "Perturbed", "linear", "pool", "positive_int", "signs",
]
