"""Saving and loading surrogates: bit-identical samples and predictions."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from hypothesis import given, settings

import jdlayers as jdl
from jdlayers import models
from jdlayers.inference import vi
from jdlayers.io import _files
from jdlayers.testing import strategies as jdt

tfd = tfp.distributions


def _perturb(q, seed):
  rng = np.random.default_rng(seed)
  for v in q.trainable_variables:
    v.assign_add(rng.normal(0, 0.1, v.shape).astype(v.dtype.as_numpy_dtype))


@settings(deadline=None, max_examples=8)
@given(jdt.networks())
def test_saved_surrogate_samples_bit_identically(tmp_path_factory, case):
  path = tmp_path_factory.mktemp("q") / "q.jdl.npz"
  q = vi.Surrogate(case.dist, point_mass="*/bias", seed=case.seed)
  _perturb(q, case.seed)
  q.save(path)
  q2 = vi.load_surrogate(path)
  assert q2.part_names == q.part_names
  for a, b in zip(q.trainable_variables, q2.trainable_variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  y1 = q.sample(case.sample_shape, seed=5)(case.x)
  y2 = q2.sample(case.sample_shape, seed=5)(case.x)
  np.testing.assert_array_equal(y1, y2)
  np.testing.assert_array_equal(q.apply(case.x, "flipout", seed=3),
                                q2.apply(case.x, "flipout", seed=3))


def test_fitted_model_surrogate_predicts_identically(tmp_path):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(40, 2)).astype(np.float32)
  y = (x[:, :1] - x[:, 1:] + 0.1 * rng.normal(size=(40, 1))).astype(
      np.float32)
  model = models.Model(
      jdl.Sequential(jdl.Affine(8, 2, activation="tanh"), jdl.Affine(1, 8)),
      models.Normal(scale=tfd.HalfNormal(1.)))
  q = vi.fit(model, x, y, epochs=3, batch_size=20, progress=False,
             jit_compile=False,
             builders={"0/*": vi.mean_field_normal(0.2, -4.)})
  path = q.save(tmp_path / "fit.jdl.npz")
  q2 = vi.load_surrogate(path)
  np.testing.assert_array_equal(q.predict(x, 20, seed=1).samples,
                                q2.predict(x, 20, seed=1).samples)
  assert q2.history.loss == q.history.loss
  with pytest.raises(FileExistsError, match="overwrite=True"):
    q.save(path)
  q.save(path, overwrite=True)


def test_unsaveable_surrogates_fail_at_save_time(tmp_path):
  net = jdl.Affine(2, 3)
  custom = lambda spec, mv: vi.mean_field_normal()(spec, mv)
  with pytest.raises(TypeError, match="custom builder"):
    vi.Surrogate(net, builders={"bias": custom}).save(tmp_path / "a.npz")
  with pytest.raises(TypeError, match="predicate"):
    vi.Surrogate(net, point_mass=lambda n: True).save(tmp_path / "b.npz")
  assert not list(tmp_path.iterdir())  # nothing half-written


def test_load_rejects_mismatched_or_foreign_files(tmp_path):
  q = vi.Surrogate(jdl.Affine(2, 3), seed=0)
  path = q.save(tmp_path / "q.jdl.npz")
  meta, arrays = _files.read(path, "surrogate")
  meta = {k: v for k, v in meta.items()
          if k not in ("format", "version", "kind")}
  arrays["weights/loc"] = np.zeros([3, 3], np.float32)
  bad = _files.write(tmp_path / "bad.npz", "surrogate", meta, arrays)
  with pytest.raises(_files.FileFormatError,
                     match=r"bad.npz: array 'weights/loc' has shape \[3, 3\]"):
    vi.load_surrogate(bad)
  meta["target"]["class"] = "Nope"
  odd = _files.write(tmp_path / "odd.npz", "surrogate", meta, arrays)
  with pytest.raises(_files.FileFormatError, match="odd.npz.*Nope"):
    vi.load_surrogate(odd)
  net_file = jdl.io.save_distribution(tmp_path / "net.npz", jdl.Affine(2, 3))
  with pytest.raises(_files.FileFormatError, match="expected 'surrogate'"):
    vi.load_surrogate(net_file)
