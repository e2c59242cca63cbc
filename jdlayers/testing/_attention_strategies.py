"""Hypothesis strategies that draw valid `jdl.MultiHeadAttention` cases.

#### Example

```python
from hypothesis import given
import jdlayers.testing as jdt

@given(jdt.attention_configs())
def test_shape(case):
  f = case.dist.sample(case.sample_shape, seed=case.seed)
  assert f(case.x, **case.call_kwargs).shape == case.output_shape
```
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf
from hypothesis import strategies as st

import jdlayers as jdl
from jdlayers.testing import strategies as _st

__all__ = ["AttentionCase", "attention_configs"]


@dataclasses.dataclass(frozen=True, repr=False)
class AttentionCase(_st.LayerCase):
  """A drawn attention layer with its query `x` and the other call inputs.

  Attributes (besides `LayerCase`'s; `x` is the query `[*B, N, T, in]`):
    value: `[*B, N, Tv, value_in]`, or None for self-attention.
    key: `[*B, N, Tv, key_in]`, or None (the key is the value).
    attention_mask: Boolean `[..., N, T, Tv]` (leading dims broadcast), or
      None.
    use_causal_mask: Whether to call with a causal mask.
    query_mask: Boolean `[*B, N, T]` padding mask of the query, or None.
    value_mask: Boolean `[*B, N, Tv]` padding mask of the value, or None.
    key_mask: Boolean `[*B, N, Tv]` padding mask of the key, or None.
  """
  value: Optional[np.ndarray] = None
  key: Optional[np.ndarray] = None
  attention_mask: Optional[np.ndarray] = None
  use_causal_mask: bool = False
  query_mask: Optional[np.ndarray] = None
  value_mask: Optional[np.ndarray] = None
  key_mask: Optional[np.ndarray] = None

  @property
  def call_kwargs(self) -> Dict[str, Any]:
    """Keyword arguments of the sampled layer's call besides the query."""
    return dict(value=self.value, key=self.key,
                attention_mask=self.attention_mask,
                use_causal_mask=self.use_causal_mask,
                query_mask=self.query_mask, value_mask=self.value_mask,
                key_mask=self.key_mask)

  @property
  def _pads(self):
    return (self.query_mask, self.value_mask, self.key_mask)

  def __repr__(self) -> str:
    shape = lambda a: None if a is None else list(a.shape)
    return (f"AttentionCase({self.kwargs}, S={self.sample_shape}, "
            f"query={list(self.x.shape)}, value={shape(self.value)}, "
            f"key={shape(self.key)}, mask={shape(self.attention_mask)}, "
            f"causal={self.use_causal_mask}, padding masks (q, v, k)="
            f"{[shape(m) for m in self._pads]}, dtype={self.dtype.name}, "
            f"out={list(self.output_shape)})")


@st.composite
def attention_configs(draw, dtype: Optional[tf.DType] = None,
                      sample_shape: Optional[Tuple[int, ...]] = None,
                      cross: Optional[bool] = None,
                      masked: Optional[bool] = None):
  """Draws a valid `jdl.MultiHeadAttention` with matching call inputs.

  Covers 1-3 heads, key/value head sizes 1-4, optional `output_dim`, with
  and without bias, self-attention (only a query) and cross-attention
  (a value of another length and width, and a separate key half of the
  time), boolean masks `[N, T, Tv]`, `[T, Tv]` or `[*B, N, T, Tv]` with
  padding masks of the query, value and key, and causal masks. Sizes are
  small (T, Tv <= 4, N <= 3).

  Args:
    draw: Supplied by hypothesis; do not pass.
    dtype: Fix the dtype (default: drawn from `dtypes()`).
    sample_shape: Fix `S` (default: drawn from `sample_shapes()`).
    cross: Fix cross- (True) or self-attention (False); default drawn.
    masked: Fix whether masks (an `attention_mask`, each padding mask
      half of the time) are drawn; default drawn.

  Returns:
    A strategy of `AttentionCase` with `kind="attention"`; call the sample
    as `f(case.x, **case.call_kwargs)`.

  #### Example

  ```python
  @given(jdt.attention_configs(cross=True))
  def test(case):
    f = case.dist.sample(case.sample_shape, seed=case.seed)
    assert f(case.x, **case.call_kwargs).shape == case.output_shape
  ```
  """
  dtype = draw(_st.dtypes()) if dtype is None else dtype
  s = tuple(draw(_st.sample_shapes()) if sample_shape is None
            else sample_shape)
  b = draw(_st.batch_shapes(s))
  cross = draw(st.booleans()) if cross is None else cross
  masked = draw(st.booleans()) if masked is None else masked
  small = st.integers(1, 4)
  heads, key_dim, input_dim = draw(st.integers(1, 3)), draw(small), \
      draw(small)
  kwargs = dict(num_heads=heads, key_dim=key_dim, input_dim=input_dim,
                use_bias=draw(st.booleans()))
  for opt in ("value_dim", "output_dim"):
    if draw(st.booleans()):
      kwargs[opt] = draw(small)
  n, t = draw(st.integers(1, 3)), draw(small)
  tv, value_in, key_in = t, input_dim, input_dim
  separate_key = False
  if cross:
    tv, value_in = draw(small), draw(small)
    kwargs["value_input_dim"] = value_in
    key_in = value_in
    separate_key = draw(st.booleans())
    if separate_key:
      key_in = draw(small)
      kwargs["key_input_dim"] = key_in
  name_args = {k: v for k, v in kwargs.items()
               if k not in ("num_heads", "key_dim", "input_dim")}
  dist = jdl.MultiHeadAttention(heads, key_dim, input_dim, dtype,
                                **name_args)
  seed = draw(st.integers(0, 2**16))
  rng = np.random.default_rng(seed)
  npdt = dtype.as_numpy_dtype
  x = rng.standard_normal(b + (n, t, input_dim)).astype(npdt)
  value = key = mask = None
  if cross:
    value = rng.standard_normal(b + (n, tv, value_in)).astype(npdt)
    if separate_key:
      key = rng.standard_normal(b + (n, tv, key_in)).astype(npdt)
  pads = {}
  if masked:
    lead = draw(st.sampled_from(((n,), (), b + (n,))))
    mask = rng.uniform(size=lead + (t, tv)) < 0.7
    for arg, length in (("query_mask", t), ("value_mask", tv),
                        ("key_mask", tv)):
      if draw(st.booleans()):
        pads[arg] = rng.uniform(size=b + (n, length)) < 0.7
  out = kwargs.get("output_dim", input_dim)
  out_shape = tuple(np.broadcast_shapes(b, s)) + (n, t, out)
  return AttentionCase("attention", dist, x, s, b, out_shape, kwargs, dtype,
                       seed, value=value, key=key, attention_mask=mask,
                       use_causal_mask=draw(st.booleans()), **pads)
