"""Every prior in `jdlayers.priors` is usable for inference: it declares the
support of every component, `event_space_bijectors` maps each part, and one
HMC step and one VI step run and stay finite.

The priors are enumerated from the module (every public factory returning a
`Prior`, and every `Prior` subclass it defines), so a new prior is tested
without being listed here.
"""

import inspect
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

import jdlayers as jdl  # noqa: E402
from jdlayers import priors  # noqa: E402

tfd = tfp.distributions
tfb = tfp.bijectors
Root = tfd.JointDistributionCoroutine.Root


def _factories():
  """Public functions of `jdlayers.priors` that build a `Prior`."""
  out = {}
  for name in priors.__all__:
    obj = getattr(priors, name)
    if inspect.isfunction(obj) and inspect.signature(obj).return_annotation in (
        "Prior", priors.Prior):
      out[name] = obj
  return out


def _prior_classes():
  """Every `Prior` subclass defined in `jdlayers.priors`."""
  out, todo = set(), [priors.Prior]
  while todo:
    for sub in todo.pop().__subclasses__():
      todo.append(sub)
      if sub.__module__ == priors.__name__:
        out.add(sub)
  return out


def _variants():
  """One prior per factory with its defaults, plus each choice of any
  argument that switches a component's family (`spike_and_slab(bias=...)`);
  equal priors (`he_normal()` and `fan_in_normal("he")`) are tested once."""
  out = {}
  candidates = [(name, f()) for name, f in sorted(_factories().items())]
  candidates += [(f"spike_and_slab(bias={c!r})", priors.spike_and_slab(bias=c))
                 for c in priors.SpikeAndSlab.BIAS_CHOICES]
  for name, prior in candidates:
    if prior not in out.values():
      out[name] = prior
  return out


PRIORS = _variants()


def test_enumeration_covers_every_prior():
  names = set(_factories())
  assert {"normal", "spike_and_slab", "horseshoe", "laplace", "student_t",
          "he_normal"} <= names
  # Every Prior subclass of the module is built by some factory.
  built = {type(p) for p in PRIORS.values()}
  assert _prior_classes(), "no Prior subclasses found"
  assert _prior_classes() <= built, _prior_classes() - built


def _spec(use_bias=True):
  return priors.ParamSpec("weights", (3, 2), (3,) if use_bias else None, 0, 2,
                          3)


@pytest.mark.parametrize("name", sorted(PRIORS))
@pytest.mark.parametrize("use_bias", [True, False])
def test_every_component_declares_its_support(name, use_bias):
  prior = PRIORS[name]
  layer = jdl.Affine(3, 2, prior=prior, use_bias=use_bias)
  declared = prior.support(_spec(use_bias))
  assert sorted(declared) == sorted(layer.param_names)
  for component, bijector in declared.items():
    assert isinstance(bijector, tfb.Bijector), (name, component, bijector)
  # The layer's own default bijector (TFP's path) exists and agrees.
  assert layer.experimental_default_event_space_bijector() is not None


def _data(n=8):
  x = tf.random.stateless_uniform([n, 2], [0, 1], -1., 1.)
  return x, tf.sin(x[:, :1]) - x[:, 1:]


@pytest.mark.parametrize("name", sorted(PRIORS))
def test_event_space_bijectors(name):
  net = jdl.Affine(3, 2, prior=PRIORS[name])
  value = net.sample(3, seed=(1, 2))
  parts = tf.nest.flatten(value)
  bijectors = jdl.event_space_bijectors(net)
  assert len(bijectors) == len(parts)
  unconstrained = []
  for i, (part, bij) in enumerate(zip(parts, bijectors)):
    z = bij.inverse(part)
    assert z.shape == part.shape
    assert np.all(np.isfinite(z)), (name, i)
    np.testing.assert_allclose(bij.forward(z), part, rtol=1e-4, atol=1e-6)
    unconstrained.append(3. * tf.random.stateless_normal(part.shape, [i, 7]))
  # Any unconstrained point maps into the support: finite log density.
  mapped = [b.forward(z) for b, z in zip(bijectors, unconstrained)]
  lp = net.log_prob(tf.nest.pack_sequence_as(value, mapped))
  assert lp.shape.as_list() == [3]
  assert np.all(np.isfinite(lp)), (name, lp)


def _all_priors_model():
  """One small network with a layer per prior: one HMC step and one VI step
  then cover every prior at the cost of one trace (each layer's parts are
  still checked one by one, by name)."""
  names = sorted(PRIORS)
  layers = [jdl.Affine(2, 2, activation="tanh", prior=PRIORS[n])
            for n in names]
  net = jdl.Sequential(*layers, jdl.Affine(1, 2))
  return names, jdl.models.Model(net, jdl.models.Normal(scale=0.5))


def _prior_of(part_name, names):
  i = int(part_name.split("/")[0])
  return names[i] if i < len(names) else "output layer"


def test_one_hmc_step_with_every_prior():
  # `jdl.mcmc.sample`'s own kernel, one eager step (no tracing: fast).
  names, model = _all_priors_model()
  post = model.posterior(*_data())
  init = post.init(2, seed=3)
  kernel = jdl.mcmc.make_kernel(
      post.log_prob, post.bijectors, init, kernel="hmc",
      num_adaptation_steps=0, step_size=1e-3, num_leapfrog_steps=2,
      adaptation="none", step_size_jitter=0.)
  state, results = kernel.one_step(init, kernel.bootstrap_results(init),
                                   seed=(1, 2))
  assert len(state) == len(post.part_names) > 2 * len(names)
  for pname, s, s0 in zip(post.part_names, state, init):
    assert s.shape == s0.shape
    assert np.all(np.isfinite(s)), (_prior_of(pname, names), pname)
  # The proposal's density and gradient were finite too (a NaN gives a -inf
  # ratio), and so small a step (the spike's scale is 0.01) conserves energy
  # to well within 1 nat (measured: |log accept ratio| < 1e-3 here).
  trace = jdl.mcmc.trace(results)
  assert np.all(np.isfinite(trace.target_log_prob))
  assert np.all(np.abs(trace.log_accept_ratio) < 1.), trace.log_accept_ratio


def test_one_vi_step_with_every_prior():
  names, model = _all_priors_model()
  x, y = _data()
  q = jdl.vi.fit(model, x, y, epochs=1, batch_size=8, learning_rate=1e-2,
                 seed=4, jit_compile=False, progress=False)
  loss = q.history.as_dict()["loss"]
  assert len(loss) == 1 and np.isfinite(loss[0]), loss
  for vname, v in q.trainable_parameters.items():
    assert np.all(np.isfinite(v.numpy())), (_prior_of(vname, names), vname)
  assert np.isfinite(q.kl_divergence(seed=5))


# ------------------------------------------------- undeclared user priors --

def _mixture(dtype=tf.float32):
  return tfd.MixtureSameFamily(
      tfd.Categorical(probs=tf.constant([0.5, 0.5], dtype)),
      tfd.Normal(tf.constant([0., 0.], dtype), tf.constant([0.1, 1.], dtype)))


class _UndeclaredMixture(priors.Prior):
  """A user prior whose kernel family has no default bijector in TFP."""

  def kernel_dist(self, spec):
    return _mixture(spec.dtype)


class _DeclaredMixture(_UndeclaredMixture):

  def kernel_support(self, spec):
    return tfb.Identity()


def test_undeclared_support_raises_naming_layer_part_and_fix():
  net = jdl.Sequential(jdl.Affine(2, 2),
                       jdl.Affine(3, 2, prior=_UndeclaredMixture()))
  with pytest.raises(ValueError) as e:
    jdl.event_space_bijectors(net)
  msg = str(e.value)
  for text in ("Affine(out_units=3, in_units=2)", "'weights'", "state part 2",
               "MixtureSameFamily", "kernel_support", "with_support"):
    assert text in msg, (text, msg)
  # The surrogate and the posterior raise the same, before any variable.
  with pytest.raises(ValueError, match="has no declared support"):
    jdl.vi.Surrogate(net)


def test_declared_user_prior_and_params_model_fn_work():
  def params_model_fn(out_units, in_units, dtype):
    yield Root(priors.with_support(_mixture(dtype), tfb.Identity(),
                                   [out_units, in_units], name="weights"))

  for layer in (jdl.Affine(3, 2, prior=_DeclaredMixture()),
                jdl.Affine(3, 2, params_model_fn=params_model_fn)):
    bijectors = jdl.event_space_bijectors(layer)
    assert len(bijectors) == len(layer.param_names)
    q = jdl.vi.Surrogate(layer, seed=0)
    assert np.isfinite(q.kl_divergence(seed=1))


def test_with_support_keeps_the_density_and_checks_its_argument():
  d = priors.with_support(_mixture(), tfb.Identity(), [4])
  plain = tfd.Sample(_mixture(), [4])
  x = tf.linspace(-2., 2., 4)
  np.testing.assert_allclose(d.log_prob(x), plain.log_prob(x), rtol=1e-6)
  assert d.event_shape == [4] and d.batch_shape == []
  with pytest.raises(TypeError, match="`support` must be a tfp.bijectors"):
    priors.with_support(_mixture(), "identity")


def test_declared_supports_inside_a_users_joint_distribution():
  # A layer is a distribution like any other: yielded in a user's own JDC,
  # its declared supports reach TFP's default joint bijector and ours.
  def model():
    yield Root(jdl.Affine(2, 3, prior=priors.spike_and_slab(
        bias="spike_and_slab")))
    yield Root(jdl.Lambda(tf.square))  # no parameters: no state part
    yield Root(tfd.HalfNormal(1., name="noise"))

  jd = tfd.JointDistributionCoroutine(model)
  value = jd.sample(2, seed=(0, 1))
  parts = tf.nest.flatten(value)
  bijectors = jdl.event_space_bijectors(jd)
  assert len(bijectors) == len(parts) == 3
  assert np.all(bijectors[2].forward(tf.constant([-3., 3.])) > 0)
  tfp_bijector = jd.experimental_default_event_space_bijector()
  roundtrip = tfp_bijector.forward(tfp_bijector.inverse(value))
  for a, b in zip(tf.nest.flatten(roundtrip), parts):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
