"""`MCMCResult.save` / `jdlayers.mcmc.load_result`: exact, validated round trips."""

import functools
import warnings

import numpy as np
import pytest
import tensorflow as tf

import jdlayers as jdl
from jdlayers import models
from jdlayers.io import _files


def _data(n=12):
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, size=(n, 1)).astype(np.float32)
  return x, (np.sin(2 * x) + 0.1 * rng.normal(size=x.shape)).astype(np.float32)


def _model(hidden=3, activation="tanh"):
  net = jdl.Sequential(jdl.Affine(hidden, 1, activation=activation),
                       jdl.Affine(1, hidden))
  return models.Model(net, models.Normal(scale=0.1))


def _sample(model, **kw):
  args = dict(num_chains=2, num_results=6, num_burnin_steps=4, kernel="hmc",
              num_leapfrog_steps=3, seed=5, progress=False, jit_compile=False)
  args.update(kw)
  return jdl.mcmc.sample(model, *_data(), **args)


@functools.lru_cache(None)
def _result():
  return _sample(_model())


def _assert_same(a, b):
  assert (a.num_draws, a.num_chains, a.num_results) == (
      b.num_draws, b.num_chains, b.num_results)
  assert (a.kernel, a.adaptation, a.seconds, a.complete) == (
      b.kernel, b.adaptation, b.seconds, b.complete)
  assert a.part_names == b.part_names
  np.testing.assert_array_equal(a.seed, b.seed)
  for sa, sb in zip(a.states, b.states):
    assert sa.dtype == sb.dtype
    np.testing.assert_array_equal(sa, sb)
  for ta, tb in zip(a.trace + a.warmup_trace, b.trace + b.warmup_trace):
    assert ta.dtype == tb.dtype
    np.testing.assert_array_equal(ta, tb)
  np.testing.assert_array_equal(a.posterior.x, b.posterior.x)
  np.testing.assert_array_equal(a.posterior.y, b.posterior.y)


def test_round_trip_is_exact_and_predicts_bit_identically(tmp_path):
  r = _result()
  path = str(tmp_path / "run.jdl.npz")
  assert r.save(path) == path
  with warnings.catch_warnings():
    warnings.simplefilter("error")   # the same model: no warning
    loaded = jdl.mcmc.load_result(path, model=_model())
  _assert_same(loaded, r)
  x_new = np.linspace(-1.5, 1.5, 7, dtype=np.float32)[:, None]
  a, b = r.predict(x_new, seed=3), loaded.predict(x_new, seed=3)
  for field in ("outputs", "means", "samples", "mean", "std"):
    np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
  for s, f in zip(loaded.final_state, r.final_state):
    np.testing.assert_array_equal(s, f)
  # The diagnostics table is in the metadata, for readers without jdlayers.
  meta = _files.read(path, "mcmc_result")[0]
  d = r.diagnostics()
  np.testing.assert_equal(meta["diagnostics"], dict(rows=d.rows,
                                                    stats=d.stats))
  assert meta["part_names"] == r.part_names and meta["complete"] is True
  assert str(loaded.diagnostics()) == str(d)


def test_never_overwrites_without_asking(tmp_path):
  path = str(tmp_path / "run.jdl.npz")
  r = _result()
  r.save(path)
  with pytest.raises(FileExistsError, match="pass overwrite=True"):
    r.save(path)
  r.save(path, overwrite=True)


def test_model_rebuilt_from_the_file(tmp_path):
  path = str(tmp_path / "run.jdl.npz")
  r = _result()
  r.save(path)
  meta, _ = _files.read(path, "mcmc_result")
  assert meta["model"]["class"] == "models.Model" and meta["model_error"] is None
  loaded = jdl.mcmc.load_result(path)
  _assert_same(loaded, r)
  x_new = np.linspace(-1, 1, 5, dtype=np.float32)[:, None]
  np.testing.assert_array_equal(loaded.predict(x_new).outputs,
                                r.predict(x_new).outputs)


def test_unserialisable_model_is_saved_without_it(tmp_path):
  net = jdl.Sequential(jdl.Affine(3, 1), jdl.Lambda(lambda t: tf.tanh(t)),
                       jdl.Affine(1, 3))
  model = models.Model(net, models.Normal(scale=0.1))
  r = _sample(model)
  path = str(tmp_path / "lambda.jdl.npz")
  r.save(path)
  meta, _ = _files.read(path, "mcmc_result")
  assert meta["model"] is None and meta["model_error"]
  with pytest.raises(ValueError, match="lambda.jdl.npz: the file holds no "
                     r"model configuration .*load_result\(path, model=...\)"):
    jdl.mcmc.load_result(path)
  loaded = jdl.mcmc.load_result(path, model=model)
  _assert_same(loaded, r)


def test_interrupted_result_round_trip(tmp_path):
  def stop(info):
    if info["step"] >= 5:
      raise KeyboardInterrupt

  with pytest.warns(UserWarning, match="returning 1 of 6 draws"):
    r = _sample(_model(), chunk_size=5, progress=stop)
  path = str(tmp_path / "part.jdl.npz")
  r.save(path)
  meta, _ = _files.read(path, "mcmc_result")
  assert meta["complete"] is False and meta["diagnostics"] is None
  loaded = jdl.mcmc.load_result(path, model=_model())
  _assert_same(loaded, r)
  assert not loaded.complete and loaded.num_draws == 1


def _rewrite(src, dst, kind="mcmc_result", drop=(), **changes):
  meta, arrays = _files.read(src, "mcmc_result")
  for k in ("format", "version", "kind") + tuple(drop):
    meta.pop(k)
  for k, v in changes.items():
    if k in arrays:
      arrays[k] = v
    else:
      meta[k] = v
  _files.write(dst, kind, meta, arrays)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("res") / "good.jdl.npz")
  _result().save(path)
  return path


@pytest.mark.parametrize("model, match", [
    (dict(hidden=4), r"array 'state_0' has shape \[6, 2, 3, 1\] but the "
     r"config implies \[6, 2, 4, 1\]"),
])
def test_states_must_match_the_model(saved, model, match):
  with pytest.raises(_files.FileFormatError, match="good.jdl.npz: " + match):
    jdl.mcmc.load_result(saved, model=_model(**model))


def test_a_different_model_passed_in_is_flagged(saved):
  with pytest.warns(UserWarning, match="good.jdl.npz: the model passed "
                    "differs from the one saved"):
    jdl.mcmc.load_result(saved, model=_model(activation="relu"))


def test_part_names_must_match_the_model(saved):
  net = jdl.Sequential(jdl.Affine(3, 1, activation="tanh"),
                       jdl.Sequential(jdl.Affine(1, 3)))
  with pytest.raises(_files.FileFormatError, match=r"good.jdl.npz: the file "
                     r"holds parts \['0/weights', .*\] but the model has "
                     r"\['0/weights', '0/bias', '1/0/weights'"):
    jdl.mcmc.load_result(saved, model=models.Model(net,
                                                   models.Normal(scale=0.1)))


@pytest.mark.parametrize("damage, match", [
    (dict(kind="mcmc_checkpoint"),
     "holds a 'mcmc_checkpoint', expected 'mcmc_result'"),
    (dict(num_draws=5, num_results=5), r"array 'state_0' has shape \[6, 2, 3, 1\] but the "
     r"config implies \[5, 2, 3, 1\]"),
    (dict(trace_step_size=np.zeros(3, np.float32)),
     r"array 'trace_step_size' has shape \[3\]"),
    (dict(state_1=np.zeros([6, 2, 3], np.float64)),
     "part '0/bias' is float64 but the model's is float32"),
    (dict(drop=("num_warmup",)), "metadata lacks 'num_warmup'"),
])
def test_damaged_files_are_refused_naming_the_file(saved, tmp_path, damage,
                                                   match):
  path = str(tmp_path / "bad.jdl.npz")
  _rewrite(saved, path, **damage)
  with pytest.raises(_files.FileFormatError, match="bad.jdl.npz: ") as info:
    jdl.mcmc.load_result(path, model=_model())
  assert info.match(match)


def test_newer_version_and_missing_file(saved, tmp_path, monkeypatch):
  path = str(tmp_path / "new.jdl.npz")
  monkeypatch.setattr(_files, "VERSION", _files.VERSION + 1)
  _rewrite(saved, path)
  monkeypatch.undo()
  with pytest.raises(_files.FileFormatError, match="new.jdl.npz: written by "
                     "a newer jdlayers"):
    jdl.mcmc.load_result(path, model=_model())
  with pytest.raises(FileNotFoundError, match="nothere.jdl.npz"):
    jdl.mcmc.load_result(str(tmp_path / "nothere.jdl.npz"), model=_model())
