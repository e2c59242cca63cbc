"""Benchmark of the sequence and normalisation layers: value and gradient of
`log p(layer) + log p(y | layer(x))` per chain, jdlayers vs hand-written TF.

One row per layer family, each a single layer under a `Normal(out, 1)`
likelihood of fixed random targets of the output's shape (the same
likelihood code for both implementations), so the layer's own cost and its
prior's dominate:

  embedding  Embedding(32, 1000) on ids [64, 16]        -> [C, 64, 16, 32]
  lstm       LSTM(32, 16) on x [64, 16, 16], last state  -> [C, 64, 32]
  gru        GRU(32, 16), reset_after=True, same input  -> [C, 64, 32]
  layernorm  LayerNorm(64) on x [1024, 64]              -> [C, 1024, 64]
  frn        FilterResponseNorm(16) on x [64, 8, 8, 16] -> [C, 64, 8, 8, 16]
  mha        MultiHeadAttention(4, 16, 64), self-attention on x [64, 16, 64]
                                                         -> [C, 64, 16, 64]

The hand-written baseline (`benchmarks/_seq_raw.py`) computes the same
model in plain batched TensorFlow (batched matmuls/einsums, a `tf.foldl` for
the recurrences, the shared input normalised once), with the prior written
out by hand. Every run first checks that its value and its layer output
equal jdlayers' `log_prob` and layer output on the same parameters
(relative error < 1e-4 in float32), and refuses to time a row that
disagrees.

Modes: `tf.function` and XLA (`jit_compile=True`); each times a
`tf.while_loop` of K gradient evaluations inside one function, as
`benchmarks/layers.py` does (HMC calls them this way). jdlayers and the
baseline are timed alternately, round by round (best of `--repeats`), so a
load change on a shared machine hits both; the load average is printed
with every row and saved. Target: jdlayers at most 1.15x the baseline.

Usage: python benchmarks/layers_seq.py [--families embedding lstm ...]
       [--chains 1 8 32] [--modes function xla] [--repeats 5] [--quick]
Prints a table and writes JSON to benchmarks/results/layers-seq-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import layers as base  # noqa: E402  (quiet start, roofline helper)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

import _seq_raw as raw  # noqa: E402
import jdlayers as jdl  # noqa: E402

N, T, VOCAB = 64, 16, 1000


# ------------------------------------------------------------ families ----
def _family(name):
  """`(jdl layer, inputs, raw forward, raw prior {param: (loc, scale)})`."""
  rng = np.random.default_rng(0)

  def normal(*shape):
    return tf.constant(rng.normal(size=shape).astype(np.float32))

  if name == "embedding":
    ids = tf.constant(rng.integers(0, VOCAB, size=(N, T)).astype(np.int32))
    return jdl.Embedding(32, VOCAB), ids, raw.embedding, {}
  if name == "lstm":
    # unit_forget_bias=True (the default): the forget gates' bias prior is
    # centred at 1 (gates i, f, c, o).
    forget = np.repeat(np.float32([0., 1., 0., 0.]), 32)
    return (jdl.LSTM(32, 16), normal(N, T, 16), raw.lstm,
            {"bias": (forget, 1.)})
  if name == "gru":
    return jdl.GRU(32, 16, reset_after=True), normal(N, T, 16), raw.gru, {}
  # The norms' default prior centres the scale at 1: gamma ~ Normal(1, 1).
  if name == "layernorm":
    return (jdl.LayerNorm(64), normal(N * T, 64), raw.layer_norm,
            {"gamma": (1., 1.)})
  if name == "frn":
    return (jdl.FilterResponseNorm(16), normal(N, 8, 8, 16),
            raw.filter_response_norm, {"gamma": (1., 1.)})
  if name == "mha":
    # The default prior: LeCun normal kernels (every fan-in is 64 here),
    # Normal(0, 1) biases.
    lecun = (0., 1. / np.sqrt(64.))
    return (jdl.MultiHeadAttention(4, 16, 64), normal(N, T, 64),
            raw.multi_head_attention,
            {f"{p}_kernel": lecun for p in ("query", "key", "value",
                                             "attention_output")})
  raise ValueError(f"unknown family {name!r}; choose from {FAMILIES}")


FAMILIES = ("embedding", "lstm", "gru", "layernorm", "frn", "mha")


def _prior_of(names, spec):
  """Per-parameter `(loc, scale)` of the hand-written prior: `spec`'s, else
  `Normal(0, 1)` (the check in `make` holds this to the layer's prior)."""
  return {n: spec.get(n, (0., 1.)) for n in names}


def make(name, chains, mode):
  """The jdlayers and hand-written targets over the same flat parameters
  (the hand-written formulation may depend on the `mode`).

  Returns:
    `(jdl_target, raw_target, parts, max relative difference)`.
  """
  layer, x, forward, spec = _family(name)
  init = layer.sample(chains, seed=1)
  names = list(init.params)
  parts = tf.nest.flatten(init)
  out_shape = init(x).shape[1:]
  y = tf.constant(np.random.default_rng(2).normal(
      size=out_shape).astype(np.float32))
  axes = list(range(1, 1 + len(out_shape)))
  prior = _prior_of(names, spec)
  const = -0.5 * np.log(2 * np.pi) * np.prod(out_shape)

  def log_lik(out):
    # The same likelihood code for both: the rows time the layer and its
    # prior. (tfd.Normal's log_prob here cost up to 1.7x the FRN row's
    # hand-written total under XLA; benchmarks/hmc.py times whole models.)
    return tf.reduce_sum(-0.5 * tf.square(out - y), axis=axes) + const

  def jdl_target(*ps):
    f = tf.nest.pack_sequence_as(init, ps)
    return layer.log_prob(f) + log_lik(f(x))

  def raw_target(*ps):
    p = dict(zip(names, ps))
    lp = tf.add_n([raw.normal_lp(p[n], *prior[n]) for n in names])
    return lp + log_lik(forward(p, x, mode))

  # The summed densities are large: compare the outputs as well, so a
  # small error in the layer cannot hide below the sums' rounding.
  a, b = jdl_target(*parts).numpy(), raw_target(*parts).numpy()
  rel = float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1.)))
  fa = init(x).numpy()
  fb = forward(dict(zip(names, parts)), x, mode).numpy()
  rel = max(rel, float(np.max(np.abs(fa - fb)) / max(np.max(np.abs(fa)), 1.)))
  return jdl_target, raw_target, parts, rel


# --------------------------------------------------------------- timing ----
def compiled_loop(target, mode):
  """`run(parts, k)`: `k` value-and-gradient evaluations in one
  `tf.while_loop` (`k` a tensor: one compilation for every loop length)."""

  def step(ps):
    with tf.GradientTape() as tape:
      tape.watch(ps)
      lp = tf.reduce_sum(target(*ps))
    grads = tape.gradient(lp, ps, unconnected_gradients="zero")
    # Feed the gradient back so nothing is constant-folded or hoisted.
    return [p + 1e-7 * g for p, g in zip(ps, grads)]

  def loop(ps, k):
    return tf.while_loop(lambda i, _: i < k,
                         lambda i, ps: (i + 1, step(ps)), (0, ps))[1]
  return tf.function(loop, jit_compile=(mode == "xla"))


def _seconds(run, parts, k):
  """`(wall, cpu)` seconds of one call; CPU time is this process's, all
  threads: on a loaded machine it is the steadier measure of work."""
  t0, c0 = time.perf_counter(), time.process_time()
  _ = [o.numpy() for o in run(list(parts), tf.constant(k))]
  return time.perf_counter() - t0, time.process_time() - c0


def time_pair(runs, parts, repeats, budget):
  """Seconds per call of each compiled loop (best of `repeats`, wall and
  CPU), timed alternately; the loop is sized so a call lasts `budget` s.

  Returns:
    `({impl: (wall, cpu) per call}, {impl: compile seconds}, iterations)`.
  """
  compile_s = {k: _seconds(run, parts, 1)[0] for k, run in runs.items()}
  per = max(_seconds(run, parts, 3)[0] / 3 for run in runs.values())
  iters = int(min(max(budget / per, 2), 2000))
  best = {k: [float("inf")] * 2 for k in runs}
  for _ in range(repeats):
    for k, run in runs.items():
      sec = _seconds(run, parts, iters)
      best[k] = [min(b, s / iters) for b, s in zip(best[k], sec)]
  return best, compile_s, iters


def load() -> float:
  """The 1-minute load average (the machine is shared: report it)."""
  return os.getloadavg()[0]


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--families", nargs="+", default=list(FAMILIES),
                 choices=FAMILIES)
  p.add_argument("--chains", nargs="+", type=int, default=[1, 8, 32])
  p.add_argument("--modes", nargs="+", default=["function", "xla"],
                 choices=["function", "xla"])
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--budget", type=float, default=0.4,
                 help="target seconds per timed call")
  p.add_argument("--threads", type=int, default=0,
                 help="TF intra- and inter-op threads (0: TF's default; 1 "
                 "gives steadier numbers on a loaded machine)")
  p.add_argument("--quick", action="store_true",
                 help="chains 1 and 8, short timings (smoke run)")
  p.add_argument("--out", default=os.path.join(os.path.dirname(
      os.path.abspath(__file__)), "results"))
  args = p.parse_args(argv)
  if args.quick:
    args.chains = [c for c in args.chains if c <= 8] or [1]
    args.budget, args.repeats = 0.05, 2

  if args.threads:
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
  rows = []
  for name in args.families:
    for c in args.chains:
      for mode in args.modes:
        jdl_target, raw_target, parts, rel = make(name, c, mode)
        if not rel < 1e-4:
          raise AssertionError(
              f"{name} C={c} {mode}: the hand-written log-density differs "
              f"from jdlayers' by {rel:.2e} (relative): not the same model.")
        runs = {"jdlayers": compiled_loop(jdl_target, mode),
                "raw": compiled_loop(raw_target, mode)}
        load0 = load()
        sec, comp, iters = time_pair(runs, parts, args.repeats, args.budget)
        row = dict(family=name, chains=c, mode=mode, iters=iters,
                   check_rel_err=rel, load_before=load0, load_after=load(),
                   **{f"{k}_us_per_chain_grad": v[0] / c * 1e6
                      for k, v in sec.items()},
                   **{f"{k}_cpu_us_per_chain_grad": v[1] / c * 1e6
                      for k, v in sec.items()},
                   **{f"{k}_compile_s": v for k, v in comp.items()})
        row["ratio"] = sec["jdlayers"][0] / sec["raw"][0]
        row["cpu_ratio"] = sec["jdlayers"][1] / sec["raw"][1]
        rows.append(row)
        print(f"{name:9s} C={c:3d} {mode:8s} jdlayers "
              f"{row['jdlayers_us_per_chain_grad']:9.1f}  raw "
              f"{row['raw_us_per_chain_grad']:9.1f} us/chain-grad  "
              f"ratio {row['ratio']:5.2f} (CPU time {row['cpu_ratio']:5.2f})"
              f"  check {rel:.1e}; load {load0:.1f}->"
              f"{row['load_after']:.1f}", flush=True)
  print()
  print(table(rows))
  os.makedirs(args.out, exist_ok=True)
  path = os.path.join(args.out,
                      time.strftime("layers-seq-%Y%m%d-%H%M%S.json"))
  meta = dict(python=platform.python_version(), tf=tf.__version__,
              tfp=tfp.__version__, machine=platform.machine(),
              cpus=os.cpu_count(), threads=args.threads,
              onednn=os.environ.get(
                  "TF_ENABLE_ONEDNN_OPTS", "default"))
  with open(path + ".tmp", "w") as fh:
    json.dump(dict(meta=meta, rows=rows), fh, indent=1)
  os.replace(path + ".tmp", path)  # never a half-written file
  print(f"wrote {path}")
  return rows


def table(rows):
  """Per family and chains: jdlayers / hand-written time per mode (wall,
  and CPU time in parentheses), and the best mode's times."""
  out = ["family    chains |  jdl/raw function    jdl/raw xla    | best wall "
         "us/chain-grad jdlayers    raw | ratio  load"]
  for name in dict.fromkeys(r["family"] for r in rows):
    for c in dict.fromkeys(r["chains"] for r in rows if r["family"] == name):
      sel = {r["mode"]: r for r in rows
             if r["family"] == name and r["chains"] == c}
      ratio = {m: (f"{sel[m]['ratio']:5.2f} ({sel[m]['cpu_ratio']:4.2f})"
                   if m in sel else "      -     ")
               for m in ("function", "xla")}
      bj = min(r["jdlayers_us_per_chain_grad"] for r in sel.values())
      br = min(r["raw_us_per_chain_grad"] for r in sel.values())
      ld = max(r["load_after"] for r in sel.values())
      out.append(f"{name:9s} {c:6d} | {ratio['function']:>16s} "
                 f"{ratio['xla']:>14s} | {bj:27.1f} {br:8.1f} | "
                 f"{bj / br:5.2f} {ld:5.1f}")
  return "\n".join(out)


if __name__ == "__main__":
  main()
