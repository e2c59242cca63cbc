"""The compiled sampling loop, traced once per model, settings and shapes.

A `ChunkLoop` is one `tf.function` (XLA by default) that advances all chains
by `n` steps inside a `tf.while_loop` and returns the draws and the trace.
The data `x`, `y` and the run's seed are *arguments* of that function, not
constants captured in its graph, and the kernel is built inside the trace
from them. So a second run of the same model on data of the same shapes,
with the same settings, reuses the traced and compiled loop: `loop_for`
keeps up to `MAX_LOOPS` loops on the model object (their lifetime is the
model's), keyed by the settings and the shapes and dtypes of the data and
the chain state. That makes SBC, cross-validation and refits cheap.
"""

from __future__ import annotations

import collections
from typing import Callable, Hashable

import numpy as np
import tensorflow as tf

from jdlayers.inference import _kernels

MAX_LOOPS = 8
_ATTR = "_jdl_compiled_loops"


class ChunkLoop:
  """`(state, results, step0, n, seed, x, y) -> (state, results, draws,
  trace, result leaves)`, compiled once per input signature.

  Args:
    posterior: A `Posterior` (its structure; the data come as arguments).
    make_kernel: `(posterior, state) -> kernel`, called while tracing.
    chunk_size: Static length of the draw and trace buffers (the most steps
      one call runs).
    num_leapfrog_steps: HMC's fixed count, for `_kernels.trace`.
    jit_compile: Compile with XLA.

  Attributes:
    traces: How many times the loop was traced (1 after any number of runs
      with one signature).
    bootstrap_traces: The same for `bootstrap`.
  """

  def __init__(self, posterior, make_kernel: Callable, chunk_size: int,
               num_leapfrog_steps: int, jit_compile: bool):
    self._posterior, self._make_kernel = posterior, make_kernel
    self.chunk_size, self._leapfrogs = int(chunk_size), num_leapfrog_steps
    self.traces = self.bootstrap_traces = 0
    self._fn = tf.function(self._chunk, jit_compile=jit_compile,
                           autograph=False)
    # A graph, not XLA: it runs once per run, and XLA would compile it anew.
    self._bootstrap = tf.function(self._bootstrap_results, autograph=False)

  def bootstrap(self, state, x, y):
    """The kernel's initial results at `state` (density and gradient)."""
    return self._bootstrap(list(state), x, y)

  def _bootstrap_results(self, state, x, y):
    self.bootstrap_traces += 1
    return self._make_kernel(self._posterior.with_data(x, y),
                             state).bootstrap_results(state)

  def __call__(self, state, kernel_results, step0, n, seed, x, y):
    return self._fn(list(state), kernel_results, tf.constant(step0, tf.int32),
                    tf.constant(n, tf.int32), seed, x, y)

  def _chunk(self, state, kernel_results, step0, n, seed, x, y):
    self.traces += 1  # Python side effect: runs only while tracing
    kernel = self._make_kernel(self._posterior.with_data(x, y), state)
    size = self.chunk_size
    state_tas = [tf.TensorArray(p.dtype, size=size, element_shape=p.shape)
                 for p in state]
    tr0 = _kernels.trace(kernel_results, self._leapfrogs)
    trace_tas = [tf.TensorArray(t.dtype, size=size, element_shape=t.shape)
                 for t in tr0]

    def body(i, state, kr, state_tas, trace_tas):
      # The seed of step t is fold_in(seed, t): draws do not depend on how
      # the run is chunked (or resumed).
      step_seed = tf.random.experimental.stateless_fold_in(seed, step0 + i)
      state, kr = kernel.one_step(state, kr, seed=step_seed)
      state = list(state)
      tr = _kernels.trace(kr, self._leapfrogs)
      state_tas = [ta.write(i, p) for ta, p in zip(state_tas, state)]
      trace_tas = [ta.write(i, t) for ta, t in zip(trace_tas, tr)]
      return i + 1, state, kr, state_tas, trace_tas

    _, state, kr, state_tas, trace_tas = tf.while_loop(
        lambda i, *_: i < n, body,
        (tf.constant(0), list(state), kernel_results, state_tas, trace_tas))
    # The results' leaves too: flattening a composite (e.g. the windowed
    # momentum distribution) in Python costs ~0.1 s per checkpoint.
    return (state, kr, [ta.stack() for ta in state_tas],
            _kernels.Trace(*[ta.stack() for ta in trace_tas]),
            tf.nest.flatten(kr, expand_composites=True))


def _signature(*tensors) -> tuple:
  return tuple((tuple(t.shape.as_list()), t.dtype.name) for t in tensors)


def _hashable(value) -> Hashable:
  if value is None or isinstance(value, (bool, int, float, str)):
    return value
  return repr(np.asarray(value).tolist())


def loop_for(posterior, state, settings: dict, make_kernel: Callable,
             chunk_size: int, num_leapfrog_steps: int,
             jit_compile: bool) -> ChunkLoop:
  """The model's cached `ChunkLoop` for these settings and shapes, or a new one.

  Args:
    posterior: The run's `Posterior` (or `_sharded.ShardedPosterior`); its
      model holds the cache.
    state: Initial parts `[C, ...]` (shapes and dtypes only).
    settings: Everything else the kernel is built from (kernel name, warm-up
      length, step size, ...): part of the key.
    make_kernel, chunk_size, num_leapfrog_steps, jit_compile: As
      `ChunkLoop`.

  Returns:
    A `ChunkLoop`; the same object for the same model, settings and shapes.
  """
  # A `ShardedPosterior` adds its strategy and mode.
  key = (tuple(sorted((k, _hashable(v)) for k, v in settings.items())),
         int(chunk_size), bool(jit_compile),
         _signature(posterior.x, posterior.y, *state),
         getattr(posterior, "cache_key", None))
  cache = vars(posterior.model).setdefault(_ATTR, collections.OrderedDict())
  loop = cache.get(key)
  if loop is None:
    loop = ChunkLoop(posterior, make_kernel, chunk_size, num_leapfrog_steps,
                     jit_compile)
    cache[key] = loop
    while len(cache) > MAX_LOOPS:  # bounds the graphs a model keeps alive
      cache.popitem(last=False)
  cache.move_to_end(key)
  return loop
