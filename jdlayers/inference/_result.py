"""`MCMCResult`: posterior draws as callable networks, prediction, diagnostics.

Every array has leading dims `[draws, chains]`. `MCMCResult.save` and
`load_result` keep a result in a pickle-free jdlayers file (`jdlayers.io`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from jdlayers import diagnostics
from jdlayers.inference import _checkpoint, _kernels, _result_schema
from jdlayers.inference._predictive import Predictive, predict
from jdlayers.io import _config, _files, _implied
from jdlayers.models._posterior import _part_names

KIND = "mcmc_result"


@dataclasses.dataclass
class Diagnostics:
  """Convergence diagnostics: one row per state part plus run statistics.

  Attributes:
    rows: Per part: `name`, `size`, `rhat` (max over elements, rank-normalized
      split R-hat), `ess_bulk` and `ess_tail` (min over elements), `mean` and
      `sd` (of the first element, for a glance).
    stats: `num_chains`, `num_draws`, `acceptance_rate`, `divergences`,
      `step_size`, `trajectory_length` (the learned one for "chees" and
      "snaper", see `Trace`), `mean_leapfrogs`, `mean_tree_depth` (NUTS),
      `seconds`.
  """
  rows: List[dict]
  stats: dict

  @property
  def max_rhat(self) -> float:
    return float(np.nanmax([r["rhat"] for r in self.rows]))

  @property
  def min_ess_bulk(self) -> float:
    return float(np.nanmin([r["ess_bulk"] for r in self.rows]))

  def __str__(self) -> str:
    s = self.stats
    head = ", ".join(f"{k}={_fmt(v)}" for k, v in s.items())
    return diagnostics.format_table(self.rows) + "\n" + head

  __repr__ = __str__


def _fmt(v):
  return f"{v:.4g}" if isinstance(v, float) else str(v)


class MCMCResult:
  """Result of `jdlayers.mcmc.sample`; `save` it, `load_result` it back.

  Attributes:
    posterior: The `Posterior` sampled.
    states: Flat parts, each `[draws, chains, ...]` (numpy).
    trace: `Trace` of the kept draws, `[draws, chains]`.
    warmup_trace: `Trace` of the warm-up steps.
    kernel: "nuts" or "hmc"; `adaptation` the adaptation used.
    seed: The stateless seed pair the run used.
    seconds: Wall time of the sampling loop (compilation included).
    complete: False when the run stopped before `num_results` draws.
    final_state, final_kernel_results: Where the chains stopped.
  """

  def __init__(self, posterior, states, trace, warmup_trace, *, kernel,
               adaptation, seed, seconds, num_results, final_state=None,
               final_kernel_results=None):
    self.posterior = posterior
    self.states: List[np.ndarray] = list(states)
    self.trace, self.warmup_trace = trace, warmup_trace
    self.kernel, self.adaptation = kernel, adaptation
    self.seed = np.asarray(seed)
    self.seconds = float(seconds)
    self.num_results = int(num_results)
    self.final_state = final_state
    self.final_kernel_results = final_kernel_results

  @classmethod
  def from_sampler(cls, sampler) -> "MCMCResult":
    full = sampler.full_trace()
    b = sampler.num_burnin_steps
    warm = _kernels.Trace(*[f[:b] for f in full])
    post = _kernels.Trace(*[f[b:] for f in full])
    return cls(sampler.posterior, sampler.draws(), post, warm,
               kernel=sampler.kernel_name, adaptation=sampler.adaptation,
               seed=sampler.seed.numpy(), seconds=sampler.wall_time,
               num_results=sampler.num_results,
               final_state=sampler.state,
               final_kernel_results=sampler.kernel_results)

  # -- shapes and structure -----------------------------------------------
  @property
  def num_draws(self) -> int:
    return int(self.states[0].shape[0])

  @property
  def num_chains(self) -> int:
    return int(self.states[0].shape[1])

  @property
  def complete(self) -> bool:
    return self.num_draws == self.num_results

  @property
  def part_names(self) -> List[str]:
    return list(self.posterior.part_names)

  @property
  def networks(self):
    """The posterior networks: callable, sample dims `[draws, chains]`."""
    return self.posterior.unpack([tf.constant(s) for s in self.states])[0]

  @property
  def latents(self) -> Dict[str, np.ndarray]:
    """Likelihood latents (e.g. a learnt noise `scale`), `[draws, chains]`."""
    k = len(self.states) - len(self.posterior.model.likelihood.latents)
    names = self.part_names[k:]
    return dict(zip(names, self.states[k:]))

  def __getitem__(self, name: str) -> np.ndarray:
    """The draws of the part called `name`, e.g. `result["0/weights"]`."""
    try:
      return self.states[self.part_names.index(name)]
    except ValueError:
      raise KeyError(f"No part {name!r}; parts: {self.part_names}.") from None

  # -- run statistics -----------------------------------------------------
  @property
  def acceptance_rate(self) -> float:
    """Mean Metropolis acceptance probability over the kept draws."""
    return float(np.exp(np.minimum(self.trace.log_accept_ratio, 0.)).mean())

  @property
  def num_divergences(self) -> int:
    return int(np.sum(self.trace.has_divergence))

  @property
  def step_size(self) -> float:
    return float(self.trace.step_size[-1]) if len(self.trace.step_size) else (
        float("nan"))

  @property
  def trajectory_length(self) -> float:
    """Mean integration time (step size x leapfrogs) over the kept draws.

    For "chees" and "snaper", the learned trajectory length (fixed after
    warm-up; each step jitters it); NaN for files written before it was
    traced, or without draws.
    """
    t = self.trace.trajectory_length
    return float(np.mean(t)) if len(t) else float("nan")

  # -- prediction ---------------------------------------------------------
  def predict(self, x, seed=None, max_draws: Optional[int] = None,
              batch_size: int = 256) -> Predictive:
    """Posterior predictive at inputs `x`.

    Args:
      x: `[M, *features]` inputs.
      seed: Stateless seed for the observation draws.
      max_draws: Use at most this many draws per chain (the last ones).
      batch_size: Networks applied at once (bounds memory).

    Returns:
      A `Predictive` with `[draws, chains, M, ...]` samples and summaries.
    """
    states = self.states
    if max_draws is not None and max_draws < self.num_draws:
      states = [s[-max_draws:] for s in states]
    return predict(self.posterior, states, x, seed=seed, batch_size=batch_size)

  # -- diagnostics --------------------------------------------------------
  def diagnostics(self) -> Diagnostics:
    """Split R-hat, bulk/tail ESS per part and the run statistics."""
    rows = []
    for name, s in zip(self.part_names, self.states):
      rhat = diagnostics.split_rhat(s)
      rows.append(dict(
          name=name, size=int(np.prod(s.shape[2:], dtype=int)),
          rhat=float(np.nanmax(rhat)) if np.size(rhat) else float("nan"),
          ess_bulk=float(np.nanmin(diagnostics.bulk_ess(s))),
          ess_tail=float(np.nanmin(diagnostics.tail_ess(s))),
          mean=float(s.reshape(s.shape[:2] + (-1,))[..., 0].mean()),
          sd=float(s.reshape(s.shape[:2] + (-1,))[..., 0].std())))
    stats = dict(num_chains=self.num_chains, num_draws=self.num_draws,
                 kernel=self.kernel, adaptation=self.adaptation,
                 acceptance_rate=self.acceptance_rate,
                 divergences=self.num_divergences, step_size=self.step_size,
                 trajectory_length=self.trajectory_length,
                 mean_leapfrogs=float(self.trace.num_leapfrog_steps.mean()),
                 seconds=self.seconds)
    if self.kernel == "nuts":
      stats["mean_tree_depth"] = float(
          np.log2(self.trace.num_leapfrog_steps + 1.).mean())
    return Diagnostics(rows, stats)

  def to_arviz(self, x=None, y=None):
    """Exports to an ArviZ `InferenceData` (needs the `arviz` extra).

    Args:
      x, y: Optional data; with both, the pointwise log-likelihood is added
        (for `arviz.loo` / `arviz.waic`) and `y` as observed data.

    Returns:
      `arviz.InferenceData` with groups posterior and sample_stats (ArviZ's
      layout: `[chain, draw, ...]`).

    Raises:
      ImportError: If arviz is not installed.
    """
    try:
      import arviz  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ImportError("to_arviz needs arviz: pip install 'jdlayers[arviz]'."
                        ) from e
    swap = lambda a: np.swapaxes(np.asarray(a), 0, 1)
    posterior = {n: swap(s) for n, s in zip(self.part_names, self.states)}
    stats = dict(lp=swap(self.trace.target_log_prob),
                 acceptance_rate=swap(np.exp(np.minimum(
                     self.trace.log_accept_ratio, 0.))),
                 diverging=swap(self.trace.has_divergence),
                 n_steps=swap(self.trace.num_leapfrog_steps),
                 step_size=swap(np.broadcast_to(
                     self.trace.step_size[:, None],
                     self.trace.log_accept_ratio.shape)))
    kwargs = dict(posterior=posterior, sample_stats=stats)
    if x is not None and y is not None:
      post = self.posterior.model.posterior(x, y)
      ll = post.log_likelihood(*[tf.constant(s) for s in self.states],
                               pointwise=True)
      kwargs["log_likelihood"] = {"y": swap(ll.numpy())}
      kwargs["observed_data"] = {"y": np.asarray(post.y)}
    return arviz.from_dict(**kwargs)

  # -- files --------------------------------------------------------------
  def save(self, path, overwrite: bool = False) -> str:
    """Saves the result to a pickle-free jdlayers file, atomically.

    The file holds the states `[draws, chains, ...]`, both traces, the seed,
    kernel, adaptation, wall time, `x` and `y`, the part names, the
    diagnostics table (metadata `"diagnostics"`, JSON; None below 4 draws)
    and the model's
    configuration when `jdlayers.io` can serialise it; otherwise
    `load_result` needs the model passed in.

    Args:
      path: Destination, e.g. "run.jdl.npz".
      overwrite: Replace an existing file.

    Returns:
      The path written.

    Raises:
      FileExistsError: If `path` exists and `overwrite` is False.

    #### Example

    ```python
    result.save("run.jdl.npz")
    same = jdl.mcmc.load_result("run.jdl.npz")
    same.predict(x).mean
    ```
    """
    post = self.posterior
    arrays = {f"state_{i}": np.asarray(s) for i, s in enumerate(self.states)}
    arrays.update(_checkpoint.trace_arrays("trace_", self.trace))
    arrays.update(_checkpoint.trace_arrays("warmup_", self.warmup_trace))
    arrays.update(x=post.x.numpy(), y=post.y.numpy(), seed=self.seed)
    config, why = _model_config(post.model)
    meta = dict(kernel=self.kernel, adaptation=self.adaptation,
                seconds=self.seconds, num_results=self.num_results,
                num_draws=self.num_draws, num_chains=self.num_chains,
                num_warmup=int(len(self.warmup_trace.step_size)),
                complete=self.complete, part_names=self.part_names,
                dtype=post.model.dtype.name,
                seed=[int(s) for s in np.ravel(self.seed)],
                diagnostics=self._diagnostics_meta(), model=config,
                model_error=why, trace_fields=list(_kernels.Trace._fields))
    return _result_schema.RESULT.write(path, meta, arrays,
                                       overwrite=overwrite)

  def _diagnostics_meta(self) -> Optional[dict]:
    try:
      d = self.diagnostics()
    except ValueError:  # too few draws (R-hat and ESS need 4)
      return None
    return dict(rows=[_plain(r) for r in d.rows], stats=_plain(d.stats))

  def __repr__(self) -> str:
    status = "" if self.complete else f" (incomplete: {self.num_draws}/" \
        f"{self.num_results})"
    return (f"<MCMCResult {self.kernel}: {self.num_draws} draws x "
            f"{self.num_chains} chains, {len(self.states)} parts, accept "
            f"{self.acceptance_rate:.2f}, divergences {self.num_divergences}"
            f"{status}>")


def _plain(d: dict) -> dict:
  return {k: v if isinstance(v, (str, bool, type(None))) else
          (int(v) if isinstance(v, (int, np.integer)) else float(v))
          for k, v in d.items()}


def _model_config(model) -> Tuple[Optional[dict], Optional[str]]:
  """`(to_config(model), None)`, or `(None, why)` if it cannot be saved."""
  try:
    config = _config.to_config(model)
    json.dumps(config, allow_nan=True)
  except TypeError as e:
    return None, str(e)
  return config, None


def load_result(path, model=None, *,
                max_bytes: Optional[int] = _files.DEFAULT_MAX_BYTES
                ) -> MCMCResult:
  """Loads an `MCMCResult` saved with `MCMCResult.save`.

  Args:
    path: The file.
    model: The `jdlayers.models.Model` that was sampled. Needed when the file
      holds no model configuration (the model could not be serialised, e.g.
      a `Lambda` of an unregistered function); otherwise it replaces the
      saved one (its parts must match the saved states, and a configuration
      that differs from the saved one gives a warning).
    max_bytes: Refuse a file whose arrays, or one draw of the network its
      model declares, exceed this many bytes (default 1 GiB); None: no
      bound (only for files you trust). Everything is checked against the
      metadata and the arrays' headers before any data is read or any
      model is built.

  Returns:
    The result, with the same states, traces and predictions as the saved
    one.

  Raises:
    FileNotFoundError: If `path` does not exist.
    jdlayers.io.FileFormatError: For a corrupted file, another kind, a newer
      format version, metadata or arrays other than `save` writes, states
      whose names, shapes or dtypes disagree with the model, or a file over
      `max_bytes`.
    ValueError: If the file holds no model and `model` is None.

  #### Example

  ```python
  result = jdl.mcmc.load_result("run.jdl.npz")
  print(result.diagnostics())
  band = result.predict(x_new).interval(0.9)
  ```
  """
  where = os.fspath(path)
  archive = _files.inspect(path, KIND, max_bytes=max_bytes)
  meta, headers = archive.meta, archive.headers
  target = None
  if model is None:
    # The network's shapes come from its configuration; the model (which
    # samples one network) is built only once they agree with the file.
    target = _implied.decode_model(
        path, meta, "pass the model that was sampled: load_result(path, "
        "model=...)", max_bytes=max_bytes)
    parts = target.parts
  else:
    if meta["model"] is not None:
      config, _ = _model_config(model)
      if config is not None and json.loads(json.dumps(config)) != (
          meta["model"]):
        import warnings  # pylint: disable=g-import-not-at-top
        warnings.warn(f"{where}: the model passed differs from the one "
                      "saved with the result; the loaded result uses the "
                      "model passed.")
    net = tf.nest.flatten(model.probe)
    parts = ([(n, tuple(p.shape), p.dtype) for n, p in
              zip(_part_names(model.probe), net)]
             + [(n, tuple(p.event_shape), p.dtype)
                for n, p in model.likelihood.latents.items()])
  names = list(meta["part_names"])
  if [p[0] for p in parts] != names:
    raise _files.fail(path, f"the file holds parts {names} but the model has "
                      f"{[p[0] for p in parts]}.")
  _files.check_shapes(path, headers, _result_schema.shapes(
      meta, [p[1] for p in parts]))
  for i, (name, _, dtype) in enumerate(parts):
    got = headers[f"state_{i}"].dtype
    if got != dtype.as_numpy_dtype:
      raise _files.fail(path, f"part {name!r} is {got} but the model's is "
                        f"{dtype.name}.")
  for prefix in ("trace_", "warmup_"):
    for k in _kernels.trace_fields(meta):
      got = headers[prefix + k].dtype
      if got.kind not in _result_schema.TRACE_KINDS.get(k, "f"):
        raise _files.fail(path, f"array {prefix + k!r} has dtype {got}.")
  x, y = headers["x"].shape, headers["y"].shape
  if not x or not y or x[0] != y[0] or headers["seed"].dtype.kind not in "iu":
    raise _files.fail(path, f"arrays 'x' {list(x)} and 'y' {list(y)} must "
                      "share their first dim, and 'seed' must be integer.")
  if target is not None:
    model = target.build()
  arrays = archive.load()
  try:
    post = model.posterior(arrays["x"], arrays["y"])
  except (ValueError, TypeError, tf.errors.OpError) as e:
    raise _files.fail(path, f"arrays 'x' and 'y' do not fit the model: "
                      f"{str(e)[:300]}") from None
  if post.part_names != names:
    raise _files.fail(path, f"the file holds parts {names} but the model has "
                      f"{post.part_names}.")
  states = [arrays[f"state_{i}"] for i in range(len(parts))]
  return MCMCResult(
      post, states, _checkpoint.trace_from_arrays("trace_", arrays),
      _checkpoint.trace_from_arrays("warmup_", arrays),
      kernel=meta["kernel"], adaptation=meta["adaptation"],
      seed=arrays["seed"], seconds=meta["seconds"],
      num_results=meta["num_results"],
      final_state=([tf.constant(s[-1]) for s in states]
                   if meta["num_draws"] else None))
