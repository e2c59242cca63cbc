"""`LaplaceResult`: sampling, predictives, files, memory bounds and errors."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import jdlayers as jdl
from jdlayers.io import _files


def _cnn(dtype=tf.float32):
  net = jdl.Sequential(
      jdl.Conv2D(3, 3, 1, dtype=dtype, activation="relu"), jdl.MaxPool2D(2),
      jdl.Flatten(), jdl.Affine(3, 12, dtype=dtype))
  return jdl.models.Model(net, jdl.models.Categorical())


def _data(n=24, dtype=np.float32):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(n, 4, 4, 1)).astype(dtype)
  return x, (x.sum((1, 2, 3)) > 0).astype(np.int32) + (x[:, 0, 0, 0] > 1)


@pytest.fixture(scope="module")
def fitted():
  x, y = _data()
  model = _cnn()
  la = jdl.laplace.fit(model, x, y, prior_precision="marglik",
                       map_options=dict(steps=200))
  return model, x, y, la


def test_sample_gives_callable_networks_with_a_sample_dim(fitted):
  model, x, _, la = fitted
  nets = la.sample(5, seed=1)
  assert nets(x).shape == (5, len(x), 3)
  same = la.sample(5, seed=1)
  for a, b in zip(tf.nest.flatten(nets), tf.nest.flatten(same)):
    np.testing.assert_array_equal(a, b)
  other = la.sample(5, seed=2)
  assert not np.allclose(tf.nest.flatten(nets)[0], tf.nest.flatten(other)[0])
  assert np.all(np.isfinite(model.network.log_prob(nets)))
  compiled = tf.function(lambda v: nets(v), jit_compile=True)
  np.testing.assert_allclose(compiled(x), nets(x), rtol=1e-4, atol=1e-5)


def test_last_layer_keeps_the_rest_at_the_map(fitted):
  model, x, y, la = fitted
  last = jdl.laplace.fit(model, x, y, params=la.params, subset="last_layer")
  assert last.subset == ["3/weights", "3/bias"]
  parts = tf.nest.flatten(last.sample(4, seed=0))
  for p, m in zip(parts[:2], la.params[:2]):
    np.testing.assert_array_equal(p, np.repeat(m[None], 4, 0))
  assert not np.allclose(parts[2][0], parts[2][1])


@pytest.mark.parametrize("pred_type,link", [("glm", "probit"), ("glm", "mc"),
                                            ("mc", "probit")])
def test_classification_predictives_are_probabilities(fitted, pred_type,
                                                      link):
  _, x, _, la = fitted
  p = la.predict(x, pred_type=pred_type, link_approx=link, n_samples=30)
  assert p.shape == (len(x), 3)
  np.testing.assert_allclose(p.sum(-1), 1., rtol=1e-5)
  again = la.predict(x, pred_type=pred_type, link_approx=link, n_samples=30)
  np.testing.assert_array_equal(p, again)


def test_glm_variance_matches_sampled_last_layer_networks():
  """The network is linear in its last layer, so the GLM's output variance
  is exact there. 4000 draws; each of the 8 x 3 variances is checked
  within 5 standard errors of a normal variance estimate, `var *
  sqrt(2 / (n - 1))`: false failure < 24 * 6e-7."""
  x, y = _data(12, np.float64)
  model = _cnn(tf.float64)
  params = [p.numpy() for p in tf.nest.flatten(model.network.sample(seed=4))]
  la = jdl.laplace.fit(model, x, y, params=params, subset="last_layer",
                       hessian="full")
  _, cov = la.functional_variance(x[:8])
  var = np.diagonal(cov, axis1=1, axis2=2)
  draws = la.sample(4000, seed=5)(x[:8]).numpy()
  assert np.all(np.abs(draws.var(0) - var) < 5 * var * np.sqrt(2 / 3999))


def test_validation_search_picks_the_best_grid_precision(fitted):
  model, x, y, la = fitted
  xv, yv = _data(16)
  xv, yv = xv[::-1].copy() * 0.9, yv[::-1].copy()
  last = jdl.laplace.fit(model, x, y, params=la.params, subset="last_layer")
  grid = [0.01, 1., 100.]
  chosen = last.optimize_prior_precision(xv, yv, grid=grid)
  nll = {}
  for g in grid:
    last.prior_precision = np.array([g])
    p = last.predict(xv)
    nll[g] = -np.log(p[np.arange(len(yv)), yv]).sum()
  assert chosen[0] == min(nll, key=nll.get)
  with pytest.raises(ValueError, match="`grid`"):
    last.optimize_prior_precision(xv, yv, grid=[0.])


def test_regression_predictive_adds_the_noise():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(30, 2)).astype(np.float32)
  model = jdl.models.Model(jdl.Affine(1, 2), jdl.models.Normal(0.3))
  la = jdl.laplace.fit(model, x, x.sum(-1), hessian="diag",
                       map_options=dict(steps=300))
  mean, var = la.predict(x[:4])
  assert mean.shape == var.shape == (4, 1)
  assert np.all(var > 0.09)
  mc = la.predict(x[:4], pred_type="mc", n_samples=50)
  assert mc.mean.shape == (4, 1) and np.all(mc.variance > 0.09)


def test_a_learnt_noise_scale_is_held_at_its_map():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(40, 2)).astype(np.float32)
  y = x.sum(-1) + 0.5 * rng.normal(size=40).astype(np.float32)
  model = jdl.models.Model(
      jdl.Affine(1, 2), jdl.models.Normal(scale=tfp.distributions.HalfNormal(
          1.)))
  la = jdl.laplace.fit(model, x, y, map_options=dict(steps=500))
  assert la.subset == ["weights", "bias"]
  s = float(la.latents["scale"])
  assert 0.3 < s < 0.8
  _, var = la.predict(x[:3])
  assert np.all(var > s ** 2) and np.all(var < s ** 2 + 0.1)


def test_save_load_round_trip(fitted, tmp_path):
  _, x, _, la = fitted
  path = tmp_path / "la.jdl.npz"
  la.save(path)
  same = jdl.laplace.load(path)
  assert same.hessian == la.hessian and same.subset == la.subset
  np.testing.assert_array_equal(same.prior_precision, la.prior_precision)
  np.testing.assert_allclose(same.predict(x), la.predict(x), rtol=1e-6)
  np.testing.assert_array_equal(same.sample(3, seed=7)(x),
                                la.sample(3, seed=7)(x))
  assert same.log_marginal_likelihood() == pytest.approx(
      la.log_marginal_likelihood(), rel=1e-12)
  with pytest.raises(FileExistsError):
    la.save(path)
  with pytest.raises(jdl.io.FileFormatError, match="laplace_result"):
    jdl.io.load_network(path)


def test_memory_bound_refuses_before_allocating(fitted):
  model, x, y, la = fitted
  with pytest.raises(ValueError, match=r"hessian='full'.*\d+ parameters.*"
                     r"needs [\d,]+ bytes.*max_memory=1,000"):
    jdl.laplace.fit(model, x, y, params=la.params, hessian="full",
                    max_memory=1000)


def test_errors_name_the_argument(fitted):
  model, x, y, la = fitted
  fit = lambda **kw: jdl.laplace.fit(model, x, y, params=la.params, **kw)
  with pytest.raises(ValueError, match="`hessian` must be one of"):
    fit(hessian="kfac")
  with pytest.raises(ValueError, match=r"matches no network part.*"
                     r"0/kernel"):
    fit(subset="9/*")
  with pytest.raises(TypeError, match="`subset`"):
    fit(subset=3)
  with pytest.raises(ValueError, match="prior_precision"):
    fit(prior_precision=-1.)
  with pytest.raises(ValueError, match="prior_precision.*layers"):
    fit(prior_precision={"0": 1.})
  with pytest.raises(ValueError, match="part '0/kernel'.*shape"):
    jdl.laplace.fit(model, x, y, params=[p[..., :1] for p in la.params])
  with pytest.raises(ValueError, match="pred_type"):
    la.predict(x, pred_type="laplace")
  horseshoe = jdl.models.Model(
      jdl.Affine(2, 2, prior=jdl.priors.horseshoe(0.1)),
      jdl.models.Categorical())
  xs, ys = np.ones((4, 2), np.float32), np.arange(4) % 2
  assert jdl.laplace.fit(horseshoe, xs, ys, map_options=dict(steps=2)
                         ).subset == ["weights", "bias"]
  with pytest.raises(ValueError, match=r"'global_scale'.*not the real line"):
    jdl.laplace.fit(horseshoe, xs, ys, subset="*scale", hessian="diag")
  poisson = jdl.models.Model(jdl.Affine(1, 2), jdl.models.Poisson())
  with pytest.raises(ValueError, match="Poisson has no generalized Gauss-"
                     "Newton.*Categorical"):
    jdl.laplace.fit(poisson, np.ones((3, 2), np.float32), np.ones(3, int))


def test_params_from_a_keras_model(fitted):
  keras = pytest.importorskip("keras")
  model, x, y, _ = fitted
  km = keras.Sequential([keras.Input((4, 4, 1)),
                         keras.layers.Conv2D(3, 3, padding="same",
                                             activation="relu"),
                         keras.layers.MaxPool2D(2), keras.layers.Flatten(),
                         keras.layers.Dense(3)])
  la = jdl.laplace.fit(model, x, y, params=km, hessian="diag")
  np.testing.assert_allclose(la.map_network(x), km(x), rtol=1e-5, atol=1e-5)


def test_kfac_of_the_digits_cnn_fits_in_50_mb():
  # The architecture of examples/vi_digits_cnn.py (6090 parameters); the
  # structure's size does not depend on the data, so random images do.
  net = jdl.Sequential(
      jdl.Conv2D(16, 3, 1, activation="relu"), jdl.MaxPool2D(2),
      jdl.Conv2D(32, 3, 16, activation="relu"), jdl.MaxPool2D(2),
      jdl.Flatten(), jdl.Affine(10, 128))
  model = jdl.models.Model(net, jdl.models.Categorical())
  x = np.random.default_rng(0).uniform(size=(64, 8, 8, 1)).astype(np.float32)
  params = [p.numpy() for p in tf.nest.flatten(net.sample(seed=0))]
  la = jdl.laplace.fit(model, x, np.arange(64) % 10, params=params,
                       max_memory=50 * 2 ** 20)
  assert la.num_params == 6090
  held = sum(a.nbytes for a in la.structure.arrays().values())
  assert held < 2 ** 20
  with pytest.raises(ValueError, match="6,090 parameters.*593,409,600 bytes"):
    jdl.laplace.fit(model, x, np.arange(64) % 10, params=params,
                    hessian="full", max_memory=50 * 2 ** 20)


def _tamper(src, dst, meta=None, arrays=None, drop=()):
  archive = _files.inspect(src, "laplace_result")
  data = {k: v for k, v in archive.load().items() if k not in drop}
  data.update(arrays or {})
  fields = {k: v for k, v in archive.meta.items()
            if k not in ("format", "version", "kind")}
  fields.update(meta or {})
  _files.write(dst, "laplace_result", fields, data)


@pytest.mark.parametrize("change,match", [
    (dict(meta={"hessian": "kfac"}), "hessian"),
    (dict(meta={"num_blocks": 10 ** 12}), "implies"),
    (dict(meta={"subset": ["9/kernel"]}), "matches no network part"),
    (dict(arrays={"kron_a_0": np.eye(3)}), "kron_a_0"),
    (dict(arrays={"param_0": np.zeros((2, 2), np.float32)}), "param_0"),
    (dict(arrays={"prior_precision": np.array([-1., 1., 1.])}),
     "prior_precision"),
    (dict(drop=("kron_b_1",)), "missing arrays"),
    (dict(arrays={"kron_b_0": np.full((3, 3), np.nan)}), "NaN"),
])
def test_load_refuses_tampered_files(fitted, tmp_path, change, match):
  _, _, _, la = fitted
  src, dst = tmp_path / "a.jdl.npz", tmp_path / "b.jdl.npz"
  la.save(src)
  _tamper(src, dst, **change)
  with pytest.raises(jdl.io.FileFormatError, match=match):
    jdl.laplace.load(dst)
