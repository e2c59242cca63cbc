"""Hypothesis strategies for testing models built with `jdlayers`.

Each strategy draws only valid configurations: a constructed layer (or
`Sequential` network) distribution, an input array that fits it, the sample
shape to draw with and the expected output shape.

#### Example

```python
from hypothesis import given
import jdlayers.testing as jdt

@given(jdt.networks())
def test_network(case):
  fs = case.dist.sample(case.sample_shape, seed=case.seed)
  assert fs(case.x).shape == case.output_shape
```
"""

from jdlayers.testing._attention_strategies import (AttentionCase,
                                                   attention_configs)
from jdlayers.testing._seq_strategies import (RecurrentCase,
                                             recurrent_configs)
from jdlayers.testing._norm_embedding_strategies import (
    embedding_configs, filter_response_norm_configs, layer_norm_configs)
from jdlayers.testing.strategies import (LayerCase, NetworkCase,
                                         affine_configs, batch_shapes,
                                         conv_configs, conv_transpose_configs,
                                         dtypes, layer_configs, networks,
                                         pool_configs, sample_shapes)

__all__ = [
    "embedding_configs", "filter_response_norm_configs", "layer_norm_configs",
    "AttentionCase", "LayerCase", "NetworkCase", "affine_configs",
    "attention_configs", "batch_shapes",
    "conv_configs", "conv_transpose_configs", "dtypes", "layer_configs",
    "networks", "pool_configs", "sample_shapes", "RecurrentCase",
    "recurrent_configs",
]
