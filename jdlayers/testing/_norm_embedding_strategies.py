"""Hypothesis strategies that draw valid `Embedding`, `LayerNorm` and
`FilterResponseNorm` cases (`LayerCase`s: layer, input, S, output shape).

#### Example

```python
from hypothesis import given
import jdlayers.testing as jdt

@given(jdt.embedding_configs())
def test_shape(case):
  f = case.dist.sample(case.sample_shape, seed=case.seed)
  assert f(case.x).shape == case.output_shape
```
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import tensorflow as tf
from hypothesis import strategies as st

import jdlayers as jdl
from jdlayers.testing import strategies as _st

__all__ = ["embedding_configs", "filter_response_norm_configs",
           "layer_norm_configs"]


def _common(draw, dtype, sample_shape):
  dtype = draw(_st.dtypes()) if dtype is None else dtype
  s = tuple(draw(_st.sample_shapes()) if sample_shape is None
            else sample_shape)
  b = tuple(draw(_st.batch_shapes(s)))
  seed = draw(st.integers(0, 2 ** 16))
  return dtype, s, b, seed, np.random.default_rng(seed)


def _out(b, s, core) -> Tuple[int, ...]:
  return tuple(np.broadcast_shapes(b, s)) + tuple(core)


@st.composite
def embedding_configs(draw, dtype: Optional[tf.DType] = None,
                      sample_shape: Optional[Tuple[int, ...]] = None):
  """Draws a valid `jdl.Embedding` with integer ids `[*B, N, T]` in range.

  Args:
    draw: Supplied by hypothesis; do not pass.
    dtype: Fix the table dtype (default: drawn).
    sample_shape: Fix `S` (default: drawn from `sample_shapes()`).

  Returns:
    A strategy of `LayerCase` with `kind="embedding"`; `x` holds int32 or
    int64 ids covering the vocabulary's ends.

  #### Example

  ```python
  @given(jdt.embedding_configs(dtype=tf.float64))
  def test(case): ...
  ```
  """
  dtype, s, b, seed, rng = _common(draw, dtype, sample_shape)
  input_dim, output_dim = draw(st.integers(1, 6)), draw(st.integers(1, 4))
  n, t = draw(st.integers(1, 3)), draw(st.integers(1, 4))
  id_dtype = draw(st.sampled_from((np.int32, np.int64)))
  x = rng.integers(0, input_dim, size=b + (n, t)).astype(id_dtype)
  x.flat[0] = input_dim - 1  # The last row is the one an off-by-one misses.
  kwargs = dict(output_dim=output_dim, input_dim=input_dim)
  dist = jdl.Embedding(output_dim, input_dim, dtype)
  return _st.LayerCase("embedding", dist, x, s, b,
                       _out(b, s, (n, t, output_dim)), kwargs, dtype, seed)


@st.composite
def layer_norm_configs(draw, dtype: Optional[tf.DType] = None,
                       sample_shape: Optional[Tuple[int, ...]] = None,
                       random: Optional[bool] = True):
  """Draws a valid `jdl.LayerNorm` with an input `[*B, N, *inner, F]`.

  Covers `rank` 0-2, `center`/`scale` on or off (not both off unless
  `random` is False), epsilons from 1e-5 to 0.1, and inputs of various
  scales and offsets.

  Args:
    draw: Supplied by hypothesis; do not pass.
    dtype: Fix the dtype (default: drawn).
    sample_shape: Fix `S` (default: drawn from `sample_shapes()`).
    random: True (default) for random `gamma`/`beta`, False for the
      parameter-free layer, None to draw it.

  Returns:
    A strategy of `LayerCase` with `kind="layer_norm"`.

  #### Example

  ```python
  @given(jdt.layer_norm_configs(sample_shape=(3,)))
  def test(case): ...
  ```
  """
  dtype, s, b, seed, rng = _common(draw, dtype, sample_shape)
  random = draw(st.booleans()) if random is None else random
  features, rank = draw(st.integers(1, 5)), draw(st.integers(0, 2))
  center = draw(st.booleans())
  scale = draw(st.booleans()) if center or not random else True
  epsilon = draw(st.sampled_from((1e-3, 1e-5, 0.1)))
  kwargs = dict(features=features, epsilon=epsilon, center=center,
                scale=scale, random=random, rank=rank)
  inner = tuple(draw(st.integers(1, 3)) for _ in range(rank))
  n = draw(st.integers(1, 3))
  loc, spread = draw(st.sampled_from(((0., 1.), (3., 0.5), (-1., 4.))))
  x = (loc + spread * rng.standard_normal(b + (n,) + inner + (features,)))
  dist = jdl.LayerNorm(features, dtype, **{k: v for k, v in kwargs.items()
                                          if k != "features"})
  if not random:  # A parameter-free layer keeps the input's leading dims.
    s_out = b
  else:
    s_out = _out(b, s, ())
  return _st.LayerCase("layer_norm", dist, x.astype(dtype.as_numpy_dtype),
                       s, b, s_out + (n,) + inner + (features,), kwargs,
                       dtype, seed)


@st.composite
def filter_response_norm_configs(
    draw, dtype: Optional[tf.DType] = None,
    sample_shape: Optional[Tuple[int, ...]] = None,
    rank: Optional[int] = None):
  """Draws a valid `jdl.FilterResponseNorm` with a fitting input.

  Covers 1-3 spatial dims, both data formats, with and without the TLU.

  Args:
    draw: Supplied by hypothesis; do not pass.
    dtype: Fix the dtype (default: drawn).
    sample_shape: Fix `S` (default: drawn from `sample_shapes()`).
    rank: Fix the number of spatial dims (default: drawn from 1-3).

  Returns:
    A strategy of `LayerCase` with `kind="frn"`.

  #### Example

  ```python
  @given(jdt.filter_response_norm_configs(rank=2))
  def test(case): ...
  ```
  """
  dtype, s, b, seed, rng = _common(draw, dtype, sample_shape)
  rank = draw(st.integers(1, 3)) if rank is None else rank
  channels = draw(st.integers(1, 4))
  data_format = draw(st.sampled_from(("channels_last", "channels_first")))
  kwargs = dict(channels=channels, rank=rank, data_format=data_format,
                tlu=draw(st.booleans()),
                epsilon=draw(st.sampled_from((1e-6, 1e-3))))
  spatial = tuple(draw(st.integers(1, 4)) for _ in range(rank))
  n = draw(st.integers(1, 3))
  core = ((n,) + spatial + (channels,) if data_format == "channels_last"
          else (n, channels) + spatial)
  x = rng.standard_normal(b + core).astype(dtype.as_numpy_dtype)
  dist = jdl.FilterResponseNorm(channels, dtype, **{
      k: v for k, v in kwargs.items() if k != "channels"})
  return _st.LayerCase("frn", dist, x, s, b, _out(b, s, core), kwargs, dtype,
                       seed)
