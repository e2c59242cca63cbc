"""jdlayers.keras Embedding, LSTM, GRU, LayerNormalization, MultiHeadAttention.

Equivalence: with point-mass posteriors (the surrogate's mean weights, zero
variance) every estimator gives exactly the deterministic layer, so each
wrapper must equal its Keras 3 twin with the same weights (f32 and f64,
masks included). Then: Keras masking through a model, Bidirectional,
`model.fit`, `model.save` / `load_model`, `get_config`, the KL loss and
errors.
"""

import keras
import numpy as np
import pytest

import jdlayers as jdl
from jdlayers import keras as jdk
from jdlayers.inference import vi

PM = {"*": vi.point_mass()}
ESTIMATORS = ("flipout", "reparam")


def _tol(dtype):
  return dict(rtol=2e-5, atol=2e-5) if dtype == "float32" else dict(
      rtol=1e-10, atol=1e-10)


def _rng(seed=0):
  return np.random.default_rng(seed)


def _randomise(ref, seed, scale=0.5):
  """Sets random weights on a built Keras layer; returns them."""
  rng = _rng(seed)
  w = [(scale * rng.normal(size=v.shape)).astype(v.dtype)
       for v in ref.get_weights()]
  ref.set_weights(w)
  return w


def _check(ours, ref, *args, dtype, **kwargs):
  want = np.asarray(ref(*args, **kwargs))
  for estimator in ESTIMATORS:
    ours.estimator = estimator
    y = ours(*args, **kwargs)
    assert y.dtype == dtype and tuple(y.shape) == want.shape
    np.testing.assert_allclose(y, want, **_tol(dtype))


def _mask(n, t, seed):
  m = _rng(seed).uniform(size=(n, t)) > 0.3
  m[:, 0] = True  # (Keras' masked first step is a corner the mask allows)
  return m


@pytest.mark.parametrize("dtype,shape", [("float32", (4, 3)),
                                         ("float64", (5,))])
def test_embedding_equals_keras(dtype, shape):
  ids = _rng(1).integers(0, 7, size=shape)
  ref = keras.layers.Embedding(7, 3, dtype=dtype)
  ref.build(shape)
  w = _randomise(ref, 2)
  ours = jdk.Embedding(7, 3, dtype=dtype, posterior_fns=PM, seed=0)
  ours.build(shape)
  ours.set_weights(w)
  _check(ours, ref, ids, dtype=dtype)
  _check(ours, ref, ids.astype("float32"), dtype=dtype)  # Keras casts


_RNN_CASES = [
    ("LSTM", {}, False, False, "float32"), ("LSTM", {}, True, True, "float64"),
    ("GRU", {"reset_after": True}, True, False, "float64"),
    ("GRU", {"reset_after": False}, False, True, "float32"),
]


@pytest.mark.parametrize("name,extra,seqs,backwards,dtype", _RNN_CASES)
def test_recurrent_equals_keras(name, extra, seqs, backwards, dtype):
  x = _rng(3).normal(size=(4, 5, 3)).astype(dtype)
  mask = _mask(4, 5, 4)
  kw = dict(return_sequences=seqs, go_backwards=backwards, **extra)
  ref = getattr(keras.layers, name)(6, dtype=dtype, **kw)
  ref.build(x.shape)
  w = _randomise(ref, 5)
  if name == "LSTM":  # (the forget-gate centre, see jdl.keras.LSTM)
    kw["unit_forget_bias"] = False
  ours = getattr(jdk, name)(6, dtype=dtype, posterior_fns=PM, seed=0, **kw)
  ours.build(x.shape)
  ours.set_weights(w)
  _check(ours, ref, x, dtype=dtype)
  _check(ours, ref, x, mask=mask, dtype=dtype)
  assert ours.compute_output_shape(x.shape) == ref.compute_output_shape(
      x.shape)


def test_lstm_unit_forget_bias_is_the_prior_centre():
  x = _rng(3).normal(size=(2, 4, 3)).astype("float32")
  ref = keras.layers.LSTM(5)
  ref.build(x.shape)
  kernel, recurrent, bias = _randomise(ref, 6)
  ours = jdk.LSTM(5, posterior_fns=PM, seed=0)  # unit_forget_bias=True
  ours.build(x.shape)
  offset = np.zeros_like(bias)
  offset[5:10] = 1.  # gates i, f, c, o: the forget gate's biases
  ours.set_weights([kernel, recurrent, bias - offset])
  _check(ours, ref, x, dtype="float32")


@pytest.mark.parametrize("merge_mode", ["concat", "sum"])
def test_keras_bidirectional_wraps_our_lstm(merge_mode):
  x = _rng(7).normal(size=(3, 5, 2)).astype("float32")
  mask = _mask(3, 5, 8)
  ref = keras.layers.Bidirectional(
      keras.layers.LSTM(4, return_sequences=True), merge_mode=merge_mode)
  ref.build(x.shape)
  w = _randomise(ref, 9)
  ours = keras.layers.Bidirectional(
      jdk.LSTM(4, return_sequences=True, unit_forget_bias=False,
               posterior_fns=PM, seed=1), merge_mode=merge_mode)
  ours.build(x.shape)
  ours.set_weights(w)
  for estimator in ESTIMATORS:
    for layer in (ours.forward_layer, ours.backward_layer):
      layer.estimator = estimator
    np.testing.assert_allclose(ours(x, mask=mask), ref(x, mask=mask),
                               **_tol("float32"))
  # The backward copy gets its own seed: its own initial values and noise.
  assert ours.forward_layer.seed == 1 and ours.backward_layer.seed != 1
  assert ours.backward_layer.get_config()["seed"] == 1


@pytest.mark.parametrize("dtype,shape,kw", [
    ("float32", (4, 6), {}), ("float64", (3, 5, 6), {"center": False}),
    ("float64", (2, 3, 4, 6), {"scale": False, "epsilon": 0.125})])
def test_layer_normalization_equals_keras(dtype, shape, kw):
  # (epsilon 0.125: Keras adds it in float32, exact for a power of two.)
  x = (3 * _rng(10).normal(size=shape) + 1).astype(dtype)
  ref = keras.layers.LayerNormalization(dtype=dtype, **kw)
  ref.build(shape)
  w = _randomise(ref, 11, scale=1.)
  ours = jdk.LayerNormalization(dtype=dtype, posterior_fns=PM, seed=0, **kw)
  ours.build(shape)
  names = [v.name for v in ours.weights]
  # The prior and surrogate describe gamma - 1 (see the docstring).
  ours.set_weights([v - 1 if n.startswith("gamma") else v
                    for v, n in zip(w, names)])
  want = ref(x)
  y = ours(x)
  assert y.dtype == dtype
  np.testing.assert_allclose(y, want, **_tol(dtype))


@pytest.mark.parametrize("dtype,kw,cross", [
    ("float32", dict(num_heads=2, key_dim=4), True),
    ("float64", dict(num_heads=2, key_dim=4), False),
    ("float64", dict(num_heads=1, key_dim=4, value_dim=3, output_shape=5,
                     use_bias=False), True)])
def test_multi_head_attention_equals_keras(dtype, kw, cross):
  # key_dim 4: Keras rounds its 1/sqrt(key_dim) through float32 (also in
  # float64), exact for a power of 4.
  rng = _rng(12)
  q = rng.normal(size=(3, 4, 6)).astype(dtype)
  v = rng.normal(size=(3, 5, 7)).astype(dtype) if cross else q
  k = rng.normal(size=(3, 5, 2)).astype(dtype) if cross else None
  am = rng.uniform(size=(3, 4, v.shape[1])) > 0.3
  # No fully masked query row: there Keras' two code paths disagree (its
  # scores path gives zero scores, its default path uniform ones).
  am[..., 0] = True
  ref = keras.layers.MultiHeadAttention(dtype=dtype, **kw)
  ref(q, v, k)
  w = _randomise(ref, 13, scale=0.4)
  ours = jdk.MultiHeadAttention(dtype=dtype, posterior_fns=PM, seed=0, **kw)
  ours(q, v, k)
  ours.set_weights(w)
  _check(ours, ref, q, v, k, dtype=dtype)
  _check(ours, ref, q, v, k, attention_mask=am, dtype=dtype)
  _check(ours, ref, q, v, k, use_causal_mask=True, dtype=dtype)
  _, scores = ours(q, v, k, attention_mask=am, return_attention_scores=True)
  _, want = ref(q, v, k, attention_mask=am, return_attention_scores=True)
  np.testing.assert_allclose(scores, want, **_tol(dtype))


def _mask_model(embedding, rnn, dense):
  ids = keras.Input((6,), dtype="int32")
  return keras.Model(ids, dense(rnn(embedding(ids))))


def test_keras_mask_flows_from_embedding_to_lstm_and_attention():
  ids = _rng(14).integers(1, 9, size=(5, 6))
  ids[:, 4:] = 0
  ids[1, 2:] = 0  # padding of different lengths
  ref = _mask_model(keras.layers.Embedding(9, 4, mask_zero=True),
                    keras.layers.LSTM(3), keras.layers.Dense(2))
  ours = _mask_model(
      jdk.Embedding(9, 4, mask_zero=True, posterior_fns=PM, seed=0),
      jdk.LSTM(3, unit_forget_bias=False, posterior_fns=PM, seed=1),
      keras.layers.Dense(2))
  ours.set_weights(_randomise(ref, 15))
  np.testing.assert_allclose(ours(ids), ref(ids), **_tol("float32"))
  # The mask reaches attention as Keras' (query and value masks).
  rows = []
  for emb, mha in ((keras.layers.Embedding(9, 4, mask_zero=True),
                    keras.layers.MultiHeadAttention(2, 2)),
                   (jdk.Embedding(9, 4, mask_zero=True, posterior_fns=PM,
                                  seed=0),
                    jdk.MultiHeadAttention(2, 2, posterior_fns=PM, seed=1))):
    inp = keras.Input((6,), dtype="int32")
    e = emb(inp)
    rows.append(keras.Model(inp, mha(e, e)))
  rows[1].set_weights(_randomise(rows[0], 16))
  np.testing.assert_allclose(rows[1](ids), rows[0](ids), **_tol("float32"))


def test_flipout_gives_each_example_its_own_weights():
  # Two equal sequences in one batch: flipout draws per-example signs, so
  # their outputs differ (equality has probability 0 for a continuous
  # posterior); reparameterization draws one weight set for the batch.
  x = np.repeat(_rng(17).normal(size=(1, 4, 3)), 2, axis=0).astype("float32")
  ids = np.array([[1, 2, 3], [1, 2, 3]])
  for make, inp in ((lambda e: jdk.LSTM(3, estimator=e, seed=2), x),
                    (lambda e: jdk.GRU(3, estimator=e, seed=2), x),
                    (lambda e: jdk.Embedding(5, 3, estimator=e, seed=2), ids),
                    (lambda e: jdk.MultiHeadAttention(1, 2, estimator=e,
                                                      seed=2), x)):
    y = {e: np.asarray(make(e)(inp)) for e in ESTIMATORS}
    np.testing.assert_array_equal(y["reparam"][0], y["reparam"][1])
    assert np.abs(y["flipout"][0] - y["flipout"][1]).max() > 1e-6


def test_added_loss_is_the_scaled_kl():
  layer = jdk.GRU(3, num_examples=50, kl_weight=0.5, seed=0)
  layer(np.ones([2, 4, 3], "float32"))
  (loss,) = layer.losses
  # Normal surrogate, normal prior: the KL is analytic (no draw in it).
  want = 0.5 * layer.surrogate.kl_divergence(seed=1) / 50
  np.testing.assert_allclose(loss, want, rtol=1e-6)


def test_priors_and_hooks_are_saved_in_the_config():
  x = _rng(18).normal(size=(3, 4, 2)).astype("float32")
  layer = jdk.GRU(3, prior=jdl.priors.normal(0.5), posterior_fns=PM,
                  divergence_fns={"bias": jdk.mc_divergence_fn}, seed=4)
  config = layer.get_config()
  copy = jdk.GRU.from_config(config)
  assert copy.get_config() == config
  layer(x)
  copy(x)  # same seed, same prior and builders: the same initial values
  for a, b in zip(layer.get_weights(), copy.get_weights()):
    np.testing.assert_array_equal(a, b)
  # A hierarchical prior gets its own latents per kernel.
  lstm = jdk.LSTM(2, prior=jdl.priors.horseshoe(), seed=0)
  lstm(x)
  assert "recurrent_kernel_global_scale" in lstm.surrogate.part_names
  assert np.isfinite(lstm.losses[0])


def _data(n=48, seed=0):
  """Padded id sequences; the label is whether the first id is < 4."""
  rng = _rng(seed)
  ids = rng.integers(1, 8, size=(n, 4))
  ids[rng.uniform(size=(n, 4)) < np.linspace(0, 0.6, 4)] = 0
  ids[:, 0] = rng.integers(1, 8, size=n)
  return ids, (ids[:, 0] < 4).astype("int32")


def _model(n, jit_compile="auto"):
  """Every new layer in one tiny model (one compile for the whole file)."""
  common = dict(num_examples=n)
  ids = keras.Input((4,), dtype="int32")
  h = jdk.Embedding(8, 4, mask_zero=True, seed=1, **common)(ids)
  h = keras.layers.Bidirectional(jdk.LSTM(3, return_sequences=True, seed=2,
                                          **common))(h)
  h = jdk.LayerNormalization(seed=3, **common)(h)
  h = jdk.MultiHeadAttention(2, 2, seed=4, **common)(h, h)
  h = jdk.GRU(4, reset_after=False, seed=5, **common)(h)
  out = jdk.Dense(2, seed=6, **common)(h)
  model = keras.Model(ids, out)
  model.compile(keras.optimizers.Adam(0.05),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                jit_compile=jit_compile)
  return model


def test_fit_save_load_and_config(tmp_path):
  x, y = _data()
  model = _model(len(x))
  kinds = {type(l).__name__ for l in jdk.variational_layers(model)}
  assert kinds == {"Embedding", "LSTM", "LayerNormalization",
                   "MultiHeadAttention", "GRU", "Dense"}
  losses = model.fit(x, y, epochs=6, batch_size=24, verbose=0,
                     shuffle=False).history["loss"]
  assert np.all(np.isfinite(losses))
  # Measured (data seeds 0..2): the last two epochs average 0.818-0.819x
  # the first's (mostly the KL / N falling as the posterior scales fit),
  # and each epoch drops ~4% with noise below 0.1%: 0.9x holds by a margin
  # far beyond floating-point differences between machines.
  assert np.mean(losses[-2:]) < 0.9 * losses[0], losses
  path = str(tmp_path / "m.keras")
  model.save(path)
  loaded = keras.models.load_model(path)
  jdk.reseed(model, 5)
  jdk.reseed(loaded, 5)
  np.testing.assert_allclose(loaded.predict_on_batch(x[:8]),
                             model.predict_on_batch(x[:8]), rtol=1e-5,
                             atol=1e-6)
  for layer in jdk.variational_layers(model):
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config


def test_errors_are_early_and_named():
  with pytest.raises(ValueError, match="LSTM: estimator 'local'"):
    jdk.LSTM(3, estimator="local")
  with pytest.raises(ValueError, match="LayerNormalization: estimator"):
    jdk.LayerNormalization(estimator="flipout")
  with pytest.raises(ValueError, match="GRU: `dropout=0.2`"):
    jdk.GRU(3, dropout=0.2)
  with pytest.raises(ValueError, match="`return_state=True`"):
    jdk.LSTM(3, return_state=True)
  with pytest.raises(ValueError, match="attention_axes"):
    jdk.MultiHeadAttention(2, 2, attention_axes=(1, 2))
  with pytest.raises(ValueError, match="center=False, scale=False"):
    jdk.LayerNormalization(center=False, scale=False)
  with pytest.raises(ValueError, match="only the last axis"):
    jdk.LayerNormalization(axis=1)(np.ones([2, 3, 4], "float32"))
  with pytest.raises(ValueError, match="initial_state"):
    jdk.LSTM(3)(np.ones([2, 3, 4], "float32"),
                initial_state=[np.zeros([2, 3], "float32")] * 2)
  with pytest.raises(ValueError, match="min_ndim=3"):
    jdk.LSTM(3)(np.ones([2, 4], "float32"))
  with pytest.raises(ValueError, match=r"Embedding.*\b9\b"):
    jdk.Embedding(5, 2)(np.array([[1, 9]]))
  layer = jdk.GRU(3)
  layer(np.ones([2, 3, 4], "float32"))
  with pytest.raises(ValueError):
    layer(np.ones([2, 3, 5], "float32"))


@pytest.mark.slow  # ~35 CPU-s: XLA compiles every new layer (and flipout)
def test_training_step_compiles_under_xla():
  x, y = _data(n=8)
  model = _model(8, jit_compile=True)
  assert model.jit_compile
  losses = [model.train_on_batch(x, y) for _ in range(2)]
  assert np.all(np.isfinite(losses))
