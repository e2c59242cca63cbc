"""`jdl.Embedding`: Keras 3 equivalence, shapes, graph/XLA, gradients, priors
and log_prob, errors, HMC, VI (Flipout vs reparameterization), io."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from hypothesis import given, settings
from hypothesis import strategies as st

import keras

import jdlayers as jdl
import jdlayers.testing as jdt
from jdlayers import io, models
from jdlayers.inference import vi
from jdlayers.inference.vi._estimators import sampled_layer

tfd = tfp.distributions
# Every dtype with S = [] and S = [3] (the grid), plus drawn configs.
GRID = pytest.mark.parametrize("dtype, s", [
    (d, s) for d in (tf.float32, tf.float64) for s in ((), (3,))])


def _lead(case):
  return tuple(np.broadcast_shapes(case.batch_shape, case.sample_shape))


def _keras_reference(case, f):
  """Keras' Embedding with each sample's table, per lead index."""
  kw = case.kwargs
  kl = keras.layers.Embedding(kw["input_dim"], kw["output_dim"],
                              dtype=case.dtype.name)
  lead = _lead(case)
  ns = len(case.sample_shape)
  ids = np.broadcast_to(case.x, lead + case.x.shape[-2:])
  table = np.asarray(f.keras_weights()[0])
  table = np.broadcast_to(table, lead[len(lead) - ns:] + table.shape[ns:])
  kl.build(ids[(0,) * len(lead)].shape)
  outs = []
  for idx in np.ndindex(*lead):
    kl.set_weights([table[idx[len(lead) - ns:]]])
    outs.append(np.asarray(kl(ids[idx])))
  return np.stack(outs).reshape(lead + outs[0].shape)


@GRID
@settings(deadline=None, max_examples=4)
@given(data=st.data())
def test_equals_keras_embedding(dtype, s, data):
  case = data.draw(jdt.embedding_configs(dtype, s), label="case")
  f = case.dist.sample(case.sample_shape, seed=case.seed)
  y = f(case.x)
  assert tuple(y.shape) == case.output_shape and y.dtype == case.dtype
  # A lookup copies table rows: bit-identical to Keras.
  np.testing.assert_array_equal(y, _keras_reference(case, f))


@settings(deadline=None, max_examples=6)
@given(jdt.embedding_configs())
def test_graph_and_xla_equal_eager_and_gradients_reach_every_leaf(case):
  f = case.dist.sample(case.sample_shape, seed=case.seed)
  eager = f(case.x)
  for jit in (False, True):
    g = tf.function(lambda layer, x: layer(x), jit_compile=jit)
    np.testing.assert_array_equal(g(f, case.x), eager)
  w = tf.constant(np.random.default_rng(0).normal(size=eager.shape),
                  case.dtype)
  with tf.GradientTape() as tape:
    tape.watch(f.embeddings)
    loss = tf.reduce_sum(w * f(case.x))
  grad = np.asarray(tape.gradient(loss, f.embeddings))
  # Exactly the rows looked up get gradient: d loss / d table[v] is the sum
  # of w over positions with id v (per sample).
  ns = len(case.sample_shape)
  lead = _lead(case)
  ids = np.broadcast_to(case.x, lead + case.x.shape[-2:])
  want = np.zeros(grad.shape)
  wn = np.asarray(w)
  for idx in np.ndindex(*lead):
    s_idx = tuple(0 if d == 1 else i for i, d in zip(
        idx[len(lead) - ns:], case.sample_shape))
    np.add.at(want[s_idx], ids[idx].ravel(), wn[idx].reshape(
        -1, wn.shape[-1]))
  rtol = 1e-5 if case.dtype == tf.float32 else 1e-12
  np.testing.assert_allclose(grad, want, rtol=rtol, atol=rtol)


def test_sample_dims_broadcast_against_input_dims():
  f = jdl.Embedding(3, 7, tf.float64).sample([2, 1], seed=0)
  ids = np.random.default_rng(0).integers(0, 7, size=(5, 4, 6))
  y = f(ids)                                   # B=[5] against S=[2, 1]
  assert y.shape == (2, 5, 4, 6, 3)
  np.testing.assert_array_equal(y[1, 3], np.asarray(f.embeddings)[1, 0][
      ids[3]])


def test_log_prob_is_the_sum_of_the_tfd_parts():
  emb = jdl.Embedding(3, 5, tf.float64)
  f = emb.sample(4, seed=1)
  assert f.embeddings.shape == (4, 5, 3) and list(f.params) == ["embeddings"]
  want = tf.reduce_sum(tfd.Normal(np.float64(0), 1.).log_prob(f.embeddings),
                       [-2, -1])
  np.testing.assert_allclose(emb.log_prob(f), want, rtol=1e-12)
  hs = jdl.Embedding(3, 5, prior=jdl.priors.horseshoe(0.5))
  g = hs.sample(2, seed=0)
  assert g.local_scale.shape == (2, 3)  # one per output dimension
  lp = tfd.HalfCauchy(0., 0.5).log_prob(g.global_scale)
  lp += tf.reduce_sum(tfd.HalfCauchy(0., 1.).log_prob(g.local_scale), -1)
  scale = g.global_scale[:, None, None] * g.local_scale[:, None, :]
  lp += tf.reduce_sum(tfd.Normal(0., scale).log_prob(g.embeddings), [-2, -1])
  np.testing.assert_allclose(hs.log_prob(g), lp, rtol=1e-5)


def test_composes_in_a_sequential():
  net = jdl.Sequential(jdl.Embedding(2, 6), jdl.Flatten(),
                       jdl.Affine(1, 4 * 2))
  fs = net.sample(3, seed=0)
  assert fs(np.zeros([5, 4], np.int32)).shape == (3, 5, 1)
  assert net.log_prob(fs).shape == (3,)


# -- errors ------------------------------------------------------------------

DESC = r"Embedding\(output_dim=2, input_dim=5\)"


@pytest.mark.parametrize("args, match", [
    ((0, 5), "`output_dim` must be a positive integer; got 0"),
    ((2, 2.5), "`input_dim` must be a positive integer; got 2.5"),
])
def test_bad_sizes_are_refused(args, match):
  with pytest.raises(ValueError, match=match):
    jdl.Embedding(*args)


def test_bad_dtype_is_refused():
  with pytest.raises(TypeError, match=DESC + ": `dtype` must be floating"):
    jdl.Embedding(2, 5, tf.int32)


def test_bad_ids_name_the_layer_argument_and_values():
  f = jdl.Embedding(2, 5).sample(3, seed=0)
  with pytest.raises(TypeError, match=DESC + " expects integer token ids.*"
                     "float32"):
    f(tf.zeros([2, 3]))
  with pytest.raises(TypeError, match="numpy dtype float64"):
    f([[1., 2.]])
  with pytest.raises(TypeError, match="dtype bool"):
    f(tf.zeros([2, 3], tf.bool))
  with pytest.raises(ValueError, match=DESC + r" expects token ids of rank "
                     r">= 2 \(\[..., N, T\].*got shape \[3\]"):
    f([1, 2, 3])
  with pytest.raises(ValueError, match=DESC + r": token ids must lie in "
                     r"\[0, 5\).*got out-of-range ids \[-1, 5, 7\]"):
    f([[0, 5, 7], [-1, 4, 5]])
  with pytest.raises(ValueError, match=DESC + r": the input's leading dims "
                     r"\[2\].*sample shape \[3\]"):
    f(np.zeros([2, 4, 1], np.int64))


def test_out_of_range_ids_fail_in_graphs_and_give_nan_under_xla():
  f = jdl.Embedding(2, 5).sample(seed=0)
  ids = tf.constant([[0, 5], [4, -1]])
  graph = tf.function(lambda x: f(x))
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=DESC + r": token ids must lie in \[0, 5\)"):
    graph(ids)
  y = np.asarray(tf.function(lambda x: f(x), jit_compile=True)(ids))
  assert np.all(np.isnan(y[0, 1])) and np.all(np.isnan(y[1, 1]))
  np.testing.assert_array_equal(y[1, 0], np.asarray(f.embeddings)[4])


# -- inference ---------------------------------------------------------------

def _tiny_model():
  net = jdl.Sequential(jdl.Embedding(2, 4), jdl.Flatten(),
                       jdl.Affine(1, 3 * 2))
  return models.Model(net, models.Normal(scale=0.5))


def test_hmc_runs_and_moves():
  rng = np.random.default_rng(0)
  x = rng.integers(0, 4, size=(8, 3)).astype(np.int32)
  y = (x == 1).sum(1, keepdims=True).astype(np.float32)
  result = jdl.mcmc.sample(_tiny_model(), x, y, kernel="hmc", num_chains=2,
                           num_results=4, num_burnin_steps=4,
                           num_leapfrog_steps=3, seed=0, progress=False,
                           jit_compile=False)
  draws = np.asarray(result.states[0])
  assert draws.shape[-2:] == (4, 2)
  assert np.all(np.isfinite(draws))
  assert np.ptp(draws, axis=0).max() > 0


def test_vi_fits_with_flipout():
  rng = np.random.default_rng(0)
  x = rng.integers(0, 4, size=(16, 3)).astype(np.int32)
  y = (x == 1).sum(1, keepdims=True).astype(np.float32)
  q = jdl.vi.fit(_tiny_model(), x, y, estimator="flipout", epochs=2,
                 batch_size=8, learning_rate=0.05, seed=0, jit_compile=False,
                 progress=False)
  assert len(q.history.step_loss) == 4
  assert np.all(np.isfinite(q.history.step_loss))
  assert q.history.step_loss[-1] != q.history.step_loss[0]


def test_vi_fits_on_a_dataset_of_token_ids():
  rng = np.random.default_rng(0)
  x = rng.integers(0, 4, size=(8, 3)).astype(np.int64)
  y = (x == 1).sum(1, keepdims=True).astype(np.float32)
  data = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
  q = jdl.vi.fit(_tiny_model(), data, epochs=1, seed=0, jit_compile=False,
                 progress=False)
  assert len(q.history.step_loss) == 2
  assert np.all(np.isfinite(q.history.step_loss))


def _surrogate():
  emb = jdl.Embedding(3, 4, tf.float64)
  q = vi.Surrogate(emb, seed=0)
  rng = np.random.default_rng(1)
  for name, v in q.trainable_parameters.items():
    if name.endswith("/loc"):
      v.assign(rng.normal(size=v.shape))
    else:
      v.assign(np.log(np.expm1(rng.uniform(0.3, 1.0, size=v.shape))))
  layer = emb.sample(seed=0)
  return layer, dict(zip(layer.params, q.distributions()))


def test_flipout_moments_equal_reparameterization():
  """Per-example mean and variance of every output under flipout and reparam.

  K = 4000 independent draws each. Flipout's output for a sequence is
  `mean[id] + s * delta[id]` with a random sign `s` and a symmetric normal
  `delta`: distributed exactly as reparam's `table[id]`. A two-sample z-test
  on each of the 2 x 54 moments (|z| < 5.5: < 4e-8 each under normal
  sampling errors; fourth moments estimated from the draws) has a
  false-failure probability below 108 * 4e-8 + CLT error at K = 4000, far
  below 1e-3.
  """
  layer, dists = _surrogate()
  ids = np.array([[0, 1, 3], [3, 3, 2], [1, 0, 0], [2, 2, 1], [0, 3, 1],
                  [1, 1, 1]], np.int32)
  k = 4000
  outs = {}
  for est, seed in (("reparam", (3, 1)), ("flipout", (4, 1))):
    f = sampled_layer(layer, dists, estimator=est, sample_shape=[k],
                      seed=tf.constant(seed))
    if est == "flipout":
      assert isinstance(f.params["embeddings"], jdl.ops.Perturbed)
    outs[est] = np.asarray(f(ids))
  a, b = outs["reparam"], outs["flipout"]
  ma, mb, va, vb = a.mean(0), b.mean(0), a.var(0), b.var(0)
  assert np.abs((ma - mb) / np.sqrt((va + vb) / k)).max() < 5.5
  m4a, m4b = ((a - ma) ** 4).mean(0), ((b - mb) ** 4).mean(0)
  zv = (va - vb) / np.sqrt((m4a - va ** 2 + m4b - vb ** 2) / k)
  assert np.abs(zv).max() < 5.5
  # Id 3 in examples 0 and 1: one table under reparam (equal outputs); under
  # flipout, uncorrelated (independent signs per example): |r| < 5.5 /
  # sqrt(K) for each of the 3 outputs (false failure < 3 * 4e-8).
  np.testing.assert_array_equal(a[:, 0, 2], a[:, 1, 0])
  for j in range(3):
    r = np.corrcoef(b[:, 0, 2, j], b[:, 1, 0, j])[0, 1]
    assert abs(r) < 5.5 / np.sqrt(k), (j, r)


def test_flipout_gives_one_table_per_sequence():
  """Exact: the same id twice in one sequence gets the same vector (signs
  are shared over positions), and the flipped part is +-delta[id]."""
  layer, dists = _surrogate()
  f = sampled_layer(layer, dists, estimator="flipout", sample_shape=[2],
                    seed=tf.constant([5, 6]))
  ids = np.array([[3, 1, 3], [3, 3, 0]], np.int32)
  y = np.asarray(f(ids))
  np.testing.assert_array_equal(y[:, 0, 0], y[:, 0, 2])
  np.testing.assert_array_equal(y[:, 1, 0], y[:, 1, 1])
  table = f.params["embeddings"]
  pert = y - np.asarray(table.mean)[ids]
  delta = np.asarray(table.delta)[:, ids]
  np.testing.assert_allclose(np.abs(pert), np.abs(delta), rtol=1e-12)
  # Under XLA too (the signs may differ, the structure may not).
  g = tf.function(lambda layer, x: layer(x), jit_compile=True)
  yx = np.asarray(g(f, ids))
  np.testing.assert_array_equal(yx[:, 0, 0], yx[:, 0, 2])


# -- io ----------------------------------------------------------------------

@settings(deadline=None, max_examples=5)
@given(jdt.embedding_configs())
def test_config_and_file_round_trip(tmp_path_factory, case):
  again = io.from_config(io.to_config(case.dist))
  assert io.to_config(again) == io.to_config(case.dist)
  f = case.dist.sample(case.sample_shape, seed=case.seed)
  path = tmp_path_factory.mktemp("emb") / "emb.jdl.npz"
  io.save_network(path, case.dist, f)
  dist, loaded = io.load_network(path)
  np.testing.assert_array_equal(f.embeddings, loaded.embeddings)
  np.testing.assert_array_equal(f(case.x), loaded(case.x))
  np.testing.assert_array_equal(case.dist.log_prob(f), dist.log_prob(loaded))


def test_prior_round_trips_in_a_network_file(tmp_path):
  net = jdl.Sequential(jdl.Embedding(2, 6, prior=jdl.priors.laplace(0.5)),
                       jdl.Flatten(), jdl.Affine(1, 8))
  path = io.save_distribution(tmp_path / "e.jdl.npz", net)
  again = io.load_distribution(path)
  assert io.to_config(again) == io.to_config(net)
