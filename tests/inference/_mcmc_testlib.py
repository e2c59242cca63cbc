"""The small MCMC run shared by the checkpoint and fault tests.

Both compare a resumed or interrupted run with an uninterrupted one, bit for
bit, so they must agree on the data, the network and the settings.
"""

import numpy as np

import jdlayers as jdl

SETTINGS = dict(num_chains=2, num_results=20, num_burnin_steps=20,
                kernel="hmc", num_leapfrog_steps=3, seed=5,
                jit_compile=False)


def data(n=12):
  """`x`, `y` `[n, 1]` float32: sin(2x) plus N(0, 0.1^2) noise, fixed."""
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, size=(n, 1)).astype(np.float32)
  return x, (np.sin(2 * x) + 0.1 * rng.normal(size=x.shape)).astype(np.float32)


def mlp():
  """The 1-3-1 tanh network of every run here."""
  return jdl.Sequential(jdl.Affine(3, 1, activation="tanh"), jdl.Affine(1, 3))


def assert_same_run(a, b):
  """Equal draw counts, and every state and trace equal bit for bit."""
  assert a.num_draws == b.num_draws
  for sa, sb in zip(a.states, b.states):
    np.testing.assert_array_equal(sa, sb)
  for ta, tb in zip(a.trace + a.warmup_trace, b.trace + b.warmup_trace):
    np.testing.assert_array_equal(ta, tb)
