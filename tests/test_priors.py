"""Priors: log_prob against direct tfd computations, fan-in scales,
horseshoe latents and bijectors, custom params_model_fn, argument checks."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import jdlayers as jdl
from jdlayers import priors

tfd = tfp.distributions
Root = tfd.JointDistributionCoroutine.Root

F64 = tf.float64


def _sum_event(lp, event_ndims):
  return tf.reduce_sum(lp, axis=list(range(-event_ndims, 0)))


def _layers(prior, dtype=F64):
  """(layer, out_axis of its kernel) for one layer of each family."""
  return [
      (jdl.Affine(3, 4, dtype, prior=prior), 0),
      (jdl.Conv2D(3, (2, 3), 2, dtype, prior=prior), -1),
      (jdl.ConvTranspose1D(3, 2, 2, dtype, prior=prior), -2),
  ]


def _kernel_and_bias(value):
  kernel = value.params.get("weights", value.params.get("kernel"))
  return kernel, value.params.get("bias")


IID_PRIORS = {
    "normal": (priors.normal(0.7), lambda s: tfd.Normal(s(0.), s(0.7)), 0.7),
    "normal_bias": (priors.normal(0.7, bias_scale=2.),
                    lambda s: tfd.Normal(s(0.), s(0.7)), 2.),
    "laplace": (priors.laplace(0.5, bias_scale=3.),
                lambda s: tfd.Laplace(s(0.), s(0.5)), 3.),
    "student_t": (priors.student_t(4., 0.3),
                  lambda s: tfd.StudentT(s(4.), s(0.), s(0.3)), 1.),
    "spike_and_slab": (
        priors.spike_and_slab(0.05, 2., 0.3),
        lambda s: tfd.MixtureSameFamily(
            tfd.Categorical(probs=s([0.7, 0.3])),
            tfd.Normal(s([0., 0.]), s([0.05, 2.]))), 1.),
}


@pytest.mark.parametrize("name", sorted(IID_PRIORS))
def test_iid_prior_log_prob_matches_tfd(name):
  prior, kernel_dist, bias_scale = IID_PRIORS[name]
  c = lambda v: tf.constant(v, F64)
  for layer, _ in _layers(prior):
    value = layer.sample(3, seed=(1, 2))
    kernel, bias = _kernel_and_bias(value)
    expected = (_sum_event(kernel_dist(c).log_prob(kernel), kernel.shape.rank - 1)
                + _sum_event(tfd.Normal(c(0.), c(bias_scale)).log_prob(bias), 1))
    lp = layer.log_prob(value)
    assert lp.shape.as_list() == [3]
    np.testing.assert_allclose(lp, expected, rtol=1e-10)


def test_spike_and_slab_log_prob_by_hand():
  layer = jdl.Affine(2, 3, F64, prior=priors.spike_and_slab(0.1, 1.5, 0.2),
                     use_bias=False)
  w = np.linspace(-2, 2, 6).reshape(2, 3)
  value = tf.nest.pack_sequence_as(layer.sample(seed=(0, 0)), [w])
  norm = lambda x, s: np.exp(-0.5 * (x / s) ** 2) / (s * np.sqrt(2 * np.pi))
  expected = np.sum(np.log(0.8 * norm(w, 0.1) + 0.2 * norm(w, 1.5)))
  np.testing.assert_allclose(layer.log_prob(value), expected, rtol=1e-10)


def test_spike_and_slab_bias_choices():
  w = np.linspace(-2, 2, 6).reshape(2, 3)
  b = np.array([-0.5, 0.02])
  norm = lambda x, s: np.exp(-0.5 * (x / s) ** 2) / (s * np.sqrt(2 * np.pi))
  mix = lambda x: np.sum(np.log(0.8 * norm(x, 0.1) + 0.2 * norm(x, 1.5)))
  expected = {
      "normal": mix(w) + np.sum(np.log(norm(b, 3.))),
      "spike_and_slab": mix(w) + mix(b),  # the kernel's mixture, not scale 3
  }
  for bias, want in expected.items():
    prior = priors.spike_and_slab(0.1, 1.5, 0.2, bias_scale=3., bias=bias)
    layer = jdl.Affine(2, 3, F64, prior=prior)
    value = tf.nest.pack_sequence_as(layer.sample(seed=(0, 0)), [w, b])
    np.testing.assert_allclose(layer.log_prob(value), want, rtol=1e-10)
    # The choice is part of the prior's identity and config.
    assert prior.get_config()["bias"] == bias
    assert type(prior).from_config(prior.get_config()) == prior
  assert priors.spike_and_slab() == priors.spike_and_slab(bias="normal")
  assert priors.spike_and_slab(bias="spike_and_slab") != (
      priors.spike_and_slab())


# ----------------------------------------------------------- fan-in scales --

def _he(fan_in, fan_out):
  return np.sqrt(2. / fan_in)


def _lecun(fan_in, fan_out):
  return np.sqrt(1. / fan_in)


def _glorot(fan_in, fan_out):
  return np.sqrt(2. / (fan_in + fan_out))


@pytest.mark.parametrize("prior, scale_fn", [
    (priors.he_normal(), _he),
    (priors.fan_in_normal("he"), _he),
    (priors.lecun_normal(), _lecun),
    (priors.fan_in_normal("lecun"), _lecun),
    (priors.glorot_normal(), _glorot),
    (priors.fan_in_normal("glorot"), _glorot),
])
@pytest.mark.parametrize("make_layer, fan_in, fan_out", [
    (lambda p: jdl.Affine(5, 7, F64, prior=p), 7, 5),
    # conv fan_in = in_channels * prod(size).
    (lambda p: jdl.Conv2D(4, (2, 3), 3, F64, prior=p), 3 * 6, 4 * 6),
    (lambda p: jdl.Conv1D(4, 5, 2, F64, prior=p), 2 * 5, 4 * 5),
    (lambda p: jdl.Conv3D(2, (1, 2, 3), 3, F64, prior=p), 3 * 6, 2 * 6),
])
def test_fan_in_scales(prior, scale_fn, make_layer, fan_in, fan_out):
  layer = make_layer(prior)
  value = layer.sample(2, seed=(3, 4))
  kernel, bias = _kernel_and_bias(value)
  scale = scale_fn(fan_in, fan_out)
  nd = kernel.shape.rank - 1
  kernel_lp = lambda sc: _sum_event(
      tfd.Normal(F64.as_numpy_dtype(0.), sc).log_prob(kernel), nd)
  bias_lp = _sum_event(tfd.Normal(F64.as_numpy_dtype(0.), 1.).log_prob(bias), 1)
  np.testing.assert_allclose(layer.log_prob(value), kernel_lp(scale) + bias_lp,
                             rtol=1e-10)
  # The check discriminates: a 10% different scale gives another log_prob.
  assert not np.allclose(layer.log_prob(value),
                         kernel_lp(1.1 * scale) + bias_lp, rtol=1e-6)


def test_fan_in_gain_and_bias_scale():
  layer = jdl.Affine(3, 8, F64, prior=priors.he_normal(gain=3., bias_scale=.2))
  value = layer.sample(seed=(0, 1))
  expected = (tf.reduce_sum(tfd.Normal(F64.as_numpy_dtype(0.), 3. * 0.5)
                            .log_prob(value.weights))
              + tf.reduce_sum(tfd.Normal(F64.as_numpy_dtype(0.), .2)
                              .log_prob(value.bias)))
  np.testing.assert_allclose(layer.log_prob(value), expected, rtol=1e-10)


def test_he_prior_sample_std():
  # 64 * 200 entries: the sample std is within a few % of sqrt(2 / 200).
  value = jdl.Affine(64, 200, prior=priors.he_normal()).sample(seed=(5, 6))
  np.testing.assert_allclose(np.std(value.weights), np.sqrt(2. / 200),
                             rtol=0.05)


# ---------------------------------------------------------------- horseshoe --

def _horseshoe_log_prob(value, out_axis, tau0, bias_scale):
  kernel, bias = _kernel_and_bias(value)
  tau = value.global_scale
  lam = value.local_scale
  k = kernel.shape.rank - tau.shape.rank
  lp = tfd.HalfCauchy(F64.as_numpy_dtype(0.), tau0).log_prob(tau)
  lp += tf.reduce_sum(tfd.HalfCauchy(F64.as_numpy_dtype(0.), 1.)
                      .log_prob(lam), -1)
  # Move the output axis last, then each kernel column has scale tau*lam_j.
  batch = tau.shape.rank
  axis = batch + (out_axis % k)
  perm = [i for i in range(kernel.shape.rank) if i != axis] + [axis]
  kt = tf.transpose(kernel, perm)
  scale = tau[(...,) + (None,) * k] * tf.reshape(
      lam, lam.shape[:batch].as_list() + [1] * (k - 1) + [lam.shape[-1]])
  lp += tf.reduce_sum(tfd.Normal(F64.as_numpy_dtype(0.), scale).log_prob(kt),
                      axis=list(range(batch, batch + k)))
  if bias is not None:
    lp += tf.reduce_sum(tfd.Normal(F64.as_numpy_dtype(0.), bias_scale)
                        .log_prob(bias), -1)
  return lp


@pytest.mark.parametrize("sample_shape", [(), (4,)])
def test_horseshoe_latents_and_log_prob(sample_shape):
  prior = priors.horseshoe(global_scale=0.3, bias_scale=2.)
  for layer, out_axis in _layers(prior):
    value = layer.sample(sample_shape, seed=(7, 8))
    assert set(value.params) == {"global_scale", "local_scale", "bias",
                                 "weights" if isinstance(layer, jdl.Affine)
                                 else "kernel"}
    s = list(sample_shape)
    out = layer.out_units if isinstance(layer, jdl.Affine) else (
        layer.out_channels)
    assert value.global_scale.shape.as_list() == s
    assert value.local_scale.shape.as_list() == s + [out]
    assert np.all(value.global_scale.numpy() > 0)
    assert np.all(value.local_scale.numpy() > 0)
    # The latents are state parts.
    assert len(tf.nest.flatten(value)) == 4
    lp = layer.log_prob(value)
    assert lp.shape.as_list() == s
    np.testing.assert_allclose(lp, _horseshoe_log_prob(value, out_axis, 0.3,
                                                       2.), rtol=1e-10)


def test_horseshoe_log_prob_depends_on_latents():
  layer = jdl.Affine(3, 2, F64, prior=priors.horseshoe())
  value = layer.sample(seed=(0, 0))
  parts = tf.nest.flatten(value)
  names = list(value.params)
  i = names.index("global_scale")
  parts2 = list(parts)
  parts2[i] = parts[i] * 2.
  other = tf.nest.pack_sequence_as(value, parts2)
  assert not np.allclose(layer.log_prob(value), layer.log_prob(other))


def test_horseshoe_event_space_bijectors():
  net = jdl.Sequential(jdl.Affine(4, 3, prior=priors.horseshoe()), tf.nn.relu,
                       jdl.Affine(1, 4, prior=priors.horseshoe(0.1)))
  value = net.sample(4, seed=(1, 1))
  parts = tf.nest.flatten(value)
  bijectors = jdl.event_space_bijectors(net)
  assert len(bijectors) == len(parts) == 8
  scale_ids = {id(value.layers[i].params[n]) for i in (0, 2)
               for n in ("global_scale", "local_scale")}
  for part, bij in zip(parts, bijectors):
    z = tf.random.stateless_normal(part.shape, [0, 1]) * 5.
    y = bij.forward(z)
    assert y.shape == part.shape
    if id(part) in scale_ids:
      assert np.all(y.numpy() > 0), bij
    else:
      np.testing.assert_array_equal(y, z)
    np.testing.assert_allclose(bij.forward(bij.inverse(part)), part,
                               rtol=1e-4, atol=1e-5)


# ----------------------------------------------------- custom params_model_fn --

def test_anchor_signature_params_model_fn_affine():
  def pmf(out_units, in_units, dtype):
    yield Root(tfd.Sample(tfd.Normal(tf.zeros([], dtype), 2.),
                          [out_units, in_units], name="weights"))
    yield Root(tfd.Sample(tfd.Normal(tf.zeros([], dtype), .5), out_units,
                          name="bias"))

  layer = jdl.Affine(3, 2, F64, pmf)
  value = layer.sample(5, seed=(0, 3))
  assert value.weights.shape.as_list() == [5, 3, 2]
  expected = (_sum_event(tfd.Normal(F64.as_numpy_dtype(0.), 2.)
                         .log_prob(value.weights), 2)
              + _sum_event(tfd.Normal(F64.as_numpy_dtype(0.), .5)
                           .log_prob(value.bias), 1))
  np.testing.assert_allclose(layer.log_prob(value), expected, rtol=1e-10)
  assert value(tf.ones([4, 2], F64)).shape.as_list() == [5, 4, 3]


def test_params_model_fn_with_extra_latent():
  def pmf(out_units, in_units, dtype):
    scale = yield Root(tfd.HalfNormal(tf.ones([], dtype), name="scale"))
    yield tfd.Independent(
        tfd.Normal(tf.zeros([out_units, in_units], dtype),
                   scale[..., tf.newaxis, tf.newaxis]),
        reinterpreted_batch_ndims=2, name="weights")

  layer = jdl.Affine(3, 2, F64, pmf)
  value = layer.sample(4, seed=(2, 3))
  assert list(value.params) == ["scale", "weights"]
  assert value.scale.shape.as_list() == [4]
  expected = (tfd.HalfNormal(F64.as_numpy_dtype(1.)).log_prob(value.scale)
              + _sum_event(tfd.Normal(F64.as_numpy_dtype(0.),
                                      value.scale[:, None, None])
                           .log_prob(value.weights), 2))
  np.testing.assert_allclose(layer.log_prob(value), expected, rtol=1e-10)
  # No bias: the layer is x @ w^T.
  x = tf.ones([6, 2], F64)
  np.testing.assert_allclose(value(x), tf.einsum("ni,soi->sno", x,
                                                 value.weights), rtol=1e-12)
  bijectors = jdl.event_space_bijectors(layer)
  assert np.all(bijectors[0].forward(tf.constant([-3., 0., 3.], F64)) > 0)


def test_anchor_signature_params_model_fn_conv():
  def pmf(out_channels, size, in_channels, dtype):
    yield Root(tfd.Sample(tfd.Normal(tf.zeros([], dtype), 1.),
                          list(size) + [in_channels, out_channels],
                          name="kernel"))

  layer = jdl.Conv2D(4, 3, 2, tf.float32, pmf)
  value = layer.sample(2, seed=(0, 0))
  assert list(value.params) == ["kernel"]
  assert value.kernel.shape.as_list() == [2, 3, 3, 2, 4]
  assert value(tf.ones([1, 5, 5, 2])).shape.as_list() == [2, 1, 5, 5, 4]


# ------------------------------------------------------------------ misc ----

@pytest.mark.parametrize("prior", [
    priors.normal(), priors.he_normal(), priors.laplace(), priors.student_t(),
    priors.spike_and_slab(), priors.horseshoe()])
def test_prior_without_bias(prior):
  layer = jdl.Conv1D(2, 3, 1, prior=prior, use_bias=False)
  value = layer.sample(2, seed=(0, 0))
  assert "bias" not in value.params
  assert layer.log_prob(value).shape.as_list() == [2]


def test_prior_equality_and_repr():
  assert priors.normal(2.) == priors.normal(2.)
  assert priors.normal(2.) != priors.normal(3.)
  assert hash(priors.laplace(1.)) == hash(priors.laplace(1.))
  assert "scale=2.0" in repr(priors.normal(2.))
  assert priors.he_normal() == priors.fan_in_normal("he")


@pytest.mark.parametrize("make, match", [
    (lambda: priors.normal(0.), r"normal: `scale` must be > 0; got 0"),
    (lambda: priors.normal(-1.), r"`scale` must be > 0; got -1"),
    (lambda: priors.normal(1., bias_scale=0.), r"`bias_scale` must be > 0"),
    (lambda: priors.normal(float("nan")), r"`scale` must be > 0; got nan"),
    (lambda: priors.fan_in_normal("xavier"), r"unknown `mode` 'xavier'"),
    (lambda: priors.he_normal(gain=0.), r"`gain` must be > 0"),
    (lambda: priors.lecun_normal(bias_scale=-1.), r"`bias_scale` must be > 0"),
    (lambda: priors.laplace(0.), r"laplace: `scale` must be > 0"),
    (lambda: priors.student_t(df=0.), r"student_t: `df` must be > 0"),
    (lambda: priors.student_t(scale=-2.), r"student_t: `scale` must be > 0"),
    (lambda: priors.spike_and_slab(spike_scale=0.),
     r"spike_and_slab: `spike_scale` must be > 0"),
    (lambda: priors.spike_and_slab(slab_scale=-1.),
     r"spike_and_slab: `slab_scale` must be > 0"),
    (lambda: priors.spike_and_slab(slab_prob=0.),
     r"`slab_prob` must be in \(0, 1\); got 0"),
    (lambda: priors.spike_and_slab(slab_prob=1.5),
     r"`slab_prob` must be in \(0, 1\); got 1.5"),
    (lambda: priors.spike_and_slab(bias="laplace"),
     r"spike_and_slab: `bias` must be one of \('normal', 'spike_and_slab'\); "
     r"got 'laplace'"),
    (lambda: priors.horseshoe(0.), r"horseshoe: `global_scale` must be > 0"),
    (lambda: priors.horseshoe(bias_scale=0.), r"`bias_scale` must be > 0"),
])
def test_bad_prior_arguments_raise(make, match):
  with pytest.raises(ValueError, match=match):
    make()
