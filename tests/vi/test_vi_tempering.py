"""`vi.fit`'s KL-weight schedules and posterior temperature.

* A schedule's weights reach every step (the loss history is `nll + w(e) *
  KL / N` for each epoch `e`) without retracing the compiled step.
* Bad schedules and temperatures are refused before training, naming the
  argument and the epoch.
* The temperature is Wenzel et al.'s: on Bayesian linear regression the fit
  recovers the tempered posterior `p(w | D)^(1/T)` (the same means, variances
  times T), which `kl_weight` does not.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import jdlayers as jdl
from jdlayers import models
from jdlayers.inference import vi

from tests.vi.test_vi_fit import D, N, SIGMA, _blr


def _tiny():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(16, 2)).astype(np.float32)
  y = (x @ np.array([[1.], [-1.]]) + 0.1 * rng.normal(size=(16, 1))).astype(
      np.float32)
  return models.Model(jdl.Affine(1, 2), models.Normal(scale=0.1)), x, y


def test_named_schedules():
  w = vi.linear_warmup(4, start=0.2)
  np.testing.assert_allclose([w(e) for e in range(6)],
                             [0.2, 0.4, 0.6, 0.8, 1., 1.])
  c = vi.cyclical(4, ramp=0.5)
  np.testing.assert_allclose([c(e) for e in range(9)],
                             [0., 0.5, 1., 1., 0., 0.5, 1., 1., 0.])
  assert "linear_warmup(epochs=4, start=0.2)" in repr(w)
  with pytest.raises(ValueError, match=r"linear_warmup: `epochs`"):
    vi.linear_warmup(0)
  with pytest.raises(ValueError, match=r"linear_warmup: `start`"):
    vi.linear_warmup(3, start=1.5)
  with pytest.raises(ValueError, match=r"cyclical: `ramp`"):
    vi.cyclical(3, ramp=0.)


def test_schedule_reaches_every_epoch_without_retracing():
  model, x, y = _tiny()
  traces = []

  def counting_kl(q, p, z):
    traces.append(1)  # Python runs once per trace of the compiled step
    return tf.reduce_sum(q.log_prob(z) - p.log_prob(z))

  def run(kl_weight):
    traces.clear()
    # 16 examples in batches of 8: 2 steps an epoch, 50 epochs a compiled
    # call, so 100 epochs are 2 calls with different weights.
    q = vi.fit(model, x, y, epochs=100, batch_size=8, learning_rate=1e-2,
               kl_weight=kl_weight, seed=3, progress=False,
               divergence_fns={"bias": counting_kl})
    return q, len(traces)

  _, constant_traces = run(1.0)
  schedule = vi.linear_warmup(60)
  q, schedule_traces = run(schedule)
  assert constant_traces >= 1
  assert schedule_traces == constant_traces
  h = q.history
  w = np.array([schedule(e) for e in range(100)])
  # Per step, loss = nll + w * KL / N; epoch means keep it (one w). The
  # tolerance is float32 rounding of `loss - nll`; the weight of a
  # neighbouring epoch would be off by >= 1/60 relative (>= 1.6%).
  np.testing.assert_allclose(np.array(h.loss) - np.array(h.nll),
                             w * np.array(h.kl) / 16, rtol=2e-3, atol=1e-5)


def test_variable_kl_weight_is_read_at_every_step():
  model, x, y = _tiny()
  weight = tf.Variable(0.)
  q = vi.fit(model, x, y, epochs=2, batch_size=16, kl_weight=weight, seed=0,
             progress=False)
  np.testing.assert_allclose(q.history.loss, q.history.nll, rtol=1e-6)
  weight.assign(2.)
  q = vi.fit(model, x, y, surrogate=q, epochs=2, batch_size=16,
             kl_weight=weight, seed=0, progress=False)
  h = q.history
  np.testing.assert_allclose(np.array(h.loss[2:]) - np.array(h.nll[2:]),
                             2. * np.array(h.kl[2:]) / 16, rtol=1e-4)


@pytest.mark.parametrize("kl_weight, error, match", [
    (lambda e: float("nan") if e == 3 else 1., ValueError,
     r"vi.fit: `kl_weight\(3\)` must be a finite number >= 0; got nan"),
    (lambda e: 1. - e, ValueError, r"`kl_weight\(2\)` must be .* got -1"),
    (lambda e: "high", TypeError, r"`kl_weight\(0\)` must be a real number"),
    (lambda e: [1., 2.][e], ValueError,
     r"`kl_weight` schedule .* failed at epoch 2: list index"),
    (-0.5, ValueError, r"`kl_weight` must be a finite number >= 0"),
])
def test_bad_kl_weights_are_refused_before_training(kl_weight, error, match):
  model, x, y = _tiny()
  with pytest.raises(error, match=match):
    vi.fit(model, x, y, epochs=4, kl_weight=kl_weight, progress=False)


@pytest.mark.parametrize("temperature, error", [
    (0., ValueError), (-1., ValueError), (float("nan"), ValueError),
    (float("inf"), ValueError), ("cold", TypeError), (True, TypeError)])
def test_bad_temperatures_are_refused(temperature, error):
  model, x, y = _tiny()
  with pytest.raises(error, match=r"vi.fit: `temperature` must be"):
    vi.fit(model, x, y, epochs=1, temperature=temperature, progress=False)


def test_temperature_multiplies_the_entropy_in_the_loss():
  model, x, y = _tiny()
  q = vi.Surrogate(model, seed=1)
  kw = dict(num_examples=16, seed=(4, 5), estimator="reparam")
  base = vi.elbo_terms(q, x, y, **kw)
  cold = vi.elbo_terms(q, x, y, temperature=0.25, **kw)
  both = vi.elbo_terms(q, x, y, temperature=0.25, kl_weight=0.5, **kw)
  sd = [d.distribution.scale.numpy() for d in q.distributions()]
  entropy = sum(np.sum(0.5 * np.log(2 * np.pi * np.e * s.astype(np.float64)
                                    ** 2)) for s in sd)
  np.testing.assert_allclose(cold.nll, base.nll)
  np.testing.assert_allclose(cold.kl, base.kl)  # reported KL is plain
  np.testing.assert_allclose(cold.loss - base.loss, 0.75 * entropy / 16,
                             rtol=1e-4)
  np.testing.assert_allclose(
      both.loss, base.nll + 0.5 * (base.kl + 0.75 * entropy) / 16,
      rtol=1e-5)


def _fit_blr(**kw):
  x, y, *_ = _blr()
  model = models.Model(jdl.Affine(1, D), models.Normal(scale=SIGMA))
  steps = 1500
  lr = keras.optimizers.schedules.ExponentialDecay(0.05, steps, 0.01)
  q = vi.fit(model, x, y, estimator="local", epochs=steps, batch_size=N,
             optimizer=keras.optimizers.Adam(lr), num_samples=8, seed=0,
             progress=False, **kw)
  d = q.distributions()
  loc = np.concatenate([d[0].distribution.loc.numpy()[0],
                        d[1].distribution.loc.numpy()])
  sd = np.concatenate([d[0].distribution.scale.numpy()[0],
                       d[1].distribution.scale.numpy()])
  return loc, sd


def test_temperature_fits_the_tempered_blr_posterior():
  # p(w | D)^(1/T) is N(m, T L^-1): the same means, the mean-field
  # optimum's variances times T. kl_weight = T instead tempers only the
  # likelihood: wider than that and with other means (not checked here).
  _, _, mean, mf_sd, post_sd = _blr()
  t = 0.25
  loc, sd = _fit_blr(temperature=t)
  # Bounds as test_fit_recovers_the_mean_field_blr_posterior, in units of
  # the tempered posterior's sd. The data are fixed; the optimizer's
  # gradient noise varies. Over 24 tempered runs (seeds 0-7 x 3 estimators)
  # the worst mean error was 0.075 sd (local: 0.031) and the worst scale
  # error 3.1% (local: 1.5%): the bounds (0.2 sd, 10%) are > 2.5x and > 3x
  # the worst of 24, and >= 10 spreads above the 8 local runs' mean (0.027
  # sd, 1.2%; spreads 0.017 sd, 0.3%), so a correct fit fails with
  # probability far below 1e-3.
  assert np.all(np.abs(loc - mean) < 0.2 * np.sqrt(t) * post_sd), (
      (loc - mean) / post_sd)
  np.testing.assert_allclose(sd, np.sqrt(t) * mf_sd, rtol=0.1)


def test_schedule_and_temperature_under_xla():
  model, x, y = _tiny()
  schedule = vi.linear_warmup(4)
  q = vi.fit(model, x, y, epochs=6, batch_size=8, learning_rate=1e-2,
             kl_weight=schedule, temperature=0.5, seed=2, progress=False,
             jit_compile=True)
  h = q.history
  assert np.all(np.isfinite(h.loss))
  assert h.loss[0] == pytest.approx(h.nll[0], rel=1e-6)  # weight 0 at epoch 0
  # With T != 1 the gap holds the entropy too: w(e) * (KL + 0.5 H) / N.
  gap = np.array(h.loss) - np.array(h.nll)
  assert np.all(gap[1:] != 0.)


def test_schedule_with_a_dataset():
  model, x, y = _tiny()
  data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
  schedule = vi.cyclical(2, ramp=1.)  # 0, 0.5, 0, 0.5
  q = vi.fit(model, data, epochs=4, kl_weight=schedule, seed=1,
             progress=False)
  h = q.history
  w = np.array([schedule(e) for e in range(4)])
  np.testing.assert_allclose(np.array(h.loss) - np.array(h.nll),
                             w * np.array(h.kl) / 16, rtol=2e-3, atol=1e-5)
