"""`Surrogate(init=, init_scale=)`: MOPED-style starts from a point estimate.

The means start exactly at the given values (a sampled network, a fitted
surrogate's means, a list or a dict), the scales at `init_scale`, constrained
parts through their bijector; anything that does not match the parts is
refused with the part named.
"""

import numpy as np
import pytest
import tensorflow as tf

import tensorflow_probability as tfp

import jdlayers as jdl
from jdlayers import models
from jdlayers.inference import vi


def _net():
  return jdl.Sequential(jdl.Affine(4, 3, activation="relu"),
                        jdl.Affine(2, 4))


def _locs_scales(q):
  out = [d.distribution for d in q.distributions()]
  return [d.loc.numpy() for d in out], [d.scale.numpy() for d in out]


def test_init_from_a_sampled_network_and_a_scale():
  net = _net()
  point = net.sample(seed=3)
  q = vi.Surrogate(net, init=point, init_scale=0.02, seed=0)
  locs, scales = _locs_scales(q)
  for got, want in zip(locs, tf.nest.flatten(point)):
    np.testing.assert_array_equal(got, want.numpy())
  for s in scales:
    np.testing.assert_allclose(s, 0.02, rtol=1e-5)


def test_moped_relative_scales_and_a_fitted_surrogate_as_init():
  net = _net()
  start = vi.Surrogate(net, point_mass=True, seed=5)
  means = [m.numpy() for m in start.mean_parts()]
  q = vi.Surrogate(net, init=start, init_scale=lambda w: 0.1 * tf.abs(w))
  locs, scales = _locs_scales(q)
  for got, m, s in zip(locs, means, scales):
    np.testing.assert_array_equal(got, m)
    # MOPED's delta * |w|, floored at 1e-6 (float32 keeps ~1e-7 there).
    np.testing.assert_allclose(s, np.maximum(0.1 * np.abs(m), 1e-6),
                               rtol=1e-4, atol=2e-7)


def test_partial_dict_init_keeps_the_default_elsewhere():
  net = _net()
  default = vi.Surrogate(net, seed=7)
  w = np.full([4, 3], 0.5, np.float32)
  q = vi.Surrogate(net, init={"0/weights": w}, seed=7)
  locs, scales = _locs_scales(q)
  d_locs, d_scales = _locs_scales(default)
  np.testing.assert_array_equal(locs[0], w)
  for got, want in zip(locs[1:] + scales, d_locs[1:] + d_scales):
    np.testing.assert_array_equal(got, want)


def test_constrained_latent_starts_at_its_value():
  model = models.Model(jdl.Affine(1, 2),
                       models.Normal(scale=tfp.distributions.HalfNormal(1.)))
  assert vi.Surrogate(model).part_names[-1] == "scale"
  q = vi.Surrogate(model, init={"scale": 0.3}, init_scale=1e-3)
  # The normal lives in unconstrained space: its location maps to 0.3.
  np.testing.assert_allclose(q.mean_parts()[-1], 0.3, rtol=1e-5)
  draws = q.sample_parts([200], seed=1)[-1].numpy()
  assert np.all(draws > 0) and np.all(np.abs(draws - 0.3) < 0.01)


def test_fit_passes_init_to_the_surrogate():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(32, 3)).astype(np.float32)
  y = (x @ np.array([[1.], [0.], [-1.]])).astype(np.float32)
  model = models.Model(jdl.Affine(1, 3), models.Normal(scale=0.1))
  map_fit = vi.fit(model, x, y, point_mass=True, epochs=100, batch_size=32,
                   learning_rate=0.05, progress=False)
  q = vi.fit(model, x, y, init=map_fit, init_scale=1e-3, epochs=1,
             batch_size=32, learning_rate=1e-6, progress=False)
  for got, want in zip(q.mean_parts(), map_fit.mean_parts()):
    np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.mark.parametrize("init, init_scale, error, match", [
    ([np.zeros([3, 4], np.float32)], None, ValueError,
     r"`init` has 1 values; the surrogate has 4 parts"),
    ({"0/weights": np.zeros([3, 4], np.float32)}, None, ValueError,
     r"part '0/weights' has shape \[3, 4\]; the part has shape \[4, 3\]"),
    ({"0/kernel": 0.}, None, ValueError, r"unknown parts \['0/kernel'\]"),
    ({"1/bias": np.array([np.nan, 0.], np.float32)}, None, ValueError,
     r"`init\['1/bias'\]` must be finite"),
    (np.zeros(3), None, TypeError, r"`init` must be a sampled network"),
    (None, 0., ValueError, r"Surrogate: `init_scale` must be .* > 0"),
    (None, float("nan"), ValueError, r"`init_scale` must be"),
    (None, "small", TypeError, r"`init_scale` must be a real number"),
    ({"1/bias": np.ones(2, np.float32)}, lambda w: -w, ValueError,
     r"`init_scale\(init\['1/bias'\]\)` must be finite and >= 0"),
])
def test_bad_inits_are_refused(init, init_scale, error, match):
  with pytest.raises(error, match=match):
    vi.Surrogate(_net(), init=init, init_scale=init_scale)


def test_a_surrogate_over_other_parts_is_refused():
  other = vi.Surrogate(jdl.Affine(2, 4))
  with pytest.raises(ValueError, match=r"`init` is a surrogate over parts"):
    vi.Surrogate(_net(), init=other)


def test_saved_surrogate_with_init_loads(tmp_path):
  net = _net()
  q = vi.Surrogate(net, init=net.sample(seed=1), init_scale=0.01)
  path = q.save(tmp_path / "q.npz")
  loaded = vi.load_surrogate(path)
  for a, b in zip(_locs_scales(q), _locs_scales(loaded)):
    for u, v in zip(a, b):
      np.testing.assert_array_equal(u, v)
