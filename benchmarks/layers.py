"""Benchmark: value-and-gradient of log p(net) + log p(y | net(x)) per chain.

Models (issue "jdlayers core"):
  mlp: 1-50-50-1 tanh on 200 points, Normal likelihood (sigma 0.1);
  cnn: 64 images 8x8x1, Conv2D 3x3 1->16 relu, Conv2D 3x3 16->16 relu
       (padding "same"), Flatten, Affine -> 10, Categorical likelihood.
Implementations: jdlayers; the same model hand-written in raw TensorFlow
(the fastest formulation measured per mode: batched matmul for dense; for the
CNN a channel-stacked first conv and a grouped second conv, or im2col +
batched matmul under XLA); the TFP anchor
(`tfp.experimental.joint_distribution_layers`).
Modes: eager, tf.function, XLA (`jit_compile=True`). Compiled modes time a
`tf.while_loop` of K gradient evaluations inside one function, as HMC calls
them, so per-call overhead is amortised. The roofline is the model's FLOPs
over a large matmul's FLOP/s measured in the same run.

Usage: python benchmarks/layers.py [--models mlp cnn] [--chains 1 8 32 128]
       [--modes eager function xla] [--impls jdlayers raw anchor] [--quick]
Prints a table and writes JSON to benchmarks/results/layers-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

# A quiet TensorFlow start, shared with the examples; before TF is imported.
# TF32 stays at TensorFlow's default: the benchmarks time what users get.
sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "examples"))
import _common  # noqa: E402

_common.quiet_start(tf32=True)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import jdlayers as jdl  # noqa: E402

tfd = tfp.distributions
tfjdl = tfp.experimental.joint_distribution_layers

MLP_N, CNN_N = 200, 64


# ---------------------------------------------------------------- data ----
def mlp_data():
  rng = np.random.default_rng(0)
  x = rng.uniform(-2, 2, size=(MLP_N, 1)).astype(np.float32)
  y = (np.sin(3 * x) + 0.1 * rng.normal(size=x.shape)).astype(np.float32)
  return tf.constant(x), tf.constant(y)


def cnn_data():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(CNN_N, 8, 8, 1)).astype(np.float32)
  y = rng.integers(0, 10, size=(CNN_N,)).astype(np.int32)
  return tf.constant(x), tf.constant(y)


# ---------------------------------------------- jdlayers implementation ----
def jdl_model(name):
  if name == "mlp":
    net = jdl.Sequential(jdl.Affine(50, 1, activation="tanh"),
                         jdl.Affine(50, 50, activation="tanh"),
                         jdl.Affine(1, 50))
  else:
    net = jdl.Sequential(jdl.Conv2D(16, 3, 1, activation="relu"),
                         jdl.Conv2D(16, 3, 16, activation="relu"),
                         jdl.Flatten(), jdl.Affine(10, 8 * 8 * 16))
  return net


def make_jdl(name, num_chains, mode=None):
  net = jdl_model(name)
  x, y = mlp_data() if name == "mlp" else cnn_data()
  init = net.sample(num_chains, seed=1)

  def target(*parts):
    f = tf.nest.pack_sequence_as(init, parts)
    out = f(x)
    if name == "mlp":
      ll = tf.reduce_sum(tfd.Normal(out, 0.1).log_prob(y), axis=[-2, -1])
    else:
      ll = tf.reduce_sum(tfd.Categorical(logits=out).log_prob(y), axis=-1)
    return net.log_prob(f) + ll

  return target, tf.nest.flatten(init)


# ------------------------------------------ hand-written raw TF baseline ----
def _normal_lp(w, axes):
  return tf.reduce_sum(-0.5 * tf.square(w), axis=axes) - (
      0.5 * np.log(2 * np.pi) * np.prod(w.shape[1:]))


def make_raw(name, num_chains, mode):
  x, y = mlp_data() if name == "mlp" else cnn_data()
  rng = np.random.default_rng(1)
  c = num_chains
  if name == "mlp":
    shapes = [(c, 50, 1), (c, 50), (c, 50, 50), (c, 50), (c, 1, 50), (c, 1)]
  else:
    shapes = [(c, 3, 3, 1, 16), (c, 16), (c, 3, 3, 16, 16), (c, 16),
              (c, 10, 1024), (c, 10)]
  parts = [tf.constant(rng.normal(size=s).astype(np.float32)) for s in shapes]

  def prior(ps):
    return tf.add_n([_normal_lp(p, list(range(1, p.shape.rank))) for p in ps])

  if name == "mlp":
    def target(w1, b1, w2, b2, w3, b3):
      h = tf.tanh(tf.linalg.matmul(x, w1, transpose_b=True) + b1[:, None])
      h = tf.tanh(tf.linalg.matmul(h, w2, transpose_b=True) + b2[:, None])
      out = tf.linalg.matmul(h, w3, transpose_b=True) + b3[:, None]
      ll = tf.reduce_sum(-0.5 * tf.square((out - y) / 0.1), axis=[1, 2]) - (
          MLP_N * (np.log(0.1) + 0.5 * np.log(2 * np.pi)))
      return prior([w1, b1, w2, b2, w3, b3]) + ll
  else:
    def stacked_conv1(k1):
      # Shared input: one conv with the chains' kernels stacked on out-channels.
      k = tf.reshape(tf.transpose(k1, [1, 2, 3, 0, 4]), [3, 3, 1, c * 16])
      h = tf.nn.conv2d(x, k, 1, "SAME")
      return tf.transpose(tf.reshape(h, [CNN_N, 8, 8, c, 16]), [3, 0, 1, 2, 4])

    def grouped_conv2(h, k2):
      # Per-chain input: one grouped conv, chains folded into channels.
      h = tf.reshape(tf.transpose(h, [1, 2, 3, 0, 4]), [CNN_N, 8, 8, c * 16])
      k = tf.reshape(tf.transpose(k2, [1, 2, 3, 0, 4]), [3, 3, 16, c * 16])
      h = tf.nn.conv2d(h, k, 1, "SAME")
      return tf.transpose(tf.reshape(h, [CNN_N, 8, 8, c, 16]), [3, 0, 1, 2, 4])

    def im2col_conv(h, k):
      # XLA's CPU convolution is slow; patches + one batched matmul is not.
      hp = tf.pad(h, [[0, 0]] * (h.shape.rank - 3) + [[1, 1], [1, 1], [0, 0]])
      cols = tf.stack([hp[..., i:i + 8, j:j + 8, :] for i in range(3)
                       for j in range(3)], axis=-2)
      lead = cols.shape[:-5].as_list()
      cin = k.shape[-2]
      cols = tf.reshape(cols, lead + [CNN_N * 64, 9 * cin])
      y = tf.linalg.matmul(cols, tf.reshape(k, [c, 9 * cin, 16]))
      return tf.reshape(y, [c, CNN_N, 8, 8, 16])

    def target(k1, b1, k2, b2, w3, b3):
      if mode == "xla":
        h = tf.nn.relu(im2col_conv(x, k1) + b1[:, None, None, None])
        h = tf.nn.relu(im2col_conv(h, k2) + b2[:, None, None, None])
      else:
        h = tf.nn.relu(stacked_conv1(k1) + b1[:, None, None, None])
        h = tf.nn.relu(grouped_conv2(h, k2) + b2[:, None, None, None])
      h = tf.reshape(h, [c, CNN_N, 1024])
      out = tf.linalg.matmul(h, w3, transpose_b=True) + b3[:, None]
      ll = tf.reduce_sum(tf.one_hot(y, 10) * tf.nn.log_softmax(out),
                         axis=[1, 2])
      return prior([k1, b1, k2, b2, w3, b3]) + ll
  return target, parts


# ---------------------------------------------------- TFP anchor baseline ----
def make_anchor(name, num_chains, mode=None):
  x, y = mlp_data() if name == "mlp" else cnn_data()
  if name == "mlp":
    net = tfjdl.Sequential(tfjdl.Affine(50, 1), tf.tanh, tfjdl.Affine(50, 50),
                           tf.tanh, tfjdl.Affine(1, 50))
    xa = x[:, None, :]  # anchor batching: data batch left of the chains
  else:
    net = tfjdl.Sequential(
        tfjdl.Conv2D(16, 3, 1), tf.nn.relu, tfjdl.Conv2D(16, 3, 16),
        tf.nn.relu,
        # Its Affine einsum broadcasts weights [C, 10, 1024] against the
        # input's leading dims: put the data batch left of the chains.
        lambda h: tf.transpose(tf.reshape(h, [num_chains, CNN_N, 1024]),
                               [1, 0, 2]),
        tfjdl.Affine(10, 1024),
        lambda h: tf.transpose(h, [1, 0, 2]))
    xa = x
  init = net.sample(num_chains, seed=tfp.random.sanitize_seed(1))

  def target(*parts):
    f = tf.nest.pack_sequence_as(init, parts)
    out = f(xa)
    if name == "mlp":
      ll = tf.reduce_sum(tfd.Normal(out, 0.1).log_prob(y[:, None, :]),
                         axis=[0, 2])
    else:
      # out: [C, N, 10] -> the anchor's Affine einsum keeps chains in front.
      ll = tf.reduce_sum(tfd.Categorical(logits=out).log_prob(y), axis=-1)
    return net.log_prob(f) + ll

  return target, tf.nest.flatten(init)


MAKERS = {"jdlayers": make_jdl, "raw": make_raw, "anchor": make_anchor}


# --------------------------------------------------------------- timing ----
def time_target(target, parts, mode, iters, repeats=3):
  """Seconds per value-and-gradient call (best of `repeats`)."""

  def step(ps):
    with tf.GradientTape() as tape:
      tape.watch(ps)
      lp = tf.reduce_sum(target(*ps))
    grads = tape.gradient(lp, ps, unconnected_gradients="zero")
    # Feed the gradient back so nothing is constant-folded or hoisted.
    return [p + 1e-7 * g for p, g in zip(ps, grads)], lp

  if mode == "eager":
    def run(ps):
      for _ in range(iters):
        ps, _ = step(ps)
      return ps
  else:
    def loop(ps):
      def body(i, ps):
        ps, _ = step(ps)
        return i + 1, ps
      return tf.while_loop(lambda i, _: i < iters, body, (0, ps))[1]
    run = tf.function(loop, jit_compile=(mode == "xla"))

  out = run(list(parts))  # compile / warm up
  _ = [o.numpy() for o in out]
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    out = run(list(parts))
    _ = [o.numpy() for o in out]
    best = min(best, time.perf_counter() - t0)
  return best / iters


def matmul_flops(n=1024, iters=20):
  a = tf.random.normal([n, n])
  f = tf.function(lambda a: tf.while_loop(
      lambda i, m: i < iters, lambda i, m: (i + 1, tf.matmul(m, a) * 1e-3),
      (0, a))[1], jit_compile=True)
  f(a).numpy()
  t0 = time.perf_counter()
  f(a).numpy()
  return 2 * n ** 3 * iters / (time.perf_counter() - t0)


def model_flops(name):
  """FLOPs of one chain's value-and-gradient (3x the forward pass)."""
  if name == "mlp":
    fwd = 2 * MLP_N * (1 * 50 + 50 * 50 + 50 * 1)
  else:
    fwd = 2 * CNN_N * (64 * 9 * 1 * 16 + 64 * 9 * 16 * 16 + 1024 * 10)
  return 3 * fwd


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--models", nargs="+", default=["mlp", "cnn"])
  p.add_argument("--chains", nargs="+", type=int, default=[1, 8, 32, 128])
  p.add_argument("--modes", nargs="+", default=["eager", "function", "xla"])
  p.add_argument("--impls", nargs="+", default=["jdlayers", "raw", "anchor"])
  p.add_argument("--budget", type=float, default=0.5,
                 help="target seconds per timed repeat")
  p.add_argument("--quick", action="store_true",
                 help="chains 1 and 8, short timings (smoke run)")
  p.add_argument("--out", default=os.path.join(os.path.dirname(__file__),
                                               "results"))
  args = p.parse_args(argv)
  if args.quick:
    args.chains, args.budget = [c for c in args.chains if c <= 8], 0.05

  flops = matmul_flops()
  print(f"matmul roofline: {flops / 1e9:.1f} GFLOP/s")
  rows = []
  for name in args.models:
    roof_us = model_flops(name) / flops * 1e6
    for c in args.chains:
      for mode in args.modes:
        for impl in args.impls:
          target, parts = MAKERS[impl](name, c, mode)
          # A rough per-call cost to size the loop to the time budget.
          est = max(model_flops(name) * c / flops * 3, 2e-4)
          iters = int(min(max(args.budget / est, 2), 200 if mode != "eager"
                          else 20))
          try:
            sec = time_target(target, parts, mode, iters)
            us = sec / c * 1e6
            err = None
          except Exception as e:  # noqa: BLE001 - report, keep going
            us, err = float("nan"), f"{type(e).__name__}: {str(e)[:120]}"
          rows.append(dict(model=name, chains=c, mode=mode, impl=impl,
                           us_per_chain_grad=us,
                           chain_grads_per_s=1e6 / us if us == us else 0.0,
                           roofline_us=roof_us, iters=iters, error=err))
          r = rows[-1]
          print(f"{name:4s} C={c:4d} {mode:8s} {impl:9s} "
                f"{us:10.1f} us/chain-grad  ({us / roof_us:5.1f}x roofline)"
                + (f"  FAILED {err}" if err else ""), flush=True)

  print()
  print(_table(rows))
  os.makedirs(args.out, exist_ok=True)
  path = os.path.join(args.out, time.strftime("layers-%Y%m%d-%H%M%S.json"))
  meta = dict(python=platform.python_version(), tf=tf.__version__,
              tfp=tfp.__version__, machine=platform.machine(),
              cpus=os.cpu_count(), matmul_gflops=flops / 1e9)
  with open(path + ".tmp", "w") as fh:
    json.dump(dict(meta=meta, rows=rows), fh, indent=1)
  os.replace(path + ".tmp", path)
  print(f"wrote {path}")
  return rows


def _table(rows):
  """Best mode per (model, chains, impl), and jdlayers' ratios."""
  out = ["model chains | us/chain-grad best mode: jdlayers  raw  anchor | "
         "jdl/raw  anchor/jdl  jdl/roofline"]
  keys = sorted({(r["model"], r["chains"]) for r in rows},
                key=lambda k: (k[0], k[1]))
  for model, c in keys:
    best = {}
    for impl in ("jdlayers", "raw", "anchor"):
      cand = [r for r in rows if r["model"] == model and r["chains"] == c
              and r["impl"] == impl and r["us_per_chain_grad"] ==
              r["us_per_chain_grad"]]
      if cand:
        best[impl] = min(cand, key=lambda r: r["us_per_chain_grad"])
    def fmt(i):
      return (f"{best[i]['us_per_chain_grad']:8.1f} ({best[i]['mode'][:4]})"
              if i in best else "       -       ")
    def ratio(a, b):
      return (f"{best[a]['us_per_chain_grad'] / best[b]['us_per_chain_grad']:6.2f}"
              if a in best and b in best else "    - ")
    roof = next(r["roofline_us"] for r in rows if r["model"] == model)
    jr = (f"{best['jdlayers']['us_per_chain_grad'] / roof:6.2f}"
          if "jdlayers" in best else "    - ")
    out.append(f"{model:5s} {c:6d} | {fmt('jdlayers')} {fmt('raw')} "
               f"{fmt('anchor')} | {ratio('jdlayers', 'raw')} "
               f"{ratio('anchor', 'jdlayers')}      {jr}")
  return "\n".join(out)


if __name__ == "__main__":
  main()
