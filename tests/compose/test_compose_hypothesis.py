"""Property tests of composites over networks drawn by `jdlayers.testing`."""

import numpy as np
import tensorflow as tf
from hypothesis import given, settings

import jdlayers as jdl
import jdlayers.testing as jdt
from _compose_testlib import (assert_no_empty_leaves, assert_round_trip,
                              children_log_prob, leaves)


def _tol(dtype):
  return dict(rtol=1e-4, atol=1e-4) if dtype == tf.float32 else dict(
      rtol=1e-10, atol=1e-10)


@settings(deadline=None, max_examples=8)
@given(jdt.networks())
def test_drawn_sequential_properties(case):
  dist = case.dist
  fs = dist.sample(case.sample_shape, seed=case.seed)
  x = tf.constant(case.x)
  y = fs(x)
  assert tuple(y.shape) == tuple(case.output_shape)
  assert y.dtype == case.dtype
  lp = dist.log_prob(fs)
  assert tuple(lp.shape) == tuple(case.sample_shape)
  np.testing.assert_allclose(lp, children_log_prob(dist, fs),
                             **_tol(case.dtype))
  manual = x
  for layer in fs.layers:
    manual = layer(manual)
  np.testing.assert_array_equal(y, manual)
  assert_no_empty_leaves(fs)
  assert_round_trip(dist, fs, x)
  for leaf in leaves(fs):
    assert leaf.dtype == case.dtype


@settings(deadline=None, max_examples=5)
@given(jdt.networks(kinds=("mlp", "conv"), sample_shape=(2,)))
def test_drawn_network_in_parallel_and_residual(case):
  # Two independent copies of a drawn network summed in a Parallel, then
  # followed by a residual block.
  net = case.dist
  dist = jdl.Parallel(net, net, combine="sum")
  fs = dist.sample(case.sample_shape, seed=(case.seed, 1))
  x = tf.constant(case.x)
  a, b = fs.layers
  np.testing.assert_allclose(fs(x), a(x) + b(x), **_tol(case.dtype))
  lp = dist.log_prob(fs)
  np.testing.assert_allclose(lp, net.log_prob(a) + net.log_prob(b),
                             **_tol(case.dtype))
  assert len(leaves(fs)) == 2 * len(leaves(a))
  assert_round_trip(dist, fs, x)

  width = case.output_shape[-1]
  outer = jdl.Sequential(dist, jdl.Residual(jdl.Affine(width, width,
                                                       case.dtype)))
  gs = outer.sample(case.sample_shape, seed=(case.seed, 2))
  h = gs.layers[0](x)
  np.testing.assert_allclose(gs(x), h + gs.layers[1].layers[0](h),
                             **_tol(case.dtype))
  np.testing.assert_allclose(outer.log_prob(gs), children_log_prob(outer, gs),
                             **_tol(case.dtype))
