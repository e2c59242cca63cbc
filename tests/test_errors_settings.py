"""Settings and data that cannot work are refused where they enter.

`mcmc.sample`, `mcmc.make_kernel`, `vi.fit` and `Surrogate.predict/sample`
check every setting once (through `jdlayers/_validate.py`) before data is
touched or anything is compiled; bad data names the user's shapes; a write
into a missing directory says so. Issue 10, section 4. Every test here fails
before any sampling or training, so the file runs in seconds.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

import keras

import jdlayers as jdl
from jdlayers import _validate
from jdlayers.inference.vi import _checks


@pytest.fixture(scope="module")
def data():
  model = jdl.models.Model(
      jdl.Sequential(jdl.Affine(4, 3), tf.nn.relu, jdl.Affine(1, 4)),
      jdl.models.Normal(scale=0.1))
  x = np.ones([40, 3], np.float32)
  y = np.ones([40, 1], np.float32)
  return model, x, y


# ------------------------------------------------------------------- mcmc --

@pytest.mark.parametrize("kwargs, error, match", [
    (dict(step_size=-0.1), ValueError,
     r"`step_size` must be finite and > 0; got -0\.1"),
    (dict(step_size=0.), ValueError, r"`step_size` must be finite and > 0"),
    (dict(step_size=float("nan")), ValueError,
     r"`step_size` must be finite and > 0; got nan"),
    (dict(step_size=[0.1, -1.]), ValueError, r"`step_size` must be finite"),
    (dict(step_size="big"), TypeError, r"`step_size` must be a positive "
     r"number"),
    (dict(kernel="hmc", num_leapfrog_steps=0), ValueError,
     r"`num_leapfrog_steps` must be an int >= 1; got 0"),
    (dict(num_leapfrog_steps=2.5), ValueError,
     r"`num_leapfrog_steps` must be an int >= 1; got 2\.5"),
    (dict(target_accept_prob=1.5), ValueError,
     r"`target_accept_prob` must be a finite number > 0 and < 1; got 1\.5"),
    (dict(target_accept_prob=0.), ValueError, r"`target_accept_prob`"),
    (dict(max_tree_depth=0), ValueError,
     r"`max_tree_depth` must be an int in \[1, 30\]; got 0"),
    (dict(max_tree_depth=64), ValueError, r"`max_tree_depth` .* got 64"),
    (dict(step_size_jitter=1.), ValueError,
     r"`step_size_jitter` must be a finite number >= 0 and < 1; got 1\.0"),
    (dict(kernel="nut"), ValueError,
     r"`kernel` must be one of \['nuts', 'hmc', 'chees', 'snaper'\]; got 'nut'"),
    (dict(adaptation="fast"), ValueError, r"`adaptation` must be one of"),
    (dict(init="zeros"), ValueError,
     r"`init` must be one of \['prior', 'shrunk'\]; got 'zeros'"),
    (dict(init_scale=-1.), ValueError,
     r"`init_scale` must be a finite number >= 0; got -1\.0"),
    (dict(seed="a"), TypeError,
     r"`seed` must be an int or a pair of ints; got 'a'"),
    (dict(seed=(1, 2, 3)), ValueError, r"`seed` must be an int or a pair"),
    (dict(jit_compile="yes"), TypeError,
     r"`jit_compile` must be True or False; got 'yes'"),
    (dict(progress="bar"), TypeError,
     r"`progress` must be True, False or a callable"),
    (dict(callback=3), TypeError, r"`callback` must be None or a callable"),
    (dict(num_chains=0), ValueError, r"`num_chains` must be an int >= 1"),
    (dict(chunk_size=True), ValueError,
     r"`chunk_size` must be an int >= 1; got True"),
    (dict(checkpoint_every=2.5), ValueError,
     r"`checkpoint_every` must be an int >= 1; got 2\.5"),
])
def test_mcmc_sample_refuses(data, kwargs, error, match):
  model, x, y = data
  settings = dict(num_results=2, num_burnin_steps=0, progress=False)
  settings.update(kwargs)
  with pytest.raises(error, match=r"mcmc[.:]( sample:)?.*" + match):
    jdl.mcmc.sample(model, x, y, **settings)


def test_mcmc_sample_names_the_function(data):
  model, x, y = data
  with pytest.raises(ValueError, match=r"^mcmc\.sample: `step_size` must be "
                     r"finite and > 0; got -0\.1\.$"):
    jdl.mcmc.sample(model, x, y, step_size=-0.1, progress=False)
  with pytest.raises(TypeError, match=r"mcmc\.sample: `model` must be a "
                     r"jdlayers\.models\.Model; got Sequential"):
    jdl.mcmc.sample(model.network, x, y)


def test_make_kernel_and_sampler_refuse(data):
  model, x, y = data
  post = model.posterior(x, y)
  init = post.init(2, seed=0)
  with pytest.raises(ValueError, match=r"make_kernel: `max_tree_depth` must "
                     r"be an int in \[1, 30\]; got 0"):
    jdl.mcmc.make_kernel(post.log_prob, post.bijectors, init,
                         max_tree_depth=0)
  with pytest.raises(ValueError, match=r"make_kernel: `num_adaptation_steps` "
                     r"must be an int >= 0; got -5"):
    jdl.mcmc.make_kernel(post.log_prob, post.bijectors, init,
                         num_adaptation_steps=-5)
  with pytest.raises(ValueError, match=r"make_kernel: needs one bijector per "
                     r"state part; got 1 bijectors for"):
    jdl.mcmc.make_kernel(post.log_prob, post.bijectors[:1], init)
  with pytest.raises(TypeError, match=r"make_kernel: `target_log_prob_fn` "
                     r"must be callable"):
    jdl.mcmc.make_kernel(None, post.bijectors, init)
  # `Sampler` builds its kernel with `make_kernel`: the same checks.
  with pytest.raises(ValueError, match=r"`target_accept_prob` must be a "
                     r"finite number > 0 and < 1; got 1\.5"):
    jdl.mcmc.Sampler(post, num_chains=2, num_results=2, num_burnin_steps=0,
                     target_accept_prob=1.5)
  for kwargs, error, match in (
      (dict(init_scale=float("nan")), ValueError, r"`init_scale` must be a "
       r"finite number >= 0; got nan"),
      (dict(init="zeros"), ValueError, r"`init` must be one of"),
      (dict(seed=[0]), ValueError, r"`seed` must be an int or a pair"),
      (dict(jit_compile=None), TypeError, r"`jit_compile` must be True or "
       r"False")):
    with pytest.raises(error, match=r"^mcmc\.Sampler: " + match):
      jdl.mcmc.Sampler(post, num_chains=2, num_results=2, num_burnin_steps=0,
                       **kwargs)


# --------------------------------------------------------------------- vi --

@pytest.mark.parametrize("kwargs, error, match", [
    (dict(learning_rate=-1e-3), ValueError,
     r"`learning_rate` must be a finite number > 0; got -0\.001"),
    (dict(learning_rate=0.), ValueError, r"`learning_rate` must be a finite"),
    (dict(learning_rate=float("inf")), ValueError, r"`learning_rate`"),
    (dict(kl_weight=-1), ValueError,
     r"`kl_weight` must be a finite number >= 0; got -1"),
    (dict(kl_weight=float("nan")), ValueError, r"`kl_weight`"),
    (dict(epochs=0), ValueError, r"`epochs` must be an int >= 1; got 0"),
    (dict(batch_size=2.5), ValueError, r"`batch_size` must be an int >= 1"),
    (dict(num_samples=True), ValueError, r"`num_samples` must be an int"),
    (dict(num_examples=0), ValueError, r"`num_examples` must be an int >= 1"),
    (dict(analytic_kl="yes"), TypeError, r"`analytic_kl` must be True or "
     r"False"),
    (dict(shuffle=1), TypeError, r"`shuffle` must be True or False"),
    (dict(jit_compile="xla"), TypeError,
     r"`jit_compile` must be True or False or None"),
    (dict(progress="bar"), TypeError, r"`progress` must be True, False or"),
    (dict(seed=None), TypeError, r"`seed` must be an int or a pair"),
    (dict(seed=1.5), TypeError, r"`seed` must be an int or a pair"),
    (dict(optimizer="adam"), TypeError, r"`optimizer` must be a Keras "
     r"optimizer"),
    (dict(surrogate=object()), TypeError, r"`surrogate` must be a "
     r"jdlayers\.vi\.Surrogate"),
])
def test_vi_fit_refuses(data, kwargs, error, match):
  model, x, y = data
  settings = dict(progress=False)
  settings.update(kwargs)
  with pytest.raises(error, match=r"^vi\.fit: " + match):
    jdl.vi.fit(model, x, y, **settings)


def test_unbatched_dataset(data):
  model, x, y = data
  ds = tf.data.Dataset.from_tensor_slices((x, y))
  with pytest.raises(ValueError, match=(
      r"vi\.fit: the dataset yields single examples \(x of shape \[3\], y of "
      r"shape \[1\]\), not batches; batch it, e\.g\. `dataset\.batch\(32\)`")):
    jdl.vi.fit(model, ds, progress=False)
  # A batched dataset of the wrong width keeps the layer's own message.
  bad = tf.data.Dataset.from_tensor_slices((x[:, :2], y)).batch(8)
  with pytest.raises(ValueError, match=r"Affine\(out_units=4, in_units=3\) "
                     r"got input with 2 features \(input shape \[8, 2\]\)"):
    jdl.vi.fit(model, bad, progress=False)


def test_surrogate_predict_and_sample_refuse(data):
  model, x, y = data
  q = jdl.vi.Surrogate(model, seed=0)
  with pytest.raises(ValueError, match=r"Surrogate\.predict: `num_samples` "
                     r"must be an int >= 1; got 0"):
    q.predict(x, num_samples=0)
  with pytest.raises(ValueError, match=r"Surrogate\.predict: `num_samples` "
                     r"must be an int >= 1; got True"):
    q.predict(x, num_samples=True)
  with pytest.raises(ValueError, match=r"Surrogate\.predict: `batch_size`"):
    q.predict(x, batch_size=0)
  with pytest.raises(TypeError, match=r"Surrogate\.predict: `seed`"):
    q.predict(x, seed="0")
  with pytest.raises(ValueError, match=r"Surrogate\.sample: `sample_shape` "
                     r"must be an int >= 0 .*; got -1"):
    q.sample(-1, seed=0)
  with pytest.raises(TypeError, match=r"Surrogate\.sample: `sample_shape` "
                     r".*; got 2\.5"):
    q.sample(2.5, seed=0)


# ------------------------------------------------------------------ data ----

def test_wrong_feature_count_names_the_users_shape(data):
  model, _, y = data
  for fit in (lambda x: model.posterior(x, y),
              lambda x: jdl.vi.fit(model, x, y, progress=False)):
    with pytest.raises(ValueError, match=(
        r"Affine\(out_units=4, in_units=3\) got input with 2 features "
        r"\(input shape \[40, 2\]\); expected 3")):
      fit(np.ones([40, 2], np.float32))


def test_save_into_missing_directory(tmp_path, data):
  model = data[0]
  net = model.network
  path = tmp_path / "no" / "such" / "net.jdl.npz"
  for save in (lambda: jdl.io.save_network(path, net, net.sample(seed=0)),
               lambda: jdl.io.save_distribution(path, net)):
    with pytest.raises(FileNotFoundError) as e:
      save()
    msg = str(e.value)
    assert str(path) in msg and "does not exist" in msg, msg
    assert ".tmp" not in msg and "/." not in msg, msg
  assert not os.path.exists(tmp_path / "no")


# ------------------------------------------------------ the shared checks --

@pytest.mark.parametrize("fn, args, error", [
    (_validate.count, (-1, "n", "f"), ValueError),
    (_validate.count, (True, "n", "f"), ValueError),
    (_validate.count, (2.0, "n", "f"), ValueError),
    (_validate.positive, (0., "lr", "f"), ValueError),
    (_validate.positive, (float("nan"), "lr", "f"), ValueError),
    (_validate.positive, (True, "lr", "f"), TypeError),
    (_validate.positive, ("1", "lr", "f"), TypeError),
    (_validate.probability, (1., "p", "f"), ValueError),
    (_validate.boolean, (None, "b", "f"), TypeError),
    (_validate.seed, ([1, 2.5], "f"), TypeError),
    (_validate.seed, (tf.constant([1., 2.]), "f"), TypeError),
    (_validate.sample_shape, ((1, True), "f"), TypeError),
])
def test_validate_refuses(fn, args, error):
  with pytest.raises(error, match=r"^f: `"):
    fn(*args)


def test_validate_accepts():
  assert _validate.count(np.int64(3), "n", "f", minimum=1) == 3
  assert _validate.positive(np.float32(0.5), "lr", "f") == 0.5
  assert _validate.positive(tf.constant(0.5), "lr", "f") == 0.5
  assert _validate.probability(0.8, "p", "f") == 0.8
  assert _validate.seed((0, 1), "f") == (0, 1)
  assert _validate.seed(-3, "f") == -3
  s = tf.constant([1, 2])
  assert _validate.seed(s, "f") is s
  assert _validate.positive_values([0.1, np.ones(3)], "s", "f")
  # An annealed KL weight (a variable) and a learning-rate schedule pass.
  assert _validate.real(tf.Variable(0.5), "kl_weight", "f", low=0.) == 0.5
  schedule = lambda step: 1e-3  # pylint: disable=unnecessary-lambda-assignment
  _checks.check_settings(
      surrogate=None, epochs=1, batch_size=1, optimizer=None,
      learning_rate=schedule, num_samples=1, num_examples=None,
      analytic_kl=True, kl_weight=tf.Variable(0.), seed=0, shuffle=True,
      jit_compile=None, progress=False)


def test_posterior_init_counts_chains_with_the_shared_check(data):
  model, x, y = data
  post = model.posterior(x, y)
  for bad in (0, True, 2.5):   # True used to give one chain
    with pytest.raises(ValueError, match=r"^Posterior\.init: `num_chains` "
                       r"must be an int >= 1"):
      post.init(bad)
  assert len(post.init(2)) == len(post.bijectors)


def test_keras_predict_samples_counts_with_the_shared_check():
  model = keras.Sequential([keras.Input((3,)), jdl.keras.Dense(2, seed=0)])
  for kw in (dict(num_samples=0), dict(num_samples=True),
             dict(num_samples=2, batch_size=1.5)):
    with pytest.raises(ValueError, match=r"^predict_samples: `(num_samples|"
                       r"batch_size)` must be an int >= 1"):
      jdl.keras.predict_samples(model, np.ones([4, 3], np.float32), **kw)
