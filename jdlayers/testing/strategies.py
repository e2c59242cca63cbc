"""Hypothesis strategies that draw valid `jdlayers` layers and networks.

Every strategy draws a *case*: a constructed layer distribution together with
an input array that fits it, the sample shape to draw with and the expected
output shape. Sizes are kept small (channels <= 4, spatial <= 8, N <= 3) so
property tests run fast on a CPU.

#### Example

```python
from hypothesis import given
import jdlayers.testing as jdt

@given(jdt.layer_configs())
def test_log_prob_shape(case):
  f = case.dist.sample(case.sample_shape, seed=case.seed)
  assert case.dist.log_prob(f).shape == case.sample_shape
  assert f(case.x).shape == case.output_shape
```
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from hypothesis import strategies as st

import jdlayers as jdl
from jdlayers import ops

__all__ = [
    "LayerCase", "NetworkCase", "affine_configs", "batch_shapes",
    "conv_configs", "conv_transpose_configs", "dtypes", "layer_configs",
    "networks", "pool_configs", "sample_shapes",
]

LAYER_KINDS = ("affine", "conv", "conv_transpose", "pool")
_SAMPLE_SHAPES = ((), (2,), (2, 1), (3,))
_PADDINGS = ("SAME", "same", "VALID", "valid")


@dataclasses.dataclass(frozen=True)
class LayerCase:
  """A drawn layer, an input that fits it, and what to expect.

  Attributes:
    kind: "affine", "conv", "conv_transpose" or "pool".
    dist: The layer distribution (a `StaticLayer` for pooling).
    x: Input array `[*batch_shape, N, *features]` of the layer's dtype.
    sample_shape: Sample shape `S` to draw the layer with.
    batch_shape: Leading dims `B` of `x` (they broadcast against `S`).
    output_shape: Expected shape of `dist.sample(S)(x)`.
    kwargs: Constructor arguments the layer was built with (as given, e.g.
      padding "valid" in any case).
    dtype: The floating dtype.
    seed: An int seed to sample the layer with.
  """
  kind: str
  dist: Any
  x: np.ndarray
  sample_shape: Tuple[int, ...]
  batch_shape: Tuple[int, ...]
  output_shape: Tuple[int, ...]
  kwargs: Dict[str, Any]
  dtype: tf.DType
  seed: int

  def __repr__(self) -> str:  # Hypothesis prints this on failure.
    return (f"LayerCase({self.kind}, {self.kwargs}, S={self.sample_shape}, "
            f"x={list(self.x.shape)}, dtype={self.dtype.name}, "
            f"out={list(self.output_shape)})")


@dataclasses.dataclass(frozen=True)
class NetworkCase:
  """A drawn `Sequential` network, an input for it and the output shape.

  Attributes:
    dist: The `jdl.Sequential` distribution.
    x: Input array `[*batch_shape, N, *features]`.
    sample_shape: Sample shape `S` to draw the network with.
    batch_shape: Leading dims `B` of `x`.
    output_shape: Expected shape of `dist.sample(S)(x)`.
    description: Human-readable list of the layers.
    dtype: The floating dtype.
    seed: An int seed to sample the network with.
  """
  dist: Any
  x: np.ndarray
  sample_shape: Tuple[int, ...]
  batch_shape: Tuple[int, ...]
  output_shape: Tuple[int, ...]
  description: str
  dtype: tf.DType
  seed: int

  def __repr__(self) -> str:
    return (f"NetworkCase({self.description}, S={self.sample_shape}, "
            f"x={list(self.x.shape)}, dtype={self.dtype.name}, "
            f"out={list(self.output_shape)})")


# -- small building blocks ---------------------------------------------------

def dtypes() -> st.SearchStrategy:
  """Draws a floating dtype the layers support.

  Returns:
    A strategy of `tf.float32` or `tf.float64`.

  #### Example

  ```python
  @given(jdt.dtypes())
  def test(dtype): ...
  ```
  """
  return st.sampled_from((tf.float32, tf.float64))


def sample_shapes() -> st.SearchStrategy:
  """Draws a small sample shape `S`: `()`, `(2,)`, `(2, 1)` or `(3,)`.

  Returns:
    A strategy of tuples of ints.

  #### Example

  ```python
  @given(jdt.sample_shapes())
  def test(s): assert len(s) <= 2
  ```
  """
  return st.sampled_from(_SAMPLE_SHAPES)


def batch_shapes(sample_shape: Sequence[int]) -> st.SearchStrategy:
  """Draws input leading dims `B` that broadcast against `sample_shape`.

  Draws `()`, `S` itself, `S` with some dims set to 1, or (for dims of `S`
  equal to 1) a larger dim, e.g. `(3,)` against `S = (2, 1)` (giving `(2, 3)`).

  Args:
    sample_shape: The layer's sample shape `S`.

  Returns:
    A strategy of tuples of ints, broadcastable with `sample_shape`.

  #### Example

  ```python
  @given(jdt.batch_shapes((2, 1)))
  def test(b): np.broadcast_shapes(b, (2, 1))
  ```
  """
  s = tuple(int(d) for d in sample_shape)
  if not s:
    return st.sampled_from(((), (2,)))

  @st.composite
  def draw_b(draw):
    choice = draw(st.sampled_from(("none", "same", "mixed")))
    if choice == "none":
      return ()
    if choice == "same":
      return s
    dims = tuple(draw(st.sampled_from((1, 3))) if d == 1 else
                 draw(st.sampled_from((1, d))) for d in s)
    # Optionally drop leading dims (right-aligned broadcasting).
    drop = draw(st.integers(0, len(dims) - 1))
    return dims[drop:]
  return draw_b()


def _resolve(draw, value, strategy):
  return draw(strategy) if value is None else value


def _input(seed: int, shape, dtype) -> np.ndarray:
  rng = np.random.default_rng(seed)
  return rng.standard_normal(shape).astype(dtype.as_numpy_dtype)


def _maybe_tuple(draw, values: Tuple[int, ...]):
  """Passes equal entries as an int half of the time (both forms are valid)."""
  if len(set(values)) == 1 and draw(st.booleans()):
    return values[0]
  return tuple(values)


def _out_batch(b, s):
  return tuple(np.broadcast_shapes(tuple(b), tuple(s)))


# -- layers ------------------------------------------------------------------

@st.composite
def affine_configs(draw, dtype: Optional[tf.DType] = None,
                   sample_shape: Optional[Tuple[int, ...]] = None):
  """Draws a valid `jdl.Affine` with a matching input.

  Args:
    draw: Supplied by hypothesis; do not pass.
    dtype: Fix the dtype (default: drawn from `dtypes()`).
    sample_shape: Fix `S` (default: drawn from `sample_shapes()`).

  Returns:
    A strategy of `LayerCase` with `kind="affine"`, `x` `[*B, N, in_units]`.

  #### Example

  ```python
  @given(jdt.affine_configs(dtype=tf.float64))
  def test(case):
    f = case.dist.sample(case.sample_shape, seed=case.seed)
    assert f(case.x).shape == case.output_shape
  ```
  """
  dtype = _resolve(draw, dtype, dtypes())
  s = tuple(_resolve(draw, sample_shape, sample_shapes()))
  b = draw(batch_shapes(s))
  out_units, in_units = draw(st.integers(1, 4)), draw(st.integers(1, 4))
  n = draw(st.integers(1, 3))
  kwargs = dict(use_bias=draw(st.booleans()),
                activation=draw(st.sampled_from((None, "relu", "tanh"))))
  dist = jdl.Affine(out_units, in_units, dtype, **kwargs)
  kwargs.update(out_units=out_units, in_units=in_units)
  seed = draw(st.integers(0, 2**16))
  x = _input(seed, b + (n, in_units), dtype)
  return LayerCase("affine", dist, x, s, b, _out_batch(b, s) + (n, out_units),
                   kwargs, dtype, seed)


def _spatial_len(draw, dk: int, padding: str, rank: int) -> int:
  hi = 8 if rank == 1 else (6 if rank == 2 else 4)
  lo = dk if padding == "VALID" else 1
  return draw(st.integers(min(lo, hi), max(lo, hi)))


@st.composite
def conv_configs(draw, rank: Optional[int] = None,
                 dtype: Optional[tf.DType] = None,
                 sample_shape: Optional[Tuple[int, ...]] = None,
                 impl: str = "auto"):
  """Draws a valid `jdl.Conv` (rank 1-3) with a matching input.

  Covers both data formats, every padding ("same"/"valid" in either case,
  "causal" for rank 1), strides or dilations (never both above 1), kernel
  sizes 1-3, with and without bias.

  Args:
    draw: Supplied by hypothesis; do not pass.
    rank: Fix the rank (default: drawn from 1, 2, 3).
    dtype: Fix the dtype (default: drawn from `dtypes()`).
    sample_shape: Fix `S` (default: drawn from `sample_shapes()`).
    impl: The layer's `impl` ("auto", "unrolled" or "grouped").

  Returns:
    A strategy of `LayerCase` with `kind="conv"`; `x` is
    `[*B, N, *spatial, in_channels]` (or channels first).

  #### Example

  ```python
  @given(jdt.conv_configs(rank=2))
  def test(case):
    f = case.dist.sample(case.sample_shape, seed=case.seed)
    assert f(case.x).shape == case.output_shape
  ```
  """
  return draw(_conv_like(False, rank, dtype, sample_shape, impl))


@st.composite
def conv_transpose_configs(draw, rank: Optional[int] = None,
                           dtype: Optional[tf.DType] = None,
                           sample_shape: Optional[Tuple[int, ...]] = None):
  """Draws a valid `jdl.ConvTranspose` (rank 1-3) with a matching input.

  As `conv_configs`, plus `output_padding` (None, or per axis below the
  stride; at least 1 on an axis with padding "same" and an even dilated
  kernel size).

  Args:
    draw: Supplied by hypothesis; do not pass.
    rank: Fix the rank (default: drawn from 1, 2, 3).
    dtype: Fix the dtype (default: drawn from `dtypes()`).
    sample_shape: Fix `S` (default: drawn from `sample_shapes()`).

  Returns:
    A strategy of `LayerCase` with `kind="conv_transpose"`.

  #### Example

  ```python
  @given(jdt.conv_transpose_configs(rank=1))
  def test(case):
    f = case.dist.sample(case.sample_shape, seed=case.seed)
    assert f(case.x).shape == case.output_shape
  ```
  """
  return draw(_conv_like(True, rank, dtype, sample_shape, "auto"))


@st.composite
def _conv_like(draw, transpose, rank, dtype, sample_shape, impl):
  rank = _resolve(draw, rank, st.integers(1, 3))
  dtype = _resolve(draw, dtype, dtypes())
  s = tuple(_resolve(draw, sample_shape, sample_shapes()))
  b = draw(batch_shapes(s))
  in_ch, out_ch = draw(st.integers(1, 4)), draw(st.integers(1, 4))
  n = draw(st.integers(1, 3))
  size = tuple(draw(st.integers(1, 3)) for _ in range(rank))
  paddings = _PADDINGS + (("causal",) if rank == 1 and not transpose else ())
  padding = draw(st.sampled_from(paddings))
  pad = padding.upper()
  mode = draw(st.sampled_from(("plain", "strided", "dilated")))
  strides = dilations = (1,) * rank
  if mode == "strided":
    strides = tuple(draw(st.integers(1, 3)) for _ in range(rank))
  elif mode == "dilated":
    dilations = tuple(draw(st.integers(1, 2)) for _ in range(rank))
  dks = [(k - 1) * d + 1 for k, d in zip(size, dilations)]
  spatial = [_spatial_len(draw, dk, pad, rank) for dk in dks]
  output_padding = None
  if transpose:
    output_padding = _draw_output_padding(draw, strides, dks, pad)
  data_format = draw(st.sampled_from(("channels_last", "channels_first")))
  kwargs = dict(strides=_maybe_tuple(draw, strides), padding=padding,
                dilations=_maybe_tuple(draw, dilations),
                data_format=data_format, use_bias=draw(st.booleans()),
                activation=draw(st.sampled_from((None, "relu", "tanh"))))
  size_arg = _maybe_tuple(draw, size)
  if transpose:
    if output_padding is not None:
      kwargs["output_padding"] = _maybe_tuple(draw, output_padding)
    dist = jdl.ConvTranspose(out_ch, size_arg, in_ch, dtype, rank=rank,
                             **kwargs)
    op = output_padding or (None,) * rank
    out_sp = [ops.conv_transpose_output_length(sp, k, st_, d, pad, p)
              for sp, k, st_, d, p in zip(spatial, size, strides, dilations,
                                          op)]
  else:
    dist = jdl.Conv(out_ch, size_arg, in_ch, dtype, rank=rank, impl=impl,
                    **kwargs)
    kwargs["impl"] = impl
    out_sp = [ops.conv_output_length(sp, k, st_, d, pad)
              for sp, k, st_, d in zip(spatial, size, strides, dilations)]
  kwargs.update(out_channels=out_ch, size=size_arg, in_channels=in_ch,
                rank=rank)
  seed = draw(st.integers(0, 2**16))
  if data_format == "channels_last":
    core, out_core = spatial + [in_ch], out_sp + [out_ch]
  else:
    core, out_core = [in_ch] + spatial, [out_ch] + out_sp
  x = _input(seed, b + (n, *core), dtype)
  return LayerCase("conv_transpose" if transpose else "conv", dist, x, s, b,
                   _out_batch(b, s) + (n, *out_core), kwargs, dtype, seed)


def _draw_output_padding(draw, strides, dks, pad):
  """None, or a valid `output_padding` (Keras' rule: below the stride)."""
  lows = [1 if pad == "SAME" and dk % 2 == 0 else 0 for dk in dks]
  if any(lo > s - 1 for lo, s in zip(lows, strides)):
    return None  # Keras cannot express this axis with output_padding.
  if not draw(st.booleans()):
    return None
  return tuple(draw(st.integers(lo, s - 1)) for lo, s in zip(lows, strides))


@st.composite
def pool_configs(draw, rank: Optional[int] = None,
                 dtype: Optional[tf.DType] = None,
                 sample_shape: Optional[Tuple[int, ...]] = None,
                 mode: Optional[str] = None):
  """Draws a valid max/average pooling layer (rank 1-3) with an input.

  Args:
    draw: Supplied by hypothesis; do not pass.
    rank: Fix the rank (default: drawn from 1, 2, 3).
    dtype: Fix the dtype (default: drawn from `dtypes()` for rank 1 and 2,
      float32 for rank 3: TensorFlow has no float64 3-D pooling kernels).
    sample_shape: Fix `S`; a pooling layer has no random tensors, so the
      input's leading dims pass through and `S` only sets `batch_shape`.
    mode: "max" or "avg" (default: drawn).

  Returns:
    A strategy of `LayerCase` with `kind="pool"` whose `dist` is a
    `jdl.MaxPoolND` / `jdl.AvgPoolND`; `kwargs` holds `mode`, `pool_size`,
    `strides` (possibly None), `padding`, `data_format` and `rank`.

  #### Example

  ```python
  @given(jdt.pool_configs(mode="max"))
  def test(case):
    assert case.dist.sample()(case.x).shape == case.output_shape
  ```
  """
  rank = _resolve(draw, rank, st.integers(1, 3))
  # TensorFlow has no float64 kernels for 3-D pooling.
  dtype = _resolve(draw, dtype, dtypes() if rank < 3 else st.just(tf.float32))
  s = tuple(_resolve(draw, sample_shape, sample_shapes()))
  mode = _resolve(draw, mode, st.sampled_from(("max", "avg")))
  b = draw(batch_shapes(s))
  ch, n = draw(st.integers(1, 4)), draw(st.integers(1, 3))
  pool_size = tuple(draw(st.integers(1, 3)) for _ in range(rank))
  strides = None
  if draw(st.booleans()):
    strides = tuple(draw(st.integers(1, 3)) for _ in range(rank))
  padding = draw(st.sampled_from(_PADDINGS))
  pad = padding.upper()
  spatial = [_spatial_len(draw, k, pad, rank) for k in pool_size]
  data_format = draw(st.sampled_from(("channels_last", "channels_first")))
  cls = getattr(jdl, f"{'Max' if mode == 'max' else 'Avg'}Pool{rank}D")
  ps_arg = _maybe_tuple(draw, pool_size)
  st_arg = None if strides is None else _maybe_tuple(draw, strides)
  dist = cls(ps_arg, st_arg, padding, data_format)
  eff = pool_size if strides is None else strides
  out_sp = [ops.conv_output_length(sp, k, s_, 1, pad)
            for sp, k, s_ in zip(spatial, pool_size, eff)]
  seed = draw(st.integers(0, 2**16))
  if data_format == "channels_last":
    core, out_core = spatial + [ch], out_sp + [ch]
  else:
    core, out_core = [ch] + spatial, [ch] + out_sp
  x = _input(seed, b + (n, *core), dtype)
  kwargs = dict(mode=mode, pool_size=ps_arg, strides=st_arg, padding=padding,
                data_format=data_format, rank=rank)
  return LayerCase("pool", dist, x, s, b, b + (n, *out_core), kwargs, dtype,
                   seed)


def layer_configs(kinds: Sequence[str] = LAYER_KINDS,
                  dtype: Optional[tf.DType] = None,
                  sample_shape: Optional[Tuple[int, ...]] = None
                  ) -> st.SearchStrategy:
  """Draws a valid layer of any of `kinds` with a matching input.

  Args:
    kinds: Subset of ("affine", "conv", "conv_transpose", "pool").
    dtype: Fix the dtype (default: drawn).
    sample_shape: Fix `S` (default: drawn).

  Returns:
    A strategy of `LayerCase`.

  Raises:
    ValueError: For an unknown kind.

  #### Example

  ```python
  @given(jdt.layer_configs(kinds=("conv", "conv_transpose")))
  def test(case):
    f = case.dist.sample(case.sample_shape, seed=case.seed)
    assert f(case.x).shape == case.output_shape
  ```
  """
  table = {"affine": affine_configs, "conv": conv_configs,
           "conv_transpose": conv_transpose_configs, "pool": pool_configs}
  bad = [k for k in kinds if k not in table]
  if bad or not kinds:
    raise ValueError(f"layer_configs: unknown kinds {bad or kinds}; expected "
                     f"a non-empty subset of {list(table)}.")
  return st.one_of(*[table[k](dtype=dtype, sample_shape=sample_shape)
                     for k in kinds])


# -- networks ----------------------------------------------------------------

@st.composite
def networks(draw, dtype: Optional[tf.DType] = None,
             sample_shape: Optional[Tuple[int, ...]] = None,
             kinds: Sequence[str] = ("mlp", "conv", "conv_transpose")):
  """Draws a small valid `jdl.Sequential` network and an input for it.

  Kinds: "mlp" (1-3 `Affine` layers with activations), "conv" (1-2
  convolutions of rank 1 or 2, optionally a max/avg pooling, then
  `Flatten()` and an `Affine` head) and "conv_transpose" (a transposed
  convolution followed by a convolution, `Flatten()`, `Affine`).

  Args:
    draw: Supplied by hypothesis; do not pass.
    dtype: Fix the dtype (default: drawn).
    sample_shape: Fix `S` (default: drawn).
    kinds: Which network families to draw from.

  Returns:
    A strategy of `NetworkCase`; `output_shape` is
    `[*broadcast(B, S), N, out_units]`.

  #### Example

  ```python
  @given(jdt.networks())
  def test(case):
    fs = case.dist.sample(case.sample_shape, seed=case.seed)
    assert fs(case.x).shape == case.output_shape
    assert case.dist.log_prob(fs).shape == case.sample_shape
  ```
  """
  dtype = _resolve(draw, dtype, dtypes())
  s = tuple(_resolve(draw, sample_shape, sample_shapes()))
  b = draw(batch_shapes(s))
  kind = draw(st.sampled_from(tuple(kinds)))
  n = draw(st.integers(1, 3))
  act = st.sampled_from(("relu", "tanh", None))
  layers, desc = [], []
  if kind == "mlp":
    width = draw(st.integers(1, 4))
    in_shape = (width,)
    for _ in range(draw(st.integers(1, 3))):
      out = draw(st.integers(1, 4))
      layers.append(jdl.Affine(out, width, dtype, activation=draw(act)))
      desc.append(f"Affine({out}, {width})")
      width = out
  else:
    rank = draw(st.integers(1, 2))
    data_format = draw(st.sampled_from(("channels_last", "channels_first")))
    ch = draw(st.integers(1, 3))
    spatial = [draw(st.integers(3, 6)) for _ in range(rank)]
    in_shape = tuple(spatial + [ch] if data_format == "channels_last"
                     else [ch] + spatial)
    n_conv = draw(st.integers(1, 2))
    if kind == "conv_transpose":
      out = draw(st.integers(1, 3))
      stride = draw(st.integers(1, 2))
      k = draw(st.integers(1, 3))
      pad = draw(st.sampled_from(("same", "valid")))
      layers.append(jdl.ConvTranspose(out, k, ch, dtype, strides=stride,
                                      padding=pad, rank=rank,
                                      data_format=data_format,
                                      activation=draw(act)))
      desc.append(f"ConvTranspose{rank}D({out}, {k}, {ch}, s={stride}, {pad})")
      spatial = [ops.conv_transpose_output_length(n_, k, stride, 1,
                                                  pad.upper(), None)
                 for n_ in spatial]
      ch, n_conv = out, 1
    for _ in range(n_conv):
      out = draw(st.integers(1, 3))
      k = draw(st.integers(1, 3))
      stride = draw(st.integers(1, 2))
      layers.append(jdl.Conv(out, k, ch, dtype, strides=stride, rank=rank,
                             data_format=data_format, activation=draw(act)))
      desc.append(f"Conv{rank}D({out}, {k}, {ch}, s={stride})")
      spatial = [ops.conv_output_length(n_, k, stride, 1, "SAME")
                 for n_ in spatial]
      ch = out
    if kind == "conv" and draw(st.booleans()):
      cls = getattr(jdl, f"{draw(st.sampled_from(('Max', 'Avg')))}Pool{rank}D")
      layers.append(cls(2, padding="same", data_format=data_format))
      desc.append(f"{cls.__name__}(2)")
      spatial = [ops.conv_output_length(n_, 2, 2, 1, "SAME") for n_ in spatial]
    layers.append(jdl.Flatten())
    desc.append("Flatten()")
    width = int(np.prod(spatial)) * ch
    out = draw(st.integers(1, 4))
    layers.append(jdl.Affine(out, width, dtype))
    desc.append(f"Affine({out}, {width})")
    width = out
  dist = jdl.Sequential(*layers)
  seed = draw(st.integers(0, 2**16))
  x = _input(seed, b + (n,) + tuple(in_shape), dtype)
  return NetworkCase(dist, x, s, b, _out_batch(b, s) + (n, width),
                     " -> ".join(desc), dtype, seed)
