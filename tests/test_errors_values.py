"""Errors of distributions' own methods, raised before TFP sees anything.

`sample_shape` is checked once for every jdlayers distribution
(`StatelessSeedMixin.sample`), every value given to `log_prob` is checked
against the distribution's structure (`layers/_values.py`), calling the
distribution says to sample first, and composites check the sizes they know
at construction (`compose/_features.py`). Issue 10, section 4.
"""

import pytest
import tensorflow as tf

import jdlayers as jdl

AFFINE = r"Affine\(out_units=2, in_units=3\)"


def _net():
  return jdl.Sequential(jdl.Affine(4, 3), tf.nn.relu, jdl.Affine(1, 4))


# ------------------------------------------------------------ sample_shape --

@pytest.mark.parametrize("make", [
    lambda: jdl.Affine(2, 3),
    lambda: jdl.Conv2D(2, 3, 1),
    _net,
    lambda: jdl.Parallel(jdl.Affine(2, 3), jdl.Affine(2, 3)),
    lambda: jdl.Residual(jdl.Affine(3, 3)),
], ids=["affine", "conv", "sequential", "parallel", "residual"])
@pytest.mark.parametrize("shape, error", [
    (-1, ValueError), ((2, -3), ValueError), (2.5, TypeError),
    (True, TypeError), ("3", TypeError), ((2, None), ValueError),
    (tf.constant(-1), ValueError), (tf.constant(2.), TypeError),
    (tf.constant([[1]]), ValueError),
])
def test_bad_sample_shape(make, shape, error):
  dist = make()
  with pytest.raises(error, match=r"\.sample: `sample_shape` must be an int "
                     r">= 0 or a sequence of them; got "):
    dist.sample(shape, seed=0)


def test_bad_sample_shape_names_the_layer():
  with pytest.raises(ValueError, match=AFFINE + r"\.sample: `sample_shape` "
                     r"must be an int >= 0 or a sequence of them; got -1\."):
    jdl.Affine(2, 3).sample(-1)
  with pytest.raises(TypeError, match=AFFINE + r"\.sample: .*got 2\.5\."):
    jdl.Affine(2, 3).sample(2.5)
  with pytest.raises(ValueError, match=r"Sequential\(3 layers\)\."
                     r"experimental_sample_and_log_prob: `sample_shape`"):
    _net().experimental_sample_and_log_prob(-2, seed=0)


@pytest.mark.parametrize("shape, lead", [
    ((), []), (3, [3]), ([2, 1], [2, 1]), (0, [0]),
    (tf.constant(3), [3]), (tf.constant([2, 2]), [2, 2]),
    (tf.TensorShape([2]), [2]),
])
def test_good_sample_shapes(shape, lead):
  w = jdl.Affine(2, 3).sample(shape, seed=0).weights
  assert w.shape.as_list() == lead + [2, 3]


def test_symbolic_sample_shape_under_tf_function():
  @tf.function(autograph=False)
  def draw(n):
    return jdl.Affine(2, 3).sample(n, seed=0).weights

  assert draw(tf.constant(4)).shape.as_list() == [4, 2, 3]


# ---------------------------------------------------------- log_prob values --

def test_dict_missing_a_parameter():
  with pytest.raises(ValueError, match=AFFINE + r": the value given to "
                     r"log_prob lacks \['bias'\] \(" + AFFINE +
                     r" has \['weights', 'bias'\]; got \['weights'\]\)"):
    jdl.Affine(2, 3).log_prob({"weights": tf.zeros([2, 3])})


def test_list_too_short():
  # TFP cannot rebuild a layer from a list ("Tensor is unhashable"), short
  # or not; separate arguments work and are counted.
  for value in ([tf.zeros([2, 3])], [tf.zeros([2, 3]), tf.zeros([2])]):
    with pytest.raises(TypeError, match=AFFINE + r": log_prob expects a "
                       r"sample of " + AFFINE + r" or a dict of its "
                       r"parameters \{'weights', 'bias': \.\.\.\}; got a "
                       r"list of \d\."):
      jdl.Affine(2, 3).log_prob(value)
  with pytest.raises(ValueError, match=AFFINE + r": log_prob got 3 "
                     r"parameters; .* has 2 \(\['weights', 'bias'\]\)"):
    jdl.Affine(2, 3).log_prob(tf.zeros([2, 3]), tf.zeros([2]), tf.zeros([1]))
  net = _net()
  s = net.sample(seed=0)
  with pytest.raises(ValueError, match=r"Sequential\(3 layers\): the value "
                     r"given to log_prob has 1 layers; Sequential\(3 layers\) "
                     r"has 3 \(2 with random parameters\)"):
    net.log_prob([s[0]])
  with pytest.raises(ValueError, match=r"has 2 layers; .* or a list of 3 "
                     r"layers \(None for those without parameters\)"):
    net.log_prob([s[0], s[2]])


def test_transposed_kernel():
  with pytest.raises(ValueError, match=AFFINE + r": part 'weights' of " +
                     AFFINE + r" has shape \[3, 2\]; expected "
                     r"\[\*sample_shape, 2, 3\] \(event shape \[2, 3\]\)"):
    jdl.Affine(2, 3).log_prob({"weights": tf.zeros([3, 2]),
                               "bias": tf.zeros([2])})
  conv = jdl.Conv2D(4, 3, 2)
  k = conv.sample(seed=0).kernel
  with pytest.raises(ValueError, match=r"part 'kernel' of Conv2D\(.*\) has "
                     r"shape \[3, 3, 4, 2\]; expected \[\*sample_shape, 3, 3, "
                     r"2, 4\]"):
    conv.log_prob({"kernel": tf.transpose(k, [0, 1, 3, 2]),
                   "bias": tf.zeros([4])})


def test_another_networks_sample():
  net = _net()
  other = jdl.Sequential(jdl.Affine(8, 3), tf.nn.relu,
                         jdl.Affine(1, 8)).sample(seed=0)
  with pytest.raises(ValueError, match=r"Sequential\(3 layers\): part "
                     r"'0/weights' of Affine\(out_units=4, in_units=3\) has "
                     r"shape \[8, 3\]; expected \[\*sample_shape, 4, 3\]"):
    net.log_prob(other)
  nested = jdl.Sequential(jdl.Conv2D(2, 3, 1), jdl.Flatten(),
                          jdl.Affine(1, 8))
  wrong = jdl.Sequential(jdl.Conv2D(2, 3, 1), jdl.Flatten(),
                         jdl.Affine(1, 9)).sample(seed=0)
  with pytest.raises(ValueError, match=r"part '2/weights' of Affine\("
                     r"out_units=1, in_units=8\) has shape \[1, 9\]"):
    nested.log_prob(wrong)


def test_parts_of_different_samples():
  net = _net()
  a, b = net.sample(4, seed=0), net.sample(5, seed=1)
  with pytest.raises(ValueError, match=r"sample dims that do not broadcast: "
                     r"'0/weights' has \[4\], '2/weights' has \[5\]"):
    net.log_prob([a[0], None, b[2]])


def test_wrong_kind_and_dtype():
  with pytest.raises(TypeError, match=AFFINE + r": log_prob expects a sample "
                     r"of .* or a dict of its parameters .*; got a tensor of "
                     r"shape \[2, 3\]\."):
    jdl.Affine(2, 3).log_prob(tf.zeros([2, 3]))
  with pytest.raises(TypeError, match=r"Sequential\(3 layers\): log_prob "
                     r"expects a sample of Sequential\(3 layers\) or a list "
                     r"of its 3 layers; got a AffineLayer"):
    _net().log_prob(jdl.Affine(4, 3).sample(seed=0))
  with pytest.raises(TypeError, match=r"part 'weights' .* has dtype float64; "
                     r"expected float32"):
    jdl.Affine(2, 3).log_prob({"weights": tf.zeros([2, 3], tf.float64),
                               "bias": tf.zeros([2])})


def test_valid_values_still_work():
  net = _net()
  s = net.sample(3, seed=0)
  lp = net.log_prob(s)
  assert lp.shape.as_list() == [3]
  # A list of layers (None for the activation), and dicts of parameters.
  tf.debugging.assert_near(net.log_prob([s[0], None, s[2]]), lp)
  tf.debugging.assert_near(net.log_prob(tuple(s.layers)), lp)
  tf.debugging.assert_near(
      net.log_prob([s[0].params, None, s[2].params]), lp)
  a = jdl.Affine(2, 3)
  v = a.sample(seed=0)
  tf.debugging.assert_near(a.log_prob(v.params), a.log_prob(v))
  tf.debugging.assert_near(a.log_prob(v.weights, v.bias), a.log_prob(v))
  # Sample dims broadcast between parts (one bias for 4 weight draws).
  w4 = a.sample(4, seed=1).weights
  assert a.log_prob({"weights": w4, "bias": v.bias}).shape.as_list() == [4]


def test_log_prob_check_under_jit():
  net = _net()
  s = net.sample(2, seed=0)
  f = tf.function(net.log_prob, jit_compile=True, autograph=False)
  tf.debugging.assert_near(f(s), net.log_prob(s), rtol=1e-5)


# ----------------------------------------------------- calling the dist ----

@pytest.mark.parametrize("make, name", [
    (_net, r"Sequential\(3 layers\)"), (lambda: jdl.Affine(2, 3), AFFINE),
])
def test_calling_the_distribution(make, name):
  with pytest.raises(TypeError, match=name + r" is a distribution over "
                     r"networks, not a network: draw one with `f = "
                     r"dist\.sample\(seed=0\)`.* call the sample, `f\(x\)`"):
    make()(tf.ones([2, 3]))


# ----------------------------------------------- composites' static sizes --

def test_sequential_size_mismatch_at_construction():
  with pytest.raises(ValueError, match=(
      r"Sequential\(2 layers\): layer 0 Affine\(out_units=4, in_units=3\) "
      r"outputs 4 features but layer 1 Affine\(out_units=2, in_units=5\) "
      r"expects in_units=5")):
    jdl.Sequential(jdl.Affine(4, 3), jdl.Affine(2, 5))
  # Through activations and pooling, and into a nested Sequential.
  with pytest.raises(ValueError, match=r"layer 2 Affine\(out_units=2, "
                     r"in_units=5\) expects in_units=5"):
    jdl.Sequential(jdl.Affine(4, 3), tf.nn.relu, jdl.Affine(2, 5))
  with pytest.raises(ValueError, match=(
      r"layer 0 Conv2D\(out_channels=8, .*\) outputs 8 channels but layer 2 "
      r"Conv2D\(out_channels=4, size=\(3, 3\), in_channels=6\) expects "
      r"in_channels=6")):
    jdl.Sequential(jdl.Conv2D(8, 3, 1), jdl.MaxPool2D(2), jdl.Conv2D(4, 3, 6))
  with pytest.raises(ValueError, match=r"Sequential\(2 layers\): layer 0 "
                     r"Sequential\(2 layers\) outputs 2 features but layer 1 "
                     r"Affine\(out_units=1, in_units=3\) expects in_units=3"):
    jdl.Sequential(jdl.Sequential(jdl.Affine(4, 3), jdl.Affine(2, 4)),
                   jdl.Affine(1, 3))


def test_parallel_sizes_at_construction():
  with pytest.raises(ValueError, match=(
      r"Parallel\(2 branches, sum\): branch 0 Affine\(out_units=4, "
      r"in_units=3\) outputs 4 features but branch 1 Affine\(out_units=5, "
      r"in_units=3\) outputs 5; combine='sum' adds the branches' outputs")):
    jdl.Parallel(jdl.Affine(4, 3), jdl.Affine(5, 3), combine="sum")
  with pytest.raises(ValueError, match=(
      r"Parallel\(2 branches, concat\): branch 0 Affine\(out_units=4, "
      r"in_units=3\) expects 3 features but branch 1 Affine\(out_units=5, "
      r"in_units=2\) expects 2; every branch gets the same input")):
    jdl.Parallel(jdl.Affine(4, 3), jdl.Affine(5, 2))


def test_parallel_sum_at_call_when_sizes_unknown():
  block = jdl.Parallel(jdl.Affine(4, 3),
                       jdl.Lambda(lambda x: tf.concat([x, x], -1)),
                       combine="sum")
  f = block.sample(seed=0)
  with pytest.raises(ValueError, match=(
      r"Parallel\(2 branches, sum\): combine='sum' adds the branches' "
      r"outputs, but branch 0 Affine\(out_units=4, in_units=3\) gives shape "
      r"\[2, 4\] and branch 1 Lambda\(.*\) gives shape \[2, 6\]")):
    f(tf.ones([2, 3]))


@pytest.mark.parametrize("make, x_shape, out", [
    (lambda: jdl.Sequential(jdl.Affine(4, 3), tf.nn.relu, jdl.Affine(2, 4)),
     [5, 3], [5, 2]),
    (lambda: jdl.Sequential(jdl.Conv2D(8, 3, 1), jdl.MaxPool2D(2),
                            jdl.Conv2D(4, 3, 8, activation="relu"),
                            jdl.Flatten(), jdl.Affine(2, 64)),
     [1, 8, 8, 1], [1, 2]),
    (lambda: jdl.Sequential(jdl.Conv2D(3, 3, 1, data_format="channels_first"),
                            jdl.Conv2D(2, 3, 3, data_format="channels_first")),
     [1, 1, 7, 7], [1, 2, 7, 7]),
    (lambda: jdl.Sequential(jdl.Affine(4, 3),
                            jdl.Residual(jdl.Sequential(jdl.Affine(4, 4),
                                                        tf.nn.tanh)),
                            jdl.Parallel(jdl.Affine(2, 4), jdl.Affine(3, 4)),
                            jdl.Affine(1, 5)),
     [6, 3], [6, 1]),
    (lambda: jdl.Parallel(jdl.Affine(1, 3), jdl.Affine(4, 3), combine="sum"),
     [2, 3], [2, 4]),
    (lambda: jdl.Sequential(jdl.Affine(6, 3),
                            jdl.Lambda(lambda x: tf.reshape(
                                x, tf.concat([tf.shape(x)[:-1], [3, 2]], 0))),
                            jdl.Lambda(lambda x: x[..., 0]),
                            jdl.Affine(1, 3)),
     [2, 3], [2, 1]),
])
def test_valid_networks_still_build(make, x_shape, out):
  net = make()
  assert net.sample(seed=0)(tf.ones(x_shape)).shape.as_list() == out
