"""`fit`: trains a surrogate posterior by stochastic variational inference."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from typing import Callable, Dict, List, Optional, Union

import numpy as np
import tensorflow as tf

from jdlayers import _validate
from jdlayers.inference import _distribute
from jdlayers.inference.vi import (_checks, _estimators, _feed, _replicas,
                                    _steps)
from jdlayers.inference.vi._elbo import elbo_terms
from jdlayers.inference.vi._surrogate import Surrogate
from jdlayers.layers._base import stateless_seed
from jdlayers.models._model import Model


@dataclasses.dataclass
class History:
  """Loss history of `fit`.

  Attributes:
    loss: Per epoch, the mean minibatch loss (negative ELBO / N).
    nll: Per epoch, the mean minibatch negative log-likelihood per example.
    kl: Per epoch, the mean KL estimate (unscaled).
    step_loss: The loss of every step.
    seconds: Wall time per epoch (the first includes compilation).
  """
  loss: List[float] = dataclasses.field(default_factory=list)
  nll: List[float] = dataclasses.field(default_factory=list)
  kl: List[float] = dataclasses.field(default_factory=list)
  step_loss: List[float] = dataclasses.field(default_factory=list)
  seconds: List[float] = dataclasses.field(default_factory=list)

  def as_dict(self) -> Dict[str, List[float]]:
    return dataclasses.asdict(self)


def fit(model, x, y=None, *, surrogate: Optional[Surrogate] = None,
        estimator: Union[str, Dict[str, str]] = "flipout", epochs: int = 10,
        batch_size: int = 32, optimizer=None, learning_rate: float = 1e-3,
        num_samples: int = 1, num_examples: Optional[int] = None,
        analytic_kl: bool = True, kl_weight=1.0, temperature: float = 1.0,
        seed=0, shuffle: bool = True, jit_compile: Optional[bool] = None,
        progress: Union[bool, Callable] = True, strategy=None,
        **surrogate_kwargs) -> Surrogate:
  """Fits a variational posterior to `model` given data, by minibatch SVI.

  Minimises the per-example negative ELBO (see `jdlayers.vi.elbo_terms` for
  the convention) with a compiled training step.

  With a `tf.distribute.Strategy`, training is data-parallel: each step's
  global batch (`batch_size` examples) is split across the replicas
  (padded and masked when it does not divide, never dropped), each replica
  draws its own weight noise (seed `fold_in(fold_in(seed, step),
  replica)`; one replica uses the step's seed, as without a strategy) and
  computes its share of the loss, the KL counted once per step over all
  replicas, and the optimizer applies the summed gradient once to the
  mirrored surrogate variables. The loss is the single-device loss of the
  same global batch (equal to float rounding without noise).

  Args:
    model: A `jdlayers.models.Model`.
    x: `[N, *features]` inputs, or a `tf.data.Dataset` of `(x, y)` batches.
    y: `[N, *obs]` observations (None when `x` is a dataset).
    surrogate: A `Surrogate` to continue training (default: a new mean-field
      one built with `surrogate_kwargs`, e.g. `point_mass="bias"`).
    estimator: "flipout" (default), "reparam" or "local", or a mapping from
      layer paths to names ("*" for the rest).
    epochs: Passes over the data.
    batch_size: Examples per step (arrays only).
    optimizer: Any Keras optimizer (default `keras.optimizers.Adam`).
    learning_rate: Learning rate of the default optimizer.
    num_samples: Monte Carlo draws per step.
    num_examples: Dataset size `N` for KL scaling (default: counted).
    analytic_kl: Use closed-form KL terms where TFP has them.
    kl_weight: Multiplies the KL term (1 is the ELBO): a number >= 0, a
      `tf.Variable` (read at every step), or a schedule `fn(epoch) ->
      float` of this call's 0-based epoch, e.g. `vi.linear_warmup(20)`
      (KL annealing; see `jdlayers.vi.linear_warmup`). The weights go into
      the compiled step as a tensor: a schedule does not retrace it.
    temperature: Posterior temperature T > 0 (Wenzel et al. 2020): the fit
      targets `p(w | D)^(1/T)`, which multiplies the surrogate's entropy
      by T in the loss, `nll + kl_weight * (KL + (1 - T) H(q)) / N`. T < 1
      is a cold posterior (narrower q), 1 the ELBO. Unlike `kl_weight`,
      it leaves the prior's weight against the data unchanged (see
      `jdlayers.vi.elbo_terms`).
    seed: Stateless seed of initial values, shuffling and estimator noise.
    shuffle: Reshuffle arrays every epoch.
    jit_compile: Compile the training loop with XLA. None (default) does so
      when a GPU is visible: on CPU, XLA cost 8-10 s of compilation per fit
      for 0-20% faster epochs on the digits CNN (benchmarks/vi.py).
    progress: True shows a progress bar (tqdm if installed, else a line per
      epoch on stderr); False is quiet; a callable gets `(epoch, logs)`.
    strategy: Optional `tf.distribute.Strategy` (e.g. `MirroredStrategy()`
      over a host's GPUs, `MultiWorkerMirroredStrategy` from `TF_CONFIG`)
      for data-parallel training. A given `surrogate` or `optimizer` must
      have been created under `strategy.scope()` (those made here are).
      Each worker passes the same data and takes its replicas' shards of
      every global batch (a dataset must then batch in the same order on
      every worker: seed its shuffle).
      With `jit_compile`, each replica's loss and gradient are compiled
      with XLA; the all-reduce and the update run outside it.
    **surrogate_kwargs: Passed to `Surrogate` when `surrogate` is None,
      e.g. `point_mass="bias"`, or `init=map_fit, init_scale=lambda w: 0.1
      * tf.abs(w)` to start at a MAP fit (MOPED).

  Returns:
    The fitted `Surrogate`, with `history` (a `History`) and `predict`.

  Raises:
    TypeError, ValueError: For invalid data or settings, before training
      (e.g. `learning_rate <= 0`, `kl_weight < 0`, a schedule returning
      NaN at some epoch, `temperature <= 0`, an unbatched dataset); under a
      `strategy`, also fewer examples than replicas, a global batch smaller
      than the replicas, devices the host lacks, or a surrogate/optimizer
      made outside `strategy.scope()`.
    FloatingPointError: If a step goes non-finite (the surrogate keeps its
      last finite state).

  #### Example

  ```python
  import jdlayers as jdl, numpy as np, tensorflow as tf
  x = np.linspace(-1, 1, 64, dtype=np.float32)[:, None]
  y = 2 * x + 0.1 * np.random.default_rng(0).normal(size=x.shape)
  model = jdl.models.Model(jdl.Affine(1, 1), jdl.models.Normal(scale=0.1))
  q = jdl.vi.fit(model, x, y.astype(np.float32), epochs=50,
                 learning_rate=0.05, progress=False)
  q.predict(x).mean.shape, q.history.loss[-1]
  # Data-parallel over the visible GPUs (or CPU logical devices):
  q2 = jdl.vi.fit(model, x, y.astype(np.float32), epochs=5, progress=False,
                  strategy=tf.distribute.MirroredStrategy())
  ```
  """
  if not isinstance(model, Model):
    raise TypeError(f"vi.fit: `model` must be a jdlayers.models.Model; got "
                    f"{type(model).__name__}.")
  _checks.check_settings(
      surrogate=surrogate, epochs=epochs, batch_size=batch_size,
      optimizer=optimizer, learning_rate=learning_rate,
      num_samples=num_samples, num_examples=num_examples,
      analytic_kl=analytic_kl, kl_weight=kl_weight, temperature=temperature,
      seed=seed, shuffle=shuffle, jit_compile=jit_compile, progress=progress)
  # A Python float: T = 1 adds no entropy term to the compiled step.
  temperature = _validate.positive(temperature, "temperature", "vi.fit")
  weights = _checks.kl_weights(kl_weight, epochs)
  # A variable weight is read in the step (assignments need no retrace).
  live_weight = kl_weight if hasattr(kl_weight, "assign") else 1.
  if isinstance(estimator, str):
    _estimators.canonical(estimator, "vi.fit")
  else:
    for v in dict(estimator).values():
      _estimators.canonical(v, "vi.fit")
  _distribute.check_strategy(strategy, "vi.fit")
  if surrogate is not None and surrogate.model is not model:
    raise ValueError("vi.fit: `surrogate` was built for another model.")
  if strategy is not None:
    _replicas.check_variables(strategy, surrogate, optimizer)
  # Under a strategy, the variables are mirrored across its replicas.
  with strategy.scope() if strategy is not None else contextlib.nullcontext():
    if surrogate is None:
      surrogate = Surrogate(model, seed=seed, **surrogate_kwargs)
    feed = _feed.feeder(model, x, y, batch_size, shuffle, seed, num_examples,
                        weights.astype(surrogate.dtype.as_numpy_dtype))
    if strategy is not None:
      _replicas.check_data(strategy, feed, x, batch_size)
    if optimizer is None:
      import keras  # pylint: disable=g-import-not-at-top
      optimizer = keras.optimizers.Adam(learning_rate)
    variables = list(surrogate.trainable_variables)
    if hasattr(optimizer, "build") and not getattr(optimizer, "built", True):
      optimizer.build(variables)  # slots must exist before the loop traces
  n = feed.num_examples
  run_seed = tf.convert_to_tensor(stateless_seed(seed), tf.int32)

  def step_terms(x, y, mask, kl_weight, seed, total=None, replicas=1):
    """One step's `[3]` loss terms and gradients (a replica's shares)."""
    with tf.GradientTape() as tape:
      terms = elbo_terms(
          surrogate, x, y, num_examples=n, estimator=estimator,
          num_samples=num_samples, seed=seed, analytic_kl=analytic_kl,
          kl_weight=kl_weight * tf.cast(live_weight, kl_weight.dtype),
          mask=mask, temperature=temperature, total=total,
          replicas=replicas)
    return tf.stack(list(terms)), tape.gradient(terms.loss, variables)

  def run(xs, ys, masks, kl_weights, step0):
    """Up to `T` training steps in one compiled loop.

    A step whose loss terms or gradients are not finite ends the loop (it
    is applied: a conditional update costs XLA 2-3x per step; the caller
    restores the block's start and replays the good steps). Returns the
    `[T, 3]` terms (rows past the steps done are 0), the steps done (the
    last one the bad one, if any) and `[V]` flags of the variables whose
    gradient was not finite at the last step.
    """
    def step(i):
      return step_terms(
          xs[i], ys[i], masks[i], kl_weights[i],
          tf.random.experimental.stateless_fold_in(run_seed, step0 + i))

    return _steps.block_loop(step, tf.shape(masks)[0], optimizer, variables,
                             surrogate.dtype)

  if jit_compile is None:
    jit_compile = bool(tf.config.list_physical_devices("GPU"))
  if strategy is None:
    run = tf.function(run, jit_compile=jit_compile, autograph=False,
                      reduce_retracing=True)
  else:
    run = _replicas.runner(strategy, step_terms, optimizer, variables,
                           run_seed, surrogate.dtype, jit_compile)
  history = getattr(surrogate, "history", None) or History()
  bar = _ProgressBar(progress, epochs)
  t = len(history.step_loss)
  pending, elapsed = [], 0.
  saved = variables + list(getattr(optimizer, "variables", []))
  epochs_done = 0
  for block in feed.blocks():
    t0 = time.perf_counter()
    # Device-side copies (no transfer) of the block's starting state, from
    # which a block that went non-finite is replayed up to its last good step.
    snapshot = [tf.identity(v) for v in saved]
    terms, done, bad_grads = run(*block.tensors, tf.constant(t, tf.int32))
    terms, done = terms.numpy()[:int(done)], int(done)
    elapsed += time.perf_counter() - t0
    failed = None
    if not np.isfinite(terms).all() or bad_grads.numpy().any():
      # Record the epochs completed before the bad step, then raise.
      ended = [e for e in block.ends if e <= done - 1]
      in_epoch = (done - 1 - ended[-1] if ended else
                  sum(len(p) for p in pending) + done - 1)
      failed = (t, epochs_done + len(ended), in_epoch)
      block = _feed.Block(block.tensors, block.epochs[:len(ended)], ended)
    t += len(terms)
    epochs_done += len(block.epochs)
    prev = 0
    seconds = elapsed / max(1, len(block.epochs))
    for epoch, end in zip(block.epochs, block.ends):
      rows = np.concatenate(pending + [terms[prev:end]])
      pending, prev = [], end
      history.step_loss.extend(float(v) for v in rows[:, 0])
      loss, nll, kl = rows.mean(0)
      history.loss.append(float(loss))
      history.nll.append(float(nll))
      history.kl.append(float(kl))
      history.seconds.append(seconds)
      bar.epoch(epoch, dict(loss=loss, nll=nll, kl=kl, seconds=seconds))
    if failed is not None:
      bar.close()
      surrogate.history = history  # the epochs completed, for inspection
      _restore(run, block.tensors, len(terms) - 1, t - len(terms), saved,
               snapshot)
      _raise_non_finite(terms, bad_grads.numpy(), variables, saved, snapshot,
                        failed[0], failed[1], epochs, failed[2])
    if block.epochs:
      elapsed = 0.
    pending.append(terms[prev:])
  bar.close()
  surrogate.history = history
  return surrogate


def _restore(run, tensors, good, t, saved, snapshot) -> None:
  """Back to the block's start, then its `good` finite steps again.

  The steps reuse their seeds (`fold_in(seed, step)`), so the replay ends in
  the state after the last finite step (one more trace of `run`, on this
  error path only).
  """
  for v, old in zip(saved, snapshot):
    v.assign(old)
  if good:
    run(*[a[:good] for a in tensors], tf.constant(t, tf.int32))


def _raise_non_finite(terms, bad_grads, variables, saved, snapshot, t,
                      epoch, epochs, in_epoch):
  """Explains the last row of `terms` (the bad step); restores if needed."""
  at = len(terms) - 1
  loss, nll, kl = terms[at]
  what = [f"the {name} was {v}" for name, v in
          (("NLL (mean negative log-likelihood)", nll), ("KL", kl))
          if not np.isfinite(v)]
  if not what and not np.isfinite(loss):
    what.append(f"the loss was {loss} (NLL {nll}, KL {kl})")
  names = [v.name.split(":")[0] for v, b in zip(variables, bad_grads) if b]
  if names:
    what.append(f"the gradient of the loss was not finite for "
                f"{_listed(names)}")
  where = (f"at step {t + at} (epoch {epoch + 1} of {epochs}, step "
           f"{in_epoch + 1} of the epoch)")
  if all(np.isfinite(v.numpy()).all() for v in variables):
    kept = ("the surrogate keeps its parameters and optimizer state from "
            "before that step (the last finite ones)")
  else:  # the last good update overflowed: back to the block's start
    for v, old in zip(saved, snapshot):
      v.assign(old)
    kept = (f"an update made parameters non-finite, so the surrogate was "
            f"restored to its parameters and optimizer state at step {t}")
  raise FloatingPointError(
      f"vi.fit: training went non-finite {where}: " + "; ".join(what)
      + f". Nothing non-finite was kept: {kept}. Lower the learning rate, or "
      "check the data (scale, NaN) and the priors.")


def _listed(names) -> str:
  return str(names) if len(names) <= 6 else f"{names[:6]} and " \
      f"{len(names) - 6} more"


class _ProgressBar:
  """tqdm when available; otherwise a line per epoch on stderr."""

  def __init__(self, progress, epochs: int):
    self._callable = progress if callable(progress) else None
    self._on = bool(progress) and self._callable is None
    self._epochs = epochs
    self._bar = None
    if self._on:
      try:
        from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
        self._bar = tqdm(total=epochs, desc="vi.fit", unit="epoch",
                         file=sys.stderr)
      except ImportError:
        self._bar = None

  def epoch(self, epoch: int, logs: dict) -> None:
    if self._callable is not None:
      self._callable(epoch, logs)
    elif self._bar is not None:
      self._bar.set_postfix(loss=f"{logs['loss']:.4g}", refresh=False)
      self._bar.update(1)
    elif self._on:
      print(f"[vi.fit] epoch {epoch + 1}/{self._epochs} | loss "
            f"{logs['loss']:.4f} | nll {logs['nll']:.4f} | kl "
            f"{logs['kl']:.1f} | {logs['seconds']:.1f} s", file=sys.stderr,
            flush=True)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
