"""Many-chain HMC that tunes its trajectory across chains: ChEES and SNAPER.

Both kernels run HMC with one step size and one trajectory length shared by
all chains, and learn the trajectory length during warm-up by stochastic
gradient ascent on a criterion estimated from all chains at once; each step's
length is jittered (a Halton sequence over `(0, learned]`), which avoids
resonances. All chains take the same number of leapfrog steps, so no chain
waits for another (unlike batched NUTS, where the deepest tree sets the pace).

* "chees": ChEES-HMC (Hoffman, Radul & Sountsov 2021): the criterion is the
  change in the estimator of the expected square, `tfp.experimental.mcmc.
  GradientBasedTrajectoryLengthAdaptation` with `chees_criterion` around
  `HamiltonianMonteCarlo` (identity mass matrix).
* "snaper": SNAPER-HMC (Sountsov & Hoffman 2021), `tfp.experimental.mcmc.
  SNAPERHamiltonianMonteCarlo`: a diagonal preconditioner from the
  chains' running (cross-chain) variance and a criterion along their
  principal component, the direction that mixes slowest.

The step size is adapted by dual averaging towards the acceptance target of
the chains' harmonic-mean acceptance (TFP's choice for these kernels: one
stuck chain pulls the step size down). Both need at least two chains.
"""

from __future__ import annotations

from typing import Callable, Sequence

import tensorflow as tf
import tensorflow_probability as tfp

KERNELS = ("chees", "snaper")
MIN_CHAINS = 2
# SNAPER starts as MALA (one leapfrog step) for stability; TFP's default is
# 100 steps, which would be all of a short warm-up.
MALA_FRACTION, MAX_MALA_STEPS = 0.1, 100


def check_chains(kernel: str, num_chains: int, where: str) -> None:
  """Refuses fewer than two chains for a cross-chain kernel.

  Raises:
    ValueError: If `kernel` is "chees" or "snaper" and `num_chains < 2`.
  """
  if kernel in KERNELS and num_chains < MIN_CHAINS:
    raise ValueError(
        f"{where}: kernel={kernel!r} needs num_chains >= {MIN_CHAINS} (its "
        f"trajectory-length criterion is estimated across chains); got "
        f"num_chains={num_chains}. Use 16 or more chains, or kernel='nuts' "
        "for a single chain.")


def check_adaptation(kernel: str, adaptation: str, where: str) -> None:
  """Refuses Stan's windowed adaptation for the cross-chain kernels.

  Its window boundaries restart the step size while the trajectory length
  keeps adapting: measured on a 1-16-1 MLP, ChEES under windows learned a
  trajectory of one leapfrog step. SNAPER learns its own diagonal
  preconditioner from all chains instead.

  Raises:
    ValueError: For kernel "chees" or "snaper" with adaptation "windowed".
  """
  if kernel in KERNELS and adaptation == "windowed":
    raise ValueError(
        f"{where}: kernel={kernel!r} cannot use adaptation='windowed' "
        "(Stan's mass-matrix windows restart the step size under the "
        "trajectory-length adaptation). Use adaptation='auto' (step size by "
        "dual averaging; kernel='snaper' also learns a diagonal "
        "preconditioner across chains).")


def resolve_adaptation(adaptation: str, num_adaptation_steps: int) -> str:
  """"auto" -> "step_size" (dual averaging); no warm-up -> "none"."""
  if num_adaptation_steps <= 0:
    return "none"
  return "step_size" if adaptation == "auto" else adaptation


def make(target_log_prob_fn: Callable, init_state: Sequence[tf.Tensor], *,
         kernel: str, adaptation: str, num_adaptation_steps: int,
         step_size: tf.Tensor, max_leapfrog_steps: int,
         target_accept_prob: float):
  """The untransformed ChEES or SNAPER kernel with step size adaptation.

  Args:
    target_log_prob_fn: `(*parts) -> [C]` unnormalized log density.
    init_state: Parts `[C, ...]` (shapes and dtype only).
    kernel: "chees" or "snaper".
    adaptation: Resolved: "step_size" or "none".
    num_adaptation_steps: Warm-up steps during which the trajectory length,
      the step size and the preconditioner adapt.
    step_size: Scalar initial step size.
    max_leapfrog_steps: Upper bound on leapfrog steps per transition.
    target_accept_prob: Dual-averaging target of the harmonic-mean
      acceptance.

  Returns:
    A `tfp.mcmc.TransitionKernel` (place a `TransformedTransitionKernel`
    outside it: the trajectory adaptation must see the unconstrained space).
  """
  n = int(num_adaptation_steps)
  if kernel == "snaper":
    inner = tfp.experimental.mcmc.SNAPERHamiltonianMonteCarlo(
        target_log_prob_fn, step_size, num_adaptation_steps=n,
        num_mala_steps=min(MAX_MALA_STEPS, int(MALA_FRACTION * n)),
        max_leapfrog_steps=int(max_leapfrog_steps))
  else:
    hmc = tfp.mcmc.HamiltonianMonteCarlo(target_log_prob_fn, step_size,
                                         num_leapfrog_steps=1)
    inner = tfp.experimental.mcmc.GradientBasedTrajectoryLengthAdaptation(
        hmc, num_adaptation_steps=n,
        max_leapfrog_steps=int(max_leapfrog_steps))
  if adaptation == "none":
    return inner
  dtype = init_state[0].dtype
  inner = tfp.mcmc.DualAveragingStepSizeAdaptation(
      inner, num_adaptation_steps=n,
      target_accept_prob=tf.constant(target_accept_prob, dtype),
      reduce_fn=tfp.math.reduce_log_harmonic_mean_exp)
  return inner
