"""Sampled networks are `tfp.mcmc` state as they are: flatten to state parts,
`pack_sequence_as` back, run HMC under `tf.function(jit_compile=True)`."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import jdlayers as jdl

tfd = tfp.distributions

CHAINS, STEPS = 4, 8


def _data():
  x = tf.random.stateless_uniform([16, 2], [0, 0], -1., 1.)
  y = tf.sin(2. * x[:, :1]) + 0.5 * x[:, 1:]
  return x, y


def _target(net, template, x, y):
  def target_log_prob(*parts):
    f = tf.nest.pack_sequence_as(template, list(parts))
    lik = tfd.Normal(f(x), 0.3).log_prob(y)  # [CHAINS, N, 1]
    return net.log_prob(f) + tf.reduce_sum(lik, axis=[-2, -1])
  return target_log_prob


def _run(kernel, parts):
  @tf.function(jit_compile=True)
  def sample():
    return tfp.mcmc.sample_chain(
        STEPS, current_state=parts, kernel=kernel, num_burnin_steps=0,
        trace_fn=lambda _, r: _inner(r).is_accepted, seed=(1, 2))
  return sample()


def _inner(results):
  return getattr(results, "inner_results", results)


def _check(states, accepted, parts):
  assert len(states) == len(parts)
  for s, p in zip(states, parts):
    assert s.shape.as_list() == [STEPS] + p.shape.as_list()
    assert p.shape[0] == CHAINS
    assert np.all(np.isfinite(s))
  assert accepted.shape.as_list() == [STEPS, CHAINS]
  assert np.mean(accepted) > 0


def test_hmc_on_flat_network_state():
  net = jdl.Sequential(jdl.Affine(8, 2, activation="tanh"), jdl.Affine(1, 8))
  template = net.sample(CHAINS, seed=0)
  parts = tf.nest.flatten(template)
  assert [p.shape.as_list() for p in parts] == [
      [CHAINS, 8, 2], [CHAINS, 8], [CHAINS, 1, 8], [CHAINS, 1]]
  x, y = _data()
  target = _target(net, template, x, y)
  assert target(*parts).shape.as_list() == [CHAINS]
  kernel = tfp.mcmc.HamiltonianMonteCarlo(target, step_size=0.01,
                                          num_leapfrog_steps=3)
  states, accepted = _run(kernel, parts)
  _check(states, accepted, parts)
  # The last state rebuilds into CHAINS working networks.
  last = tf.nest.pack_sequence_as(template, [s[-1] for s in states])
  assert last(x).shape.as_list() == [CHAINS, 16, 1]
  assert np.all(np.isfinite(target(*[s[-1] for s in states])))


def test_hmc_with_horseshoe_and_event_space_bijectors():
  net = jdl.Sequential(
      jdl.Affine(6, 2, activation="relu", prior=jdl.priors.horseshoe(0.5)),
      jdl.Affine(1, 6))
  template = net.sample(CHAINS, seed=0)
  parts = tf.nest.flatten(template)
  bijectors = jdl.event_space_bijectors(net)
  assert len(parts) == len(bijectors) == 6
  x, y = _data()
  target = _target(net, template, x, y)
  hmc = tfp.mcmc.HamiltonianMonteCarlo(target, step_size=0.005,
                                       num_leapfrog_steps=3)
  kernel = tfp.mcmc.TransformedTransitionKernel(hmc, bijectors)
  states, accepted = _run(kernel, parts)
  _check(states, accepted, parts)
  chain = tf.nest.pack_sequence_as(template, list(states))
  # The scales stay positive along the whole chain.
  assert np.all(chain.layers[0].global_scale.numpy() > 0)
  assert np.all(chain.layers[0].local_scale.numpy() > 0)
  assert chain.layers[0].local_scale.shape.as_list() == [STEPS, CHAINS, 6]
