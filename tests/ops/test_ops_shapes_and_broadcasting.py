"""Ops: output-length formulas, the DESIGN section 2 shape rule, errors."""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

import keras
from jdlayers import ops

RNG = np.random.default_rng(0)


def _rand(shape, dtype=np.float32):
  return RNG.standard_normal(shape).astype(dtype)


# -- output-length formulas ---------------------------------------------------

@st.composite
def _axis(draw, transpose=False):
  k = draw(st.integers(1, 4))
  s = draw(st.integers(1, 3))
  d = 1 if s > 1 else draw(st.integers(1, 3))
  pad = draw(st.sampled_from(("VALID", "SAME") if transpose else
                             ("VALID", "SAME", "CAUSAL")))
  dk = (k - 1) * d + 1
  n = draw(st.integers(dk if pad == "VALID" else 1, 9))
  return n, k, s, d, pad


@settings(deadline=None, max_examples=25)
@given(_axis())
def test_conv_output_length_matches_tf_nn(axis):
  n, k, s, d, pad = axis
  x = tf.zeros([1, n, 1])
  if pad == "CAUSAL":
    x = tf.pad(x, [[0, 0], [(k - 1) * d, 0], [0, 0]])
  y = tf.nn.convolution(x, tf.zeros([k, 1, 1]), strides=s, dilations=d,
                        padding="VALID" if pad == "CAUSAL" else pad)
  assert ops.conv_output_length(n, k, s, d, pad) == y.shape[1]
  assert ops.conv_output_length(None, k, s, d, pad) is None


@settings(deadline=None, max_examples=25)
@given(_axis(transpose=True), st.data())
def test_conv_transpose_output_length_matches_keras(axis, data):
  n, k, s, d, pad = axis
  dk = (k - 1) * d + 1
  lo = 1 if pad == "SAME" and dk % 2 == 0 else 0
  op = None
  if lo <= s - 1 and data.draw(st.booleans()):
    op = data.draw(st.integers(lo, s - 1))
  layer = keras.layers.Conv1DTranspose(1, k, strides=s, padding=pad.lower(),
                                       dilation_rate=d, output_padding=op)
  expected = layer.compute_output_shape((1, n, 1))[1]
  assert ops.conv_transpose_output_length(n, k, s, d, pad, op) == expected
  # And it is a length whose convolution gives back n (the op is defined).
  got = ops.conv_transpose_output_length(n, k, s, d, pad, op)
  assert ops.conv_output_length(got, k, s, d, pad) == n


# -- S = [] is the plain tf.nn op --------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_unsampled_conv_is_tf_nn_convolution(rank, dtype):
  x, k, b = _rand([2] + [5] * rank + [3], dtype), _rand([2] * rank + [3, 4],
                                                       dtype), _rand([4], dtype)
  y = ops.conv(x, tf.constant(k), tf.constant(b), rank=rank,
               strides=(2,) * rank, padding="SAME", dilations=(1,) * rank)
  ref = tf.nn.convolution(x, k, strides=2, padding="SAME") + b
  np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_unsampled_conv_transpose_is_tf_nn_conv_transpose(rank, dtype):
  x, k = _rand([2] + [4] * rank + [3], dtype), _rand([3] * rank + [4, 3], dtype)
  y = ops.conv_transpose(x, tf.constant(k), rank=rank, strides=(2,) * rank,
                         padding="VALID", dilations=(1,) * rank)
  n = ops.conv_transpose_output_length(4, 3, 2, 1, "VALID", None)
  ref = tf.nn.conv_transpose(x, k, [2] + [n] * rank + [4], strides=2,
                             padding="VALID")
  np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unsampled_dense_is_matmul(dtype):
  x, w, b = _rand([5, 3], dtype), _rand([4, 3], dtype), _rand([4], dtype)
  y = ops.dense(x, tf.constant(w), tf.constant(b))
  np.testing.assert_allclose(y, x @ w.T + b, rtol=1e-5, atol=1e-5)


# -- the broadcasting cases of DESIGN section 2 --------------------------------

def _dense(x, k):
  return ops.dense(x, k)


def _conv(x, k):
  return ops.conv(x, k, rank=2, strides=(1, 1), padding="SAME",
                  dilations=(1, 1))


def _conv_t(x, k):
  return ops.conv_transpose(x, k, rank=1, strides=(2,), padding="SAME",
                            dilations=(1,))


# (op, x core shape, kernel core shape, output core shape)
CASES = {
    "dense": (_dense, [3, 2], [4, 2], [3, 4]),
    "conv": (_conv, [2, 4, 4, 2], [3, 3, 2, 3], [2, 4, 4, 3]),
    "conv_transpose": (_conv_t, [2, 3, 2], [3, 4, 2], [2, 6, 4]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_shared_input_against_32_samples(name):
  op, xc, kc, yc = CASES[name]
  x, k = _rand(xc), tf.constant(_rand([32] + kc))
  y = op(x, k)
  assert y.shape == [32] + yc
  for i in (0, 17, 31):
    np.testing.assert_allclose(y[i], op(x, k[i]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(CASES))
def test_per_sample_input_against_32_samples(name):
  op, xc, kc, yc = CASES[name]
  x, k = _rand([32] + xc), tf.constant(_rand([32] + kc))
  y = op(x, k)
  assert y.shape == [32] + yc
  for i in (0, 9, 31):
    np.testing.assert_allclose(y[i], op(x[i], k[i]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(CASES))
def test_sample_shape_2_1_against_batch_3(name):
  op, xc, kc, yc = CASES[name]
  x, k = _rand([3] + xc), tf.constant(_rand([2, 1] + kc))
  y = op(x, k)
  assert y.shape == [2, 3] + yc
  for i in range(2):
    for j in range(3):
      np.testing.assert_allclose(y[i, j], op(x[j], k[i, 0]), rtol=1e-5,
                                 atol=1e-5)


@pytest.mark.parametrize("name", list(CASES))
def test_unbroadcastable_leading_dims_raise(name):
  op, xc, kc, _ = CASES[name]
  with pytest.raises(ValueError, match="broadcast"):
    op(_rand([3] + xc), tf.constant(_rand([2] + kc)))


@pytest.mark.parametrize("name", list(CASES))
def test_low_rank_input_raises_naming_shapes(name):
  op, xc, kc, _ = CASES[name]
  with pytest.raises(ValueError, match=r"rank >= .*got shape"):
    op(_rand(xc[1:]), tf.constant(_rand(kc)))


def test_wrong_feature_size_raises_naming_layer_and_shapes():
  with pytest.raises(ValueError, match=r"Affine.*\[5, 3\].*expected 2"):
    ops.dense(_rand([5, 3]), tf.constant(_rand([4, 2])))
  with pytest.raises(ValueError, match=r"Conv.*channels.*expected 2"):
    _conv(_rand([2, 4, 4, 3]), tf.constant(_rand([3, 3, 2, 3])))


# -- impl="grouped" equals impl="auto" ----------------------------------------

@pytest.mark.parametrize("rank", [1, 2])
@settings(deadline=None, max_examples=6)
@given(dtype=st.sampled_from([np.float32, np.float64]),
       strided=st.booleans(), padding=st.sampled_from(["SAME", "VALID"]))
def test_grouped_equals_auto(rank, dtype, strided, padding):
  x = _rand([3, 2] + [5] * rank + [3], dtype)
  k = tf.constant(_rand([3] + [3] * rank + [3, 2], dtype))
  kw = dict(rank=rank, strides=(2 if strided else 1,) * rank, padding=padding,
            dilations=(1 if strided else 2,) * rank)
  np.testing.assert_allclose(ops.conv(x, k, impl="grouped", **kw),
                             ops.conv(x, k, impl="auto", **kw), rtol=1e-5,
                             atol=1e-5)


def test_grouped_equals_auto_rank3_under_xla():
  # CPU has no grouped Conv3D kernel outside XLA.
  x, k = _rand([2, 1, 4, 4, 4, 2]), tf.constant(_rand([2, 2, 2, 2, 2, 3]))
  kw = dict(rank=3, strides=(1, 1, 1), padding="SAME", dilations=(1, 1, 1))
  grouped = tf.function(lambda x, k: ops.conv(x, k, impl="grouped", **kw),
                        jit_compile=True)
  np.testing.assert_allclose(grouped(x, k), ops.conv(x, k, **kw), rtol=1e-5,
                             atol=1e-5)
