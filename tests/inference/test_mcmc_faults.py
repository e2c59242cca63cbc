"""Hard faults mid-MCMC: failed checkpoint writes, non-finite starting points.

A checkpoint write that fails (full disk, permissions) stops the run like
Ctrl-C does, but loudly: `CheckpointWriteError` names the file and the cause
and carries the draws so far, and the last good checkpoint resumes to the
uninterrupted run's draws bit for bit. A log density or gradient that is not
finite where the chains start is refused before sampling, naming the chains,
the term and the likely cause.
"""

import collections
import errno
import functools
import os

import numpy as np
import pytest
import tensorflow_probability as tfp

import jdlayers as jdl
from jdlayers import models
from jdlayers.inference import _checkpoint, _initial_check
from jdlayers.io import _files
from jdlayers.models._posterior import Posterior

from _mcmc_testlib import SETTINGS, assert_same_run as _assert_same_run
from _mcmc_testlib import data as _data, mlp

tfd = tfp.distributions

@functools.lru_cache(None)
def _model(likelihood=None):
  return models.Model(mlp(), likelihood or models.Normal(scale=0.1))


@pytest.fixture(scope="module")
def reference():
  return jdl.mcmc.sample(_model(), *_data(), progress=False, **SETTINGS)


def _checkpoint_step(path):
  return _files.read(path, "mcmc_checkpoint")[0]["step"]


def _disk_full_after(step):
  """A `progress` that turns the disk "full" once `step` is reached."""
  state = dict(on=False)

  def progress(info):
    state["on"] = info["step"] >= step
  return state, progress


@pytest.mark.parametrize("which", ["segment", "manifest"])
def test_failed_checkpoint_write_keeps_draws_and_last_checkpoint(
    tmp_path, monkeypatch, reference, which):
  path = str(tmp_path / "run.ckpt.jdl.npz")
  state, progress = _disk_full_after(20)
  real = _files.atomic_write_bytes

  def write(target, data, **kw):
    is_segment = target.endswith(_checkpoint.SUFFIX)
    if state["on"] and is_segment == (which == "segment"):
      if which == "segment":  # the real write, failing at its fsync
        real_fsync, os.fsync = os.fsync, _enospc
        try:
          return real(target, data, **kw)
        finally:
          os.fsync = real_fsync
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real(target, data, **kw)

  monkeypatch.setattr(_files, "atomic_write_bytes", write)
  with pytest.raises(jdl.mcmc.CheckpointWriteError) as info:
    jdl.mcmc.sample(_model(), *_data(), checkpoint=path, checkpoint_every=10,
                    progress=progress, **SETTINGS)
  monkeypatch.undo()
  err = info.value
  msg = str(err)
  assert isinstance(err, OSError) and err.errno == errno.ENOSPC
  assert f"writing checkpoint {path!r} failed at step 30 of 40" in msg
  assert "No space left on device" in msg
  assert "the checkpoint holds step 20" in msg and "resume=True" in msg
  assert ("10-20" not in err.filename and
          err.filename.endswith(".20-30" + _checkpoint.SUFFIX)
          if which == "segment" else err.filename == path)
  # The draws so far, identical to the uninterrupted run's first ones.
  part = err.partial_result
  assert not part.complete and part.num_draws == 10
  for a, b in zip(part.states, reference.states):
    np.testing.assert_array_equal(a, b[:10])
  # The last good checkpoint is intact, no segment beyond it is left, and it
  # resumes to the uninterrupted run.
  assert _checkpoint_step(path) == err.checkpoint_step == 20
  leftovers = [n for n in os.listdir(tmp_path) if "20-30" in n]
  assert not leftovers
  resumed = jdl.mcmc.sample(_model(), *_data(), checkpoint=path,
                            checkpoint_every=10, resume=True, progress=False,
                            **SETTINGS)
  _assert_same_run(resumed, reference)


def _enospc(fd):
  del fd
  raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes into read-only directories")
def test_read_only_directory_mid_run(tmp_path, reference):
  path = str(tmp_path / "run.ckpt.jdl.npz")

  def progress(info):
    if info["step"] == 20:
      os.chmod(tmp_path, 0o555)
  try:
    with pytest.raises(jdl.mcmc.CheckpointWriteError,
                       match="Permission denied") as info:
      jdl.mcmc.sample(_model(), *_data(), checkpoint=path,
                      checkpoint_every=10, progress=progress, **SETTINGS)
  finally:
    os.chmod(tmp_path, 0o755)
  assert info.value.partial_result.num_draws == 10
  _assert_same_run(
      jdl.mcmc.sample(_model(), *_data(), checkpoint=path, checkpoint_every=10,
                      resume=True, progress=False, **SETTINGS), reference)


def test_failure_before_any_checkpoint_says_so(tmp_path, monkeypatch):
  def write(target, data, **kw):
    raise PermissionError(errno.EACCES, "Permission denied")
  monkeypatch.setattr(_files, "atomic_write_bytes", write)
  sampler = jdl.mcmc.Sampler(_model().posterior(*_data()),
                             checkpoint=str(tmp_path / "c.jdl.npz"),
                             checkpoint_every=10, **SETTINGS)
  with pytest.raises(jdl.mcmc.CheckpointWriteError,
                     match="no checkpoint was written yet") as info:
    sampler.run(progress=False)
  assert info.value.partial_result.num_draws == 0
  assert sampler.step == 10 and sampler.checkpoint_step is None


# -- non-finite density at the initial state ---------------------------------

@pytest.mark.parametrize("kernel", ["hmc", "nuts"])
def test_huge_y_is_refused_before_sampling(kernel):
  x, y = _data()
  with pytest.raises(ValueError, match=r"cannot sample from this initial "
                     r"state: in chains \[0, 1\] \(of 2\) the log density is "
                     r"-inf \(likelihood -inf\)\. Likely cause: y has values "
                     r"up to 1e\+30 \(data scale"):
    jdl.mcmc.sample(_model(), x, np.full_like(y, 1e30), progress=False,
                    **dict(SETTINGS, kernel=kernel))


@pytest.mark.parametrize("kernel", ["hmc", "nuts"])
def test_nan_likelihood_names_term_and_gradient_parts(kernel):
  nan_lik = models.General(lambda out: tfd.Normal(out * np.nan, 1.))
  with pytest.raises(ValueError) as info:
    jdl.mcmc.Sampler(_model(nan_lik).posterior(*_data()),
                     **dict(SETTINGS, kernel=kernel))
  msg = str(info.value)
  assert "in chains [0, 1] (of 2) the log density is nan (likelihood nan)" \
      in msg
  assert "its gradient is not finite for parts '0/weights' (chains [0, 1])" \
      in msg
  assert "prior" not in msg.split("Likely cause")[0]
  assert "Likely cause: the initial state lies where the model has no " \
      "density" in msg


def test_only_bad_chains_and_the_bad_prior_are_named():
  post = _model().posterior(*_data())
  init = [np.array(p) for p in post.init(3, seed=0)]
  init[1][2] = np.inf   # chain 2's first-layer bias: its prior is -inf
  with pytest.raises(ValueError) as info:
    jdl.mcmc.Sampler(post, init=init, **dict(SETTINGS, num_chains=3))
  msg = str(info.value)
  assert "in chains [2] (of 3)" in msg
  assert "prior of '0/bias' -inf" in msg or "prior of layer '0' -inf" in msg
  assert "the initial values of ['0/bias'] are not finite (init)" in msg


def test_finite_start_passes_and_costs_no_extra_evaluation(monkeypatch):
  """The check reads what the kernel's bootstrap computed anyway."""
  calls = []
  real = Posterior.log_prob
  monkeypatch.setattr(Posterior, "log_prob",
                      lambda self, *p: calls.append(1) or real(self, *p))
  post = _model().posterior(*_data())
  # Without its compiled loops, the model traces its bootstrap anew.
  monkeypatch.setattr(post.model, "_jdl_compiled_loops",
                      collections.OrderedDict(), raising=False)
  jdl.mcmc.Sampler(post, **SETTINGS)
  with_check = len(calls)
  monkeypatch.setattr(_initial_check, "check", lambda *a: None)
  monkeypatch.setattr(post.model, "_jdl_compiled_loops",
                      collections.OrderedDict())
  jdl.mcmc.Sampler(post, **SETTINGS)
  assert with_check == len(calls) - with_check > 0
