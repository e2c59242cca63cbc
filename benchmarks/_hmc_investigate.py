"""`benchmarks/hmc.py --investigate`: times the pieces of one HMC step.

Value-and-gradient of `Posterior.log_prob` vs the hand-written target in an
XLA `tf.while_loop`, and the jdlayers `Sampler` loop vs `tfp.mcmc.
sample_chain` (each with either target), plus variants of the Sampler's
compiled loop (`_loop.ChunkLoop`): without the per-step trace, without the
seed fold-in, without step-size jitter, and shorter chunks.

Example:
  investigate(dict(model=_hmc_models.mlp(), chains=16, investigate_steps=50,
                   grad_iters=200, repeat=1))
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import jdlayers as jdl
from jdlayers.inference import _kernels, _loop

from _hmc_baselines import anchor_target, dassa_hmc
from _hmc_models import LEAPFROGS, TARGET_ACCEPT, init_step_size


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

  def __init__(self, target, init, x, y):
    self.log_prob, self._init = target, init
    self.x, self.y = tf.constant(x), tf.constant(y)
    self.model = self  # holds the compiled-loop cache, as a model would
    self.bijectors = [tfp.bijectors.Identity() for _ in init]
    self.part_names = [f"part{i}" for i in range(len(init))]

  def with_data(self, x, y):
    del x, y  # the hand-written target holds its data as constants
    return self

  def init(self, num_chains, seed=None, method="shrunk", scale=0.1):
    del num_chains, seed, method, scale
    return list(self._init)


def sampler_ms_per_step(posterior, init, steps, step_size, sampler_cls=None,
                        chunk=None, **kwargs):
  """`jdl.mcmc.Sampler` (HMC + DASSA): (first call's seconds: compile + 1
  step, or 1 step when an earlier run's compiled loop is reused;
  steady-state ms per step)."""
  cls = sampler_cls or jdl.mcmc.Sampler
  s = cls(posterior, num_chains=int(init[0].shape[0]), num_results=steps,
          num_burnin_steps=2 * steps, kernel="hmc", adaptation="step_size",
          init=init, seed=0, num_leapfrog_steps=LEAPFROGS,
          target_accept_prob=TARGET_ACCEPT, step_size=step_size,
          chunk_size=chunk or steps, **kwargs)
  s.run(1, progress=False)
  first = s.wall_time
  best = float("inf")
  for _ in range(2):             # best of two chunks of `steps` (warm-up)
    t0 = s.wall_time
    s.run(steps, progress=False)
    best = min(best, s.wall_time - t0)
  return first, best / steps * 1e3


def sample_chain_ms_per_step(target, init, steps, step_size, trace=True):
  """The same kernel in `tfp.mcmc.sample_chain`: (compile seconds, steady-state
  ms per step)."""
  def chain(init, seed):
    kernel = dassa_hmc(target, steps, step_size)
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


class _LeanLoop(_loop.ChunkLoop):
  """`ChunkLoop` variants: "no-trace" (no per-step trace written) or
  "no-fold-in" (the step seed is `[seed[0], step]`, no fold-in)."""

  variant = "no-trace"

  def _chunk(self, state, kernel_results, step0, n, seed, x, y):
    self.traces += 1
    kernel = self._make_kernel(self._posterior.with_data(x, y), state)
    size = self.chunk_size
    state_tas = [tf.TensorArray(p.dtype, size=size, element_shape=p.shape)
                 for p in state]
    tr0 = _kernels.trace(kernel_results, self._leapfrogs)
    trace_tas = [tf.TensorArray(t.dtype, size=size, element_shape=t.shape)
                 for t in tr0]
    variant = self.variant

    def body(i, state, kr, state_tas, trace_tas):
      if variant == "no-fold-in":
        step_seed = tf.stack([seed[0], step0 + i])
      else:
        step_seed = tf.random.experimental.stateless_fold_in(seed, step0 + i)
      state, kr = kernel.one_step(state, kr, seed=step_seed)
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
      trace_out = _kernels.Trace(*[tf.zeros([size] + t.shape.as_list(),
                                            t.dtype) for t in tr0])
    else:
      trace_out = _kernels.Trace(*[ta.stack() for ta in trace_tas])
    return (state, kr, [ta.stack() for ta in state_tas], trace_out,
            tf.nest.flatten(kr, expand_composites=True))


def _lean_sampler(variant):
  """A `Sampler` class whose compiled loop is a fresh `_LeanLoop(variant)`
  (never the model's cached loop)."""
  loop_cls = type(f"LeanLoop_{variant}", (_LeanLoop,), dict(variant=variant))

  class LeanSampler(jdl.mcmc.Sampler):

    def __init__(self, posterior, **kw):
      super().__init__(posterior, **kw)
      settings = dict(self.kernel_kwargs, kernel=self.kernel_name,
                      num_adaptation_steps=self.num_burnin_steps)
      self.loop = loop_cls(
          posterior, lambda post, s: _kernels.make_kernel(
              post.log_prob, post.bijectors, s, **settings),
          self.chunk_size, self._leapfrogs, self.jit_compile)

  return LeanSampler


def investigate(cfg):
  m = cfg["model"]
  x, y = m.x, m.y
  c = cfg["chains"]
  steps = cfg["investigate_steps"]
  iters = cfg["grad_iters"]
  step_size = init_step_size(m)
  post = m.jdl_model().posterior(x, y)
  init = post.init(c, seed=0)
  hand = m.hand_target(x, y)
  np.testing.assert_allclose(post.log_prob(*init).numpy(),
                             hand(*init).numpy(), rtol=1e-4)
  res = {}

  def show(key, ms):
    """ms per call, or (compile seconds, ms per step)."""
    res[key] = ms
    if isinstance(ms, tuple):
      print(f"  {key:52s} {ms[1]:8.2f} ms/step   first call {ms[0]:5.1f} s",
            flush=True)
    else:
      print(f"  {key:52s} {ms:8.3f} ms", flush=True)

  print(f"value_and_gradient, {c} chains, XLA while_loop of {iters}:")
  for rep in range(cfg["repeat"]):
    show(f"grad jdl Posterior.log_prob #{rep + 1}",
         time_grad_loop(post.log_prob, init, iters))
    show(f"grad hand-written target #{rep + 1}",
         time_grad_loop(hand, init, iters))
  if m.name == "mlp":
    atarget, ainit = anchor_target(x, y, c)
    show("grad anchor target (200 iters)", time_grad_loop(atarget, ainit, 200))

  print(f"HMC({LEAPFROGS}) + DASSA step, steady state over {steps} steps "
        "(a Sampler's first call compiles only when no earlier run with the "
        "same model, settings and shapes did):")
  hand_post = _HandPosterior(hand, init, x, y)
  for rep in range(cfg["repeat"]):
    show(f"Sampler      + jdl target #{rep + 1}",
         sampler_ms_per_step(post, init, steps, step_size))
    show(f"Sampler      + hand target #{rep + 1}",
         sampler_ms_per_step(hand_post, init, steps, step_size))
    show(f"sample_chain + jdl target #{rep + 1}",
         sample_chain_ms_per_step(post.log_prob, init, steps, step_size))
    show(f"sample_chain + hand target #{rep + 1}",
         sample_chain_ms_per_step(hand, init, steps, step_size))
  for variant in ("no-trace", "no-fold-in"):
    show(f"Sampler[{variant}] + jdl target",
         sampler_ms_per_step(post, init, steps, step_size,
                             sampler_cls=_lean_sampler(variant)))
  show("Sampler(step_size_jitter=0) + jdl target",
       sampler_ms_per_step(post, init, steps, step_size,
                           step_size_jitter=0.))
  show("sample_chain(trace_fn=None) + jdl target",
       sample_chain_ms_per_step(post.log_prob, init, steps, step_size,
                                trace=False))
  show("Sampler chunk_size=steps/10 + jdl target",
       sampler_ms_per_step(post, init, steps, step_size,
                           chunk=max(1, steps // 10)))
  return res
