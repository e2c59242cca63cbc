"""NumPyro HMC on the benchmark MLP, run by `benchmarks/hmc.py --numpyro`.

Runs in its own virtualenv (`benchmarks/.numpyro-venv`, numpyro + jax[cpu]);
it imports neither jdlayers nor TensorFlow. The parent writes the data, the
initial states and the settings to an .npz; this script samples with
`numpyro.infer.HMC(num_steps=L, trajectory_length=None)` (dual-averaging step
size; diagonal mass matrix only when asked), all chains vectorized, and
writes back the posterior-predictive function values at the probe inputs
`[draws, chains, M]` (the parent computes ESS with `jdl.diagnostics`) plus
the wall time, the compile time (estimated by a second, 1 + 1 step run) and
acceptance statistics.

Usage: python benchmarks/_numpyro_hmc.py IN.npz OUT.npz
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
from numpyro.infer import HMC, MCMC  # noqa: E402

NAMES = ("w1", "b1", "w2", "b2", "w3", "b3")


def make_model(shapes, sigma):
  def model(x, y):
    p = {n: numpyro.sample(n, dist.Normal(0., 1.).expand(list(s)).to_event(
        len(s))) for n, s in zip(NAMES, shapes)}
    h = jnp.tanh(x @ p["w1"].T + p["b1"])
    h = jnp.tanh(h @ p["w2"].T + p["b2"])
    out = h @ p["w3"].T + p["b3"]
    numpyro.sample("y", dist.Normal(out, sigma).to_event(2), obs=y)
  return model


def mlp_numpy(parts, x):
  """f(x) for draws `[D, C, ...]` -> `[D, C, M]` (as benchmarks/hmc.py)."""
  w1, b1, w2, b2, w3, b3 = [np.asarray(p, np.float64) for p in parts]
  x = np.asarray(x, np.float64)
  h = np.tanh(np.einsum("mi,...oi->...mo", x, w1) + b1[..., None, :])
  h = np.tanh(np.einsum("...mi,...oi->...mo", h, w2) + b2[..., None, :])
  return (np.einsum("...mi,...oi->...mo", h, w3) + b3[..., None, :])[..., 0]


def main(path_in, path_out):
  with np.load(path_in, allow_pickle=False) as d:
    x, y, probe = d["x"], d["y"], d["probe"]
    init = [d[f"init{i}"] for i in range(len(NAMES))]
    chains, warmup, draws, leapfrogs, mass, seed = (int(v) for v in
                                                    d["settings"])
    sigma, target_accept, step_size = (float(v) for v in d["floats"])
  model = make_model([p.shape[1:] for p in init], sigma)
  init_params = {n: jnp.asarray(p) for n, p in zip(NAMES, init)}
  fields = ("accept_prob", "num_steps", "diverging", "adapt_state.step_size")

  def run(num_warmup, num_samples):
    kernel = HMC(model, step_size=step_size, num_steps=leapfrogs,
                 trajectory_length=None, adapt_step_size=True,
                 adapt_mass_matrix=bool(mass), dense_mass=False,
                 target_accept_prob=target_accept)
    mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples,
                num_chains=chains, chain_method="vectorized",
                progress_bar=False)
    t0 = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(seed), jnp.asarray(x), jnp.asarray(y),
             init_params=init_params, extra_fields=fields)
    jax.block_until_ready(mcmc.get_samples())
    return mcmc, time.perf_counter() - t0

  mcmc, wall = run(warmup, draws)
  samples = mcmc.get_samples(group_by_chain=True)   # [C, D, ...]
  extra = mcmc.get_extra_fields(group_by_chain=True)
  # A fresh MCMC object traces and compiles again (one `MCMC` cannot be
  # rerun with vectorized chains): a 1 + 1 step run measures that cost.
  _, compile_s = run(1, 1)
  parts = [np.swapaxes(np.asarray(samples[n]), 0, 1) for n in NAMES]
  f = mlp_numpy(parts, probe)
  np.savez(path_out, f=f, wall_s=wall, compile_s=compile_s,
           accept=float(np.mean(extra["accept_prob"])),
           step_size=float(np.mean(np.asarray(
               extra["adapt_state.step_size"])[:, -1])),
           mean_leapfrogs=float(np.mean(extra["num_steps"])),
           divergences=float(np.sum(extra["diverging"])),
           versions=f"numpyro {numpyro.__version__}, jax {jax.__version__}")


if __name__ == "__main__":
  main(*sys.argv[1:3])
