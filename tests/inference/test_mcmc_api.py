"""`jdlayers.mcmc`: settings errors, seeds, chunking, results, interruption."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import jdlayers as jdl
from jdlayers import models

tfd = tfp.distributions


def _data(n=12):
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, size=(n, 1)).astype(np.float32)
  return x, (np.sin(2 * x) + 0.1 * rng.normal(size=x.shape)).astype(np.float32)


def _model(scale=0.1):
  net = jdl.Sequential(jdl.Affine(3, 1, activation="tanh"), jdl.Affine(1, 3))
  return models.Model(net, models.Normal(scale=scale))


def _run(**kw):
  x, y = _data()
  args = dict(num_chains=2, num_results=6, num_burnin_steps=4, kernel="hmc",
              num_leapfrog_steps=3, seed=5, progress=False)
  args.update(kw)
  return jdl.mcmc.sample(_model(), x, y, **args)


@pytest.mark.parametrize("kw, match", [
    (dict(num_chains=0), "`num_chains` must be an int >= 1; got 0"),
    (dict(num_results=0), "`num_results` must be an int >= 1; got 0"),
    (dict(num_burnin_steps=-1), "`num_burnin_steps` must be an int >= 0"),
    (dict(num_chains=2.5), "`num_chains` must be an int"),
    (dict(chunk_size=0), "`chunk_size` must be an int >= 1"),
    (dict(kernel="mala"), r"`kernel` must be one of \['nuts', 'hmc', 'chees', 'snaper'\]"),
    (dict(adaptation="fast"), "`adaptation` must be one of"),
    (dict(adaptation="windowed", num_burnin_steps=30),
     "adaptation='windowed' needs num_burnin_steps >= 100; got 30"),
    (dict(init="zeros"), "`init` must be one of"),
    (dict(init=[np.zeros([2, 3, 1])]), "`init` must have 4 parts"),
    (dict(init=[np.zeros([3, 3, 1]), np.zeros([3, 3]), np.zeros([3, 1, 3]),
                np.zeros([3, 1])]),
     r"init part '0/weights' has shape \[3, 3, 1\]; expected \[2, 3, 1\]"),
])
def test_bad_settings_fail_before_sampling(kw, match):
  with pytest.raises(ValueError, match=match):
    _run(**kw)


def test_same_seed_bit_identical_and_chunking_invariant():
  a = _run(chunk_size=3, jit_compile=False)
  b = _run(chunk_size=3, jit_compile=False)
  c = _run(chunk_size=10, jit_compile=False)
  d = _run(seed=6, chunk_size=10, jit_compile=False)
  for sa, sb, sc, sd in zip(a.states, b.states, c.states, d.states):
    np.testing.assert_array_equal(sa, sb)
    np.testing.assert_array_equal(sa, sc)
    assert not np.array_equal(sa, sd)


def test_result_shapes_predict_and_diagnostics():
  r = _run(jit_compile=True)
  assert r.complete and (r.num_draws, r.num_chains) == (6, 2)
  assert [s.shape[:2] for s in r.states] == [(6, 2)] * 4
  assert r["0/weights"].shape == (6, 2, 3, 1)
  x_new = np.linspace(-1, 1, 5, dtype=np.float32)[:, None]
  assert r.networks(x_new).shape == [6, 2, 5, 1]
  pred = r.predict(x_new, seed=1)
  assert pred.samples.shape == (6, 2, 5, 1) and pred.mean.shape == (5, 1)
  np.testing.assert_allclose(pred.means, r.networks(x_new), rtol=1e-5)
  # Predictive variance = noise variance + variance of the function.
  np.testing.assert_allclose(
      pred.std ** 2, 0.1 ** 2 + pred.means.reshape(12, 5, 1).var(0),
      rtol=1e-4)
  lo, hi = pred.interval(0.8)
  assert lo.shape == (5, 1) and np.all(lo < hi)
  np.testing.assert_array_equal(pred.samples, r.predict(x_new, seed=1).samples)
  diag = r.diagnostics()
  assert [row["name"] for row in diag.rows] == r.part_names
  assert diag.stats["num_chains"] == 2 and "rhat" in str(diag)
  assert 0. <= r.acceptance_rate <= 1.
  assert r.trace.log_accept_ratio.shape == (6, 2)
  assert r.warmup_trace.log_accept_ratio.shape == (4, 2)


def test_predictive_log_prob_is_log_mean_density():
  r = _run()
  x, y = _data()
  pred = r.predict(x)
  f = pred.means.reshape(-1, len(x))
  dens = np.exp(tfd.Normal(f, 0.1).log_prob(y[:, 0]).numpy().astype(np.float64))
  np.testing.assert_allclose(pred.log_prob(y), np.log(dens.mean(0)), rtol=1e-4)
  assert pred.nll(y) == pytest.approx(-np.log(dens.mean(0)).mean(), rel=1e-4)


def test_divergences_are_reported_not_raised():
  r = _run(adaptation="none", step_size=5.0, num_results=8, num_burnin_steps=0)
  assert r.num_divergences > 0
  assert r.diagnostics().stats["divergences"] == r.num_divergences


def test_interrupt_returns_partial_result():
  calls = []

  def progress(info):
    calls.append(info)
    if info["step"] >= 6:
      raise KeyboardInterrupt

  with pytest.warns(UserWarning, match="interrupted: returning 2 of 6 draws"):
    r = _run(chunk_size=3, progress=progress, jit_compile=False)
  assert not r.complete and r.num_draws == 2
  assert calls[0]["phase"] == "warm-up" and calls[-1]["draws"] == 2


def test_sampler_runs_in_steps_and_callback_sees_partial_results():
  x, y = _data()
  seen = []
  sampler = jdl.mcmc.Sampler(_model().posterior(x, y), num_chains=2,
                             num_results=6, num_burnin_steps=4, kernel="hmc",
                             num_leapfrog_steps=3, seed=5, chunk_size=3,
                             jit_compile=False)
  sampler.run(5, progress=False, callback=lambda r: seen.append(r.num_draws))
  assert sampler.step == 5 and not sampler.done
  assert sampler.result().num_draws == 1
  sampler.run(progress=False, callback=lambda r: seen.append(r.num_draws))
  assert sampler.done and seen == [1, 4, 6]
  whole = _run(jit_compile=False, chunk_size=3)
  for a, b in zip(sampler.result().states, whole.states):
    np.testing.assert_array_equal(a, b)


def test_to_arviz():
  az = pytest.importorskip("arviz")
  r = _run()
  x, y = _data()
  idata = r.to_arviz(x, y)
  assert idata.posterior["0/weights"].shape == (2, 6, 3, 1)
  assert idata.log_likelihood["y"].shape == (2, 6, 12)
  assert az.rhat(idata)["0/bias"].shape == (3,)
