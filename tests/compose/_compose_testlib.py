"""Shared checks for the composite tests (Sequential, Residual, Parallel)."""

import numpy as np
import tensorflow as tf

import jdlayers as jdl
from jdlayers.layers import _base


def leaves(value):
  return tf.nest.flatten(value)


def assert_no_empty_leaves(value):
  for leaf in leaves(value):
    assert tf.is_tensor(leaf), f"non-tensor leaf {leaf!r}"
    assert int(tf.size(leaf)) > 0, f"zero-size leaf of shape {leaf.shape}"


def children_log_prob(dist, value):
  """Sum of the random children's log_probs (static children add 0)."""
  total = 0.
  for child, sampled in zip(dist.layers, value.layers):
    if _base.is_static(child):
      continue
    total = total + child.log_prob(sampled)
  return total


def assert_round_trip(dist, value, x):
  parts = leaves(value)
  rebuilt = tf.nest.pack_sequence_as(value, parts)
  assert type(rebuilt) is type(value)
  np.testing.assert_array_equal(rebuilt(x), value(x))
  np.testing.assert_array_equal(dist.log_prob(rebuilt), dist.log_prob(value))
  # Rebuilding from fresh tensors (e.g. an MCMC state) gives a working network.
  fresh = [tf.identity(p) * 0.5 for p in parts]
  half = tf.nest.pack_sequence_as(value, fresh)
  for a, b in zip(leaves(half), parts):
    np.testing.assert_allclose(a, np.asarray(b) * 0.5, rtol=1e-6)


def check_composite(dist, x, sample_shape, out_core, dtype=tf.float32,
                    seed=0):
  """The shared property battery of every composite test.

  Args:
    dist: The composite distribution.
    x: Input tensor `[N, *features]`.
    sample_shape: Sample shape `S`.
    out_core: Expected output core `[N, *out_features]`.
    dtype: Expected dtype of parameters, outputs and log_prob.
    seed: Sampling seed.

  Returns:
    The sampled network.
  """
  s = list(sample_shape)
  value = dist.sample(sample_shape, seed=seed)
  y = value(x)
  assert y.shape.as_list() == s + list(out_core)
  assert y.dtype == dtype
  assert np.all(np.isfinite(y))
  lp = dist.log_prob(value)
  assert lp.shape.as_list() == s
  assert lp.dtype == dtype
  np.testing.assert_allclose(lp, children_log_prob(dist, value),
                             rtol=1e-5 if dtype == tf.float32 else 1e-12)
  for leaf in leaves(value):
    assert leaf.dtype == dtype
    assert leaf.shape.as_list()[:len(s)] == s
  assert_no_empty_leaves(value)
  assert_round_trip(dist, value, x)
  assert len(jdl.event_space_bijectors(dist)) == len(leaves(value))
  return value


def assert_same_sample(dist, sample_shape=(3,), seed=7):
  # Stateless (tensor-pair) seeds are reproducible; a bare int is TFP's
  # stateful seed, reproducible only under `tf.random.set_seed`.
  a = leaves(dist.sample(sample_shape, seed=(seed, 0)))
  b = leaves(dist.sample(sample_shape, seed=tf.constant([seed, 0])))
  c = leaves(dist.sample(sample_shape, seed=(seed + 1, 0)))
  assert len(a) == len(b) == len(c)
  for u, v in zip(a, b):
    np.testing.assert_array_equal(u, v)
  assert any(not np.array_equal(u, w) for u, w in zip(a, c))
