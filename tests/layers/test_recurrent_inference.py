"""LSTM, GRU, Bidirectional under inference: Flipout (exact per-sequence
kernels; the same output moments as reparameterization), VI gradients under
XLA, and a short HMC run of Embedding -> LSTM -> Dense under XLA."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import jdlayers as jdl
from jdlayers import models, ops, vi


def _widen(q, scale=0.3, seed=0):
  """Gives every surrogate part non-zero means and a visible spread."""
  rng = np.random.default_rng(seed)
  for name, v in q.trainable_parameters.items():
    if name.endswith("/loc"):
      v.assign(0.5 * rng.normal(size=v.shape))
    else:
      v.assign(np.log(np.expm1(scale * rng.uniform(0.5, 1.5, size=v.shape))))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_flipout_gives_each_sequence_one_kernel_at_every_step(cell):
  """Exact: the op under Perturbed kernels equals running example n with
  its own kernels `mean + delta * s_in[n] s_out[n]^T`, the same at every
  step (signs are drawn from the seed and the shape only)."""
  rng = np.random.default_rng(0)
  n, t, i, u = 3, 4, 2, 2
  g = 4 if cell == "lstm" else 3
  run = ops.lstm if cell == "lstm" else ops.gru
  x = tf.constant(rng.normal(size=(n, t, i)))
  shapes = {"kernel": (i, g * u), "recurrent_kernel": (u, g * u)}
  seeds = {"kernel": tf.constant([1, 2]),
           "recurrent_kernel": tf.constant([3, 4])}
  pert, own = {}, {}
  for name, shape in shapes.items():
    mean, delta = rng.normal(size=shape), rng.normal(size=shape)
    pert[name] = ops.Perturbed(tf.constant(mean), tf.constant(delta),
                               seeds[name])
    in_seed, out_seed = tfp.random.split_seed(seeds[name])
    # The shapes the op flips: x `[N, T, in]` shared over T (-> [N, in]),
    # the state `[N, units]` at every step.
    like_in = tf.zeros((n, t, i) if name == "kernel" else (n, u), tf.float64)
    like_out = tf.zeros((n, t, g * u) if name == "kernel" else (n, g * u),
                        tf.float64)
    shared = (-2,) if name == "kernel" else ()
    s_in = tf.reshape(ops.signs(like_in, shared, in_seed), [n, -1])
    s_out = tf.reshape(ops.signs(like_out, shared, out_seed), [n, -1])
    own[name] = mean + delta * (s_in[:, :, None] * s_out[:, None, :]).numpy()
  bias = tf.constant(rng.normal(size=(g * u,) if cell == "lstm" else
                                (2, g * u)))
  got = run(x, pert["kernel"], pert["recurrent_kernel"], bias,
            return_sequences=True)
  # S = [N] kernels against inputs [N, 1, T, in]: example n, kernel n.
  want = run(x[:, None], own["kernel"], own["recurrent_kernel"], bias,
             return_sequences=True)[:, 0]
  np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def _z_moments(a, b):
  """z-scores of the differences of per-output means and variances of two
  independent samples `[K, ...]` (variance SE from the 4th moment)."""
  k = a.shape[0]
  za = (a.mean(0) - b.mean(0)) / np.sqrt((a.var(0) + b.var(0)) / k)
  se2 = lambda s: (((s - s.mean(0)) ** 4).mean(0) - s.var(0) ** 2) / k
  zv = (a.var(0) - b.var(0)) / np.sqrt(se2(a) + se2(b))
  return np.abs(za).max(), np.abs(zv).max()


@pytest.mark.parametrize("make", [
    lambda: jdl.LSTM(2, 2, tf.float64),
    lambda: jdl.GRU(2, 2, tf.float64, reset_after=False),
    lambda: jdl.Bidirectional(jdl.GRU(2, 2, tf.float64)),
])
def test_flipout_matches_reparameterization_moments_per_example(make):
  """Per example, Flipout's output has reparameterization's distribution
  (a normal delta is symmetric under sign flips), so their means and
  variances over K = 4000 independent draws agree. Each |z| bound of 4.5
  fails with probability ~7e-6 under the CLT; with <= 16 statistics per
  layer and 3 layers the false-failure probability is < 4e-4."""
  dist = make()
  q = vi.Surrogate(dist, seed=0)
  _widen(q)
  x = np.random.default_rng(1).normal(size=(2, 3, 2))
  k = 4000
  rep = q.apply(x, "reparam", [k], seed=3).numpy()
  flip = q.apply(x, "flipout", [k], seed=4).numpy()
  assert rep.shape == flip.shape
  z_mean, z_var = _z_moments(rep, flip)
  assert z_mean < 4.5 and z_var < 4.5, (z_mean, z_var)


def test_flipout_decorrelates_identical_sequences():
  """Two identical sequences: one reparameterized draw gives both the same
  output; Flipout gives them independent sign flips, so their outputs'
  correlation over K = 4000 draws is near 0 (first order exactly 0; its
  SE is ~0.016, and the bound 0.25 leaves room for second-order terms)."""
  q = vi.Surrogate(jdl.LSTM(1, 2, tf.float64, use_bias=False), seed=0)
  _widen(q)
  x = np.ones((2, 3, 2))
  rep = q.apply(x, "reparam", [4000], seed=1).numpy()[..., 0]
  flip = q.apply(x, "flipout", [4000], seed=1).numpy()[..., 0]
  np.testing.assert_array_equal(rep[:, 0], rep[:, 1])
  assert abs(np.corrcoef(flip[:, 0], flip[:, 1])[0, 1]) < 0.25


def test_vi_flipout_differentiates_under_xla():
  # The GRU without reset_after flips two slices of its recurrent kernel;
  # the other cells' gradients are checked eagerly in test_recurrent.py.
  q = vi.Surrogate(jdl.GRU(2, 2, reset_after=False), seed=0)
  x = tf.random.stateless_normal([4, 3, 2], [0, 1])

  @tf.function(jit_compile=True)
  def grads(seed):
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(q.apply(x, "flipout", seed=seed) ** 2)
    return tape.gradient(loss, list(q.trainable_parameters.values()))

  gs = grads(tf.constant([1, 2]))
  names = list(q.trainable_parameters)
  for name, g in zip(names, gs):
    assert g is not None and np.all(np.isfinite(g)), name
    if "kernel" in name:
      assert np.any(g.numpy() != 0), name


def test_hmc_on_embedding_lstm_dense_under_xla():
  rng = np.random.default_rng(0)
  x = rng.integers(0, 5, size=(8, 4)).astype(np.int32)
  y = (x.mean(1, keepdims=True) / 5).astype(np.float32)
  net = jdl.Sequential(jdl.Embedding(2, 5), jdl.LSTM(2, 2), jdl.Affine(1, 2))
  model = models.Model(net, models.Normal(scale=0.5))
  res = jdl.mcmc.sample(model, x, y, num_chains=2, num_results=4,
                        num_burnin_steps=2, kernel="hmc", num_leapfrog_steps=2,
                        step_size=0.05, seed=1, progress=False,
                        jit_compile=True)
  assert len(res.states) == 6  # table, kernel, recurrent kernel, bias, dense
  for s in res.states:
    s = np.asarray(s)
    assert s.shape[:2] == (4, 2) and np.all(np.isfinite(s))
    assert np.any(s[1:] != s[:-1])  # the chains move
