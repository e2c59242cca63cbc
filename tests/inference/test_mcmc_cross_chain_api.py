"""ChEES and SNAPER: errors before compiling, the learned trajectory length in
traces, diagnostics and files, and checkpoints that resume bit for bit."""

import functools
import os

import numpy as np
import pytest

import jdlayers as jdl
from jdlayers import models
from jdlayers.inference import _checkpoint, _loop
from jdlayers.io import _files

from _mcmc_testlib import SETTINGS, assert_same_run, data, mlp

KERNELS = ("chees", "snaper")
ALL_KERNELS = ("nuts", "hmc") + KERNELS


@functools.lru_cache(None)
def _model():
  return models.Model(mlp(), models.Normal(scale=0.1))


def _settings(kernel, **kw):
  out = dict(SETTINGS, kernel=kernel)
  if kernel in KERNELS:
    out.pop("num_leapfrog_steps")
  out.update(kw)
  return out


@functools.lru_cache(None)
def _reference(kernel):
  return jdl.mcmc.sample(_model(), *data(), progress=False,
                         **_settings(kernel))


# -- errors ------------------------------------------------------------------

@pytest.fixture
def nothing_compiles(monkeypatch):
  """Fails the test if data is validated, chains start or a loop is built."""
  def fail(*args, **kwargs):
    pytest.fail("reached the data, the chains or the compiled loop")
  monkeypatch.setattr(type(_model().posterior(*data())), "init", fail)
  monkeypatch.setattr(models.Model, "posterior", fail)
  monkeypatch.setattr(_loop, "ChunkLoop", fail)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("kw, match", [
    (dict(num_chains=1), "mcmc.sample: kernel='{k}' needs num_chains >= 2 "
     r".*got num_chains=1\."),
    (dict(adaptation="windowed", num_burnin_steps=200),
     "mcmc.sample: kernel='{k}' cannot use adaptation='windowed'"),
    (dict(max_leapfrog_steps=0),
     "mcmc.sample: `max_leapfrog_steps` must be an int >= 1; got 0"),
    (dict(max_leapfrog_steps=True),
     "mcmc.sample: `max_leapfrog_steps` must be an int >= 1; got True"),
    (dict(max_leapfrog_steps=2.5),
     "mcmc.sample: `max_leapfrog_steps` must be an int >= 1; got 2.5"),
])
def test_sample_refuses_before_touching_data(kernel, kw, match,
                                             nothing_compiles):
  with pytest.raises(ValueError, match=match.format(k=kernel)):
    jdl.mcmc.sample(_model(), *data(), **_settings(kernel, **kw))


@pytest.mark.parametrize("kernel", KERNELS)
def test_sampler_and_make_kernel_refuse_one_chain(kernel, monkeypatch):
  post = _model().posterior(*data())
  state = post.init(1, seed=0)
  with pytest.raises(ValueError, match=f"make_kernel: kernel='{kernel}' needs "
                     "num_chains >= 2 .*got num_chains=1"):
    jdl.mcmc.make_kernel(post.log_prob, post.bijectors, state, kernel=kernel)
  for kw, match in [
      (dict(adaptation="windowed"), f"kernel='{kernel}' cannot use "
       "adaptation='windowed'"),
      (dict(max_leapfrog_steps=0), "`max_leapfrog_steps` must be an int >= 1"),
      (dict(max_leapfrog_steps=2.5), "`max_leapfrog_steps` must be an int")]:
    with pytest.raises(ValueError, match="make_kernel: " + match):
      jdl.mcmc.make_kernel(post.log_prob, post.bijectors,
                           post.init(2, seed=0), kernel=kernel, **kw)
  monkeypatch.setattr(type(post), "init", lambda *a, **k: pytest.fail("init"))
  with pytest.raises(ValueError, match=f"mcmc.Sampler: kernel='{kernel}' "
                     "needs num_chains >= 2 .*got num_chains=1"):
    jdl.mcmc.Sampler(post, **dict(_settings(kernel, num_chains=1)))


# -- the learned trajectory length --------------------------------------------

@pytest.mark.parametrize("kernel", ALL_KERNELS)
def test_trajectory_length_in_trace_and_diagnostics(kernel):
  result = _reference(kernel)
  length = result.diagnostics().stats["trajectory_length"]
  assert np.isfinite(length) and length > 0, length
  assert result.trace.trajectory_length.shape == (SETTINGS["num_results"],)
  assert result.warmup_trace.trajectory_length.shape == (
      SETTINGS["num_burnin_steps"],)
  if kernel in KERNELS:
    # Learned during warm-up, fixed afterwards (each step jitters it).
    kept = result.trace.trajectory_length
    np.testing.assert_array_equal(kept, kept[0])
    assert len(np.unique(result.warmup_trace.trajectory_length)) > 1
    assert length == pytest.approx(float(kept[0]))
    # ... and the jittered leapfrog counts stay within the learned length.
    leaps = result.trace.num_leapfrog_steps
    steps = result.trace.step_size[:, None]
    assert np.all(leaps >= 1)
    assert np.all(leaps * steps <= kept[0] + steps + 1e-6)
  elif kernel == "hmc":
    np.testing.assert_allclose(result.trace.trajectory_length,
                               result.trace.step_size * 3, rtol=1e-6)


def _drop_trajectory_length(src, dst, kind, prefixes):
  """Rewrites `src` as a file written before `trajectory_length` existed."""
  meta, arrays = _files.read(src, kind)
  for k in ("format", "version", "kind", "trace_fields"):
    meta.pop(k)
  for p in prefixes:
    arrays.pop(p + "trajectory_length")
  _files.write(dst, kind, meta, arrays)


@pytest.mark.parametrize("kernel", KERNELS)
def test_saved_result_keeps_it_and_older_files_load_with_nan(kernel,
                                                             tmp_path):
  result = _reference(kernel)
  path = result.save(str(tmp_path / "r.jdl.npz"))
  loaded = jdl.mcmc.load_result(path, model=_model())
  for a, b in zip(loaded.trace + loaded.warmup_trace,
                  result.trace + result.warmup_trace):
    np.testing.assert_array_equal(a, b)
  assert loaded.kernel == kernel
  assert loaded.diagnostics().stats["trajectory_length"] == (
      result.diagnostics().stats["trajectory_length"])
  old = str(tmp_path / "old.jdl.npz")
  _drop_trajectory_length(path, old, "mcmc_result", ("trace_", "warmup_"))
  loaded = jdl.mcmc.load_result(old, model=_model())
  assert np.isnan(loaded.trace.trajectory_length).all()
  assert loaded.trace.trajectory_length.shape == (SETTINGS["num_results"],)
  assert np.isnan(loaded.warmup_trace.trajectory_length).all()
  assert np.isnan(loaded.diagnostics().stats["trajectory_length"])
  # Everything else is intact.
  np.testing.assert_array_equal(loaded.trace.step_size, result.trace.step_size)
  for a, b in zip(loaded.states, result.states):
    np.testing.assert_array_equal(a, b)


# -- checkpoint and resume -----------------------------------------------------

def _sampler(path, kernel, **kw):
  return jdl.mcmc.Sampler(_model().posterior(*data()), checkpoint=path,
                          checkpoint_every=10, **_settings(kernel, **kw))


@pytest.mark.parametrize("kernel", KERNELS)
def test_resume_mid_warmup_is_bit_identical(kernel, tmp_path):
  ref = _reference(kernel)
  path = str(tmp_path / "run.jdl.npz")

  def stop(info):
    if info["step"] >= 13:
      raise KeyboardInterrupt

  # Interrupted at step 14 of 40: the checkpoint holds step 10, mid-warm-up,
  # where the trajectory length, the step size (and SNAPER's
  # preconditioner) adapt.
  with pytest.warns(UserWarning, match="holds step 10 of 40"):
    jdl.mcmc.sample(_model(), *data(), checkpoint=path, checkpoint_every=10,
                    progress=stop, **_settings(kernel))
  # Resumed on a new model object, as in a new process: a newly traced
  # loop continues from the restored kernel results.
  fresh = models.Model(mlp(), models.Normal(scale=0.1))
  resumed = jdl.mcmc.Sampler(fresh.posterior(*data()), checkpoint=path,
                             checkpoint_every=10, resume=True,
                             **_settings(kernel))
  assert resumed.resumed_from == 10
  result = resumed.run(progress=False).result()
  assert_same_run(result, ref)
  np.testing.assert_array_equal(result.trace.trajectory_length,
                                ref.trace.trajectory_length)
  np.testing.assert_array_equal(result.warmup_trace.trajectory_length,
                                ref.warmup_trace.trajectory_length)


def test_older_checkpoint_segments_resume_with_nan_length(tmp_path):
  path = str(tmp_path / "run.jdl.npz")
  _sampler(path, "chees").run(13, progress=False)
  seg, = [n for n in os.listdir(tmp_path) if n.endswith(_checkpoint.SUFFIX)]
  seg = str(tmp_path / seg)
  _drop_trajectory_length(seg, seg + ".tmp", "mcmc_checkpoint_segment",
                          ("trace_",))
  os.replace(seg + ".tmp", seg)
  resumed = _sampler(path, "chees", resume=True)
  full = resumed.full_trace()
  assert full.trajectory_length.shape == (10,)
  assert np.isnan(full.trajectory_length).all()
  ref = _reference("chees")
  np.testing.assert_array_equal(full.step_size,
                                ref.warmup_trace.step_size[:10])
  # The kernel's own state is in the manifest: the run continues exactly.
  result = resumed.run(progress=False).result()
  for a, b in zip(result.states, ref.states):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(result.trace.trajectory_length,
                                ref.trace.trajectory_length)
