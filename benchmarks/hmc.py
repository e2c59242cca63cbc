"""Benchmark: HMC and NUTS over a whole Bayesian MLP, jdlayers vs baselines.

Model (issue "jdlayers mcmc"): the MLP 1-50-50-1 (tanh, `Normal(0, 1)` priors
on every weight and bias) with a Normal likelihood (sigma 0.1) on 200 points
of y = sin(3x) + 0.1 noise, x ~ U[-2, 2] (`np.random.default_rng(0)`).
16 chains, 500 warm-up steps + 500 draws, HMC with 20 leapfrog steps and
dual-averaging step size adaptation. Rows (select with `--only a,b`):

  jdl-hmc           `jdl.mcmc.Sampler`, kernel "hmc", adaptation "step_size"
                    (with jdlayers' default step-size jitter U(0.9, 1.1))
  jdl-hmc-nojitter  the same with `step_size_jitter=0` (only with `--only`)
  jdl-hmc-windowed  the same with adaptation "windowed" (+ diagonal mass)
  jdl-nuts          kernel "nuts", "windowed", max tree depth 10, run for
                    `--nuts-steps` warm-up + as many draws (default 200)
  hand-tfp          hand-written TFP: plain `[C, ...]` tensors, a batched
                    matmul MLP, `DualAveragingStepSizeAdaptation(
                    HamiltonianMonteCarlo)` in `tfp.mcmc.sample_chain` under
                    `tf.function(jit_compile=True)`
  anchor            the same model with the TFP anchor layers
                    (`tfp.experimental.joint_distribution_layers`) and the
                    same `tfp.mcmc` kernel; XLA if it compiles, else plain
                    `tf.function` (said in the output); slow (minutes)
  numpyro-hmc       NumPyro `HMC(num_steps=20, trajectory_length=None)`,
                    dual averaging only, 16 vectorized chains on CPU; run in
                    a separate virtualenv (`benchmarks/.numpyro-venv`) that
                    `--numpyro` creates with pip; never a dependency
  numpyro-hmc-mass  the same with a diagonal mass matrix adapted

Every row starts from 0.1 * N(0, 1) draws per weight (jdlayers' default
`init="shrunk"`), uses an initial step size `0.5 * d ** -0.25` and an
acceptance target 0.75. Metric: bulk ESS (`jdl.diagnostics.bulk_ess`) of the
posterior-predictive function values at 5 fixed inputs
(`np.linspace(-2, 2, 5)`), min over the inputs, per second of wall time;
the wall time INCLUDES tracing and XLA compilation. Compile time and the
steady-state ms per step are reported separately (jdl: `Sampler.run(1)`
first; hand-tfp, anchor and numpyro: the first call of the same run built
for 1 + 1 steps, which traces and compiles anew; ms_per_step = (wall -
compile) / steps). Split R-hat: max over the 5 inputs. `--repeat N` runs the
rows N times with the same seed (timing noise), `--seeds 0,1,2` once per
seed (ESS varies with the seed; timings too on a shared machine).

`--investigate` instead times the pieces of one HMC step: value-and-gradient
of `Posterior.log_prob` vs the hand-written target in an XLA `tf.while_loop`,
and the jdlayers `Sampler` loop vs `tfp.mcmc.sample_chain` (each with either
target), plus variants of the Sampler loop.

Usage:
  python benchmarks/hmc.py [--only jdl-hmc,hand-tfp] [--quick] [--numpyro]
      [--chains 16] [--warmup 500] [--draws 500] [--nuts-steps 200]
      [--max-tree-depth 10] [--repeat 1] [--seed 0 | --seeds 0,1,2]
      [--investigate]

`--quick`: 4 chains, 100 + 100 steps, NUTS 50 + 50 with tree depth <= 6,
anchor skipped unless `--only` names it (smoke run, < 2 min). Prints a table
and writes JSON to benchmarks/results/hmc-<time>.json (gitignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
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
import _provenance  # noqa: E402  (benchmarks/ is sys.path[0])
from jdlayers.inference import _kernels  # noqa: E402

tfd = tfp.distributions
tfjdl = tfp.experimental.joint_distribution_layers
# Every row builds its own tf.function: TF's retracing warnings are noise here.
tf.get_logger().setLevel("ERROR")

HERE = os.path.dirname(os.path.abspath(__file__))
NUMPYRO_VENV = os.path.join(HERE, ".numpyro-venv")
NUMPYRO_SCRIPT = os.path.join(HERE, "_numpyro_hmc.py")
N_POINTS, WIDTH, SIGMA = 200, 50, 0.1
LEAPFROGS, TARGET_ACCEPT, INIT_SCALE, MAX_DEPTH = 20, 0.75, 0.1, 10
SHAPES = [(WIDTH, 1), (WIDTH,), (WIDTH, WIDTH), (WIDTH,), (1, WIDTH), (1,)]
NUM_PARAMS = sum(int(np.prod(s)) for s in SHAPES)
ROWS = ("jdl-hmc", "jdl-hmc-windowed", "jdl-nuts", "hand-tfp", "anchor",
        "numpyro-hmc", "numpyro-hmc-mass", "jdl-hmc-nojitter")
OPTIONAL = ("numpyro-hmc", "numpyro-hmc-mass", "jdl-hmc-nojitter")


# ---------------------------------------------------------------- data ----
def make_data():
  rng = np.random.default_rng(0)
  x = rng.uniform(-2, 2, size=(N_POINTS, 1)).astype(np.float32)
  y = (np.sin(3 * x) + 0.1 * rng.normal(size=x.shape)).astype(np.float32)
  probe = np.linspace(-2, 2, 5, dtype=np.float32)[:, None]
  return x, y, probe


def init_step_size():
  """jdlayers' default initial step size, used by every row."""
  return 0.5 * NUM_PARAMS ** -0.25


def shrunk_init(num_chains, seed):
  """0.1 * N(0, 1) per weight, `[C, ...]` (jdlayers' `init="shrunk"`)."""
  rng = np.random.default_rng(seed)
  return [(INIT_SCALE * rng.normal(size=(num_chains,) + s)).astype(np.float32)
          for s in SHAPES]


def mlp_numpy(parts, x):
  """f(x) for draws `[D, C, ...]` of (w1, b1, w2, b2, w3, b3) -> `[D, C, M]`."""
  w1, b1, w2, b2, w3, b3 = [np.asarray(p, np.float64) for p in parts]
  x = np.asarray(x, np.float64)
  h = np.tanh(np.einsum("mi,...oi->...mo", x, w1) + b1[..., None, :])
  h = np.tanh(np.einsum("...mi,...oi->...mo", h, w2) + b2[..., None, :])
  return (np.einsum("...mi,...oi->...mo", h, w3) + b3[..., None, :])[..., 0]


def summarize(f):
  """min bulk ESS and max split R-hat of function values `[D, C, M]`."""
  ess = jdl.diagnostics.bulk_ess(f)
  rhat = jdl.diagnostics.split_rhat(f)
  return float(np.min(ess)), float(np.max(rhat))


# ------------------------------------------------------------ jdlayers ----
def jdl_model():
  net = jdl.Sequential(jdl.Affine(WIDTH, 1, activation="tanh"),
                       jdl.Affine(WIDTH, WIDTH, activation="tanh"),
                       jdl.Affine(1, WIDTH))
  return jdl.models.Model(net, jdl.models.Normal(scale=SIGMA))


def run_jdl(cfg, kernel, adaptation, **kwargs):
  x, y, probe = cfg["data"]
  warmup, draws = cfg["warmup"], cfg["draws"]
  if kernel == "nuts":
    warmup = draws = cfg["nuts_steps"]
  post = jdl_model().posterior(x, y)
  sampler = jdl.mcmc.Sampler(
      post, num_chains=cfg["chains"], num_results=draws,
      num_burnin_steps=warmup, kernel=kernel, adaptation=adaptation,
      seed=cfg["seed"], num_leapfrog_steps=LEAPFROGS,
      max_tree_depth=cfg["max_depth"],
      target_accept_prob=TARGET_ACCEPT, step_size=init_step_size(), **kwargs)
  sampler.run(1, progress=False)     # trace + XLA compile + one step
  first = sampler.wall_time
  sampler.run(progress=False)
  result = sampler.result()
  wall = sampler.wall_time           # as `jdl.mcmc.sample`'s result.seconds
  steps = warmup + draws
  ms = (wall - first) / (steps - 1) * 1e3
  leap = result.trace.num_leapfrog_steps
  f = result.predict(probe).means[..., 0]
  ess, rhat = summarize(f)
  row = dict(wall_s=wall, compile_s=max(first - ms / 1e3, 0.), ms_per_step=ms,
             accept=result.acceptance_rate, step_size=result.step_size,
             mean_leapfrogs=float(leap.mean()), min_ess=ess, rhat_max=rhat,
             divergences=result.num_divergences, warmup=warmup, draws=draws,
             mode="xla")
  if kernel == "nuts":
    depth = np.log2(leap + 1.)
    row.update(mean_tree_depth=float(depth.mean()),
               max_depth=cfg["max_depth"],
               max_depth_hits=int(np.sum(leap >= 2 ** cfg["max_depth"] - 1)),
               trees=int(leap.size),
               warmup_mean_leapfrogs=float(
                   result.warmup_trace.num_leapfrog_steps.mean()))
  return row


# ------------------------------------------------- TFP-kernel baselines ----
def dassa_hmc(target, num_adaptation_steps):
  return tfp.mcmc.DualAveragingStepSizeAdaptation(
      tfp.mcmc.HamiltonianMonteCarlo(target, init_step_size(), LEAPFROGS),
      num_adaptation_steps=num_adaptation_steps,
      target_accept_prob=TARGET_ACCEPT)


def make_chain_fn(target, warmup, draws, jit_compile):
  """`tf.function` running warm-up + draws of HMC+DASSA with sample_chain."""

  def trace_fn(_, kr):
    return (kr.inner_results.log_accept_ratio, kr.new_step_size)

  def chain(init, seed):
    kernel = dassa_hmc(target, int(0.8 * warmup))
    return tfp.mcmc.sample_chain(
        draws, init, kernel=kernel, num_burnin_steps=warmup,
        trace_fn=trace_fn, seed=seed)

  return tf.function(chain, jit_compile=jit_compile, autograph=False)


def finish_tfp_row(states, trace, probe, wall, compile_s, ms, mode):
  lar, step = trace
  f = mlp_numpy([s.numpy() for s in states], probe)
  ess, rhat = summarize(f)
  lar = lar.numpy()
  return dict(wall_s=wall, compile_s=compile_s, ms_per_step=ms,
              accept=float(np.exp(np.minimum(lar, 0.)).mean()),
              step_size=float(step.numpy()[-1]), mean_leapfrogs=LEAPFROGS,
              min_ess=ess, rhat_max=rhat,
              divergences=int(np.sum(~(lar > -1000.))), mode=mode)


def hand_target(x, y):
  """log N(0,1) priors + Normal(f(x), 0.1) log-likelihood, `[C]`."""
  x, y = tf.constant(x), tf.constant(y)
  const = -0.5 * np.log(2 * np.pi)

  def target(w1, b1, w2, b2, w3, b3):
    h = tf.tanh(tf.linalg.matmul(x, w1, transpose_b=True) + b1[:, None])
    h = tf.tanh(tf.linalg.matmul(h, w2, transpose_b=True) + b2[:, None])
    out = tf.linalg.matmul(h, w3, transpose_b=True) + b3[:, None]  # [C, N, 1]
    ll = tf.reduce_sum(-0.5 * tf.square((out - y) / SIGMA), axis=[1, 2]) + (
        N_POINTS * (const - np.log(SIGMA)))
    prior = tf.add_n([tf.reduce_sum(-0.5 * tf.square(w),
                                    axis=list(range(1, w.shape.rank)))
                      for w in (w1, b1, w2, b2, w3, b3)])
    return prior + ll + NUM_PARAMS * const

  return target


def timed_chain(target, init, seed, warmup, draws, jit_compile):
  """Runs `make_chain_fn`; returns states, trace, wall_s, compile_s, ms/step.

  The compile time is that of the same function built for 1 + 1 steps (a
  graph of the same shape, traced and compiled anew), timed after the run.
  """
  run = make_chain_fn(target, warmup, draws, jit_compile)
  t0 = time.perf_counter()
  states, trace = run(init, seed)
  _ = [s.numpy() for s in states]
  wall = time.perf_counter() - t0
  small = make_chain_fn(target, 1, 1, jit_compile)
  t0 = time.perf_counter()
  _ = [s.numpy() for s in small(init, seed)[0]]
  compile_s = min(time.perf_counter() - t0, wall)
  return states, trace, wall, compile_s, (wall - compile_s) / (
      warmup + draws) * 1e3


def run_hand(cfg):
  x, y, probe = cfg["data"]
  init = [tf.constant(p) for p in shrunk_init(cfg["chains"], cfg["seed"] + 1)]
  seed = tf.constant([cfg["seed"], 1], tf.int32)
  states, trace, wall, compile_s, ms = timed_chain(
      hand_target(x, y), init, seed, cfg["warmup"], cfg["draws"], True)
  return finish_tfp_row(states, trace, probe, wall, compile_s, ms, "xla")


def anchor_net():
  return tfjdl.Sequential(tfjdl.Affine(WIDTH, 1), tfjdl.Lambda(tf.tanh),
                          tfjdl.Affine(WIDTH, WIDTH), tfjdl.Lambda(tf.tanh),
                          tfjdl.Affine(1, WIDTH))


def anchor_target(x, y, num_chains, seed=1):
  """The anchor's target over its flat parts, and shrunk initial parts."""
  net = anchor_net()
  # The anchor's best layout (benchmarks/layers.py): data batch left of the
  # chains, x [N, 1, in] -> [N, C, out].
  xa, ya = tf.constant(x[:, None, :]), tf.constant(y[:, None, :])
  # Its own `.sample(C)` as the state (prior draws), shrunk like the others.
  structure = net.sample(num_chains, seed=tf.constant([seed, 3], tf.int32))
  flat = tf.nest.flatten(structure)
  # Its activation layers (`Lambda`, also what a bare callable becomes) carry
  # a zero-size `dummy_value` `[C, 0]`: no gradient, so `tfp.mcmc` raises.
  # They stay constants; the state is the other parts.
  keep = [i for i, p in enumerate(flat) if p.shape.num_elements()]

  def target(*parts):
    full = list(flat)
    for i, p in zip(keep, parts):
      full[i] = p
    f = tf.nest.pack_sequence_as(structure, full)
    ll = tf.reduce_sum(tfd.Normal(f(xa), SIGMA).log_prob(ya), axis=[0, 2])
    return net.log_prob(f) + ll

  return target, [INIT_SCALE * flat[i] for i in keep]


def run_anchor(cfg):
  x, y, probe = cfg["data"]
  warmup, draws, c = cfg["warmup"], cfg["draws"], cfg["chains"]
  target, init = anchor_target(x, y, c, cfg["seed"] + 2)
  order = anchor_order(init)
  seed = tf.constant([cfg["seed"], 2], tf.int32)
  out = None
  for jit in (True, False):
    try:
      states, trace, wall, compile_s, ms = timed_chain(
          target, init, seed, warmup, draws, jit)
    except Exception as e:  # noqa: BLE001 - report, fall back
      print(f"  anchor: jit_compile={jit} failed ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:150]})", flush=True)
      continue
    out = finish_tfp_row([states[i] for i in order], trace, probe, wall,
                         compile_s, ms, "xla" if jit else
                         "tf.function (no XLA)")
    break
  if out is None:
    raise RuntimeError("anchor failed with and without XLA")
  return out


def anchor_order(parts):
  """Indices that put the anchor's flat parts in (w1, b1, w2, b2, w3, b3)."""
  shapes = [tuple(p.shape[1:]) for p in parts]
  if shapes == SHAPES:
    return list(range(len(parts)))
  # tf.nest may order a layer's dict (bias, weights): match by shape in turn.
  order, used = [], set()
  for s in SHAPES:
    i = next(j for j, t in enumerate(shapes) if t == s and j not in used)
    used.add(i)
    order.append(i)
  return order


# ------------------------------------------------------------- NumPyro ----
def numpyro_python():
  """The NumPyro virtualenv's python, created with pip on first use."""
  py = os.path.join(NUMPYRO_VENV, "bin", "python")
  check = [py, "-c", "import numpyro, jax; print(numpyro.__version__, "
           "jax.__version__)"]
  if os.path.exists(py) and subprocess.run(
      check, capture_output=True).returncode == 0:
    return py
  print(f"  numpyro: creating {NUMPYRO_VENV} and pip installing numpyro "
        "jax[cpu] (not a dependency of jdlayers)", flush=True)
  try:
    subprocess.run([sys.executable, "-m", "venv", NUMPYRO_VENV], check=True)
    # Keep the environment out of git whatever the repository's .gitignore.
    with open(os.path.join(NUMPYRO_VENV, ".gitignore"), "w") as fh:
      fh.write("*\n")
    subprocess.run([py, "-m", "pip", "install", "-q", "numpyro", "jax[cpu]"],
                   check=True)
    subprocess.run(check, check=True)
  except (subprocess.CalledProcessError, OSError) as e:
    print(f"  numpyro: could not install numpyro/jax into {NUMPYRO_VENV} "
          f"({e}); skipping the NumPyro rows. Check network access to PyPI "
          "or install them there by hand.", flush=True)
    return None
  return py


def run_numpyro(cfg, mass):
  py = numpyro_python()
  if py is None:
    return None
  x, y, probe = cfg["data"]
  with tempfile.TemporaryDirectory() as tmp:
    data, out = os.path.join(tmp, "data.npz"), os.path.join(tmp, "out.npz")
    np.savez(data, x=x, y=y, probe=probe,
             **{f"init{i}": p for i, p in enumerate(
                 shrunk_init(cfg["chains"], cfg["seed"] + 3))},
             settings=np.array([cfg["chains"], cfg["warmup"], cfg["draws"],
                                LEAPFROGS, int(mass), cfg["seed"]]),
             floats=np.array([SIGMA, TARGET_ACCEPT, init_step_size()]))
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run([py, NUMPYRO_SCRIPT, data, out], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
      print(f"  numpyro failed:\n{proc.stderr[-2000:]}", flush=True)
      return None
    with np.load(out, allow_pickle=False) as r:
      f = r["f"]  # [D, C, M]
      stats = {k: float(r[k]) for k in ("wall_s", "compile_s", "accept",
                                        "step_size", "mean_leapfrogs",
                                        "divergences")}
      versions = str(r["versions"])
  ess, rhat = summarize(f)
  steps = cfg["warmup"] + cfg["draws"]
  return dict(wall_s=stats["wall_s"], compile_s=stats["compile_s"],
              ms_per_step=(stats["wall_s"] - stats["compile_s"]) / steps * 1e3,
              accept=stats["accept"], step_size=stats["step_size"],
              mean_leapfrogs=stats["mean_leapfrogs"], min_ess=ess,
              rhat_max=rhat, divergences=int(stats["divergences"]),
              mode=f"jax cpu ({versions})")


RUNNERS = {
    "jdl-hmc": lambda cfg: run_jdl(cfg, "hmc", "step_size"),
    "jdl-hmc-nojitter": lambda cfg: run_jdl(cfg, "hmc", "step_size",
                                            step_size_jitter=0.),
    "jdl-hmc-windowed": lambda cfg: run_jdl(cfg, "hmc", "windowed"),
    "jdl-nuts": lambda cfg: run_jdl(cfg, "nuts", "windowed"),
    "hand-tfp": run_hand,
    "anchor": run_anchor,
    "numpyro-hmc": lambda cfg: run_numpyro(cfg, mass=False),
    "numpyro-hmc-mass": lambda cfg: run_numpyro(cfg, mass=True),
}


# ------------------------------------------------------------ the table ----
COLS = ("name", "wall_s", "compile_s", "ms_per_step", "accept", "step_size",
        "mean_leapfrogs", "min_ess", "ess_per_s", "rhat_max", "vs_hand",
        "vs_anchor")


def add_ratios(rows):
  for r in rows:
    same = {q["name"]: q for q in rows if q["rep"] == r["rep"]}
    for col, ref in (("vs_hand", "hand-tfp"), ("vs_anchor", "anchor")):
      q = same.get(ref)
      r[col] = (r["ess_per_s"] / q["ess_per_s"]
                if q and q["ess_per_s"] > 0 else float("nan"))


def format_table(rows):
  head = (f"{'name':18s} {'rep':>3s} {'wall_s':>8s} {'compile_s':>9s} "
          f"{'ms/step':>8s} {'accept':>6s} {'step':>7s} {'leapfrogs':>10s} "
          f"{'min_ess':>8s} {'ess/s':>7s} {'rhat':>6s} {'vs_hand':>7s} "
          f"{'vs_anchor':>9s}")
  out = [head, "-" * len(head)]
  for r in rows:
    leap = (f"{r['mean_leapfrogs']:.0f}/d{r['mean_tree_depth']:.1f}"
            if "mean_tree_depth" in r else f"{r['mean_leapfrogs']:.0f}")
    out.append(
        f"{r['name']:18s} {r['rep']:3d} {r['wall_s']:8.1f} "
        f"{r['compile_s']:9.1f} {r['ms_per_step']:8.1f} {r['accept']:6.2f} "
        f"{r['step_size']:7.4f} {leap:>10s} {r['min_ess']:8.1f} "
        f"{r['ess_per_s']:7.2f} {r['rhat_max']:6.3f} {r['vs_hand']:7.2f} "
        f"{r['vs_anchor']:9.2f}")
  notes = []
  for r in rows:
    extra = [f"mode {r['mode']}", f"{r['warmup']}+{r['draws']} steps",
             f"divergences {r['divergences']}"]
    if "max_depth_hits" in r:
      extra.append(f"trees at max depth {r['max_depth']}: "
                   f"{r['max_depth_hits']}/"
                   f"{r['trees']} (draws), warm-up mean leapfrogs "
                   f"{r['warmup_mean_leapfrogs']:.0f}")
    notes.append(f"  {r['name']} #{r['rep']} (seed {r['seed']}): "
                 + ", ".join(extra))
  out += ["", "wall_s includes tracing and XLA compilation; ess/s = min bulk "
          "ESS over the 5 probe inputs / wall_s."] + notes
  names = list(dict.fromkeys(r["name"] for r in rows))
  if any(sum(r["name"] == n for r in rows) > 1 for n in names):
    out += ["", "over repetitions: mean (min-max); vs_hand: geometric mean "
            "of the per-run ratios"]
    for n in names:
      rs = [r for r in rows if r["name"] == n]
      def agg(k, fmt):
        v = np.array([r[k] for r in rs], float)
        return (f"{k} {v.mean():{fmt}} ({v.min():{fmt}}-{v.max():{fmt}})")
      ratios = np.array([r["vs_hand"] for r in rs], float)
      ratios = ratios[np.isfinite(ratios) & (ratios > 0)]
      gm = np.exp(np.log(ratios).mean()) if ratios.size else float("nan")
      out.append(f"  {n:18s} n={len(rs)}  {agg('wall_s', '.1f')}  "
                 f"{agg('ms_per_step', '.1f')}  {agg('min_ess', '.0f')}  "
                 f"{agg('ess_per_s', '.2f')}  vs_hand {gm:.2f}")
  return "\n".join(out)


# ------------------------------------------------------- investigation ----
def time_grad_loop(target, parts, iters, repeats=3):
  """ms per value-and-gradient call inside an XLA `tf.while_loop`."""

  def loop(ps):
    def body(i, ps):
      lp, grads = tfp.math.value_and_gradient(
          lambda *a: tf.reduce_sum(target(*a)), ps)
      # Feed the gradient back so nothing is hoisted out of the loop.
      return i + 1, [p + 1e-7 * g for p, g in zip(ps, grads)]
    return tf.while_loop(lambda i, _: i < iters, body, (0, list(ps)))[1]

  fn = tf.function(loop, jit_compile=True, autograph=False)
  _ = [o.numpy() for o in fn(parts)]
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    _ = [o.numpy() for o in fn(parts)]
    best = min(best, time.perf_counter() - t0)
  return best / iters * 1e3


class _HandPosterior:
  """Duck-typed `Posterior` over the hand-written target, for `Sampler`."""

  def __init__(self, target, init):
    self.log_prob, self._init = target, init
    self.bijectors = [tfp.bijectors.Identity() for _ in init]
    self.part_names = [f"part{i}" for i in range(len(init))]

  def init(self, num_chains, seed=None, method="shrunk", scale=0.1):
    del num_chains, seed, method, scale
    return list(self._init)


def sampler_ms_per_step(posterior, init, steps, chunk_cls=None, chunk=None,
                        **kwargs):
  """`jdl.mcmc.Sampler` (HMC + DASSA): (first call's seconds: compile + 1
  step, steady-state ms per step)."""
  cls = chunk_cls or jdl.mcmc.Sampler
  s = cls(posterior, num_chains=int(init[0].shape[0]), num_results=steps,
          num_burnin_steps=2 * steps, kernel="hmc", adaptation="step_size",
          init=init, seed=0, num_leapfrog_steps=LEAPFROGS,
          target_accept_prob=TARGET_ACCEPT, step_size=init_step_size(),
          chunk_size=chunk or steps, **kwargs)
  s.run(1, progress=False)
  first = s.wall_time
  best = float("inf")
  for _ in range(2):             # best of two chunks of `steps` (warm-up)
    t0 = s.wall_time
    s.run(steps, progress=False)
    best = min(best, s.wall_time - t0)
  return first, best / steps * 1e3


def sample_chain_ms_per_step(target, init, steps, trace=True):
  """The same kernel in `tfp.mcmc.sample_chain`: (compile seconds, steady-state
  ms per step)."""
  def chain(init, seed):
    kernel = dassa_hmc(target, steps)
    trace_fn = ((lambda _, kr: (kr.inner_results.log_accept_ratio,
                                kr.new_step_size)) if trace else None)
    return tfp.mcmc.sample_chain(steps, init, kernel=kernel,
                                 num_burnin_steps=0, trace_fn=trace_fn,
                                 seed=seed)
  fn = tf.function(chain, jit_compile=True, autograph=False)
  seed = tf.constant([0, 1], tf.int32)
  t0 = time.perf_counter()
  out = fn(init, seed)
  tf.nest.map_structure(lambda t: t.numpy(), out)
  first = time.perf_counter() - t0
  best = float("inf")
  for _ in range(2):
    t0 = time.perf_counter()
    out = fn(init, seed)
    tf.nest.map_structure(lambda t: t.numpy(), out)
    best = min(best, time.perf_counter() - t0)
  return first - best, best / steps * 1e3


class _LeanSampler(jdl.mcmc.Sampler):
  """Sampler variants for the investigation (override `_chunk`)."""

  variant = "no-trace"

  def _chunk(self, state, kernel_results, step0, n):
    size = self.chunk_size
    state_tas = [tf.TensorArray(p.dtype, size=size, element_shape=p.shape)
                 for p in state]
    tr0 = _kernels.trace(kernel_results, self._leapfrogs)
    trace_tas = [tf.TensorArray(t.dtype, size=size, element_shape=t.shape)
                 for t in tr0]
    variant = self.variant

    def body(i, state, kr, state_tas, trace_tas):
      if variant == "no-fold-in":
        seed = tf.stack([self._run_seed[0], step0 + i])
      else:
        seed = tf.random.experimental.stateless_fold_in(self._run_seed,
                                                        step0 + i)
      state, kr = self._kernel.one_step(state, kr, seed=seed)
      state = list(state)
      state_tas = [ta.write(i, p) for ta, p in zip(state_tas, state)]
      if variant != "no-trace":
        tr = _kernels.trace(kr, self._leapfrogs)
        trace_tas = [ta.write(i, t) for ta, t in zip(trace_tas, tr)]
      return i + 1, state, kr, state_tas, trace_tas

    _, state, kr, state_tas, trace_tas = tf.while_loop(
        lambda i, *_: i < n, body,
        (tf.constant(0), list(state), kernel_results, state_tas, trace_tas))
    if variant == "no-trace":
      trace_out = _kernels.Trace(*[tf.zeros([size] + t.shape.as_list(), t.dtype)
                                   for t in tr0])
    else:
      trace_out = _kernels.Trace(*[ta.stack() for ta in trace_tas])
    return (state, kr, [ta.stack() for ta in state_tas], trace_out)


def investigate(cfg):
  x, y, _ = cfg["data"]
  c = cfg["chains"]
  steps = cfg["investigate_steps"]
  iters = cfg["grad_iters"]
  post = jdl_model().posterior(x, y)
  init = post.init(c, seed=0)
  hand = hand_target(x, y)
  np.testing.assert_allclose(post.log_prob(*init).numpy(),
                             hand(*init).numpy(), rtol=1e-4)
  res = {}

  def show(key, ms):
    """ms per call, or (compile seconds, ms per step)."""
    res[key] = ms
    if isinstance(ms, tuple):
      print(f"  {key:52s} {ms[1]:8.2f} ms/step   compile {ms[0]:5.1f} s",
            flush=True)
    else:
      print(f"  {key:52s} {ms:8.3f} ms", flush=True)

  print(f"value_and_gradient, {c} chains, XLA while_loop of {iters}:")
  for rep in range(cfg["repeat"]):
    show(f"grad jdl Posterior.log_prob #{rep + 1}",
         time_grad_loop(post.log_prob, init, iters))
    show(f"grad hand-written target #{rep + 1}",
         time_grad_loop(hand, init, iters))
  atarget, ainit = anchor_target(x, y, c)
  show("grad anchor target (200 iters)", time_grad_loop(atarget, ainit, 200))

  print(f"HMC({LEAPFROGS}) + DASSA step, steady state over {steps} steps:")
  hand_post = _HandPosterior(hand, init)
  for rep in range(cfg["repeat"]):
    show(f"Sampler      + jdl target #{rep + 1}",
         sampler_ms_per_step(post, init, steps))
    show(f"Sampler      + hand target #{rep + 1}",
         sampler_ms_per_step(hand_post, init, steps))
    show(f"sample_chain + jdl target #{rep + 1}",
         sample_chain_ms_per_step(post.log_prob, init, steps))
    show(f"sample_chain + hand target #{rep + 1}",
         sample_chain_ms_per_step(hand, init, steps))
  for variant in ("no-trace", "no-fold-in"):
    cls = type(f"Sampler_{variant}", (_LeanSampler,), dict(variant=variant))
    show(f"Sampler[{variant}] + jdl target",
         sampler_ms_per_step(post, init, steps, chunk_cls=cls))
  show("Sampler(step_size_jitter=0) + jdl target",
       sampler_ms_per_step(post, init, steps, step_size_jitter=0.))
  show("sample_chain(trace_fn=None) + jdl target",
       sample_chain_ms_per_step(post.log_prob, init, steps, trace=False))
  show("Sampler chunk_size=steps/10 + jdl target",
       sampler_ms_per_step(post, init, steps, chunk=max(1, steps // 10)))
  return res


# ----------------------------------------------------------------- main ----
def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--only", default=None,
                 help=f"comma-separated rows, of {', '.join(ROWS)}")
  p.add_argument("--quick", action="store_true",
                 help="4 chains, 100 + 100 steps, no anchor (smoke run)")
  p.add_argument("--numpyro", action="store_true",
                 help="add the NumPyro rows (creates its virtualenv)")
  p.add_argument("--chains", type=int, default=None)
  p.add_argument("--warmup", type=int, default=None)
  p.add_argument("--draws", type=int, default=None)
  p.add_argument("--nuts-steps", type=int, default=None,
                 help="NUTS warm-up steps and draws (default 200 each)")
  p.add_argument("--max-tree-depth", type=int, default=None,
                 help=f"NUTS maximum tree depth (default {MAX_DEPTH})")
  p.add_argument("--repeat", type=int, default=1,
                 help="run the selected rows this many times, interleaved")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--seeds", default=None,
                 help="comma-separated seeds: run the rows once per seed")
  p.add_argument("--investigate", action="store_true",
                 help="time the pieces of an HMC step instead")
  p.add_argument("--out", default=os.path.join(HERE, "results"))
  args = p.parse_args(argv)

  quick = args.quick
  cfg = dict(chains=args.chains or (4 if quick else 16),
             warmup=args.warmup or (100 if quick else 500),
             draws=args.draws or (100 if quick else 500),
             nuts_steps=args.nuts_steps or (50 if quick else 200),
             max_depth=args.max_tree_depth or (6 if quick else MAX_DEPTH),
             seed=args.seed, data=make_data(), repeat=args.repeat,
             investigate_steps=50 if quick else 200,
             grad_iters=200 if quick else 2000)
  meta = dict(python=platform.python_version(), tf=tf.__version__,
              tfp=tfp.__version__, machine=platform.machine(),
              cpus=os.cpu_count(), argv=sys.argv[1:],
              loadavg_at_start=os.getloadavg(),
              **_provenance.source_info(jdl),
              **{k: v for k, v in cfg.items() if k != "data"})
  print(f"MLP 1-{WIDTH}-{WIDTH}-1 ({NUM_PARAMS} params), {N_POINTS} points, "
        f"{cfg['chains']} chains, {cfg['warmup']} warm-up + {cfg['draws']} "
        f"draws (NUTS {cfg['nuts_steps']} + {cfg['nuts_steps']}, depth <= "
        f"{cfg['max_depth']}); load average {os.getloadavg()[0]:.1f}, "
        f"{os.cpu_count()} CPUs", flush=True)
  print(f"jdlayers from {meta['jdlayers']} (git {meta.get('git_head', '?')[:8]}"
        f"{', uncommitted changes' if meta.get('jdlayers_dirty') else ''})",
        flush=True)
  os.makedirs(args.out, exist_ok=True)
  stamp = time.strftime("%Y%m%d-%H%M%S")

  if args.investigate:
    res = investigate(cfg)
    _write(os.path.join(args.out, f"hmc-investigate-{stamp}.json"),
           dict(meta=meta, investigate=res))
    return res

  if args.only:
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    bad = [n for n in names if n not in ROWS]
    if bad:
      p.error(f"unknown rows {bad}; choose from {', '.join(ROWS)}")
  else:
    names = [n for n in ROWS if n not in OPTIONAL]
    if args.numpyro:
      names += ["numpyro-hmc", "numpyro-hmc-mass"]
    if quick:
      names.remove("anchor")
  _warm_up_xla()
  rows = []
  seeds = ([int(v) for v in args.seeds.split(",")] if args.seeds
           else [args.seed])
  runs = [(sd, k) for sd in seeds for k in range(args.repeat)]
  for rep, (sd, _) in enumerate(runs, 1):
    for name in names:
      print(f"running {name} #{rep} (seed {sd}) ...", flush=True)
      t0 = time.perf_counter()
      try:
        row = RUNNERS[name](dict(cfg, seed=sd))
      except Exception as e:  # noqa: BLE001 - report, keep going
        print(f"  {name} FAILED: {type(e).__name__}: {e}", flush=True)
        continue
      if row is None:
        continue
      row.setdefault("warmup", cfg["warmup"])
      row.setdefault("draws", cfg["draws"])
      row.update(name=name, rep=rep, seed=sd,
                 ess_per_s=row["min_ess"] / row["wall_s"],
                 total_s=time.perf_counter() - t0)
      rows.append(row)
      print(f"  {name}: wall {row['wall_s']:.1f} s (compile "
            f"{row['compile_s']:.1f} s, {row['ms_per_step']:.1f} ms/step), "
            f"accept {row['accept']:.2f}, min ESS {row['min_ess']:.1f}, "
            f"ESS/s {row['ess_per_s']:.2f}, R-hat {row['rhat_max']:.3f}",
            flush=True)
  add_ratios(rows)
  print()
  print(format_table(rows))
  path = os.path.join(args.out, f"hmc-{stamp}.json")
  _write(path, dict(meta=meta, rows=rows))
  print(f"wrote {path}")
  return rows


def _warm_up_xla():
  """Compiles one small XLA loop so that the process's one-time XLA/LLVM
  start-up cost is not charged to whichever row runs first."""
  a = tf.random.stateless_normal([16, 50, 50], [0, 0])
  f = tf.function(lambda a: tf.while_loop(
      lambda i, m: i < 3, lambda i, m: (i + 1, tf.tanh(m @ a)), (0, a))[1],
                  jit_compile=True)
  f(a).numpy()


def _write(path, obj):
  with open(path + ".tmp", "w") as fh:
    json.dump(obj, fh, indent=1, default=float)
  os.replace(path + ".tmp", path)


if __name__ == "__main__":
  main()
