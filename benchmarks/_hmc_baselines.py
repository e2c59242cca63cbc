"""The baselines of `benchmarks/hmc.py` that are not jdlayers' Sampler.

* hand-tfp: hand-written TFP: plain `[C, ...]` tensors, the model's batched
  target (`_hmc_models`), `DualAveragingStepSizeAdaptation(
  HamiltonianMonteCarlo)` in `tfp.mcmc.sample_chain` under
  `tf.function(jit_compile=True)`.
* anchor (MLP only): the same kernel over the TFP anchor layers
  (`tfp.experimental.joint_distribution_layers`); XLA if it compiles.
* numpyro-hmc(-mass) (MLP only): NumPyro HMC in its own virtualenv.

Each runner takes the run's `cfg` (model, chains, warmup, draws, seed) and
returns a row dict (wall_s, compile_s, ms_per_step, min_ess, rhat_max, ...).

Example:
  row = run_hand(dict(model=_hmc_models.mlp(), chains=16, warmup=100,
                      draws=100, seed=0))
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from _hmc_models import (LEAPFROGS, MLP_SIGMA as SIGMA, MLP_WIDTH as WIDTH,
                         INIT_SCALE, TARGET_ACCEPT, init_step_size,
                         shrunk_init, summarize)

tfd = tfp.distributions
tfjdl = tfp.experimental.joint_distribution_layers

HERE = os.path.dirname(os.path.abspath(__file__))
NUMPYRO_VENV = os.path.join(HERE, ".numpyro-venv")
NUMPYRO_SCRIPT = os.path.join(HERE, "_numpyro_hmc.py")
MLP_SHAPES = [(WIDTH, 1), (WIDTH,), (WIDTH, WIDTH), (WIDTH,), (1, WIDTH),
              (1,)]


def dassa_hmc(target, num_adaptation_steps, step_size):
  return tfp.mcmc.DualAveragingStepSizeAdaptation(
      tfp.mcmc.HamiltonianMonteCarlo(target, step_size, LEAPFROGS),
      num_adaptation_steps=num_adaptation_steps,
      target_accept_prob=TARGET_ACCEPT)


def make_chain_fn(target, warmup, draws, jit_compile, step_size):
  """`tf.function` running warm-up + draws of HMC+DASSA with sample_chain."""

  def trace_fn(_, kr):
    return (kr.inner_results.log_accept_ratio, kr.new_step_size)

  def chain(init, seed):
    kernel = dassa_hmc(target, int(0.8 * warmup), step_size)
    return tfp.mcmc.sample_chain(
        draws, init, kernel=kernel, num_burnin_steps=warmup,
        trace_fn=trace_fn, seed=seed)

  return tf.function(chain, jit_compile=jit_compile, autograph=False)


def finish_tfp_row(model, states, trace, wall, compile_s, ms, mode):
  lar, step = trace
  f = model.function([s.numpy() for s in states])
  ess, rhat = summarize(f)
  lar = lar.numpy()
  return dict(wall_s=wall, compile_s=compile_s, ms_per_step=ms,
              accept=float(np.exp(np.minimum(lar, 0.)).mean()),
              step_size=float(step.numpy()[-1]), mean_leapfrogs=LEAPFROGS,
              min_ess=ess, rhat_max=rhat,
              divergences=int(np.sum(~(lar > -1000.))), mode=mode)


def timed_chain(target, init, seed, warmup, draws, jit_compile, step_size):
  """Runs `make_chain_fn`; returns states, trace, wall_s, compile_s, ms/step.

  The compile time is that of the same function built for 1 + 1 steps (a
  graph of the same shape, traced and compiled anew), timed after the run.
  """
  run = make_chain_fn(target, warmup, draws, jit_compile, step_size)
  t0 = time.perf_counter()
  states, trace = run(init, seed)
  _ = [s.numpy() for s in states]
  wall = time.perf_counter() - t0
  small = make_chain_fn(target, 1, 1, jit_compile, step_size)
  t0 = time.perf_counter()
  _ = [s.numpy() for s in small(init, seed)[0]]
  compile_s = min(time.perf_counter() - t0, wall)
  return states, trace, wall, compile_s, (wall - compile_s) / (
      warmup + draws) * 1e3


def run_hand(cfg):
  m = cfg["model"]
  init = [tf.constant(p) for p in shrunk_init(m, cfg["chains"],
                                              cfg["seed"] + 1)]
  seed = tf.constant([cfg["seed"], 1], tf.int32)
  states, trace, wall, compile_s, ms = timed_chain(
      m.hand_target(m.x, m.y), init, seed, cfg["warmup"], cfg["draws"], True,
      init_step_size(m))
  return finish_tfp_row(m, states, trace, wall, compile_s, ms, "xla")


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
  m = cfg["model"]
  if m.name != "mlp":
    print(f"  anchor: MLP only; skipped for {m.name}", flush=True)
    return None
  x, y = m.x, m.y
  warmup, draws, c = cfg["warmup"], cfg["draws"], cfg["chains"]
  target, init = anchor_target(x, y, c, cfg["seed"] + 2)
  order = anchor_order(init)
  seed = tf.constant([cfg["seed"], 2], tf.int32)
  out = None
  for jit in (True, False):
    try:
      states, trace, wall, compile_s, ms = timed_chain(
          target, init, seed, warmup, draws, jit, init_step_size(m))
    except Exception as e:  # noqa: BLE001 - report, fall back
      print(f"  anchor: jit_compile={jit} failed ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:150]})", flush=True)
      continue
    out = finish_tfp_row(m, [states[i] for i in order], trace, wall,
                         compile_s, ms, "xla" if jit else
                         "tf.function (no XLA)")
    break
  if out is None:
    raise RuntimeError("anchor failed with and without XLA")
  return out


def anchor_order(parts):
  """Indices that put the anchor's flat parts in (w1, b1, w2, b2, w3, b3)."""
  shapes = [tuple(p.shape[1:]) for p in parts]
  if shapes == MLP_SHAPES:
    return list(range(len(parts)))
  # tf.nest may order a layer's dict (bias, weights): match by shape in turn.
  order, used = [], set()
  for s in MLP_SHAPES:
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
  m = cfg["model"]
  if m.name != "mlp":
    print(f"  numpyro: MLP only; skipped for {m.name}", flush=True)
    return None
  py = numpyro_python()
  if py is None:
    return None
  with tempfile.TemporaryDirectory() as tmp:
    data, out = os.path.join(tmp, "data.npz"), os.path.join(tmp, "out.npz")
    np.savez(data, x=m.x, y=m.y, probe=m.probe,
             **{f"init{i}": p for i, p in enumerate(
                 shrunk_init(m, cfg["chains"], cfg["seed"] + 3))},
             settings=np.array([cfg["chains"], cfg["warmup"], cfg["draws"],
                                LEAPFROGS, int(mass), cfg["seed"]]),
             floats=np.array([SIGMA, TARGET_ACCEPT, init_step_size(m)]))
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
