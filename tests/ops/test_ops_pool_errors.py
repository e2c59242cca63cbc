"""3-D pooling in float64 has no CPU kernel: a clear error, not a TF trace."""

import numpy as np
import pytest

import jdlayers as jdl


def test_float64_pool3d_raises_clear_type_error():
  x = np.zeros([2, 4, 4, 4, 1])
  with pytest.raises(TypeError, match=r"MaxPool3D.*float64 3-D pooling"):
    jdl.MaxPool3D(2).sample()(x)
