"""Refuses to sample from a start where the log density is not finite.

From such a state HMC and NUTS reject every proposal: the run "succeeds",
returning the initial values as every draw (all divergent, step size driven
to 0). `check` reads the log density and its gradient that the kernel's
`bootstrap_results` already computed for every chain (so the normal path
costs nothing extra) and, only when one is not finite, evaluates the terms
separately to say which prior or the likelihood is at fault and why.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np
import tensorflow as tf

from jdlayers.inference import _kernels

# |values| above this in x or y overflow float32 squares (1e38 ~ (1.8e19)^2)
# or swamp every prior; named as the likely cause.
_HUGE = 1e6


def check(posterior, state: Sequence[tf.Tensor], kernel_results) -> None:
  """Raises `ValueError` unless the density and gradient are finite.

  Args:
    posterior: The `Posterior` sampled.
    state: Initial parts, each `[C, ...]`.
    kernel_results: The kernel's `bootstrap_results(state)`.

  Raises:
    ValueError: Naming the chains, the non-finite term(s) and gradient
      part(s), and the likely cause (data scale, NaN in data, init).
  """
  lp, grads = _density_and_grads(kernel_results)
  if lp is None:  # not a kernel `make_kernel` builds: nothing to read
    return
  bad_lp = ~np.isfinite(np.asarray(lp)).reshape(-1)
  bad_grad = [~np.isfinite(np.asarray(g)).reshape(len(bad_lp), -1).any(1)
              if g is not None else np.zeros_like(bad_lp) for g in grads]
  chains = bad_lp | np.any(bad_grad, axis=0) if grads else bad_lp
  if not chains.any():
    return
  names = posterior.part_names
  problems = []
  if bad_lp.any():
    terms = ", ".join(f"{name} {_values(v, bad_lp)}"
                      for name, v in _terms(posterior, state)
                      if not np.isfinite(v[bad_lp]).all())
    problems.append(f"the log density is {_values(lp, bad_lp)}"
                    + (f" ({terms})" if terms else ""))
  grad_parts = [f"{names[i]!r} (chains {_chains(b)})"
                for i, b in enumerate(bad_grad) if b.any()]
  if grad_parts:
    problems.append("its gradient is not finite for part"
                    f"{'s' if len(grad_parts) > 1 else ''} "
                    + ", ".join(grad_parts))
  raise ValueError(
      f"mcmc: cannot sample from this initial state: in chains "
      f"{_chains(chains)} (of {len(chains)}) " + "; ".join(problems)
      + f". Likely cause: {_cause(posterior, state)}. From such a state every "
      "proposal is rejected and each draw would be the initial value.")


def _density_and_grads(kernel_results) -> Tuple[tf.Tensor, List]:
  """The target's value `[C]` and gradient parts in the bootstrap results."""
  find = _kernels._find  # pylint: disable=protected-access
  lp = find(kernel_results, "target_log_prob")
  grads = find(kernel_results, "grads_target_log_prob")
  if lp is None:  # HMC: inside the Metropolis-Hastings results
    accepted = find(kernel_results, "accepted_results")
    lp = find(accepted, "target_log_prob")
    grads = find(accepted, "grads_target_log_prob")
  return lp, list(grads or [])


def _terms(posterior, state) -> List[Tuple[str, np.ndarray]]:
  """`(description, [C] values)` of each prior term and the likelihood."""
  network, latents = posterior.unpack(state)
  out = []
  prior = posterior.model.network
  try:
    leaves = [np.asarray(v) for v in
              tf.nest.flatten(prior.log_prob_parts(network))]
  except (AttributeError, NotImplementedError, TypeError, ValueError):
    leaves = []
  k = len(tf.nest.flatten(network))
  net_names = posterior.part_names[:k]
  layers = list(dict.fromkeys(n.rpartition("/")[0] for n in net_names))
  if len(leaves) == k:
    out += [(f"prior of {n!r}", v) for n, v in zip(net_names, leaves)]
  elif leaves and len(leaves) == len(layers):
    out += [(f"prior of layer {n!r}", v) for n, v in zip(layers, leaves)]
  else:
    out.append(("prior of the network", np.asarray(prior.log_prob(network))))
  for name, dist in posterior.model.likelihood.latents.items():
    out.append((f"prior of {name!r}", np.asarray(dist.log_prob(latents[name]))))
  out.append(("likelihood", np.asarray(posterior.log_likelihood(*state))))
  return [(n, np.broadcast_to(v, (int(state[0].shape[0]),))) for n, v in out]


def _cause(posterior, state) -> str:
  causes = []
  for what, a in (("x", posterior.x), ("y", posterior.y)):
    a = np.asarray(a, np.float64)
    nonfinite = int((~np.isfinite(a)).sum())
    if nonfinite:
      causes.append(f"{what} holds {nonfinite} NaN or infinite value"
                    f"{'s' if nonfinite > 1 else ''} (NaN in the data)")
    elif a.size and np.abs(a).max() > _HUGE:
      causes.append(f"{what} has values up to {np.abs(a).max():.3g} (data "
                    f"scale: standardise {what}, the likelihood overflows)")
  bad_init = [n for n, p in zip(posterior.part_names, state)
              if not np.isfinite(np.asarray(p)).all()]
  if bad_init:
    causes.append(f"the initial values of {bad_init} are not finite (init)")
  if not causes:
    causes.append("the initial state lies where the model has no density "
                  "(check `init`, the priors, the likelihood's parameters "
                  "and y against its support)")
  return "; ".join(causes)


def _chains(mask) -> str:
  idx = [str(i) for i in np.flatnonzero(mask)]
  if len(idx) > 10:
    idx = idx[:10] + [f"... ({len(idx)} chains)"]
  return "[" + ", ".join(idx) + "]"


def _values(v, mask) -> str:
  vals = sorted({f"{x:.3g}" for x in np.asarray(v).reshape(-1)[mask]})
  return ", ".join(vals[:3]) + (", ..." if len(vals) > 3 else "")
