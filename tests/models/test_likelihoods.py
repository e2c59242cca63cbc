"""Likelihood heads: log-densities match TFP, shapes, and clear data errors."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from hypothesis import given, settings, strategies as st

import jdlayers as jdl
from jdlayers import models

tfd = tfp.distributions


def _mlp(out, in_=2):
  return jdl.Sequential(jdl.Affine(4, in_, activation="tanh"),
                        jdl.Affine(out, 4))


def _x(n=6, d=2, seed=0):
  return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


# (likelihood, outputs per point, y maker, tfd reference from outputs)
CASES = {
    "normal": (lambda: models.Normal(scale=0.3), 2,
               lambda r, n: r.normal(size=(n, 2)).astype(np.float32),
               lambda o: tfd.Normal(o, 0.3)),
    "student_t": (lambda: models.StudentT(df=3., scale=0.5), 1,
                  lambda r, n: r.normal(size=(n, 1)).astype(np.float32),
                  lambda o: tfd.StudentT(3., o, 0.5)),
    "hetero": (lambda: models.HeteroscedasticNormal(min_scale=0.01), 2,
               lambda r, n: r.normal(size=(n, 1)).astype(np.float32),
               lambda o: tfd.Normal(o[..., :1],
                                    tf.nn.softplus(o[..., 1:]) + 0.01)),
    "poisson": (lambda: models.Poisson(), 1,
                lambda r, n: r.poisson(2., size=(n, 1)),
                lambda o: tfd.Poisson(log_rate=o)),
    "bernoulli": (lambda: models.Bernoulli(), 1,
                  lambda r, n: r.integers(0, 2, size=(n, 1)),
                  lambda o: tfd.Bernoulli(logits=o)),
    "categorical": (lambda: models.Categorical(), 3,
                    lambda r, n: r.integers(0, 3, size=(n,)),
                    lambda o: tfd.Categorical(logits=o)),
    "general": (lambda: models.General(lambda o: tfd.Laplace(o, 0.2)), 1,
                lambda r, n: r.normal(size=(n, 1)).astype(np.float32),
                lambda o: tfd.Laplace(o, 0.2)),
}


@pytest.mark.parametrize("case", sorted(CASES))
@settings(deadline=None, max_examples=4)
@given(num_chains=st.integers(1, 3), n=st.integers(1, 5),
       seed=st.integers(0, 100))
def test_log_likelihood_matches_tfd(case, num_chains, n, seed):
  make_lik, out, make_y, ref = CASES[case]
  rng = np.random.default_rng(seed)
  x, y = _x(n, seed=seed), make_y(rng, n)
  post = models.Model(_mlp(out), make_lik()).posterior(x, y)
  parts = post.init(num_chains, seed=seed, method="prior")
  network, _ = post.unpack(parts)
  outputs = network(x)                                   # [C, n, out]
  expected = ref(outputs).log_prob(tf.cast(post.y, ref(outputs).dtype))
  expected = tf.reduce_sum(expected, axis=list(range(1, expected.shape.rank)))
  got = post.log_likelihood(*parts)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
  assert got.shape == [num_chains]
  pointwise = post.log_likelihood(*parts, pointwise=True)
  assert pointwise.shape == [num_chains, n]
  np.testing.assert_allclose(tf.reduce_sum(pointwise, -1), got, rtol=1e-5,
                             atol=1e-4)


@pytest.mark.parametrize("case", sorted(CASES))
def test_posterior_log_prob_equals_pinned_joint(case):
  make_lik, out, make_y, _ = CASES[case]
  x, y = _x(5), make_y(np.random.default_rng(1), 5)
  post = models.Model(_mlp(out), make_lik()).posterior(x, y)
  parts = post.init(3, seed=2, method="prior")
  network, latents = post.unpack(parts)
  pinned = post.distribution.unnormalized_log_prob(network, *latents.values())
  np.testing.assert_allclose(post.log_prob(*parts), pinned, rtol=1e-5)


def test_latent_noise_scale_is_a_model_component():
  lik = models.Normal(scale=tfd.HalfNormal(0.5))
  model = models.Model(_mlp(1), lik)
  joint = model.joint(_x(7))
  draw = joint.sample(4, seed=0)
  assert draw._fields == ("network", "scale", "y")
  assert draw.scale.shape == [4] and draw.y.shape == [4, 7, 1]
  lp = joint.log_prob(draw)
  expected = (model.network.log_prob(draw.network) +
              tfd.HalfNormal(0.5).log_prob(draw.scale) +
              tf.reduce_sum(tfd.Normal(draw.network(_x(7)),
                                       draw.scale[:, None, None]).log_prob(
                                           draw.y), [1, 2]))
  np.testing.assert_allclose(lp, expected, rtol=1e-5)
  post = model.posterior(_x(7), np.zeros([7], np.float32))
  assert post.part_names[-1] == "scale"
  assert isinstance(post.bijectors[-1], tfp.bijectors.Softplus)


def test_prior_predictive_is_seeded():
  joint = models.Model(_mlp(1), models.Normal(0.1)).joint(_x(5))
  a, b = joint.sample(3, seed=7), joint.sample(3, seed=7)
  np.testing.assert_array_equal(a.y, b.y)


def test_init_methods_and_roundtrip():
  post = models.Model(_mlp(1), models.Normal(scale=tfd.HalfNormal(1.))
                      ).posterior(_x(5), np.zeros([5, 1], np.float32))
  prior = post.init(64, seed=0, method="prior")
  shrunk = post.init(64, seed=0, method="shrunk", scale=0.1)
  assert [p.shape[0] for p in prior] == [64] * len(post.part_names)
  # Shrunk weights are the prior's draws times 0.1 (identity bijector) ...
  np.testing.assert_allclose(shrunk[0], 0.1 * prior[0].numpy(), rtol=1e-6)
  # ... and the scale is mapped through its softplus bijector.
  b = post.bijectors[-1]
  np.testing.assert_allclose(shrunk[-1], b.forward(0.1 * b.inverse(prior[-1])),
                             rtol=1e-5)
  np.testing.assert_array_equal(post.init(4, seed=3)[0],
                                post.init(4, seed=3)[0])
  network, latents = post.unpack(prior)
  for a, b in zip(post.flatten(network, latents), prior):
    assert a is b
  assert post.part_names == ["0/weights", "0/bias", "1/weights", "1/bias",
                             "scale"]


# -- bad data -------------------------------------------------------------

def _post(lik, out, x, y):
  return models.Model(_mlp(out), lik).posterior(x, y)


def test_mismatched_lengths():
  with pytest.raises(ValueError, match=r"x has 5 points but y has shape \[4"):
    _post(models.Normal(), 1, _x(5), np.zeros([4, 1], np.float32))


def test_floats_for_categorical():
  with pytest.raises(TypeError, match="Categorical: y must hold integer"):
    _post(models.Categorical(), 3, _x(5), np.zeros([5], np.float32))


def test_labels_out_of_range():
  with pytest.raises(ValueError, match=r"labels must be in \[0, 3\).*\[0, 3\]"):
    _post(models.Categorical(), 3, _x(4), np.array([0, 1, 2, 3]))
  with pytest.raises(ValueError, match="must be 0 or 1"):
    _post(models.Bernoulli(), 1, _x(3), np.array([0, 1, 2]))
  with pytest.raises(ValueError, match="non-negative"):
    _post(models.Poisson(), 1, _x(3), np.array([[0], [1], [-1]]))


@pytest.mark.parametrize("where", ["x", "y"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_data(where, bad):
  x, y = _x(4), np.zeros([4, 1], np.float32)
  (x if where == "x" else y)[2, 0] = bad
  with pytest.raises(ValueError, match=rf"{where} holds 1 non-finite.*"
                     rf"{where}\[2, 0\]"):
    _post(models.Normal(), 1, x, y)


def test_wrong_y_shape_and_x_shape():
  with pytest.raises(ValueError, match=r"y must be \[N, 2\]"):
    _post(models.Normal(), 2, _x(4), np.zeros([4, 3], np.float32))
  with pytest.raises(ValueError, match=r"Affine\(out_units=4, in_units=2\)"):
    _post(models.Normal(), 1, _x(4, d=3), np.zeros([4, 1], np.float32))
  with pytest.raises(TypeError, match="x must be floating"):
    _post(models.Normal(), 1, np.ones([4, 2], np.int64),
          np.zeros([4, 1], np.float32))


def test_head_output_checks():
  with pytest.raises(ValueError, match="even number"):
    _post(models.HeteroscedasticNormal(), 3, _x(4), np.zeros([4, 1]))
  with pytest.raises(ValueError, match=">= 2 logits"):
    _post(models.Categorical(), 1, _x(4), np.zeros([4], np.int32))


def test_bad_likelihood_arguments():
  with pytest.raises(ValueError, match="Normal: `scale` must be > 0"):
    models.Normal(scale=0.)
  with pytest.raises(TypeError, match="tfd.Distribution prior"):
    models.Normal(scale="big")
  with pytest.raises(ValueError, match="must be scalar"):
    models.Normal(scale=tfd.HalfNormal([1., 2.]))
  with pytest.raises(TypeError, match="must be a jdlayers.models likelihood"):
    models.Model(_mlp(1), tfd.Normal(0., 1.))
  with pytest.raises(TypeError, match="`network` must be a jdlayers"):
    models.Model(lambda x: x, models.Normal())
