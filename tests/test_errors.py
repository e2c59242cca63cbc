"""Errors: every user mistake is a ValueError/TypeError raised at
construction or call, naming the layer, the argument and the bad values.

Layer arguments and call-time inputs are here; sample shapes, log_prob
values and composites' static sizes in test_errors_values.py; sampler, fit
and data settings in test_errors_settings.py."""

import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import jdlayers as jdl
from jdlayers import priors

tfd = tfp.distributions
Root = tfd.JointDistributionCoroutine.Root


# ------------------------------------------------------------ construction --

@pytest.mark.parametrize("make, match", [
    (lambda: jdl.Affine(0, 3),
     r"Affine: `out_units` must be a positive integer; got 0"),
    (lambda: jdl.Affine(3, -2),
     r"Affine: `in_units` must be a positive integer; got -2"),
    (lambda: jdl.Affine(2.5, 3),
     r"Affine: `out_units` must be a positive integer; got 2.5"),
    (lambda: jdl.Conv2D(0, 3, 1),
     r"Conv2D: `out_channels` must be a positive integer; got 0"),
    (lambda: jdl.Conv2D(4, 3, 0),
     r"Conv2D: `in_channels` must be a positive integer; got 0"),
    (lambda: jdl.Conv1D(4, 0, 1), r"Conv1D: `size` \(=0\) must be >= 1"),
    (lambda: jdl.Conv2D(4, (3, -1), 1),
     r"Conv2D: `size` \(=\(3, -1\)\) must be >= 1"),
    (lambda: jdl.ConvTranspose3D(0, 3, 1),
     r"ConvTranspose3D: `out_channels` must be a positive integer; got 0"),
    (lambda: jdl.Conv2D(4, 3, 1, strides=0),
     r"Conv2D\(out_channels=4, size=\(3, 3\), in_channels=1\): `strides` "
     r"\(=0\) must be >= 1"),
    (lambda: jdl.Flatten(0),
     r"Flatten: `feature_ndims` must be a positive integer; got 0"),
])
def test_non_positive_sizes(make, match):
  with pytest.raises(ValueError, match=match):
    make()


@pytest.mark.parametrize("make, match", [
    (lambda: jdl.Conv2D(4, (3, 3, 3), 1),
     r"Conv2D: `size` \(=\(3, 3, 3\)\) must have 2 entries for a rank-2 "
     r"layer, got 3"),
    (lambda: jdl.Conv1D(4, (3, 3), 1),
     r"Conv1D: `size` \(=\(3, 3\)\) must have 1 entries for a rank-1 layer"),
    (lambda: jdl.Conv3D(4, (3, 3), 1),
     r"Conv3D: `size` \(=\(3, 3\)\) must have 3 entries"),
    (lambda: jdl.Conv(4, (3, 3), 1, rank=3),
     r"Conv: `size` \(=\(3, 3\)\) must have 3 entries for a rank-3 layer"),
    (lambda: jdl.Conv2D(4, 3, 1, strides=(1, 1, 1)),
     r"Conv2D\(.*\): `strides` \(=\(1, 1, 1\)\) must have 2 entries"),
    (lambda: jdl.MaxPool2D((2, 2, 2)),
     r"MaxPool2D: `pool_size` \(=\(2, 2, 2\)\) must have 2 entries"),
    (lambda: jdl.Conv2D(4, 3, 1, rank=3), r"Conv2D fixes rank=2; got rank=3"),
    (lambda: jdl.Conv(4, 3, 1, rank=4),
     r"Conv: `rank` must be 1, 2 or 3; got 4"),
])
def test_wrong_tuple_length_or_rank(make, match):
  with pytest.raises(ValueError, match=match):
    make()


def test_non_integer_size_is_type_error():
  with pytest.raises(TypeError, match=r"Conv2D: `size` must contain ints; "
                     r"got \(3, 1.5\)"):
    jdl.Conv2D(4, (3, 1.5), 1)


@pytest.mark.parametrize("make, match", [
    (lambda: jdl.Conv2D(4, 3, 1, padding="full"),
     r"Conv2D\(out_channels=4, size=\(3, 3\), in_channels=1\): unknown "
     r"`padding` 'full'; expected one of \['valid', 'same'\]"),
    (lambda: jdl.Conv2D(4, 3, 1, padding="causal"),
     r"Conv2D\(.*\): unknown `padding` 'causal'; expected one of "
     r"\['valid', 'same'\]"),
    (lambda: jdl.Conv3D(4, 3, 1, padding="CAUSAL"),
     r"Conv3D\(.*\): unknown `padding` 'CAUSAL'"),
    (lambda: jdl.ConvTranspose1D(4, 3, 1, padding="causal"),
     r"ConvTranspose1D\(.*\): unknown `padding` 'causal'; expected one of "
     r"\['valid', 'same'\]"),
    (lambda: jdl.MaxPool1D(2, padding="causal"),
     r"MaxPool1D\(.*\): unknown `padding` 'causal'"),
    (lambda: jdl.Conv2D(4, 3, 1, data_format="NHCW"),
     r"Conv2D\(.*\): unknown `data_format` 'NHCW'; expected 'channels_last' "
     r"or 'channels_first'"),
    (lambda: jdl.AvgPool2D(2, data_format="channels_middle"),
     r"AvgPool2D\(.*\): unknown `data_format` 'channels_middle'"),
    (lambda: jdl.Conv2D(4, 3, 1, impl="magic"),
     r"Conv2D\(.*\): unknown `impl` 'magic'"),
    (lambda: jdl.Pool(2, rank=2, mode="median"),
     r"Pool: `mode` must be 'max' or 'avg'; got 'median'"),
])
def test_unknown_padding_data_format_impl(make, match):
  with pytest.raises(ValueError, match=match):
    make()


def test_causal_padding_is_fine_for_rank_1():
  f = jdl.Conv1D(2, 3, 1, padding="causal").sample(seed=(0, 0))
  assert f(tf.ones([2, 5, 1])).shape.as_list() == [2, 5, 2]


def test_padding_not_a_string():
  with pytest.raises(TypeError, match=r"Conv2D\(.*\): `padding` must be a "
                     r"string; got 1"):
    jdl.Conv2D(4, 3, 1, padding=1)


@pytest.mark.parametrize("cls", [jdl.Conv2D, jdl.ConvTranspose2D])
def test_strides_and_dilations(cls):
  with pytest.raises(ValueError, match=(
      cls.__name__ + r"\(.*\): `strides` \(=\(2, 1\)\) and `dilations` "
      r"\(=\(1, 2\)\) cannot both exceed 1")):
    cls(4, 3, 1, strides=(2, 1), dilations=(1, 2))


@pytest.mark.parametrize("kwargs, match", [
    (dict(strides=2, output_padding=2),
     r"`output_padding` \(=\(2, 2\)\) must be smaller than `strides` "
     r"\(=\(2, 2\)\)"),
    (dict(strides=(2, 3), output_padding=(1, 3)),
     r"`output_padding` \(=\(1, 3\)\) must be smaller than `strides` "
     r"\(=\(2, 3\)\)"),
    (dict(strides=1, output_padding=1),
     r"`output_padding` \(=\(1, 1\)\) must be smaller than `strides`"),
    (dict(strides=2, output_padding=-1),
     r"`output_padding` \(=-1\) must be >= 0"),
])
def test_output_padding(kwargs, match):
  with pytest.raises(ValueError, match=r"ConvTranspose2D\(out_channels=4, "
                     r"size=\(3, 3\), in_channels=1\): " + match):
    jdl.ConvTranspose2D(4, 3, 1, **kwargs)


def test_output_padding_below_stride_is_fine():
  f = jdl.ConvTranspose2D(4, 3, 1, strides=2, output_padding=1).sample(
      seed=(0, 0))
  assert f(tf.ones([1, 4, 4, 1])).shape.as_list() == [1, 8, 8, 4]


@pytest.mark.parametrize("make, match", [
    (lambda: jdl.Affine(2, 3, activation="relux"),
     r"Affine\(out_units=2, in_units=3\): unknown `activation` 'relux'; "
     r"expected a callable or one of \[.*'relu'.*\]"),
    (lambda: jdl.Conv2D(2, 3, 1, activation="swishy"),
     r"Conv2D\(out_channels=2, size=\(3, 3\), in_channels=1\): unknown "
     r"`activation` 'swishy'"),
])
def test_unknown_activation(make, match):
  with pytest.raises(ValueError, match=match):
    make()


def test_activation_not_callable():
  with pytest.raises(TypeError, match=r"Affine\(.*\): `activation` must be a "
                     r"callable or a name; got 3"):
    jdl.Affine(2, 3, activation=3)


@pytest.mark.parametrize("make", [
    lambda: jdl.Affine(2, 3, tf.int32),
    lambda: jdl.Conv2D(2, 3, 1, tf.int32),
])
def test_integer_layer_dtype(make):
  with pytest.raises(TypeError, match=r"`dtype` must be floating .*got int32"):
    make()


# ------------------------------------------------- priors / params_model_fn --

def test_params_model_fn_without_weights():
  def pmf(out_units, in_units, dtype):
    yield Root(tfd.Sample(tfd.Normal(tf.zeros([], dtype), 1.),
                          [out_units, in_units], name="w"))

  with pytest.raises(ValueError, match=(
      r"Affine\(out_units=2, in_units=3\): the prior / params_model_fn "
      r"yields components \['w'\] but lacks \['weights'\]")):
    jdl.Affine(2, 3, tf.float32, pmf)


def test_params_model_fn_without_kernel():
  def pmf(out_channels, size, in_channels, dtype):
    yield Root(tfd.Sample(tfd.Normal(tf.zeros([], dtype), 1.),
                          list(size) + [in_channels, out_channels],
                          name="filters"))

  with pytest.raises(ValueError, match=(
      r"Conv2D\(out_channels=4, size=\(3, 3\), in_channels=2\): the prior / "
      r"params_model_fn yields components \['filters'\] but lacks "
      r"\['kernel'\]")):
    jdl.Conv2D(4, 3, 2, tf.float32, pmf)


def test_prior_without_kernel():
  class Bad(priors.Prior):
    def _kernel_model(self, spec):
      yield Root(tfd.Sample(tfd.Normal(0., 1.), spec.kernel_shape,
                            name="filters"))

  with pytest.raises(ValueError, match=r"Conv1D\(.*\): .* lacks \['kernel'\]"):
    jdl.Conv1D(2, 3, 1, prior=Bad())


def test_use_bias_false_but_params_model_fn_yields_bias():
  def pmf(out_units, in_units, dtype):
    yield Root(tfd.Sample(tfd.Normal(tf.zeros([], dtype), 1.),
                          [out_units, in_units], name="weights"))
    yield Root(tfd.Sample(tfd.Normal(tf.zeros([], dtype), 1.), out_units,
                          name="bias"))

  with pytest.raises(ValueError, match=(
      r"Affine\(out_units=2, in_units=3\): use_bias=False but the prior / "
      r"params_model_fn yields \['bias'\]")):
    jdl.Affine(2, 3, tf.float32, pmf, use_bias=False)


# --------------------------------------------------------------- call time --

@pytest.fixture(scope="module")
def affine():
  return jdl.Affine(2, 3).sample(4, seed=(0, 0))


@pytest.fixture(scope="module")
def conv():
  return jdl.Conv2D(4, 3, 3).sample(4, seed=(0, 0))


def test_input_rank_below_core(affine, conv):
  with pytest.raises(ValueError, match=(
      r"Affine\(out_units=2, in_units=3\) expects an input of rank >= 2 "
      r"\(\[\.\.\., N, in_units\]\); got shape \[3\]")):
    affine(tf.ones([3]))
  with pytest.raises(ValueError, match=(
      r"Conv2D\(out_channels=4, size=\(3, 3\), in_channels=3\) expects an "
      r"input of rank >= 4 \(\[\.\.\., N, h, w, in_channels\]\); got shape "
      r"\[8, 8, 3\]")):
    conv(tf.ones([8, 8, 3]))
  f = jdl.Conv1D(2, 3, 1, data_format="channels_first").sample(seed=(0, 0))
  with pytest.raises(ValueError, match=r"Conv1D\(.*\) expects an input of "
                     r"rank >= 3 \(\[\.\.\., N, in_channels, w\]\)"):
    f(tf.ones([1, 5]))


def test_feature_and_channel_mismatch(affine, conv):
  with pytest.raises(ValueError, match=(
      r"Affine\(out_units=2, in_units=3\) got input with 5 features \(input "
      r"shape \[7, 5\]\); expected 3")):
    affine(tf.ones([7, 5]))
  with pytest.raises(ValueError, match=(
      r"Conv2D\(out_channels=4, size=\(3, 3\), in_channels=3\) got input "
      r"with 5 channels \(input shape \[2, 8, 8, 5\], channels_last\); "
      r"expected 3")):
    conv(tf.ones([2, 8, 8, 5]))
  f = jdl.Conv2D(4, 3, 3, data_format="channels_first").sample(seed=(0, 0))
  with pytest.raises(ValueError, match=(
      r"got input with 8 channels \(input shape \[2, 8, 8, 3\], "
      r"channels_first\); expected 3")):
    f(tf.ones([2, 8, 8, 3]))
  g = jdl.ConvTranspose2D(4, 3, 2).sample(seed=(0, 0))
  with pytest.raises(ValueError, match=r"ConvTranspose2D\(out_channels=4, "
                     r"size=\(3, 3\), in_channels=2\) got input with 3 "
                     r"channels"):
    g(tf.ones([1, 4, 4, 3]))


def test_feature_mismatch_inside_sequential_hidden_by_a_function():
  # A Lambda of an arbitrary function hides the sizes from the
  # construction-time check (tests/test_errors_values.py); the call names
  # the layer.
  net = jdl.Sequential(jdl.Affine(4, 3), jdl.Lambda(lambda x: x + 1.),
                       jdl.Affine(2, 5)).sample(seed=(0, 0))
  with pytest.raises(ValueError, match=r"Affine\(out_units=2, in_units=5\) "
                     r"got input with 4 features"):
    net(tf.ones([6, 3]))


def test_sample_batch_not_broadcastable(affine, conv):
  with pytest.raises(ValueError, match=(
      r"Affine\(out_units=2, in_units=3\): the input's leading dims \[3\] "
      r"\(input shape \[3, 7, 3\]\) do not broadcast with the layer's sample "
      r"shape \[4\]")):
    affine(tf.ones([3, 7, 3]))
  with pytest.raises(ValueError, match=(
      r"Conv2D\(out_channels=4, size=\(3, 3\), in_channels=3\): the input's "
      r"leading dims \[5\] \(input shape \[5, 2, 6, 6, 3\]\) do not "
      r"broadcast with the layer's sample shape \[4\]")):
    conv(tf.ones([5, 2, 6, 6, 3]))


def test_integer_inputs(affine, conv):
  with pytest.raises(TypeError, match=(
      r"Affine\(out_units=2, in_units=3\) got an input of dtype int32; "
      r"expected a floating input \(float32\)")):
    affine(tf.ones([7, 3], tf.int32))
  with pytest.raises(TypeError, match=r"Conv2D\(.*\) got an input of dtype "
                     r"int64"):
    conv(tf.ones([2, 6, 6, 3], tf.int64))


def test_float_dtype_mismatch(affine):
  with pytest.raises(TypeError, match=r"Affine\(.*\) has dtype float32 but "
                     r"got an input of dtype float64"):
    affine(tf.ones([7, 3], tf.float64))


def test_valid_padding_input_too_small():
  f = jdl.Conv2D(2, 3, 1, padding="valid", dilations=2).sample(seed=(0, 0))
  with pytest.raises(ValueError, match=(
      r"Conv2D\(.*\) with padding='valid' needs spatial dims >= the dilated "
      r"kernel size \[5, 5\]; got input spatial shape \[4, 6\]")):
    f(tf.ones([1, 4, 6, 1]))


def test_flatten_errors():
  with pytest.raises(ValueError, match=r"Flatten\(\): `feature_ndims` is "
                     r"unknown"):
    jdl.Flatten().sample()(tf.ones([2, 3, 3]))
  with pytest.raises(ValueError, match=r"Flatten\(feature_ndims=3\) expects "
                     r"an input of rank >= 4 .*got shape \[2, 3, 3\]"):
    jdl.Flatten(3).sample()(tf.ones([2, 3, 3]))


def test_lambda_needs_callable():
  with pytest.raises(TypeError, match=r"Lambda: `fn` must be callable; got "
                     r"'relu'"):
    jdl.Lambda("relu")


def test_log_prob_of_value_missing_parameter():
  layer = jdl.Affine(2, 3)
  with pytest.raises(ValueError, match=r"Affine\(out_units=2, in_units=3\): "
                     r"the value given to log_prob lacks \['bias'\]"):
    layer.log_prob({"weights": tf.zeros([2, 3]), "b": tf.zeros([2])})
