"""Eager, tf.function and XLA agree; gradients reach every random tensor."""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings

import jdlayers as jdl
import jdlayers.testing as jdt

from _layers_testlib import assert_close

S = 2


def _make(kind, dtype):
  """(distribution, input without sample dims) for one layer of `kind`."""
  if kind == "affine":
    return jdl.Affine(3, 4, dtype, activation="tanh"), [2, 4]
  if kind == "conv1d":
    return jdl.Conv1D(3, 3, 2, dtype, padding="causal", dilations=2), [2, 6, 2]
  if kind == "conv2d":
    return (jdl.Conv2D(3, 2, 2, dtype, strides=2, data_format="channels_first",
                       activation="relu"), [2, 2, 5, 5])
  if kind == "conv3d":
    return jdl.Conv3D(2, 2, 2, dtype, padding="valid"), [1, 3, 3, 3, 2]
  if kind == "conv_transpose1d":
    return (jdl.ConvTranspose1D(2, 3, 2, dtype, strides=2, output_padding=1),
            [2, 4, 2])
  if kind == "conv_transpose2d":
    return (jdl.ConvTranspose2D(3, 2, 2, dtype, padding="valid",
                                data_format="channels_first"), [2, 2, 3, 3])
  if kind == "conv_transpose3d":
    return jdl.ConvTranspose3D(2, 2, 1, dtype, strides=2), [1, 2, 2, 2, 1]
  raise ValueError(kind)


KINDS = ["affine", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
         "conv_transpose2d", "conv_transpose3d"]


def _loss_and_grads(dist, layer, x_shared, x_per_sample):
  leaves = tf.nest.flatten(layer)
  with tf.GradientTape() as tape:
    tape.watch(leaves)
    f = tf.nest.pack_sequence_as(layer, leaves)
    y1, y2 = f(x_shared), f(x_per_sample)  # channel-stacked / per-sample
    loss = (tf.reduce_sum(y1 ** 2) + tf.reduce_sum(tf.sin(y2))
            - tf.reduce_sum(dist.log_prob(f)))
  return y1, y2, tape.gradient(loss, leaves)


def _run(kind, dtype, modes):
  dist, xc = _make(kind, dtype)
  layer = dist.sample(S, seed=(1, 2))
  rng = np.random.default_rng(0)
  np_dtype = dtype.as_numpy_dtype
  x_shared = tf.constant(rng.standard_normal(xc).astype(np_dtype))
  x_per = tf.constant(rng.standard_normal([S] + xc).astype(np_dtype))
  fn = lambda l, a, b: _loss_and_grads(dist, l, a, b)  # noqa: E731
  results = {}
  for mode in modes:
    run = {"eager": fn, "function": tf.function(fn),
           "xla": tf.function(fn, jit_compile=True)}[mode]
    y1, y2, grads = run(layer, x_shared, x_per)
    assert y1.shape[0] == S and y2.shape[0] == S
    assert all(g is not None for g in grads), (mode, grads)
    for g, v in zip(grads, tf.nest.flatten(layer)):
      assert g.shape == v.shape and g.dtype == dtype
      assert np.all(np.isfinite(g))
    results[mode] = (y1, y2, grads)
  ref = results[modes[0]]
  for mode in modes[1:]:
    got = results[mode]
    assert_close(got[0], ref[0], dtype)
    assert_close(got[1], ref[1], dtype)
    for g, r in zip(got[2], ref[2]):
      assert_close(g, r, dtype)


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
@pytest.mark.parametrize("kind", KINDS)
def test_eager_and_function_agree_with_gradients(kind, dtype):
  _run(kind, dtype, ["eager", "function"])


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_conv3d_function_and_gradients(dtype):
  _run("conv3d", dtype, ["function"])


@pytest.mark.parametrize("kind,dtype", [("affine", tf.float64),
                                        ("conv2d", tf.float32),
                                        ("conv_transpose1d", tf.float32)])
def test_xla_agrees_with_gradients(kind, dtype):
  _run(kind, dtype, ["eager", "xla"])


def test_grouped_conv_differentiates_under_xla():
  dist = jdl.Conv2D(2, 2, 2, impl="grouped")
  ref = jdl.Conv2D(2, 2, 2)
  layer = dist.sample(S, seed=(3, 4))
  x = tf.constant(np.random.default_rng(1).standard_normal([S, 2, 4, 4, 2]),
                  tf.float32)

  def fn(d):
    def inner(l, x):
      leaves = tf.nest.flatten(l)
      with tf.GradientTape() as tape:
        tape.watch(leaves)
        y = tf.nest.pack_sequence_as(l, leaves)(x)
        loss = tf.reduce_sum(y ** 2)
      return y, tape.gradient(loss, leaves)
    return inner

  y_g, g_g = tf.function(fn(dist), jit_compile=True)(layer, x)
  ref_layer = tf.nest.pack_sequence_as(ref.sample(S, seed=0),
                                       tf.nest.flatten(layer))
  y_a, g_a = fn(ref)(ref_layer, x)
  assert_close(y_g, y_a, tf.float32)
  for a, b in zip(g_g, g_a):
    assert a is not None
    assert_close(a, b, tf.float32)


@settings(deadline=None, max_examples=10)
@given(jdt.layer_configs(kinds=("affine", "conv", "conv_transpose")))
def test_function_matches_eager_and_gradients_exist(case):
  layer = case.dist.sample(case.sample_shape, seed=case.seed)

  def fn(l, x):
    leaves = tf.nest.flatten(l)
    with tf.GradientTape() as tape:
      tape.watch(leaves)
      y = tf.nest.pack_sequence_as(l, leaves)(x)
      loss = tf.reduce_sum(y * y)
    return y, tape.gradient(loss, leaves)

  x = tf.constant(case.x)
  y_f, g_f = tf.function(fn)(layer, x)
  y_e, g_e = fn(layer, x)
  assert_close(y_f, y_e, case.dtype)
  for a, b in zip(g_e, g_f):
    assert a is not None and b is not None
    assert_close(b, a, case.dtype)
