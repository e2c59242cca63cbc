"""The compiled sampling loop is traced once per model, settings and shapes.

The data and the seed are arguments of the loop, so a second run of the same
model on new data of the same shapes reuses it: no retrace
(`loop.traces == 1`), no compile time, and draws equal, bit for bit, to a
run that compiled afresh on that data. Other shapes or settings get their
own loop; the cache is bounded and lives on the model object.
"""

import numpy as np
import pytest
import tensorflow_probability as tfp

import jdlayers as jdl
from jdlayers import models
from jdlayers.inference import _loop

from _mcmc_testlib import SETTINGS, mlp

KERNELS = ("nuts", "hmc", "chees", "snaper")


def _data(n=12, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.uniform(-1, 1, size=(n, 1)).astype(np.float32)
  return x, (np.sin(2 * x) + 0.1 * rng.normal(size=x.shape)).astype(np.float32)


def _model():
  return models.Model(mlp(), models.Normal(scale=0.1))


def _settings(kernel, **kw):
  out = dict(SETTINGS, kernel=kernel, num_results=5, num_burnin_steps=5)
  if kernel in ("chees", "snaper"):
    out.pop("num_leapfrog_steps")
  out.update(kw)
  return out


def _run(model, data, kernel, **kw):
  sampler = jdl.mcmc.Sampler(model.posterior(*data), **_settings(kernel, **kw))
  return sampler.run(progress=False)


def _assert_same_draws(a, b):
  for sa, sb in zip(a.draws(), b.draws()):
    np.testing.assert_array_equal(sa, sb)
  for ta, tb in zip(a.full_trace(), b.full_trace()):
    np.testing.assert_array_equal(ta, tb)


def _loops(model):
  return list(vars(model).get(_loop._ATTR, {}).values())


@pytest.mark.parametrize("kernel", KERNELS)
def test_second_run_on_new_data_reuses_the_loop(kernel):
  model = _model()
  first = _run(model, _data(), kernel)
  assert first.loop.traces == 1 and first.compile_seconds > 0
  # New data (and a new seed) of the same shapes: the same loop, untraced.
  second = _run(model, _data(seed=1), kernel, seed=6)
  assert second.loop is first.loop and second.loop.traces == 1
  assert second.compile_seconds == 0
  # ... that samples the new data: equal to a fresh model's compiled run
  # (NUTS and SNAPER, whose traces take longest, skip this).
  if kernel in ("hmc", "chees"):
    fresh = _run(_model(), _data(seed=1), kernel, seed=6)
    assert fresh.loop is not first.loop and fresh.compile_seconds > 0
    _assert_same_draws(second, fresh)
  # The first data and seed again: the first run's draws, bit for bit.
  again = _run(model, _data(), kernel)
  assert again.loop.traces == 1 and again.compile_seconds == 0
  _assert_same_draws(again, first)
  assert not np.array_equal(second.draws()[0], first.draws()[0])
  assert len(_loops(model)) == 1


@pytest.fixture(scope="module")
def first():
  """A model with one ChEES loop, that the cases below add to."""
  model = _model()
  return model, _run(model, _data(), "chees").loop


@pytest.mark.parametrize("change", [
    dict(data=_data(n=13)),                 # other data shapes
    dict(num_chains=3),                     # other state shapes
    dict(num_burnin_steps=6),               # other settings
    dict(step_size=0.05),
    dict(max_leapfrog_steps=50),
    dict(chunk_size=7),
])
def test_other_shapes_or_settings_get_their_own_loop(change, first):
  model, loop = first
  before = _loops(model)
  change = dict(change)
  other = _run(model, change.pop("data", _data()), "chees", **change)
  assert other.loop not in before
  assert other.loop.traces == 1 and other.compile_seconds > 0
  assert loop.traces == 1 and loop in _loops(model)


def test_sample_reuses_the_loop_and_compiles_with_xla_once():
  # A learnt noise scale: ChEES inside a TransformedTransitionKernel, in XLA.
  model = models.Model(mlp(), models.Normal(
      scale=tfp.distributions.HalfNormal(1.)))
  kw = dict(_settings("chees", jit_compile=True), progress=False)
  a = jdl.mcmc.sample(model, *_data(), **kw)
  b = jdl.mcmc.sample(model, *_data(seed=1), **kw)
  c = jdl.mcmc.sample(model, *_data(), **kw)
  loop, = _loops(model)
  assert loop.traces == 1
  assert a.part_names[-1] == "scale" and a["scale"].min() > 0
  for sa, sb, sc in zip(a.states, b.states, c.states):
    np.testing.assert_array_equal(sa, sc)
    assert not np.array_equal(sa, sb)
  jdl.mcmc.sample(model, *_data(seed=2), **kw)
  assert loop.traces == 1 and len(_loops(model)) == 1


def test_the_cache_is_bounded_and_least_recently_used_goes(monkeypatch):
  monkeypatch.setattr(_loop, "MAX_LOOPS", 2)
  model = _model()
  a = _run(model, _data(), "hmc", step_size=0.1, num_results=2)
  b = _run(model, _data(), "hmc", step_size=0.2, num_results=2)
  assert _run(model, _data(), "hmc", step_size=0.1,
              num_results=2).loop is a.loop          # a is now the newest
  c = _run(model, _data(), "hmc", step_size=0.3, num_results=2)
  loops = _loops(model)
  assert len(loops) == 2 and a.loop in loops and c.loop in loops
  assert b.loop not in loops
  # b's settings compile anew.
  again = _run(model, _data(), "hmc", step_size=0.2, num_results=2)
  assert again.loop is not b.loop and again.compile_seconds > 0
