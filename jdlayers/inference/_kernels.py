"""Pure MCMC building blocks: the transition kernel and the per-step trace.

`make_kernel` assembles a `tfp.mcmc` kernel for a target over flat state parts:
HMC or NUTS, with dual-averaging step size adaptation and (by default)
Stan-style windowed diagonal mass-matrix adaptation, or the many-chain
kernels ChEES-HMC and SNAPER-HMC (`_cross_chain`), inside a
`TransformedTransitionKernel` when any part is constrained. `trace` reads the
per-step statistics from that kernel's results as a flat `Trace`.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Sequence

import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.mcmc import (
    dual_averaging_step_size_adaptation as _dassa)

from jdlayers import _validate
from jdlayers.inference import _cross_chain, _windowed
from jdlayers.models._posterior import INIT_METHODS

tfb = tfp.bijectors

KERNELS = ("nuts", "hmc") + _cross_chain.KERNELS
ADAPTATIONS = ("auto", "windowed", "step_size", "none")
# Windowed adaptation needs room for its five windows (Stan's minimum is 150).
MIN_WINDOWED_STEPS = 100
# Stan's definition: a transition whose energy error exceeds this diverged.
DIVERGENCE_ENERGY = 1000.


class Trace(NamedTuple):
  """Per-step statistics, each `[steps, chains]` (`PER_STEP` ones `[steps]`).

  `trajectory_length` is the integration time in effect: the learned
  (maximum, before jitter) length of "chees" and "snaper", `step_size *
  num_leapfrog_steps` of "hmc", and the chains' mean `step_size * leapfrogs`
  of "nuts".
  """
  target_log_prob: tf.Tensor
  log_accept_ratio: tf.Tensor
  is_accepted: tf.Tensor
  has_divergence: tf.Tensor
  num_leapfrog_steps: tf.Tensor
  step_size: tf.Tensor
  trajectory_length: tf.Tensor


# Trace fields with one value per step, shared by all chains.
PER_STEP = ("step_size", "trajectory_length")
# The fields files written before `trajectory_length` hold; readers fill the
# missing ones with NaN (never refuse a file we wrote).
LEGACY_TRACE_FIELDS = Trace._fields[:-1]


def trace_fields(meta) -> tuple:
  """The `Trace` fields a file holds: its `trace_fields`, else the legacy."""
  return tuple(meta.get("trace_fields", LEGACY_TRACE_FIELDS))


def resolve_adaptation(adaptation: str, num_adaptation_steps: int,
                       kernel: str = "nuts") -> str:
  """Maps "auto" to "windowed" when warm-up is long enough, else "step_size".

  For "chees" and "snaper", "auto" is "step_size": their trajectory (and
  SNAPER's preconditioner) adapt across chains on every warm-up step.
  """
  if kernel in _cross_chain.KERNELS:
    return _cross_chain.resolve_adaptation(adaptation, num_adaptation_steps)
  if adaptation == "windowed" and num_adaptation_steps < MIN_WINDOWED_STEPS:
    # Shorter warm-ups give one-draw slow windows, a zero variance estimate
    # and a step size that collapses to 0 (every transition diverges).
    raise ValueError(
        f"adaptation='windowed' needs num_burnin_steps >= "
        f"{MIN_WINDOWED_STEPS}; got {num_adaptation_steps}. Use "
        "adaptation='step_size' (or 'auto') for short warm-ups.")
  if adaptation != "auto":
    return adaptation if num_adaptation_steps > 0 else "none"
  if num_adaptation_steps >= MIN_WINDOWED_STEPS:
    return "windowed"
  return "step_size" if num_adaptation_steps > 0 else "none"


# NUTS doubles its trajectory up to 2**max_tree_depth leapfrog steps; past 30
# the count overflows TFP's int32 bookkeeping (and no run could finish).
MAX_TREE_DEPTH = 30


def check_settings(*, kernel="nuts", num_adaptation_steps=0, step_size=None,
                   num_leapfrog_steps=20, max_tree_depth=10,
                   target_accept_prob=None, adaptation="auto",
                   step_size_jitter=0.1, max_leapfrog_steps=1000,
                   num_chains=None, where: str = "make_kernel") -> dict:
  """Checks every kernel setting once, where it enters (`make_kernel`).

  Settings that cannot work used to run anyway: `step_size=-0.1` or
  `num_leapfrog_steps=0` froze the chains with healthy-looking acceptance,
  `target_accept_prob=1.5` drove the step size to 0, and
  `max_tree_depth=0` failed deep inside TFP. The cross-chain kernels
  ("chees", "snaper") also need `num_chains >= 2` (when given).

  Returns:
    The settings, normalised (ints and floats).

  Raises:
    TypeError: For a setting of the wrong kind (a string step size, ...).
    ValueError: For a negative, zero, NaN or out-of-range setting, or an
      unknown kernel or adaptation name.
  """
  _validate.choice(kernel, KERNELS, "kernel", where)
  _validate.choice(adaptation, ADAPTATIONS, "adaptation", where)
  out = dict(kernel=kernel, adaptation=adaptation)
  out["num_adaptation_steps"] = _validate.count(
      num_adaptation_steps,
      "num_adaptation_steps" if where == "make_kernel" else "num_burnin_steps",
      where, minimum=0)
  if step_size is not None:
    _validate.positive_values(step_size, "step_size", where)
  out["step_size"] = step_size
  out["num_leapfrog_steps"] = _validate.count(
      num_leapfrog_steps, "num_leapfrog_steps", where, minimum=1)
  out["max_tree_depth"] = _validate.count(
      max_tree_depth, "max_tree_depth", where, minimum=1,
      maximum=MAX_TREE_DEPTH)
  if target_accept_prob is not None:
    target_accept_prob = _validate.probability(
        target_accept_prob, "target_accept_prob", where)
  out["target_accept_prob"] = target_accept_prob
  out["step_size_jitter"] = _validate.real(
      step_size_jitter, "step_size_jitter", where, low=0., high=1.,
      high_open=True)
  out["max_leapfrog_steps"] = _validate.count(
      max_leapfrog_steps, "max_leapfrog_steps", where, minimum=1)
  _cross_chain.check_adaptation(kernel, adaptation, where)
  if num_chains is not None:
    _cross_chain.check_chains(kernel, num_chains, where)
  return out


def check_start(*, init, init_scale, seed, jit_compile, where: str) -> None:
  """Checks how a run starts: `init`, `init_scale`, `seed`, `jit_compile`.

  Raises:
    TypeError: For a seed, flag or `init` of the wrong kind.
    ValueError: For an unknown init method or a negative or NaN
      `init_scale`.
  """
  if isinstance(init, str):
    _validate.choice(init, INIT_METHODS, "init", where)
  elif not isinstance(init, (list, tuple)):
    raise TypeError(f"{where}: `init` must be one of {list(INIT_METHODS)} or "
                    f"a list of initial parts [C, ...]; got "
                    f"{type(init).__name__}.")
  _validate.real(init_scale, "init_scale", where, low=0.)
  _validate.seed(seed, where)
  _validate.boolean(jit_compile, "jit_compile", where)


def default_step_size(init_state: Sequence[tf.Tensor], num_chains: int):
  """`0.5 * d ** -0.25` for `d` parameters per chain (TFP's windowed rule)."""
  d = sum(int(p.shape.num_elements()) for p in init_state) // num_chains
  return 0.5 * max(d, 1) ** -0.25


def make_kernel(target_log_prob_fn: Callable, bijectors: Sequence[tfb.Bijector],
                init_state: Sequence[tf.Tensor], *, kernel: str = "nuts",
                num_adaptation_steps: int = 1000, step_size=None,
                num_leapfrog_steps: int = 20, max_tree_depth: int = 10,
                target_accept_prob: Optional[float] = None,
                adaptation: str = "auto", step_size_jitter: float = 0.1,
                max_leapfrog_steps: int = 1000):
  """Builds the transition kernel `jdlayers.mcmc.sample` uses.

  Args:
    target_log_prob_fn: `(*parts) -> [C]` unnormalized log density, e.g.
      `posterior.log_prob`.
    bijectors: One bijector per part, unconstrained -> support.
    init_state: Initial parts `[C, ...]` (in the constrained space); they fix
      the shapes of the mass matrix.
    kernel: "nuts", "hmc", "chees" (ChEES-HMC) or "snaper" (SNAPER-HMC);
      the last two learn the trajectory length across chains (see
      `_cross_chain`) and need at least 2 chains.
    num_adaptation_steps: Warm-up steps during which step size (and mass
      matrix, trajectory length) adapt.
    step_size: Initial step size; default `0.5 * d ** -0.25`.
    num_leapfrog_steps: Leapfrog steps per HMC proposal ("chees" and
      "snaper" start from one and learn the length).
    max_tree_depth: Maximum NUTS tree depth.
    target_accept_prob: Dual-averaging target (default 0.8 NUTS, 0.75 HMC,
      ChEES and SNAPER; theirs is the chains' harmonic-mean acceptance).
    adaptation: "windowed" (step size + diagonal mass matrix, Stan's windows),
      "step_size" (dual averaging only), "none", or "auto" (windowed when
      `num_adaptation_steps >= 100`; "step_size" for "chees" and "snaper").
      "chees" and "snaper" refuse "windowed" (SNAPER adapts its own
      preconditioner).
    step_size_jitter: HMC only: each step's step size is the adapted one
      times `U(1 - jitter, 1 + jitter)`, which avoids resonant trajectories
      (see `JitteredStepSize`); 0 turns it off. ChEES and SNAPER jitter the
      trajectory length instead.
    max_leapfrog_steps: ChEES/SNAPER: most leapfrog steps per transition.

  Returns:
    A `tfp.mcmc.TransitionKernel` over the (constrained) parts.

  Raises:
    TypeError, ValueError: For a setting that cannot work (see
      `check_settings`), or a bijector count that differs from the parts'.
  """
  settings = check_settings(
      kernel=kernel, num_adaptation_steps=num_adaptation_steps,
      step_size=step_size, num_leapfrog_steps=num_leapfrog_steps,
      max_tree_depth=max_tree_depth, target_accept_prob=target_accept_prob,
      adaptation=adaptation, step_size_jitter=step_size_jitter,
      max_leapfrog_steps=max_leapfrog_steps)
  if not callable(target_log_prob_fn):
    raise TypeError(f"make_kernel: `target_log_prob_fn` must be callable; got "
                    f"{target_log_prob_fn!r}.")
  init_state, bijectors = list(init_state), list(bijectors)
  if not init_state or len(bijectors) != len(init_state):
    raise ValueError(f"make_kernel: needs one bijector per state part; got "
                     f"{len(bijectors)} bijectors for {len(init_state)} parts.")
  step_size_jitter = settings["step_size_jitter"]
  adaptation = resolve_adaptation(adaptation, num_adaptation_steps, kernel)
  num_chains = int(init_state[0].shape[0])
  _cross_chain.check_chains(kernel, num_chains, "make_kernel")
  dtype = init_state[0].dtype
  if step_size is None:
    step_size = default_step_size(init_state, num_chains)
  step_size = tf.constant(step_size, dtype)
  if target_accept_prob is None:
    target_accept_prob = 0.8 if kernel == "nuts" else 0.75
  if kernel in _cross_chain.KERNELS:
    inner = _cross_chain.make(
        target_log_prob_fn, init_state, kernel=kernel, adaptation=adaptation,
        num_adaptation_steps=num_adaptation_steps, step_size=step_size,
        max_leapfrog_steps=max_leapfrog_steps,
        target_accept_prob=target_accept_prob)
    return _transformed(inner, bijectors)
  proposal = dict(target_log_prob_fn=target_log_prob_fn, step_size=step_size)
  if kernel == "hmc":
    proposal["num_leapfrog_steps"] = int(num_leapfrog_steps)
  else:
    proposal["max_tree_depth"] = int(max_tree_depth)

  windowed = adaptation == "windowed"
  if windowed:
    proposal["momentum_distribution"] = _windowed.momentum(init_state,
                                                           num_chains)
    base = {"hmc": tfp.experimental.mcmc.PreconditionedHamiltonianMonteCarlo,
            "nuts": _windowed.PreconditionedNoUTurnSampler}[kernel]
    inner = base(**proposal)
  elif kernel == "hmc":
    # Stores the step size in the results, where `trace` reads it.
    inner = tfp.mcmc.HamiltonianMonteCarlo(**proposal,
                                           store_parameters_in_results=True)
  else:
    inner = tfp.mcmc.NoUTurnSampler(**proposal)
  if kernel == "hmc" and step_size_jitter:
    inner = JitteredStepSize(inner, float(step_size_jitter))
  if adaptation != "none":
    inner = tfp.mcmc.DualAveragingStepSizeAdaptation(
        inner, num_adaptation_steps=int(num_adaptation_steps),
        target_accept_prob=tf.constant(target_accept_prob, dtype))
  if windowed:
    inner = _windowed.windowed(inner, int(num_adaptation_steps), init_state)
  return _transformed(inner, bijectors)


def _transformed(inner, bijectors):
  """`inner` in a `TransformedTransitionKernel` unless every part is free.

  TTK swaps the innermost target for the unconstrained one (with the
  log-det-Jacobian), so the adapted mass matrix and trajectory length live
  in unconstrained space.
  """
  if all(isinstance(b, tfb.Identity) for b in bijectors):
    return inner
  return tfp.mcmc.TransformedTransitionKernel(inner, list(bijectors))


class JitteredStepSizeResults(NamedTuple):
  inner_results: object


class JitteredStepSize(tfp.mcmc.TransitionKernel):
  """Scales HMC's step size by `U(1 - jitter, 1 + jitter)` on every step.

  A fixed trajectory length can be resonant: on a Gaussian direction where
  `num_leapfrog_steps * step_size` is half a period, HMC maps `x -> -x` and
  never changes `|x|` (non-ergodic; we hit it in the Bayesian linear
  regression test once the mass matrix was adapted). Drawing the step size
  afresh each step, independently of the state, keeps detailed balance and
  breaks the resonance (Neal 2011, section 5.4.2.2). Step size adaptation
  sees the un-jittered value.
  """

  def __init__(self, inner_kernel, jitter: float, name=None):
    self._parameters = dict(inner_kernel=inner_kernel, jitter=jitter,
                            name=name)

  @property
  def parameters(self):
    return self._parameters

  @property
  def inner_kernel(self):
    return self._parameters["inner_kernel"]

  @property
  def is_calibrated(self):
    return self.inner_kernel.is_calibrated

  def one_step(self, current_state, previous_kernel_results, seed=None):
    jitter_seed, step_seed = tfp.random.split_seed(seed)
    prev = previous_kernel_results.inner_results
    base = _dassa.hmc_like_step_size_getter_fn(prev)
    j = self._parameters["jitter"]
    dtype = tf.nest.flatten(base)[0].dtype
    u = tf.random.stateless_uniform([], jitter_seed, 1. - j, 1. + j, dtype)
    prev = _dassa.hmc_like_step_size_setter_fn(
        prev, tf.nest.map_structure(lambda s: s * u, base))
    state, results = self.inner_kernel.one_step(current_state, prev,
                                                seed=step_seed)
    results = _dassa.hmc_like_step_size_setter_fn(results, base)
    return state, JitteredStepSizeResults(results)

  def bootstrap_results(self, init_state):
    return JitteredStepSizeResults(
        self.inner_kernel.bootstrap_results(init_state))


def _find(results, attr: str):
  while results is not None:
    if hasattr(results, attr):
      return getattr(results, attr)
    results = getattr(results, "inner_results", None)
  return None


def trace(kernel_results, num_leapfrog_steps: int = 0) -> Trace:
  """Per-step statistics from any kernel `make_kernel` builds.

  Args:
    kernel_results: The kernel's results after a step.
    num_leapfrog_steps: HMC's fixed leapfrog count (NUTS reports its own).

  Returns:
    A `Trace` of `[C]` tensors (`step_size` scalar).
  """
  lar = _find(kernel_results, "log_accept_ratio")
  accepted = _find(kernel_results, "is_accepted")
  tlp = _find(kernel_results, "target_log_prob")
  if tlp is None:
    tlp = _find(_find(kernel_results, "accepted_results"), "target_log_prob")
  step = _find(kernel_results, "new_step_size")
  if step is None:
    step = _find(kernel_results, "step_size")
  if step is None:
    step = _find(_find(kernel_results, "accepted_results"), "step_size")
  if isinstance(step, (list, tuple)):
    step = step[0]
  step = tf.reshape(tf.convert_to_tensor(step), [-1])[0]
  div = _find(kernel_results, "has_divergence")
  if div is None:  # HMC: Stan's energy-error rule.
    div = ~(lar > -DIVERGENCE_ENERGY)
  step = tf.cast(step, lar.dtype)
  leap = _find(kernel_results, "leapfrogs_taken")  # NUTS
  # ChEES/SNAPER: the length sampling uses once warm-up ends (during
  # warm-up, the running average of the learnt one).
  length = _find(kernel_results, "averaged_max_trajectory_length")
  if leap is None:
    # ChEES/SNAPER set each step's count in the HMC results.
    leap = _find(_find(kernel_results, "accepted_results"),
                 "num_leapfrog_steps")
  if leap is None:
    leap = tf.constant(num_leapfrog_steps, tf.int32)
  leap = tf.broadcast_to(tf.cast(leap, tf.int32), tf.shape(lar))
  if length is None:  # HMC: the nominal length; NUTS: the chains' mean
    length = step * tf.reduce_mean(tf.cast(leap, lar.dtype))
  return Trace(target_log_prob=tlp, log_accept_ratio=lar,
               is_accepted=accepted, has_divergence=div,
               num_leapfrog_steps=leap, step_size=step,
               trajectory_length=tf.cast(length, lar.dtype))

