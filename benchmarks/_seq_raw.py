"""Hand-written batched TensorFlow versions of the sequence/norm layer rows.

Each function takes the layer's parameters with a leading chain dim `C`
(the same names and layouts as the jdlayers sampled layer, which are Keras
3's) and the shared data, and returns the chains' outputs. They are the
fastest formulations measured on this machine per mode: one batched matmul
or einsum per projection, the input projections of a recurrence for all
time steps before a `tf.foldl` whose body holds one batched matmul, and
normalisation statistics computed once for the shared input.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def normal_lp(w, loc=0., scale=1.):
  """Sum over all but the chain dim of `log Normal(w; loc, scale)`."""
  z = (w - loc) / scale
  n = np.prod(w.shape[1:])
  return tf.reduce_sum(-0.5 * tf.square(z), axis=list(
      range(1, w.shape.rank))) - n * (0.5 * np.log(2 * np.pi) + np.log(scale))


def embedding(p, ids, mode):
  """`ids [N, T]` -> `[C, N, T, D]`: one gather of the tables' rows."""
  del mode
  return tf.gather(p["embeddings"], ids, axis=1)


def _time_major_inputs(x, kernel, bias):
  """`x [N, T, F]`, `kernel [C, F, G]` -> `[T, C, N, G]` for all steps:
  one matmul of the shared rows `[N * T, F]` (faster than an einsum with
  the time-major output in `tf.function` mode), then a transpose."""
  n, t, f = x.shape
  y = tf.linalg.matmul(tf.reshape(x, [n * t, f]), kernel) + bias[:, None, :]
  return tf.transpose(tf.reshape(y, [-1, n, t, y.shape[-1]]), [2, 0, 1, 3])


def lstm(p, x, mode):
  """Keras 3's LSTM (gates i, f, c, o; tanh / sigmoid), last state
  `[C, N, U]`."""
  del mode
  k, rk, b = p["kernel"], p["recurrent_kernel"], p["bias"]
  c_, n, u = k.shape[0], x.shape[0], rk.shape[1]
  xs = _time_major_inputs(x, k, b)

  def step(carry, xt):
    h, c = carry
    z = xt + tf.linalg.matmul(h, rk)
    i, f, g, o = tf.split(z, 4, axis=-1)
    c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
    return tf.sigmoid(o) * tf.tanh(c), c

  zero = tf.zeros([c_, n, u], x.dtype)
  # Only the last state is needed: a fold keeps no per-step outputs.
  return tf.foldl(step, xs, (zero, zero))[0]


def gru(p, x, mode):
  """Keras 3's GRU with `reset_after=True` (gates z, r, h; bias
  `[C, 2, 3U]`), last state `[C, N, U]`."""
  del mode
  k, rk, b = p["kernel"], p["recurrent_kernel"], p["bias"]
  c_, n, u = k.shape[0], x.shape[0], rk.shape[1]
  xs = _time_major_inputs(x, k, b[:, 0])
  b_rec = b[:, 1][:, None, :]

  def step(h, xt):
    inner = tf.linalg.matmul(h, rk) + b_rec
    xz, xr, xh = tf.split(xt, 3, axis=-1)
    hz, hr, hh = tf.split(inner, 3, axis=-1)
    z = tf.sigmoid(xz + hz)
    r = tf.sigmoid(xr + hr)
    return z * h + (1. - z) * tf.tanh(xh + r * hh)

  return tf.foldl(step, xs, tf.zeros([c_, n, u], x.dtype))


def layer_norm(p, x, mode, epsilon=1e-3):
  """`x [N, F]` -> `[C, N, F]`: the shared input normalised once."""
  del mode
  mean, var = tf.nn.moments(x, axes=[-1], keepdims=True)
  xn = (x - mean) * tf.math.rsqrt(var + epsilon)
  return xn * p["gamma"][:, None, :] + p["beta"][:, None, :]


def filter_response_norm(p, x, mode, epsilon=1e-6):
  """`x [N, H, W, C]` -> `[C', N, H, W, C]`: FRN + TLU (Singh & Krishnan
  2019), the shared input normalised once."""
  del mode
  nu2 = tf.reduce_mean(tf.square(x), axis=[1, 2], keepdims=True)
  xn = x * tf.math.rsqrt(nu2 + epsilon)

  def per_chain(v):
    return v[:, None, None, None, :]

  y = xn * per_chain(p["gamma"]) + per_chain(p["beta"])
  return tf.maximum(y, per_chain(p["tau"]))


def _mha_fused(p, x):
  """QKV as one matmul of the shared rows `[N * T, D]` with the three
  kernels concatenated, heads moved next to the chains for batched
  matmuls (fastest under XLA)."""
  c, d, h, k = p["query_kernel"].shape
  n, t = x.shape[0], x.shape[1]
  kernel = tf.concat([tf.reshape(p[f"{n_}_kernel"], [c, d, h * k])
                      for n_ in ("query", "key", "value")], axis=-1)
  bias = tf.concat([tf.reshape(p[f"{n_}_bias"], [c, 1, h * k])
                    for n_ in ("query", "key", "value")], axis=-1)
  qkv = tf.linalg.matmul(tf.reshape(x, [n * t, d]), kernel) + bias
  qkv = tf.transpose(tf.reshape(qkv, [c, n, t, 3, h, k]), [3, 0, 1, 4, 2, 5])
  q, key, v = qkv[0] * (1. / np.sqrt(k)), qkv[1], qkv[2]   # [C, N, H, T, K]
  att = tf.nn.softmax(tf.linalg.matmul(q, key, transpose_b=True), axis=-1)
  o = tf.transpose(tf.linalg.matmul(att, v), [0, 1, 3, 2, 4])  # [C,N,T,H,K]
  return tf.reshape(o, [c, n * t, h * k])


def _mha_split(p, x):
  """One matmul per projection and einsums over heads (fastest in
  `tf.function` mode, where the fused version's 6-D transpose costs)."""
  c, d, h, k = p["query_kernel"].shape
  n, t = x.shape[0], x.shape[1]
  rows = tf.reshape(x, [n * t, d])

  def project(name):
    y = tf.linalg.matmul(rows, tf.reshape(p[f"{name}_kernel"], [c, d, h * k]))
    return tf.reshape(y, [c, n, t, h, k]) + p[f"{name}_bias"][:, None, None]

  q = project("query") * (1. / np.sqrt(k))
  att = tf.nn.softmax(tf.einsum("cnthk,cnshk->cnhts", q, project("key")), -1)
  o = tf.einsum("cnhts,cnshk->cnthk", att, project("value"))
  return tf.reshape(o, [c, n * t, h * k])


def multi_head_attention(p, x, mode):
  """Keras 3's self-attention, `x [N, T, D]` -> `[C, N, T, D]`."""
  c, d, h, k = p["query_kernel"].shape
  n, t = x.shape[0], x.shape[1]
  o = (_mha_fused if mode == "xla" else _mha_split)(p, x)
  out = tf.linalg.matmul(o, tf.reshape(p["attention_output_kernel"],
                                       [c, h * k, -1]))
  return tf.reshape(out, [c, n, t, -1]) + (
      p["attention_output_bias"][:, None, None, :])
