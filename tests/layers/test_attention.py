"""`jdl.MultiHeadAttention`: Keras 3 equivalence, shapes, modes, gradients,
priors and log_prob, errors, HMC, VI (Flipout vs reparameterization), io."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import keras

import jdlayers as jdl
import jdlayers.testing as jdt
from jdlayers import io, models
from jdlayers.inference import vi
from jdlayers.inference.vi._estimators import sampled_layer
from jdlayers.layers.attention import PROJECTIONS

from _layers_testlib import tol

tfd = tfp.distributions
S_CHOICES = st.sampled_from(((), (3,)))


def _keras_reference(case, f):
  """Keras' MultiHeadAttention with each sample's weights, per lead index."""
  kw = case.kwargs
  kl = keras.layers.MultiHeadAttention(
      kw["num_heads"], kw["key_dim"], value_dim=kw.get("value_dim"),
      use_bias=kw["use_bias"],
      output_shape=kw.get("output_dim", kw["input_dim"]),
      dtype=case.dtype.name)
  lead = tuple(np.broadcast_shapes(case.batch_shape, case.sample_shape))
  nb = len(case.batch_shape)
  full = lambda a: None if a is None else np.broadcast_to(
      a, lead + a.shape[nb:])
  q, v, k = full(case.x), full(case.value), full(case.key)
  v = q if v is None else v
  mask = case.attention_mask
  if mask is not None:
    mask = np.broadcast_to(mask, lead + (q.shape[-3],) + mask.shape[-2:])
  weights = [np.broadcast_to(w, lead + w.shape[len(case.sample_shape):])
             for w in map(np.asarray, f.keras_weights())]
  kl(q[(0,) * len(lead)], v[(0,) * len(lead)],
     key=None if k is None else k[(0,) * len(lead)])
  qm, vm, km = (full(m) for m in (case.query_mask, case.value_mask,
                                   case.key_mask))
  outs = []
  for idx in np.ndindex(*lead):
    kl.set_weights([w[idx] for w in weights])
    query = tf.constant(q[idx])
    if qm is not None:
      # Keras reads the query's padding mask from the tensor only.
      keras.src.backend.set_keras_mask(query, tf.constant(qm[idx]))
    outs.append(np.asarray(kl(
        query, v[idx], key=None if k is None else k[idx],
        attention_mask=None if mask is None else mask[idx],
        value_mask=None if vm is None else vm[idx],
        key_mask=None if km is None else km[idx],
        use_causal_mask=case.use_causal_mask)))
  return np.stack(outs).reshape(lead + outs[0].shape)


def _keras_adds_bias_on_the_wrong_axis(case):
  """Keras 3.15's TF `ops.add` turns `x + bias` into `tf.nn.bias_add`
  whenever the bias squeezes to one dim; a `[H, 1]` bias (head size 1)
  with H equal to the sequence length is then added along the sequence
  axis ("NCHW"), so Keras' own output is wrong there (see
  `test_head_size_one_matches_numpy`, which checks those configs)."""
  kw = case.kwargs
  h = kw["num_heads"]
  tq = case.x.shape[-2]
  tv = tq if case.value is None else case.value.shape[-2]
  vd = kw.get("value_dim", kw["key_dim"])
  return kw["use_bias"] and h > 1 and (
      (kw["key_dim"] == 1 and h in (tq, tv)) or (vd == 1 and h == tv))


@settings(deadline=None, max_examples=16)
@given(data=st.data())
def test_equals_keras_multi_head_attention(data):
  case = data.draw(jdt.attention_configs(
      sample_shape=data.draw(S_CHOICES, label="S")), label="case")
  assume(not _keras_adds_bias_on_the_wrong_axis(case))
  f = case.dist.sample(case.sample_shape, seed=case.seed)
  y = f(case.x, **case.call_kwargs)
  assert tuple(y.shape) == case.output_shape and y.dtype == case.dtype
  rtol, atol = tol(case.dtype)
  np.testing.assert_allclose(y, _keras_reference(case, f), rtol=10 * rtol,
                             atol=10 * atol)


@pytest.mark.parametrize("cross", [False, True])
def test_graph_and_xla_equal_eager(cross):
  rng = np.random.default_rng(0)
  mha = jdl.MultiHeadAttention(2, 3, 4, value_input_dim=3 if cross else None)
  f = mha.sample([2, 1] if cross else [3], seed=0)
  x = rng.normal(size=(1, 3, 2, 5, 4) if cross else (2, 5, 4))
  kw = dict(use_causal_mask=not cross)
  if cross:
    kw.update(value=tf.constant(rng.normal(size=(2, 6, 3)), tf.float32),
              attention_mask=rng.uniform(size=(2, 5, 6)) < 0.6)
  x = tf.constant(x, tf.float32)
  eager = f(x, **kw)
  for jit in (False, True):
    g = tf.function(lambda layer, x: layer(x, **kw), jit_compile=jit)
    np.testing.assert_allclose(g(f, x), eager, rtol=1e-5, atol=1e-5)

  def grads(layer, x):
    with tf.GradientTape() as tape:
      tape.watch(tf.nest.flatten(layer))
      loss = tf.reduce_sum(tf.sin(layer(x, **kw)))
    return tape.gradient(loss, tf.nest.flatten(layer))

  xla = tf.function(grads, jit_compile=True)(f, x)
  for a, b in zip(xla, grads(f, x)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@settings(deadline=None, max_examples=5)
@given(jdt.attention_configs())
def test_gradients_reach_every_leaf(case):
  f = case.dist.sample(case.sample_shape, seed=case.seed)
  leaves = tf.nest.flatten(f)
  y = f(case.x, **case.call_kwargs)
  w = tf.constant(np.random.default_rng(0).normal(size=y.shape), case.dtype)
  with tf.GradientTape() as tape:
    tape.watch(leaves)
    loss = tf.reduce_sum(w * f(case.x, **case.call_kwargs) ** 2)
  grads = dict(zip(f.params, tape.gradient(loss, leaves)))
  for name, g in grads.items():
    assert g is not None and np.all(np.isfinite(g)), name
  # Softmax is shift-invariant per query row, so the key bias never changes
  # the output (in Keras too); the query and key kernels only move it when a
  # query attends to more than one key. Every other part moves it.
  if "key_bias" in grads:
    scale = 1. + max(np.abs(g).max() for g in grads.values())
    np.testing.assert_allclose(grads["key_bias"], 0., atol=1e-4 * scale)
  for name in ("value_kernel", "attention_output_kernel", "value_bias",
               "attention_output_bias"):
    if name in grads:
      assert np.any(grads[name] != 0), name


def _numpy_attention(params, q, v, mask=None):
  """Keras' documented math in numpy: per-head scaled dot products."""
  p = {k: np.asarray(a, np.float64) for k, a in params.items()}
  proj = lambda x, n: (np.einsum("...ti,ihd->...thd", x, p[f"{n}_kernel"])
                       + p.get(f"{n}_bias", 0.))
  qh, kh, vh = proj(q, "query"), proj(v, "key"), proj(v, "value")
  logits = np.einsum("...thd,...shd->...hts", qh, kh) / np.sqrt(qh.shape[-1])
  if mask is not None:
    logits = np.where(mask[..., None, :, :], logits, -1e9)
  w = np.exp(logits - logits.max(-1, keepdims=True))
  w /= w.sum(-1, keepdims=True)
  ctx = np.einsum("...hts,...shd->...thd", w, vh)
  return (np.einsum("...thd,hdo->...to", ctx, p["attention_output_kernel"])
          + p.get("attention_output_bias", 0.))


def test_head_size_one_matches_numpy():
  # The configs Keras 3.15 gets wrong (bias of shape [H, 1], H = T).
  rng = np.random.default_rng(0)
  for heads, t, tv in ((2, 2, 2), (3, 3, 2), (2, 4, 2)):
    mha = jdl.MultiHeadAttention(heads, 1, 3, tf.float64, value_input_dim=2)
    f = mha.sample(seed=heads)
    q, v = rng.normal(size=(2, t, 3)), rng.normal(size=(2, tv, 2))
    mask = rng.uniform(size=(2, t, tv)) < 0.7
    np.testing.assert_allclose(f(q, v, attention_mask=mask),
                               _numpy_attention(f.params, q, v, mask),
                               rtol=1e-10, atol=1e-12)


def test_sample_shapes_broadcast_without_loops():
  mha = jdl.MultiHeadAttention(2, 3, 4, tf.float64)
  f = mha.sample([2, 1], seed=0)
  x = np.random.default_rng(0).normal(size=(5, 3, 6, 4))
  y = f(x)                                   # B=[5] against S=[2, 1]
  assert y.shape == (2, 5, 3, 6, 4)
  # Sample [i, 0] on input batch j equals the S=[] layer with those weights.
  one = mha._value_type({k: v[1, 0] for k, v in f.params.items()}, f.config)
  np.testing.assert_allclose(y[1, 3], one(x[3]), rtol=1e-12)
  y2, scores = f(x, return_attention_scores=True)
  assert scores.shape == (2, 5, 3, 2, 6, 6)
  np.testing.assert_allclose(tf.reduce_sum(scores, -1), 1., rtol=1e-12)


def test_log_prob_is_the_sum_of_the_tfd_parts():
  mha = jdl.MultiHeadAttention(2, 3, 4, tf.float64, value_dim=2,
                               output_dim=5, value_input_dim=3)
  f = mha.sample(3, seed=1)
  fan_in = {"query": 4, "key": 3, "value": 3, "attention_output": 4}
  want = 0.
  for p in PROJECTIONS:
    for part, scale in (("kernel", fan_in[p] ** -0.5), ("bias", 1.)):
      v = f.params[f"{p}_{part}"]
      lp = tfd.Normal(np.float64(0), scale).log_prob(v)
      want += tf.reduce_sum(tf.reshape(lp, [3, -1]), -1)
  np.testing.assert_allclose(mha.log_prob(f), want, rtol=1e-12)
  assert list(f.params) == [f"{p}_{w}" for p in PROJECTIONS
                            for w in ("kernel", "bias")]
  assert f.query_kernel.shape == (3, 4, 2, 3)
  assert f.key_kernel.shape == (3, 3, 2, 3)
  assert f.value_bias.shape == (3, 2, 2)
  assert f.attention_output_kernel.shape == (3, 2, 2, 5)
  assert f.attention_output_bias.shape == (3, 5)


def test_hierarchical_prior_gives_each_projection_its_own_latents():
  mha = jdl.MultiHeadAttention(2, 3, 4, prior=jdl.priors.horseshoe(),
                               use_bias=False)
  f = mha.sample(2, seed=0)
  for p in PROJECTIONS:
    assert f.params[f"{p}_global_scale"].shape == (2,)
    assert f"{p}_kernel" in f.params and f"{p}_bias" not in f.params
  assert f.query_local_scale.shape == (2, 2)            # one per head
  assert f.attention_output_local_scale.shape == (2, 4)  # one per output
  # log_prob is the sum of the tfd parts: HalfCauchy scales, and kernels
  # Normal(0, global * local) with the local scale on the head/output axis.
  want = 0.
  for p in PROJECTIONS:
    tau, lam = f.params[f"{p}_global_scale"], f.params[f"{p}_local_scale"]
    kern = f.params[f"{p}_kernel"]
    half = tfd.HalfCauchy(0., 1.)
    want += tfd.HalfCauchy(0., 1.).log_prob(tau)
    want += tf.reduce_sum(half.log_prob(lam), -1)
    lam = lam[:, None, :, None] if p != "attention_output" else (
        lam[:, None, None, :])
    scale = tau[:, None, None, None] * lam
    want += tf.reduce_sum(tfd.Normal(0., scale).log_prob(kern), [1, 2, 3])
  np.testing.assert_allclose(mha.log_prob(f), want, rtol=1e-5)
  np.testing.assert_allclose(
      mha.log_prob(f), tf.add_n(tf.nest.flatten(mha.log_prob_parts(f))),
      rtol=1e-5)
  assert np.all(np.isfinite(f(tf.ones([3, 2, 4]))))


def test_sequential_composition_and_causal_mask():
  net = jdl.Sequential(jdl.MultiHeadAttention(2, 2, 3), jdl.Flatten(),
                       jdl.Affine(1, 4 * 3))
  fs = net.sample(4, seed=0)
  x = tf.constant(np.random.default_rng(1).normal(size=(6, 4, 3)),
                  tf.float32)
  assert fs(x).shape == (4, 6, 1)
  assert net.log_prob(fs).shape == (4,)
  # Causal: the first position's output depends on the first input only.
  f = jdl.MultiHeadAttention(2, 2, 3).sample(seed=0)
  x2 = tf.concat([x[:, :1], 5. + x[:, 1:]], axis=1)
  np.testing.assert_allclose(f(x, use_causal_mask=True)[:, 0],
                             f(x2, use_causal_mask=True)[:, 0], rtol=1e-5)


# -- errors ------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    (dict(num_heads=0), "`num_heads` must be a positive integer; got 0"),
    (dict(key_dim=2.5), "`key_dim` must be a positive integer; got 2.5"),
    (dict(value_dim=-1), "`value_dim` must be a positive integer"),
    (dict(output_dim=0), "`output_dim` must be a positive integer"),
])
def test_bad_sizes_are_refused(kwargs, match):
  args = dict(num_heads=2, key_dim=3, input_dim=4)
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    jdl.MultiHeadAttention(**args)


def test_bad_inputs_name_the_layer_argument_and_shapes():
  f = jdl.MultiHeadAttention(2, 3, 4, value_input_dim=5).sample(2, seed=0)
  q, v = tf.ones([3, 6, 4]), tf.ones([3, 7, 5])
  desc = r"MultiHeadAttention\(num_heads=2, key_dim=3, input_dim=4\)"
  with pytest.raises(ValueError, match=desc + r" `query` expects an input of "
                     r"rank >= 3 \(\[..., N, T, 4\]\); got shape \[6, 4\]"):
    f(tf.ones([6, 4]), v)
  with pytest.raises(ValueError, match=desc + r": `query` has 3 features "
                     r"\(shape \[3, 6, 3\]\); expected 4"):
    f(tf.ones([3, 6, 3]), v)
  with pytest.raises(ValueError, match=desc + r": called with only `query` "
                     r"\(self-attention\), but the layer's value_input_dim=5 "
                     r"differs from its input_dim=4; pass `value`"):
    f(q)
  with pytest.raises(ValueError, match=r"`value` has 4 features \(shape "
                     r"\[3, 7, 4\]\); expected 5"):
    f(q, tf.ones([3, 7, 4]))
  g = jdl.MultiHeadAttention(1, 1, 4, key_input_dim=2).sample(seed=0)
  with pytest.raises(ValueError, match=r"called without `key`.*key_input_dim"
                     r"=2 differs from its value_input_dim=4; pass `key`"):
    g(q)
  with pytest.raises(ValueError, match=r"`key` and `value` must have the same "
                     r"length Tv; got key shape \[3, 2, 5\]"):
    f(q, v, tf.ones([3, 2, 5]))
  with pytest.raises(ValueError, match=r"`attention_mask` must be \[..., N, "
                     r"T, Tv\] = \[..., N, 6, 7\].*got shape \[6, 6\]"):
    f(q, v, attention_mask=tf.ones([6, 6], tf.bool))
  with pytest.raises(ValueError, match=r"the attention mask has leading dims "
                     r"\[4\] \(shape \[4, 6, 7\]\), which do not broadcast "
                     r"with the output's \[\*S, N\] = \[2, 3\]"):
    f(q, v, attention_mask=tf.ones([4, 6, 7], tf.bool))
  with pytest.raises(ValueError, match=desc + r" `query`: the input's leading "
                     r"dims \[5\]"):
    f(tf.ones([5, 3, 6, 4]), v)
  with pytest.raises(TypeError, match=r"got an input of dtype int32"):
    f(tf.ones([3, 6, 4], tf.int32), v)
  with pytest.raises(TypeError, match="has dtype float32 but got an input of "
                     "dtype float64"):
    f(tf.ones([3, 6, 4], tf.float64), v)


# -- inference ---------------------------------------------------------------

def _tiny_model():
  net = jdl.Sequential(jdl.MultiHeadAttention(1, 1, 2), jdl.Flatten(),
                       jdl.Affine(1, 3 * 2))
  return models.Model(net, models.Normal(scale=0.5))


def test_hmc_runs_and_moves():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(8, 3, 2)).astype(np.float32)
  y = x.sum(axis=(1, 2))[:, None].astype(np.float32)
  result = jdl.mcmc.sample(_tiny_model(), x, y, kernel="hmc", num_chains=2,
                           num_results=6, num_burnin_steps=6,
                           num_leapfrog_steps=3, seed=0, progress=False,
                           jit_compile=False)
  for name in ("0/query_kernel", "0/attention_output_bias", "2/weights"):
    draws = result[name]
    assert draws.shape[:2] == (6, 2) and np.all(np.isfinite(draws)), name
    assert np.ptp(draws, axis=0).max() > 0, name   # the chains move
  assert result.acceptance_rate > 0


def test_flipout_moments_equal_reparameterization():
  """Per-example mean and variance of every output under flipout and reparam.

  Both draw K = 4000 independent weight samples (flipout's per-example
  kernels are distributed exactly as reparam's for a symmetric normal
  surrogate). A two-sample z-test on each of the 2 x 24 moments with
  |z| < 5.5 has false-failure probability < 48 * 4e-8 ~ 2e-6 under normal
  sampling errors; the CLT error at K = 4000 (kurtosis estimated from the
  draws themselves) keeps it well below 1e-3.
  """
  mha = jdl.MultiHeadAttention(2, 2, 3, tf.float64, output_dim=4,
                               value_input_dim=2)
  q = vi.Surrogate(mha, seed=0)
  rng = np.random.default_rng(1)
  for name, v in q.trainable_parameters.items():
    if name.endswith("/loc"):
      v.assign(0.5 * rng.normal(size=v.shape))
    else:
      v.assign(np.log(np.expm1(0.3 * rng.uniform(0.5, 1.5, size=v.shape))))
  x = tf.constant(rng.normal(size=(2, 3, 3)))
  val = tf.constant(rng.normal(size=(2, 4, 2)))
  k = 4000
  layer = mha.sample(seed=0)
  dists = dict(zip(layer.params, q.distributions()))
  outs = {}
  for est, seed in (("reparam", (3, 1)), ("flipout", (4, 1))):
    f = sampled_layer(layer, dists, estimator=est, sample_shape=[k],
                      seed=tf.constant(seed))
    if est == "flipout":
      assert isinstance(f.params["value_kernel"], jdl.ops.Perturbed)
    outs[est] = np.asarray(f(x, val))
  a, b = outs["reparam"], outs["flipout"]
  _two_sample_moments(a, b, z=5.5)


def test_vi_fit_with_flipout_runs():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(16, 3, 2)).astype(np.float32)
  y = x.sum(axis=(1, 2))[:, None].astype(np.float32)
  q = vi.fit(_tiny_model(), x, y, estimator="flipout", epochs=3,
             batch_size=8, learning_rate=0.01, seed=0, progress=False,
             jit_compile=False)
  assert np.all(np.isfinite(q.history.loss)) and len(q.history.loss) == 3
  assert q.history.loss[-1] != q.history.loss[0]


def _two_sample_moments(a, b, z):
  k = a.shape[0]
  ma, mb, va, vb = a.mean(0), b.mean(0), a.var(0), b.var(0)
  zm = (ma - mb) / np.sqrt((va + vb) / k)
  assert np.abs(zm).max() < z, zm
  m4a = ((a - ma) ** 4).mean(0)
  m4b = ((b - mb) ** 4).mean(0)
  zv = (va - vb) / np.sqrt((m4a - va ** 2 + m4b - vb ** 2) / k)
  assert np.abs(zv).max() < z, zv


# -- io ----------------------------------------------------------------------

@settings(deadline=None, max_examples=3)
@given(jdt.attention_configs())
def test_config_and_file_round_trip(tmp_path_factory, case):
  again = io.from_config(io.to_config(case.dist))
  assert io.to_config(again) == io.to_config(case.dist)
  f = case.dist.sample(case.sample_shape, seed=case.seed)
  path = tmp_path_factory.mktemp("mha") / "mha.jdl.npz"
  io.save_network(path, case.dist, f)
  dist, loaded = io.load_network(path)
  for u, v in zip(tf.nest.flatten(f), tf.nest.flatten(loaded)):
    np.testing.assert_array_equal(u, v)
  np.testing.assert_array_equal(f(case.x, **case.call_kwargs),
                                loaded(case.x, **case.call_kwargs))
  np.testing.assert_array_equal(case.dist.log_prob(f), dist.log_prob(loaded))


def test_prior_round_trips_in_the_file(tmp_path):
  mha = jdl.MultiHeadAttention(2, 2, 3, prior=jdl.priors.horseshoe(0.5))
  path = io.save_distribution(tmp_path / "m.jdl.npz", mha)
  again = io.load_distribution(path)
  assert again.get_config()["prior"] == mha.get_config()["prior"]
  assert again.param_names == mha.param_names
