"""Configuration round trips: `jdlayers.io.to_config` / `from_config`."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from hypothesis import given, settings

import jdlayers as jdl
import jdlayers.testing as jdt
from jdlayers import _registry, io

tfd = tfp.distributions


def _json_round_trip(obj):
  config = io.to_config(obj)
  again = io.from_json(json.dumps(config, sort_keys=True))
  assert io.to_config(again) == config
  return again


def _assert_same_samples(a, b, sample_shape=(2,), seed=7):
  fa, fb = a.sample(sample_shape, seed=seed), b.sample(sample_shape, seed=seed)
  for u, v in zip(tf.nest.flatten(fa), tf.nest.flatten(fb), strict=True):
    np.testing.assert_array_equal(u, v)
  np.testing.assert_array_equal(a.log_prob(fa), b.log_prob(fa))
  return fa, fb


# -- generated layers (networks: test_network_io.py) ----------------------

@settings(max_examples=12, deadline=None)
@given(jdt.layer_configs())
def test_layer_config_round_trip(case):
  again = _json_round_trip(case.dist)
  assert type(again) is type(case.dist)
  fa, fb = _assert_same_samples(case.dist, again, case.sample_shape,
                                case.seed)
  np.testing.assert_array_equal(fa(case.x), fb(case.x))


# -- hand-built composites, priors, dtypes -----------------------------------

def test_nested_composites_round_trip():
  net = jdl.Sequential(
      jdl.Conv1D(2, 3, 1, activation="relu", dilations=2, padding="causal"),
      jdl.AvgPool1D(2), jdl.Flatten(),
      jdl.Residual(jdl.Sequential(jdl.Dense(8, 8), tf.nn.tanh)),
      jdl.Parallel(jdl.Affine(2, 8), jdl.Affine(1, 8, use_bias=False),
                   combine="concat"),
      name="net")
  again = _json_round_trip(net)
  fa, fb = _assert_same_samples(net, again)
  x = np.random.default_rng(0).standard_normal([3, 8, 1]).astype(np.float32)
  np.testing.assert_array_equal(fa(x), fb(x))
  cfg = io.to_config(net)["config"]
  assert [c["class"] for c in cfg["layers"]] == [
      "Conv1D", "AvgPool1D", "Flatten", "Residual", "Parallel"]
  assert cfg["layers"][2]["config"]["feature_ndims"] == 2  # inferred


def test_conv_transpose_and_rank_arguments():
  layer = jdl.ConvTranspose(2, (2, 3), 3, tf.float64, rank=2, strides=2,
                            output_padding=1, data_format="channels_first",
                            impl="unrolled", name="up")
  cfg = io.to_config(layer)["config"]
  assert cfg["rank"] == 2 and cfg["output_padding"] == [1, 1]
  assert cfg["dtype"] == "float64"
  again = _json_round_trip(layer)
  _assert_same_samples(layer, again)
  assert "rank" not in io.to_config(jdl.Conv3D(1, 1, 1))["config"]


@pytest.mark.parametrize("prior", [
    jdl.priors.normal(0.5, 2.0), jdl.priors.he_normal(1.5),
    jdl.priors.glorot_normal(), jdl.priors.laplace(0.3),
    jdl.priors.student_t(5.0, 0.2), jdl.priors.spike_and_slab(0.02, 2., 0.3),
    jdl.priors.horseshoe(0.1, 0.5)], ids=lambda p: type(p).__name__)
def test_every_prior_round_trips(prior):
  again = io.from_config(io.to_config(prior))
  assert again == prior and type(again).from_config(prior.get_config()) == prior
  layer = jdl.Affine(3, 2, prior=prior)
  _assert_same_samples(layer, _json_round_trip(layer))


def test_default_prior_is_saved_explicitly():
  cfg = io.to_config(jdl.Affine(3, 2))["config"]
  assert cfg["prior"] == {"class": "priors.Normal",
                          "config": {"scale": 1.0, "bias_scale": 1.0}}


def test_static_layers_round_trip():
  for layer in (jdl.Flatten(2), jdl.MaxPool3D((1, 2, 2), padding="same"),
                jdl.Pool(3, 1, rank=1, mode="avg"), jdl.Lambda(tf.nn.gelu)):
    again = _json_round_trip(layer)
    assert type(again) is type(layer)
  assert io.to_config(jdl.Lambda(tf.nn.silu))["config"]["fn"] == "silu"


# -- models and likelihoods --------------------------------------------------

@pytest.mark.parametrize("likelihood", [
    jdl.models.Normal(0.25), jdl.models.Normal(scale=tfd.HalfNormal(0.5)),
    jdl.models.StudentT(df=tfd.Gamma(2., 0.5), scale=0.1),
    jdl.models.HeteroscedasticNormal(0.01), jdl.models.Poisson(),
    jdl.models.Bernoulli(), jdl.models.Categorical()],
                         ids=lambda l: l.desc)
def test_likelihoods_round_trip(likelihood):
  again = io.from_config(io.to_config(likelihood))
  assert type(again) is type(likelihood)
  assert io.to_config(again) == io.to_config(likelihood)


def test_model_with_halfnormal_latent_round_trips():
  net = jdl.Sequential(jdl.Affine(4, 1, activation="tanh"), jdl.Affine(1, 4))
  model = jdl.models.Model(net, jdl.models.Normal(scale=tfd.HalfNormal(0.5)))
  cfg = io.to_config(model)
  scale = cfg["config"]["likelihood"]["config"]["scale"]
  assert scale["tfd"] == "HalfNormal" and scale["parameters"]["scale"] == 0.5
  assert scale["dtypes"] == {"scale": "float32"}
  again = _json_round_trip(model)
  assert isinstance(again, jdl.models.Model) and again.latent_names == (
      "network", "scale")
  x = np.linspace(-1, 1, 5, dtype=np.float32)[:, None]
  ja, jb = model.joint(x), again.joint(x)
  sa, sb = ja.sample(3, seed=4), jb.sample(3, seed=4)
  for u, v in zip(tf.nest.flatten(sa), tf.nest.flatten(sb), strict=True):
    np.testing.assert_array_equal(u, v)
  np.testing.assert_array_equal(ja.log_prob(sa), jb.log_prob(sa))
  assert jdl.models.Model.from_config(model.get_config()).latent_names == (
      "network", "scale")


def test_float64_prior_keeps_its_dtype():
  lik = jdl.models.Normal(scale=tfd.LogNormal(np.float64(0.), 1.))
  cfg = io.to_config(lik)["config"]["scale"]
  assert set(cfg["dtypes"].values()) == {"float64"}
  again = io.from_config(io.to_config(lik))
  assert again.latents["scale"].dtype == tf.float64


# -- functions ---------------------------------------------------------------

def _cube(x):
  return x ** 3


def _laplace(out, scale):
  return tfd.Laplace(out, scale)


def test_registered_functions_round_trip():
  io.register_function("test_cube", _cube)
  io.register_function("test_cube", _cube)  # same function: no-op
  net = jdl.Sequential(jdl.Affine(2, 2, activation=_cube), _cube)
  cfg = io.to_config(net)["config"]["layers"]
  assert cfg[0]["config"]["activation"] == "test_cube"
  assert cfg[1]["config"]["fn"] == "test_cube"
  again = _json_round_trip(net)
  fa, fb = _assert_same_samples(net, again)
  x = tf.ones([3, 2])
  np.testing.assert_array_equal(fa(x), fb(x))
  io.register_function("test_laplace", _laplace)
  lik = jdl.models.General(_laplace, scale=tfd.HalfNormal(1.), df=3.)
  cfg = io.to_config(lik)["config"]
  assert cfg["fn"] == "test_laplace"
  assert [k for k, _ in cfg["latents"]] == ["scale", "df"]
  again = io.from_json(json.dumps(io.to_config(lik), sort_keys=True))
  assert list(again.latents) == ["scale"]
  assert io.to_config(again) == io.to_config(lik)


def test_register_function_errors():
  with pytest.raises(ValueError, match="built-in activation"):
    io.register_function("relu", _cube)
  io.register_function("test_taken", _cube)
  with pytest.raises(ValueError, match="already registered"):
    io.register_function("test_taken", _laplace)
  io.register_function("test_taken", _laplace, overwrite=True)
  with pytest.raises(TypeError, match="callable"):
    io.register_function("test_x", 3)


# -- what cannot be saved, and invalid configs -------------------------------

def test_arbitrary_functions_are_refused_with_the_layer_named():
  with pytest.raises(TypeError, match=r"Lambda\(<lambda>\): fn \(<lambda>\) "
                     r"is an arbitrary Python function and cannot be saved; "
                     r".*register_function"):
    io.to_config(jdl.Lambda(lambda x: x))
  with pytest.raises(TypeError, match=r"Sequential\(2 layers\): layers\[1\] "
                     r"cannot be saved: Lambda\(<lambda>\): fn"):
    io.to_config(jdl.Sequential(jdl.Affine(2, 2), lambda x: 2 * x))
  with pytest.raises(TypeError, match=r"Affine\(out_units=2, in_units=2\): "
                     r"activation \(<lambda>\) is an arbitrary"):
    io.to_config(jdl.Affine(2, 2, activation=lambda x: x))
  with pytest.raises(TypeError, match="models.General: fn"):
    io.to_config(jdl.models.General(lambda out: tfd.Normal(out, 1.)))


def test_params_model_fn_is_refused():
  def model_fn(out_units, in_units, dtype):
    del dtype
    yield tfd.JointDistributionCoroutine.Root(tfd.Sample(
        tfd.Normal(0., 1.), [out_units, in_units], name="weights"))
  with pytest.raises(TypeError, match=r"Affine\(out_units=2, in_units=3\): "
                     "params_model_fn is an arbitrary Python function"):
    io.to_config(jdl.Affine(2, 3, params_model_fn=model_fn))


def test_non_numeric_or_foreign_priors_are_refused():
  prior = tfd.TransformedDistribution(tfd.Normal(0., 1.), tfp.bijectors.Exp())
  with pytest.raises(TypeError, match="not numeric"):
    io.to_config(jdl.models.Normal(scale=prior))

  class MyHalfNormal(tfd.HalfNormal):
    pass
  with pytest.raises(TypeError, match="not a tfp.distributions class"):
    io.to_config(jdl.models.Normal(scale=MyHalfNormal(1.)))


def test_foreign_classes_are_refused():
  class MyAffine(jdl.Affine):
    pass
  with pytest.raises(TypeError, match="MyAffine .* not a saveable"):
    io.to_config(MyAffine(2, 2))
  with pytest.raises(TypeError, match="not a saveable"):
    io.to_config(tfd.Normal(0., 1.))


def test_unknown_class_lists_the_known_ones():
  with pytest.raises(ValueError, match=r"unknown class 'Bogus' in config; "
                     r"known classes: \[.*'Affine'.*'models.Model'"):
    io.from_config({"class": "Bogus", "config": {}})
  with pytest.raises(ValueError, match="unknown class 'Bogus'"):
    io.from_config({"class": "Sequential", "config": {
        "layers": [{"class": "Bogus", "config": {}}]}})


@pytest.mark.parametrize("config, match", [
    ({"class": "Affine", "config": {"out_units": 2, "in_units": 2,
                                    "bogus": 1}}, "invalid config for Affine"),
    ({"class": "Affine", "config": {"out_units": 2}}, "invalid config"),
    ({"class": "Affine", "config": {"out_units": 2, "in_units": 2,
                                    "activation": "nope"}},
     "unknown function 'nope'"),
    ({"class": "Affine"}, "invalid config"),
    (["Affine"], "must be a dict"),
    ({"class": "Affine", "config": {}, "x": 1}, "unknown keys"),
    ({"class": "models.Model", "config": {"network": None}}, "Model"),
    ({"class": "models.General", "config": {"fn": "relu", "latents": [],
                                            "extra": 1}}, "unknown config"),
    ({"class": "models.Poisson", "config": {"scale": 1.}}, "unknown config"),
    ({"class": "models.Normal", "config": {"df": 1.}}, "unknown config"),
])
def test_invalid_configs(config, match):
  with pytest.raises(ValueError, match=match):
    io.from_config(config)


@pytest.mark.parametrize("tfd_config, match", [
    ({"tfd": "os", "parameters": {}, "dtypes": {}}, "not a tfp.distributions"),
    ({"tfd": "__class__", "parameters": {}, "dtypes": {}}, "not a tfp"),
    ({"tfd": "Bijector", "parameters": {}, "dtypes": {}}, "not a tfp"),
    ({"tfd": "HalfNormal", "parameters": {"scale": "0.5"},
      "dtypes": {"scale": "float32"}}, "must be numeric"),
    ({"tfd": "HalfNormal", "parameters": {"scale": 0.5},
      "dtypes": {"scale": "object"}}, "must be numeric"),
    ({"tfd": "HalfNormal", "parameters": {"scale": {"a": 1}}, "dtypes": {}},
     "neither numeric"),
    ({"tfd": "HalfNormal", "parameters": {"bogus": 1.}, "dtypes": {
        "bogus": "float32"}}, "cannot build HalfNormal"),
    ({"tfd": "HalfNormal", "parameters": {}}, "keys"),
])
def test_invalid_tfd_configs(tfd_config, match):
  with pytest.raises(ValueError, match=match):
    io.from_config({"class": "models.Normal",
                    "config": {"scale": tfd_config}})


def test_to_json_from_json():
  net = jdl.Sequential(jdl.Affine(2, 1), jdl.Affine(1, 2))
  text = io.to_json(net, indent=1)
  assert json.loads(text)["class"] == "Sequential"
  assert io.to_json(io.from_json(text)) == io.to_json(net)
  with pytest.raises(ValueError, match="not valid JSON"):
    io.from_json("{")
  with pytest.raises(ValueError, match="not valid JSON"):
    io.from_json("[" * 100000)


# -- the class registry (jdlayers._registry) ---------------------------------

# The names saved files hold; a class that forgot to register would make its
# files unloadable, and a renamed one would break every file saved before.
SAVED_NAMES = [
    "Affine", "AvgPool1D", "AvgPool2D", "AvgPool3D", "Conv", "Conv1D",
    "Conv2D", "Conv3D", "ConvTranspose", "ConvTranspose1D", "ConvTranspose2D",
    "ConvTranspose3D", "Flatten", "Lambda", "MaxPool1D", "MaxPool2D",
    "MaxPool3D", "Parallel", "Pool", "Residual", "Sequential",
    "models.Bernoulli", "models.Categorical", "models.General",
    "models.HeteroscedasticNormal", "models.Model", "models.Normal",
    "models.Poisson", "models.StudentT", "priors.FanInNormal",
    "priors.Horseshoe", "priors.Laplace", "priors.Normal",
    "priors.SpikeAndSlab", "priors.StudentT",
]


def test_every_saveable_class_is_registered_under_its_public_path():
  known = _registry.known_classes()
  assert set(SAVED_NAMES) <= set(known), sorted(set(SAVED_NAMES) - set(known))
  for name in known:
    obj = jdl
    for part in name.split("."):
      obj = getattr(obj, part)
    assert obj is _registry._CLASSES[name], name  # pylint: disable=protected-access
    assert _registry.class_name(obj) == name


def test_register_class_refuses_a_taken_name():

  class Affine:  # Another class that would shadow jdl.Affine in saved files.
    pass

  with pytest.raises(ValueError, match="'Affine' is already registered to "
                     r"jdlayers\.layers\.affine\.Affine"):
    _registry.register_class("Affine")(Affine)
  with pytest.raises(ValueError, match="non-empty string"):
    _registry.register_class("")
  assert _registry.class_name(Affine) is None
  assert io.from_config(io.to_config(jdl.Affine(2, 3))).__class__ is jdl.Affine
