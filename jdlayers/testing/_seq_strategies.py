"""Hypothesis strategies that draw valid `jdl.LSTM`, `GRU` and
`Bidirectional` cases.

#### Example

```python
from hypothesis import given
import jdlayers.testing as jdt

@given(jdt.recurrent_configs())
def test_shape(case):
  f = case.dist.sample(case.sample_shape, seed=case.seed)
  assert f(case.x, **case.call_kwargs).shape == case.output_shape
```
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from hypothesis import strategies as st

import jdlayers as jdl
from jdlayers.testing import strategies as _st

__all__ = ["RecurrentCase", "RECURRENT_KINDS", "recurrent_configs"]

RECURRENT_KINDS = ("lstm", "gru", "bidirectional")


@dataclasses.dataclass(frozen=True, repr=False)
class RecurrentCase(_st.LayerCase):
  """A drawn recurrent layer with its sequences `x` and optional mask.

  Attributes (besides `LayerCase`'s; `x` is `[*B, N, T, input_size]`, and
  `kwargs` holds the constructor arguments, for a `Bidirectional` the inner
  layer's plus `merge_mode`):
    mask: Boolean `[*B', N, T]` (leading dims broadcast), or None.
  """
  mask: Optional[np.ndarray] = None

  @property
  def call_kwargs(self) -> Dict[str, Any]:
    """Keyword arguments of the sampled layer's call besides `x`."""
    return dict(mask=self.mask)

  def __repr__(self) -> str:
    mask = None if self.mask is None else list(self.mask.shape)
    return (f"RecurrentCase({self.kind}, {self.kwargs}, S={self.sample_shape}"
            f", x={list(self.x.shape)}, mask={mask}, dtype={self.dtype.name}"
            f", out={list(self.output_shape)})")


@st.composite
def recurrent_configs(draw, kinds: Sequence[str] = RECURRENT_KINDS,
                      dtype: Optional[tf.DType] = None,
                      sample_shape: Optional[Tuple[int, ...]] = None,
                      masked: Optional[bool] = None):
  """Draws a valid `jdl.LSTM`, `jdl.GRU` or `jdl.Bidirectional` with inputs.

  Covers units and input sizes 1-3, T 1-4, N 1-3, `return_sequences`,
  `go_backwards`, `use_bias`, activations, both GRU `reset_after`
  settings, every `merge_mode` but None, `zero_output_for_mask`, and
  boolean masks `[N, T]` or `[*B, N, T]`.

  Args:
    draw: Supplied by hypothesis; do not pass.
    kinds: Subset of ("lstm", "gru", "bidirectional").
    dtype: Fix the dtype (default: drawn from `dtypes()`).
    sample_shape: Fix `S` (default: drawn from `sample_shapes()`).
    masked: Fix whether a mask is drawn (default: drawn).

  Returns:
    A strategy of `RecurrentCase`; call the sample as
    `f(case.x, **case.call_kwargs)`.

  Raises:
    ValueError: For an unknown kind.

  #### Example

  ```python
  @given(jdt.recurrent_configs(kinds=("gru",), masked=True))
  def test(case):
    f = case.dist.sample(case.sample_shape, seed=case.seed)
    assert f(case.x, **case.call_kwargs).shape == case.output_shape
  ```
  """
  bad = [k for k in kinds if k not in RECURRENT_KINDS]
  if bad or not kinds:
    raise ValueError(f"recurrent_configs: unknown kinds {bad or kinds}; "
                     f"expected a non-empty subset of {list(RECURRENT_KINDS)}.")
  kind = draw(st.sampled_from(tuple(kinds)))
  dtype = draw(_st.dtypes()) if dtype is None else dtype
  s = tuple(draw(_st.sample_shapes()) if sample_shape is None
            else sample_shape)
  b = draw(_st.batch_shapes(s))
  masked = draw(st.booleans()) if masked is None else masked
  units, input_size = draw(st.integers(1, 3)), draw(st.integers(1, 3))
  n, t = draw(st.integers(1, 3)), draw(st.integers(1, 4))
  cell = kind if kind != "bidirectional" else draw(
      st.sampled_from(("lstm", "gru")))
  kwargs = dict(
      use_bias=draw(st.booleans()),
      activation=draw(st.sampled_from(("tanh", "relu", None))),
      recurrent_activation=draw(st.sampled_from(("sigmoid", "tanh"))),
      return_sequences=draw(st.booleans()))
  if kind != "bidirectional":
    kwargs.update(go_backwards=draw(st.booleans()),
                  zero_output_for_mask=draw(st.booleans()))
  if cell == "gru":
    kwargs["reset_after"] = draw(st.booleans())
  else:
    kwargs["unit_forget_bias"] = draw(st.booleans())
  cls = jdl.LSTM if cell == "lstm" else jdl.GRU
  dist = cls(units, input_size, dtype, **kwargs)
  out_units = units
  if kind == "bidirectional":
    merge_mode = draw(st.sampled_from(("concat", "sum", "mul", "ave")))
    dist = jdl.Bidirectional(dist, merge_mode=merge_mode)
    kwargs["merge_mode"] = merge_mode
    out_units = 2 * units if merge_mode == "concat" else units
  kwargs.update(units=units, input_size=input_size, cell=cell)
  seed = draw(st.integers(0, 2**16))
  x = _st._input(seed, b + (n, t, input_size), dtype)  # pylint: disable=protected-access
  mask = None
  if masked:
    lead = draw(st.sampled_from(((), b)))
    rng = np.random.default_rng(seed + 1)
    mask = rng.random(lead + (n, t)) < 0.7
  core = (n, t, out_units) if kwargs["return_sequences"] else (n, out_units)
  out = tuple(np.broadcast_shapes(b, s)) + core
  return RecurrentCase(kind, dist, x, s, b, out, kwargs, dtype, seed,
                       mask=mask)
