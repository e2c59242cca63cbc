"""Simulation-based calibration (Talts et al. 2018) of NUTS on a tiny BNN.

For r = 1..R: draw a network theta_r and data y_r from the prior predictive,
sample p(theta | y_r) and record the rank of theta_r among L posterior draws.
If the sampler is correct the ranks are uniform on {0..L}. All R posteriors
run at once as R chains of one target (chain r sees its own y_r), through the
public pieces `make_kernel`, `bijectors` and `tfp.mcmc.sample_chain`.

Slow (minutes): `make test-slow` or `make sbc`.
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import jdlayers as jdl
from jdlayers import models

R, BURN, KEEP, THIN, BINS = 256, 400, 1000, 10, 8
L = KEEP // THIN


def _chi2_sf_ok(counts):
  # chi^2 with BINS-1 = 7 dof; 0.999 quantile is 24.32: a correct sampler
  # fails one parameter with probability 1e-3 (we test 7 + 1 statistics).
  expected = counts.sum() / len(counts)
  stat = ((counts - expected) ** 2 / expected).sum()
  return stat < 24.32, stat


@pytest.mark.slow
def test_sbc_ranks_are_uniform():
  x = np.linspace(-1.5, 1.5, 8, dtype=np.float32)[:, None]
  net = jdl.Sequential(jdl.Affine(2, 1, activation="tanh"), jdl.Affine(1, 2))
  model = models.Model(net, models.Normal(scale=0.5))
  truth = model.joint(x).sample(R, seed=11)
  y = truth.y                                       # [R, 8, 1]
  post = model.posterior(x, np.zeros([8, 1], np.float32))

  def target(*parts):
    network, _ = post.unpack(parts)
    lik = tfp.distributions.Normal(network(x), 0.5)
    return net.log_prob(network) + tf.reduce_sum(lik.log_prob(y), [1, 2])

  init = post.init(R, seed=12)
  kernel = jdl.mcmc.make_kernel(target, post.bijectors, init, kernel="nuts",
                                num_adaptation_steps=BURN)

  @tf.function(jit_compile=True)
  def run():
    return tfp.mcmc.sample_chain(KEEP, init, kernel=kernel,
                                 num_burnin_steps=BURN,
                                 trace_fn=None, seed=(3, 4))

  draws = [d.numpy()[::THIN] for d in run()]        # each [L, R, ...]
  true_parts = [p.numpy() for p in tf.nest.flatten(truth.network)]
  stats = []
  for name, d, t in zip(post.part_names, draws, true_parts):
    d = d.reshape(L, R, -1)
    t = t.reshape(R, -1)
    ranks = (d < t[None]).sum(0)                    # [R, k] in 0..L
    for j in range(ranks.shape[1]):
      counts = np.bincount(ranks[:, j] * BINS // (L + 1), minlength=BINS)
      ok, stat = _chi2_sf_ok(counts)
      stats.append((f"{name}[{j}]", stat, ok))
  # The function value at one input: a non-linear statistic of theta.
  network = post.unpack([tf.constant(d) for d in draws])[0]
  f = network(x[3:4]).numpy()[..., 0, 0]            # [L, R]
  f_true = truth.network(x[3:4]).numpy()[:, 0, 0]   # [R]
  counts = np.bincount((f < f_true).sum(0) * BINS // (L + 1), minlength=BINS)
  ok, stat = _chi2_sf_ok(counts)
  stats.append(("f(x_3)", stat, ok))
  bad = [s for s in stats if not s[2]]
  assert not bad, stats
