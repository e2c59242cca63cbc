"""`Sampler`: runs MCMC chains in compiled chunks, with progress.

All chains advance together (the layers carry the chain dim), inside one
`tf.while_loop` compiled with XLA by default (`_loop`). The loop runs in
chunks of `chunk_size` steps so that progress can be shown and partial
results read between chunks; one compiled function serves every chunk (the
chunk length is a runtime argument) and every later run of the same model
with data of the same shapes and the same settings (the data and seed are
arguments). The seed of step `t` is `fold_in(seed, t)`, so the draws do not
depend on how the run is chunked.

With `checkpoint=path` the sampler saves its whole state every
`checkpoint_every` steps (chunks end on those steps), atomically, and
`resume=True` continues from that file: the resumed draws equal those of an
uninterrupted run bit for bit (see `_checkpoint`).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Callable, List, Optional, Sequence, Union

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from jdlayers import _validate
from jdlayers.inference import (_checkpoint, _initial_check, _kernels, _loop,
                                 _sharded)
from jdlayers.inference._result import MCMCResult
from jdlayers.layers._base import stateless_seed


class Sampler:
  """Stateful MCMC run over a `Posterior`: warm-up, then draws.

  Most users call `jdlayers.mcmc.sample`, which builds a `Sampler` and runs
  it to the end. Use the class directly to run a budget of steps at a time
  (`run(num_steps)`) and look at `result()` in between.

  Args:
    posterior: A `jdlayers.models.Posterior`.
    num_chains: Chains `C` run in parallel (>= 1).
    num_results: Draws kept per chain after warm-up (>= 1).
    num_burnin_steps: Warm-up steps (adaptation), discarded.
    kernel: "chees" (default), "snaper", "nuts" or "hmc" (see
      `make_kernel`).
    init: "shrunk", "prior", or a list of initial parts `[C, ...]`.
    init_scale: Shrink factor of the "shrunk" init.
    seed: Stateless seed (int or pair); the same seed gives the same draws.
    jit_compile: Compile the sampling loop with XLA (under a `strategy`,
      the per-replica density and gradient: XLA cannot compile the
      strategy's cross-replica calls).
    chunk_size: Steps per compiled call (default: about 1/10 of the run,
      or of `checkpoint_every`).
    checkpoint: Path of a checkpoint file (a jdlayers file, e.g.
      "run.ckpt.jdl.npz"), written atomically every `checkpoint_every` steps
      and at the end. The draws go into segment files next to it
      (`<checkpoint>.<run id>.<start>-<stop>.seg.jdl.npz`), one per
      checkpoint with the steps since the previous one; keep (and move) them
      together with the checkpoint.
    checkpoint_every: Steps between checkpoints (default: every chunk).
    resume: With a `checkpoint` file present, continue the run it holds
      (after checking it was written with the same settings and data; with
      `seed=None` its seed is used); without one, start afresh.
    strategy: A `tf.distribute.Strategy` to evaluate the density and its
      gradient on (see `mcmc.sample`); None runs on one device.
    shard: Under a `strategy`: "data" splits `x`, `y` along `N` over the
      replicas (the remainder padded and masked), "chains" spreads the
      chains (`num_chains` a multiple of the replicas).
    **kernel_kwargs: Passed to `make_kernel` (step_size, num_leapfrog_steps,
      max_tree_depth, target_accept_prob, adaptation, step_size_jitter,
      max_leapfrog_steps).

  Attributes:
    step: Steps done so far, warm-up included.
    checkpoint_step: The step the checkpoint file holds (None before the
      first write of a fresh run).
    resumed_from: The step restored from `checkpoint` (None if fresh).
    checkpoint_seconds: Wall time spent writing checkpoints (not included in
      `wall_time`).
    compile_seconds: Wall time of the first chunk call that traced and
      compiled the loop (0 when an earlier run's compiled loop was reused;
      included in `wall_time`).
    loop: The compiled `_loop.ChunkLoop` (shared with other runs of the same
      model, settings and shapes; `loop.traces` counts its traces).

  Raises:
    ValueError: For invalid settings, a checkpoint of another run, or a
      log density or gradient that is not finite at the initial state of
      some chain (the message names the chains, the term and likely cause).
    FileExistsError: If `checkpoint` exists and `resume` is False.
    jdlayers.io.FileFormatError: For a corrupted or invalid checkpoint.

  #### Example

  ```python
  sampler = jdl.mcmc.Sampler(model.posterior(x, y), num_chains=4,
                             num_results=500, num_burnin_steps=500, seed=0,
                             checkpoint="run.ckpt.jdl.npz",
                             checkpoint_every=100, resume=True)
  result = sampler.run().result()   # after a crash, the same line resumes
  ```
  """

  def __init__(self, posterior, *, num_chains: int, num_results: int,
               num_burnin_steps: int, kernel: str = "chees",
               init: Union[str, Sequence] = "shrunk", init_scale: float = 0.1,
               seed=None, jit_compile: bool = True,
               chunk_size: Optional[int] = None, checkpoint=None,
               checkpoint_every: Optional[int] = None, resume: bool = False,
               strategy=None, shard: str = "data", **kernel_kwargs):
    _check_counts(num_chains, num_results, num_burnin_steps, chunk_size,
                  checkpoint_every)
    # Strategy, mode and shardability are checked before anything traces.
    loop_posterior, self._loop_data, loop_jit = _sharded.for_sampler(
        posterior, strategy, shard, num_chains, jit_compile, "mcmc.Sampler")
    self.strategy, self.shard = strategy, shard
    # Normalised, with defaults: also the key of the compiled loop, so
    # settings spelled differently (a default passed or left out) share one.
    settings = _kernels.check_settings(
        kernel=kernel, num_adaptation_steps=num_burnin_steps,
        num_chains=num_chains, where="mcmc.Sampler", **kernel_kwargs)
    _kernels.check_start(init=init, init_scale=init_scale, seed=seed,
                         jit_compile=jit_compile, where="mcmc.Sampler")
    saved = _open_checkpoint(checkpoint, checkpoint_every, resume)
    if seed is None and saved is not None:
      seed = saved[0]["fingerprint"].get("seed")
    self.posterior = posterior
    self.num_chains, self.num_results = num_chains, num_results
    self.num_burnin_steps = num_burnin_steps
    self.kernel_name = kernel
    if seed is None:
      seed = int(np.random.SeedSequence().generate_state(1)[0] % 2 ** 31)
    self.seed = tf.convert_to_tensor(stateless_seed(seed), tf.int32)
    init_seed, self._run_seed = tfp.random.split_seed(self.seed)
    if isinstance(init, str):
      state = posterior.init(num_chains, seed=init_seed, method=init,
                             scale=init_scale)
    else:
      state = _check_init(posterior, init, num_chains)
    self.init_state, self.init_scale = list(state), init_scale
    self.kernel_kwargs = dict(kernel_kwargs)
    self.adaptation = _kernels.resolve_adaptation(
        kernel_kwargs.get("adaptation", "auto"), num_burnin_steps, kernel)
    if len(posterior.bijectors) != len(state):
      raise ValueError(f"mcmc.Sampler: needs one bijector per state part; "
                       f"got {len(posterior.bijectors)} for {len(state)}.")
    self._leapfrogs = settings["num_leapfrog_steps"]
    self.state: List[tf.Tensor] = list(state)
    self.step = 0
    total = num_burnin_steps + num_results
    self.chunk_size = _chunk_size(chunk_size, total, checkpoint_every)
    self.loop = _loop.loop_for(
        loop_posterior, state, settings,
        lambda post, s: _kernels.make_kernel(post.log_prob, post.bijectors,
                                             s, **settings),
        self.chunk_size, self._leapfrogs, loop_jit)
    # Bootstrapping evaluates the density and its gradient at the initial
    # state for every chain; a non-finite one would only yield a run of
    # rejected steps, so it is an error before any sampling.
    self.kernel_results = self.loop.bootstrap(self.state, *self._loop_data)
    _initial_check.check(posterior, self.state, self.kernel_results)
    self._kr_leaves = (None, None)  # (results, their leaves) of the last chunk
    # Draws and traces go into arrays of the run's final size (pages are
    # only touched as they fill), so a run holds one copy of its draws and
    # `draws()` / `result()` return views of them.
    self._draw_buf = [np.empty((num_results,) + tuple(p.shape),
                               p.dtype.as_numpy_dtype) for p in state]
    tr0 = _kernels.trace(self.kernel_results, self._leapfrogs)
    self._trace_buf = _kernels.Trace(*[
        np.empty((total,) + tuple(t.shape), t.dtype.as_numpy_dtype)
        for t in tr0])
    self.wall_time = 0.0
    self.compile_seconds = 0.0
    self.jit_compile = jit_compile
    self.checkpoint = None if checkpoint is None else os.fspath(checkpoint)
    self.checkpoint_every = (int(checkpoint_every or self.chunk_size)
                             if checkpoint is not None else None)
    self.checkpoint_seconds = 0.0
    self.checkpoint_step: Optional[int] = None
    self.resumed_from: Optional[int] = None
    self.fingerprint = None
    if checkpoint is not None:
      self.fingerprint = _checkpoint.fingerprint(self, init)
    self._checkpoint_exists = saved is not None
    # Committed segments `[name, start, stop]` (those the manifest on disk
    # names) and the random id in their names; restore replaces both.
    self._segments: List[list] = []
    self._run_id = _checkpoint.new_run_id()
    if saved is not None:
      _checkpoint.check_fingerprint(checkpoint, saved[0]["fingerprint"],
                                    self.fingerprint)
      _checkpoint.restore(self, checkpoint, *saved)
      self.resumed_from = self.checkpoint_step = self.step

  @property
  def total_steps(self) -> int:
    return self.num_burnin_steps + self.num_results

  @property
  def done(self) -> bool:
    return self.step >= self.total_steps

  def run(self, num_steps: Optional[int] = None,
          progress: Union[bool, Callable] = True,
          callback: Optional[Callable] = None) -> "Sampler":
    """Advances the chains by `num_steps` (default: to the end).

    With a `checkpoint`, chunks end on multiples of `checkpoint_every`, where
    the checkpoint is written (and at the end of the run). An interrupt
    (Ctrl-C) leaves the last one intact; so does a failed checkpoint write,
    which stops the run with a `CheckpointWriteError` carrying the draws so
    far (`err.partial_result`).

    Args:
      num_steps: Steps to run now; stops early at the end of the run.
      progress: Print a progress line per chunk to stderr (True), stay quiet
        (False), or call `progress(info: dict)` per chunk.
      callback: Called as `callback(result)` with the `MCMCResult` so far
        after each chunk that added draws.

    Returns:
      `self`, for chaining: `sampler.run().result()`.
    """
    end = self.total_steps if num_steps is None else min(
        self.total_steps, self.step + int(num_steps))
    while self.step < end:
      n = min(self.chunk_size, end - self.step)
      if self.checkpoint_every:
        n = min(n, self.checkpoint_every - self.step % self.checkpoint_every)
      t0 = time.perf_counter()
      traces = self.loop.traces
      state, kr, draws, tr, leaves = self.loop(
          self.state, self.kernel_results, self.step, n, self._run_seed,
          *self._loop_data)
      draws = [d.numpy()[:n] for d in draws]
      tr = _kernels.Trace(*[t.numpy()[:n] for t in tr])
      seconds = time.perf_counter() - t0
      self.wall_time += seconds
      if self.loop.traces > traces:
        self.compile_seconds += seconds
      self.state, self.kernel_results = list(state), kr
      self._kr_leaves = (kr, leaves)
      self._store(draws, tr)
      self.step += n
      if self.checkpoint is not None and (
          self.done or self.step % self.checkpoint_every == 0):
        self.write_checkpoint()
      info = self.progress_info(tr)
      if callable(progress):
        progress(info)
      elif progress:
        _print_progress(info)
      if callback is not None and self.step > self.num_burnin_steps:
        callback(self.result())
    return self

  def write_checkpoint(self) -> str:
    """Writes the checkpoint now (`run` does so every `checkpoint_every`).

    Writes the steps since the last checkpoint as a new segment file, then
    the manifest (`_checkpoint`); the previous checkpoint stays valid until
    the new manifest is in place.

    Returns:
      The checkpoint path.

    Raises:
      ValueError: If the sampler has no `checkpoint` path.
      CheckpointWriteError: (an `OSError`) if a file cannot be written (full
        disk, permissions...); it names the file and the cause and carries
        the draws so far as `partial_result`; the checkpoint on disk keeps
        its last good step.
    """
    if self.checkpoint is None:
      raise ValueError("Sampler: no `checkpoint` path was given.")
    t0 = time.perf_counter()
    # The first write refuses to clobber a file created since __init__.
    self._segments = _checkpoint.write(self, self.checkpoint,
                                       overwrite=self._checkpoint_exists)
    self._checkpoint_exists, self.checkpoint_step = True, self.step
    self.checkpoint_seconds += time.perf_counter() - t0
    return self.checkpoint

  @property
  def num_draws(self) -> int:
    """Post-warm-up draws kept so far."""
    return max(0, self.step - self.num_burnin_steps)

  def _store(self, draws, tr):
    # Keep only post-warm-up states; keep the trace of every step. Called
    # before `self.step` advances past the chunk.
    n = len(tr.step_size)
    for buf, t in zip(self._trace_buf, tr):
      buf[self.step:self.step + n] = t
    skip = max(0, self.num_burnin_steps - self.step)
    if skip < n:
      k = self.num_draws
      for buf, d in zip(self._draw_buf, draws):
        buf[k:k + n - skip] = d[skip:]

  def progress_info(self, tr: _kernels.Trace) -> dict:
    """Summary of the last chunk: phase, steps done, acceptance, step size,
    trajectory length (the learned one for "chees"/"snaper"), leapfrogs."""
    accept = np.exp(np.minimum(tr.log_accept_ratio, 0.)).mean()
    full = self.full_trace()
    post = full.has_divergence[self.num_burnin_steps:]
    return dict(
        phase="warm-up" if self.step <= self.num_burnin_steps else "sampling",
        step=self.step, total=self.total_steps,
        draws=max(0, self.step - self.num_burnin_steps),
        accept=float(accept), step_size=float(tr.step_size[-1]),
        trajectory_length=float(tr.trajectory_length[-1]),
        divergences=int(post.sum()),
        leapfrogs=float(tr.num_leapfrog_steps.mean()),
        seconds=self.wall_time, kernel=self.kernel_name)

  def full_trace(self) -> _kernels.Trace:
    """Trace of every step so far (warm-up included), `[steps, C]`.

    Read-only views of the sampler's buffers (no copy).
    """
    return _kernels.Trace(*[_frozen(b[:self.step]) for b in self._trace_buf])

  def draws(self) -> List[np.ndarray]:
    """Post-warm-up states so far, each `[draws, C, ...]`.

    Read-only views of the sampler's buffers (no copy): later steps only
    write past them, so they stay valid while the run continues.
    """
    return [_frozen(b[:self.num_draws]) for b in self._draw_buf]

  def result(self):
    """The `MCMCResult` holding every draw so far."""
    return MCMCResult.from_sampler(self)


def _frozen(view: np.ndarray) -> np.ndarray:
  view.flags.writeable = False  # the buffer itself stays writeable
  return view


def _print_progress(info: dict) -> None:
  line = (f"[{info['kernel']}] {info['phase']:8s} {info['step']:6d}/"
          f"{info['total']} | {info['seconds']:7.1f} s | accept "
          f"{info['accept']:.2f} | step {info['step_size']:.3g} | "
          f"trajectory {info['trajectory_length']:.3g} | leapfrogs "
          f"{info['leapfrogs']:.1f} | divergences {info['divergences']}")
  print(line, file=sys.stderr, flush=True)


def _open_checkpoint(checkpoint, checkpoint_every, resume):
  """Checks the checkpoint settings; returns a file to resume from, or None."""
  if not isinstance(resume, bool):
    raise ValueError(f"mcmc: `resume` must be True or False; got {resume!r}.")
  if checkpoint is None:
    if resume or checkpoint_every is not None:
      raise ValueError("mcmc: `resume` and `checkpoint_every` need a "
                       "`checkpoint` path.")
    return None
  path = os.fspath(checkpoint)
  directory = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"mcmc: the directory of checkpoint {path!r} does "
                            "not exist.")
  if not os.path.exists(path):
    return None
  if not resume:
    raise FileExistsError(
        f"mcmc: checkpoint {path!r} exists. Pass resume=True to continue the "
        "run it holds, or delete it (or choose another `checkpoint` path) to "
        "start afresh; it is never overwritten silently.")
  return _checkpoint.read(path)


def _chunk_size(chunk_size, total: int, every: Optional[int]) -> int:
  if chunk_size:
    return int(chunk_size)
  default = max(1, -(-total // 10))
  if not every:
    return default
  # Near-equal chunks that end on every multiple of `every`.
  pieces = -(-every // default)
  return -(-every // pieces)


def _check_counts(num_chains, num_results, num_burnin_steps, chunk_size,
                  checkpoint_every=None):
  for name, v, low in (("num_chains", num_chains, 1),
                       ("num_results", num_results, 1),
                       ("num_burnin_steps", num_burnin_steps, 0)):
    _validate.count(v, name, "mcmc", minimum=low)
  for name, v in (("chunk_size", chunk_size),
                  ("checkpoint_every", checkpoint_every)):
    if v is not None:
      _validate.count(v, name, "mcmc", minimum=1)


def _check_init(posterior, init, num_chains: int) -> List[tf.Tensor]:
  init = list(init)
  names = posterior.part_names
  if len(init) != len(names):
    raise ValueError(f"mcmc: `init` must have {len(names)} parts ({names}); "
                     f"got {len(init)}.")
  ref = posterior.init(num_chains, seed=0)
  out = []
  for name, p, r in zip(names, init, ref):
    p = tf.convert_to_tensor(p, r.dtype)
    if p.shape != r.shape:
      raise ValueError(f"mcmc: init part {name!r} has shape "
                       f"{p.shape.as_list()}; expected {r.shape.as_list()} "
                       f"([num_chains={num_chains}, ...]).")
    out.append(p)
  return out
