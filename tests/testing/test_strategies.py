"""The strategies in `jdlayers.testing` draw valid, runnable cases."""

import numpy as np
from hypothesis import given, settings

import jdlayers.testing as jdt


@settings(deadline=None, max_examples=25)
@given(jdt.layer_configs())
def test_layer_configs_run_with_expected_shapes(case):
  f = case.dist.sample(case.sample_shape, seed=case.seed)
  assert tuple(f(case.x).shape) == case.output_shape
  assert tuple(np.shape(case.dist.log_prob(f))) in (case.sample_shape, ())


@settings(deadline=None, max_examples=15)
@given(jdt.networks())
def test_networks_run_with_expected_shapes(case):
  fs = case.dist.sample(case.sample_shape, seed=case.seed)
  assert tuple(fs(case.x).shape) == case.output_shape
  assert tuple(case.dist.log_prob(fs).shape) == case.sample_shape


@settings(deadline=None, max_examples=20)
@given(jdt.sample_shapes().flatmap(
    lambda s: jdt.batch_shapes(s).map(lambda b: (s, b))))
def test_batch_shapes_broadcast(sb):
  s, b = sb
  np.broadcast_shapes(s, b)


def test_public_names():
  assert sorted(jdt.__all__) == sorted(
      n for n in dir(jdt) if not n.startswith("_") and n != "strategies")
