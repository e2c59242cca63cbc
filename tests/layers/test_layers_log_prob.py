"""log_prob shapes and values, sampling determinism, flatten round-trips."""

import numpy as np
import tensorflow as tf
from hypothesis import given, settings

import jdlayers.testing as jdt

from _layers_testlib import assert_close, direct_log_prob

RANDOM = ("affine", "conv", "conv_transpose")


@settings(deadline=None, max_examples=15)
@given(jdt.layer_configs(kinds=RANDOM))
def test_log_prob_is_sum_of_default_normal_parts(case):
  layer = case.dist.sample(case.sample_shape, seed=case.seed)
  lp = case.dist.log_prob(layer)
  assert tuple(lp.shape) == case.sample_shape
  assert lp.dtype == case.dtype
  kname = "weights" if case.kind == "affine" else "kernel"
  expected = direct_log_prob(layer, len(case.sample_shape), case.dtype, kname)
  assert_close(lp, expected, case.dtype)
  # Parts: the kernel, and the bias exactly when the layer has one.
  names = sorted(layer.params)
  assert names == sorted([kname] + (["bias"] if case.kwargs["use_bias"]
                                    else []))


@settings(deadline=None, max_examples=10)
@given(jdt.layer_configs(kinds=RANDOM))
def test_same_seed_same_sample(case):
  # Stateless (pair) seeds: the same seed gives the same sample, always.
  a = case.dist.sample(case.sample_shape, seed=(case.seed, 7))
  b = case.dist.sample(case.sample_shape, seed=(case.seed, 7))
  c = case.dist.sample(case.sample_shape, seed=(case.seed, 8))
  for u, v in zip(tf.nest.flatten(a), tf.nest.flatten(b)):
    np.testing.assert_array_equal(u, v)
  assert any(not np.array_equal(u, w) for u, w in
             zip(tf.nest.flatten(a), tf.nest.flatten(c)))
  # Int seeds are stateless too: the same int gives the same sample.
  for u, v in zip(tf.nest.flatten(case.dist.sample(case.sample_shape,
                                                   seed=case.seed)),
                  tf.nest.flatten(case.dist.sample(case.sample_shape,
                                                   seed=case.seed))):
    np.testing.assert_array_equal(u, v)
  # ... whatever the global seed.
  tf.random.set_seed(3)
  d = case.dist.sample(case.sample_shape, seed=case.seed)
  tf.random.set_seed(4)
  e = case.dist.sample(case.sample_shape, seed=case.seed)
  for u, v in zip(tf.nest.flatten(d), tf.nest.flatten(e)):
    np.testing.assert_array_equal(u, v)


@settings(deadline=None, max_examples=10)
@given(jdt.layer_configs(kinds=RANDOM))
def test_nest_round_trip_gives_same_layer(case):
  layer = case.dist.sample(case.sample_shape, seed=case.seed)
  leaves = tf.nest.flatten(layer)
  assert len(leaves) == len(layer.params)
  assert all(isinstance(t, tf.Tensor) for t in leaves)
  rebuilt = tf.nest.pack_sequence_as(layer, [t * 1 for t in leaves])
  assert type(rebuilt) is type(layer) and rebuilt.config == layer.config
  np.testing.assert_array_equal(rebuilt(case.x), layer(case.x))
  assert_close(case.dist.log_prob(rebuilt), case.dist.log_prob(layer),
               case.dtype)


@settings(deadline=None, max_examples=8)
@given(jdt.networks())
def test_network_log_prob_is_sum_over_layers(case):
  fs = case.dist.sample(case.sample_shape, seed=case.seed)
  lp = case.dist.log_prob(fs)
  assert tuple(lp.shape) == case.sample_shape
  total = 0.
  for child, sampled in zip(case.dist.layers, fs.layers):
    if hasattr(child, "param_names"):
      total = total + child.log_prob(sampled)
  assert_close(lp, total, case.dtype)
