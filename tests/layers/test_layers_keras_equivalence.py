"""Every layer equals its Keras 3 twin with the same kernel and bias.

Cases come from `jdlayers.testing`: both data formats, every padding,
strides or dilations, output_padding, sample shapes (), (2,), (2, 1), (3,)
against broadcastable input batch shapes, float32 and float64.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jdlayers.testing as jdt

import tensorflow as tf

from _layers_testlib import assert_close, keras_needs_float32, keras_reference


def _check(case):
  layer = case.dist.sample(case.sample_shape, seed=case.seed)
  y = layer(case.x)
  assert tuple(y.shape) == case.output_shape
  assert y.dtype == case.dtype
  tol = tf.float32 if keras_needs_float32(case) else case.dtype
  assert_close(y, keras_reference(case, layer), tol)


@settings(deadline=None, max_examples=15)
@given(jdt.affine_configs())
def test_affine_equals_keras_dense(case):
  _check(case)


@pytest.mark.parametrize("rank", [1, 2, 3])
@settings(deadline=None, max_examples=12)
@given(data=st.data())
def test_conv_equals_keras_conv(rank, data):
  _check(data.draw(jdt.conv_configs(rank=rank), label="case"))


@pytest.mark.parametrize("rank", [1, 2, 3])
@settings(deadline=None, max_examples=12)
@given(data=st.data())
def test_conv_transpose_equals_keras_conv_transpose(rank, data):
  _check(data.draw(jdt.conv_transpose_configs(rank=rank), label="case"))


@pytest.mark.parametrize("rank", [1, 2, 3])
@settings(deadline=None, max_examples=8)
@given(data=st.data())
def test_pool_equals_keras_pooling(rank, data):
  _check(data.draw(jdt.pool_configs(rank=rank), label="case"))
