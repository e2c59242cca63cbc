"""HMC, NUTS, ChEES and SNAPER over whole Bayesian networks (`jdlayers.mcmc`).

Two tiers:

* `sample(model, x, y, ...)` runs warm-up and sampling for many chains at
  once, compiled with XLA, and returns an `MCMCResult` (callable posterior
  networks, `predict`, `diagnostics`, `to_arviz`).
* The pieces it is built from, for users who drive `tfp.mcmc` themselves:
  `model.posterior(x, y)` (target `log_prob` over flat state parts,
  `bijectors`, `init`), `make_kernel`, `trace`, and the `Sampler` that runs a
  kernel in chunks.

Runs are durable: `sample(..., checkpoint=path, resume=True)` checkpoints and
resumes bit-identically, `MCMCResult.save(path)` and `load_result(path)` keep
results in a pickle-free file.
"""

from __future__ import annotations

import numbers
from typing import Callable, Optional, Sequence, Union

from jdlayers import _validate
from jdlayers.inference import _distribute, _kernels, _sharded
from jdlayers.inference._checkpoint import CheckpointWriteError
from jdlayers.inference._kernels import (ADAPTATIONS, KERNELS, Trace,
                                         make_kernel, trace)
from jdlayers.inference._predictive import Predictive
from jdlayers.inference._result import Diagnostics, MCMCResult, load_result
from jdlayers.inference._sampler import Sampler
from jdlayers.models._model import Model

__all__ = [
    "ADAPTATIONS", "CheckpointWriteError", "Diagnostics", "KERNELS",
    "MCMCResult", "Predictive", "Sampler", "Trace", "load_result",
    "make_kernel", "sample", "trace",
]


def sample(model, x, y, *, num_chains: int = 4, num_results: int = 1000,
           num_burnin_steps: int = 1000, kernel: str = "chees",
           step_size: Optional[float] = None, num_leapfrog_steps: int = 20,
           max_tree_depth: int = 10, max_leapfrog_steps: int = 1000,
           target_accept_prob: Optional[float] = None,
           adaptation: str = "auto", step_size_jitter: float = 0.1,
           init: Union[str, Sequence] = "shrunk",
           init_scale: float = 0.1, seed=None, jit_compile: bool = True,
           chunk_size: Optional[int] = None, checkpoint=None,
           checkpoint_every: Optional[int] = None, resume: bool = False,
           progress: Union[bool, Callable] = True,
           callback: Optional[Callable] = None, strategy=None,
           shard: str = "data") -> MCMCResult:
  """Samples the posterior of `model` given `(x, y)` with HMC-family kernels.

  All chains run at once through the layers' sample dim. Warm-up adapts the
  step size by dual averaging and, for "nuts" and "hmc" by default ("auto"
  with at least 100 warm-up steps), a diagonal mass matrix in Stan's
  windows; "chees" and "snaper" learn the trajectory length from all chains
  at once (SNAPER also a diagonal preconditioner). Divergent transitions are
  reported in the diagnostics, never raised.

  The compiled sampling loop takes the data and the seed as arguments and is
  kept on the model: a second call with data of the same shapes and the same
  settings reuses it (no tracing, no XLA compilation), which makes SBC,
  cross-validation and refits cheap.

  Args:
    model: A `jdlayers.models.Model`.
    x: `[N, *features]` inputs.
    y: `[N, *obs]` observations.
    num_chains: Chains `C` (>= 1; >= 2 for "chees" and "snaper", which are
      built for many: 16 to 128).
    num_results: Draws kept per chain (>= 1).
    num_burnin_steps: Warm-up steps (>= 0), discarded.
    kernel: "chees" (ChEES-HMC, Hoffman et al. 2021; the default, which
      measured best: see the README's benchmarks), "snaper" (SNAPER-HMC,
      Sountsov & Hoffman 2021), "nuts" (No-U-Turn) or "hmc" (fixed
      trajectory). "chees" and "snaper" tune one jittered trajectory length
      for all chains in lockstep, so no chain waits for another's tree; they
      need `num_chains >= 2` (use "nuts" for a single chain).
    step_size: Initial step size (default `0.5 * d ** -0.25`, `d` = number of
      parameters).
    num_leapfrog_steps: Leapfrog steps per HMC proposal.
    max_tree_depth: Maximum NUTS tree depth.
    max_leapfrog_steps: Most leapfrog steps per "chees"/"snaper" transition.
    target_accept_prob: Acceptance target of step size adaptation (default
      0.8 for NUTS, 0.75 for the others; for "chees"/"snaper" it is the
      harmonic mean over chains).
    adaptation: "auto", "windowed", "step_size" or "none" ("chees" and
      "snaper" refuse "windowed"; their "auto" is "step_size").
    step_size_jitter: HMC draws each step's step size from
      `adapted * U(1 - jitter, 1 + jitter)`, which avoids resonant,
      non-ergodic trajectories; 0 turns it off. NUTS ignores it.
    init: "shrunk" (prior draws scaled by `init_scale` in unconstrained
      space), "prior", or a list of parts `[C, ...]`.
    init_scale: Shrink factor for `init="shrunk"`.
    seed: Stateless seed (int or pair); the same seed gives bit-identical
      draws.
    jit_compile: Compile the sampling loop with XLA (default True).
    chunk_size: Steps per compiled call; progress is shown per chunk.
    checkpoint: Path of a checkpoint file. Every `checkpoint_every` steps
      (and at the end) the whole sampler state is written there atomically:
      chain states, kernel results (adapted step size and mass matrix
      included), the step counter and a fingerprint of the settings and
      data; the draws and traces since the previous checkpoint go into a new
      segment file next to it, `<checkpoint>.<run id>.<start>-<stop>
      .seg.jdl.npz`, so each write is as small as the steps it adds. Keep
      the segments with the checkpoint.
    checkpoint_every: Steps between checkpoints (default: every chunk).
    resume: Continue from `checkpoint` if it exists (the fingerprint must
      match; `seed=None` takes the checkpoint's seed), else start afresh. The
      resumed run's draws equal an uninterrupted run's bit for bit. Without
      `resume`, an existing `checkpoint` file raises `FileExistsError`.
    progress: True prints a line per chunk to stderr; False is quiet; a
      callable gets a dict per chunk.
    callback: `callback(partial_result)` after each chunk with draws.
    strategy: A `tf.distribute.Strategy` (`MirroredStrategy` over one
      host's devices, `MultiWorkerMirroredStrategy` over hosts from
      `TF_CONFIG`, ...) over which each step's log density and gradient are
      evaluated; the chain state, adaptation and checkpoints stay as
      without one. Same seed, same draws as one device up to the order of
      floating-point sums, and bit-identical across reruns.
    shard: Under a `strategy`: "data" (default) splits `x`, `y` along `N`
      over the replicas (N need not divide: the remainder is padded and
      masked, never dropped); each replica computes its shard's
      log-likelihood and gradient, their sum plus the prior once is the
      target. "chains" gives each replica `num_chains / replicas` chains on
      the full data, for many chains and little data.

  Returns:
    An `MCMCResult` with states `[num_results, num_chains, ...]`. If the run
    is interrupted (Ctrl-C), the draws made so far are returned with
    `result.complete == False` and a warning; the checkpoint, if any, holds
    the last multiple of `checkpoint_every`.

  Raises:
    TypeError, ValueError: For invalid data or settings, before sampling
      (every setting that cannot work is refused: a step size <= 0 or NaN,
      `num_leapfrog_steps` or `max_tree_depth` < 1, `target_accept_prob`
      outside (0, 1), a `strategy` whose devices this host lacks, fewer
      examples than replicas, `num_chains` not a multiple of the replicas
      with shard="chains", ...), or a `checkpoint` written by a run with
      other settings or data.
    FileExistsError: If `checkpoint` exists and `resume` is False.
    jdlayers.io.FileFormatError: For a corrupted or invalid checkpoint.
    CheckpointWriteError: (an `OSError`) if a checkpoint write fails (full
      disk, permissions): the run stops as on Ctrl-C, the error names the
      file and the cause, `err.partial_result` holds the draws so far, and
      the checkpoint on disk keeps its last good step for `resume=True`.

  #### Example

  ```python
  import jdlayers as jdl, numpy as np
  x = np.linspace(-2, 2, 50, dtype=np.float32)[:, None]
  y = np.sin(3 * x) + 0.1 * np.random.default_rng(0).normal(size=x.shape)
  net = jdl.Sequential(jdl.Affine(16, 1, activation="tanh"), jdl.Affine(1, 16))
  model = jdl.models.Model(net, jdl.models.Normal(scale=0.1))
  result = jdl.mcmc.sample(model, x, y.astype(np.float32), num_chains=4,
                           num_results=200, num_burnin_steps=200, seed=0)
  print(result.diagnostics())
  band = result.predict(x).interval(0.9)
  # Durable: rerunning this line after a crash continues where it stopped.
  result = jdl.mcmc.sample(model, x, y.astype(np.float32), seed=0,
                           checkpoint="run.ckpt.jdl.npz", checkpoint_every=100,
                           resume=True)
  result.save("run.jdl.npz")
  ```
  """
  _check_run_settings(
      model, kernel=kernel, num_burnin_steps=num_burnin_steps,
      num_chains=num_chains, step_size=step_size,
      num_leapfrog_steps=num_leapfrog_steps, max_tree_depth=max_tree_depth,
      max_leapfrog_steps=max_leapfrog_steps,
      target_accept_prob=target_accept_prob,
      adaptation=adaptation, step_size_jitter=step_size_jitter, init=init,
      init_scale=init_scale, seed=seed, jit_compile=jit_compile,
      progress=progress, callback=callback)
  _distribute.check_strategy(strategy, "mcmc.sample")
  _distribute.check_arrays(x=x, y=y, where="mcmc.sample")
  if isinstance(num_chains, numbers.Integral):
    _sharded.check_mode(shard, num_chains, strategy, "mcmc.sample")
  posterior = model.posterior(x, y)
  sampler = Sampler(
      posterior, num_chains=num_chains, num_results=num_results,
      num_burnin_steps=num_burnin_steps, kernel=kernel, init=init,
      init_scale=init_scale, seed=seed, jit_compile=jit_compile,
      chunk_size=chunk_size, checkpoint=checkpoint,
      checkpoint_every=checkpoint_every, resume=resume, step_size=step_size,
      num_leapfrog_steps=num_leapfrog_steps, max_tree_depth=max_tree_depth,
      target_accept_prob=target_accept_prob, adaptation=adaptation,
      step_size_jitter=step_size_jitter,
      max_leapfrog_steps=max_leapfrog_steps, strategy=strategy, shard=shard)
  try:
    sampler.run(progress=progress, callback=callback)
  except KeyboardInterrupt:
    import warnings  # pylint: disable=g-import-not-at-top
    result = sampler.result()
    note = ""
    if sampler.checkpoint_step is not None:
      note = (f" The checkpoint {sampler.checkpoint!r} holds step "
              f"{sampler.checkpoint_step} of {sampler.total_steps}; pass "
              "resume=True to continue from there.")
    warnings.warn(f"mcmc.sample interrupted: returning {result.num_draws} of "
                  f"{num_results} draws (result.complete is False).{note}")
    return result
  return sampler.result()


def _check_run_settings(model, *, num_burnin_steps, num_chains, init,
                        init_scale, seed, jit_compile, progress, callback,
                        **kernel_settings):
  """Checks `sample`'s settings before the data is touched or anything is
  compiled (counts and checkpoints are checked by `Sampler`)."""
  where = "mcmc.sample"
  if not isinstance(model, Model):
    raise TypeError(f"{where}: `model` must be a jdlayers.models.Model; got "
                    f"{type(model).__name__}. Wrap the network: "
                    "jdl.models.Model(net, jdl.models.Normal(scale=...)).")
  counts = ((num_burnin_steps, 0), (num_chains, 1))
  if any(isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < low
         for n, low in counts):
    return  # `Sampler` reports it, with the other counts
  _kernels.check_settings(num_adaptation_steps=num_burnin_steps, where=where,
                          num_chains=num_chains, **kernel_settings)
  _kernels.check_start(init=init, init_scale=init_scale, seed=seed,
                       jit_compile=jit_compile, where=where)
  _validate.callable_or_flag(progress, "progress", where)
  _validate.optional_callable(callback, "callback", where)
