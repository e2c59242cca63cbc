"""KL terms: analytic equals `tfd.kl_divergence`, and agrees with Monte Carlo."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import jdlayers as jdl
from jdlayers.inference import vi

tfd = tfp.distributions


def _spread(q, seed=0):
  rng = np.random.default_rng(seed)
  for name, v in q.trainable_parameters.items():
    size = v.shape
    if name.endswith("/loc"):
      v.assign(rng.normal(0, 0.5, size=size).astype(v.dtype.as_numpy_dtype))
    else:
      v.assign(rng.normal(-1, 0.3, size=size).astype(v.dtype.as_numpy_dtype))


def test_analytic_kl_equals_tfd_kl_divergence():
  net = jdl.Sequential(jdl.Conv2D(2, 3, 1, tf.float64,
                                  prior=jdl.priors.normal(0.5, 2.0)),
                       jdl.Flatten(), jdl.Affine(3, 2 * 4 * 4, tf.float64))
  q = vi.Surrogate(net, seed=0)
  _spread(q)
  want = 0.
  scales = [0.5, 2.0, 1.0, 1.0]
  for d, s in zip(q.distributions(), scales):
    shape = d.event_shape
    prior = tfd.Independent(tfd.Normal(tf.zeros(shape, tf.float64),
                                       tf.fill(shape, tf.constant(s, tf.float64))),
                            len(shape))
    want += tfd.kl_divergence(d, prior).numpy()
  np.testing.assert_allclose(q.kl_divergence(seed=0).numpy(), want,
                             rtol=1e-12)


@pytest.mark.parametrize("prior", [jdl.priors.normal(), jdl.priors.horseshoe(),
                                   jdl.priors.laplace(0.3)])
def test_analytic_and_monte_carlo_kl_agree(prior):
  """The analytic estimate (exact for normal priors; exact given the sampled
  scales for the horseshoe; MC for Laplace, which TFP has no KL for) has the
  same expectation as the plain MC estimate `log q - log p`."""
  layer = jdl.Affine(3, 4, tf.float64, prior=prior)
  q = vi.Surrogate(layer, seed=1)
  _spread(q, 1)
  k = 3000
  parts = q.sample_parts([k], seed=2)
  mc = (q.log_prob(parts) - layer.log_prob(q.unpack(parts)[0])).numpy()
  kl = tf.function(lambda *z: q.kl_divergence(parts=list(z)),
                   autograph=False)
  analytic = np.array([kl(*[p[i] for p in parts]).numpy()
                       for i in range(0, k, 10)])
  se = np.sqrt(mc.var() / k + analytic.var() / len(analytic))
  assert abs(mc.mean() - analytic.mean()) < 5 * se + 1e-9, (
      mc.mean(), analytic.mean(), se)
  if isinstance(prior, jdl.priors.Normal):
    assert analytic.std() < 1e-9  # exact: no Monte Carlo noise left


def test_point_mass_kl_is_negative_log_prior():
  layer = jdl.Affine(2, 3, tf.float64)
  q = vi.Surrogate(layer, point_mass=True, seed=0)
  _spread(q)
  value = q.unpack(q.mean_parts())[0]
  np.testing.assert_allclose(q.kl_divergence(seed=0).numpy(),
                             -layer.log_prob(value).numpy(), rtol=1e-12)


def test_point_mass_patterns_and_builders():
  net = jdl.Sequential(jdl.Affine(4, 2), jdl.Affine(1, 4))
  q = vi.Surrogate(net, point_mass="bias", seed=0)
  kinds = [type(d.distribution).__name__ for d in q.distributions()]
  assert kinds == ["Normal", "Deterministic", "Normal", "Deterministic"]
  q = vi.Surrogate(net, point_mass=["1/*"],
                   builders={"0/weights": vi.mean_field_normal(0.0, -5.)},
                   seed=0)
  kinds = [type(d.distribution).__name__ for d in q.distributions()]
  assert kinds == ["Normal", "Normal", "Deterministic", "Deterministic"]
  np.testing.assert_array_equal(q.mean_parts()[0], np.zeros([4, 2]))


def test_hierarchical_latents_live_in_their_support():
  layer = jdl.Affine(3, 4, prior=jdl.priors.horseshoe())
  q = vi.Surrogate(layer, seed=0)
  assert q.part_names == ("global_scale", "local_scale", "weights", "bias")
  f = q.sample(100, seed=1)
  assert np.all(f.global_scale.numpy() > 0)
  assert np.all(f.local_scale.numpy() > 0)
  assert np.isfinite(layer.log_prob(f).numpy()).all()


def test_likelihood_latent_gets_a_surrogate():
  model = jdl.models.Model(jdl.Affine(1, 2),
                           jdl.models.Normal(scale=tfd.HalfNormal(1.)))
  q = vi.Surrogate(model, seed=0)
  assert q.part_names[-1] == "scale"
  parts = q.sample_parts([50], seed=0)
  assert np.all(parts[-1].numpy() > 0)
  assert np.isfinite(q.kl_divergence(seed=1).numpy())
