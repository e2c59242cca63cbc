"""Data-parallel training steps of `vi.fit` under a `tf.distribute.Strategy`.

Each step's global batch is split across the strategy's replicas (padded
and masked by `inference._distribute.shard`, so no example is dropped or
counted twice). Every replica draws its own weight noise (the step's seed
folded with its replica id), evaluates its shard's share of the loss,
`sum_shard(nll) / global_count + (KL / N) / replicas`, so that the sum over
replicas is the single-device loss of the global batch with the KL counted
once. The replicas' terms and gradients are summed (in the step's graph on
one host, by an all-reduce across hosts) and the Keras optimizer applies
one update, in the cross-replica context, to the surrogate variables
mirrored under `strategy.scope()`.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from jdlayers.inference import _distribute
from jdlayers.inference.vi import _steps

_WHERE = "vi.fit"


def replica_seed(step_seed, replica, replicas: int):
  """The seed of one replica's weight noise at a step.

  Args:
    step_seed: `[2]` int32 stateless seed of the step.
    replica: The replica's id in sync (an int or scalar tensor).
    replicas: Replicas in sync; with 1 the step's seed is used as it is, so
      a one-replica strategy draws the noise of a fit without one.

  Returns:
    `[2]` int32 seed, distinct for each replica and deterministic.
  """
  if replicas == 1:
    return step_seed
  return tf.random.experimental.stateless_fold_in(step_seed, replica)


def check_data(strategy, feed, x, batch_size: int) -> None:
  """Checks the data can be split across the replicas, before any tracing.

  Args:
    strategy: The checked strategy.
    feed: The `vi._feed.Feeder` of the data (validated).
    x: The user's `x` (arrays or a `tf.data.Dataset`).
    batch_size: The user's `batch_size`.

  Raises:
    ValueError: If there are fewer examples than replicas, the global
      batch (`batch_size`) is smaller than the number of replicas, or a
      dataset's batches are (see `inference._distribute.check_dataset`).
  """
  if feed.size is None:  # a dataset: its first batch is the global batch
    _distribute.check_dataset(x, strategy, _WHERE, batch_size=feed.batch)
    return
  replicas = _distribute.check_shardable(feed.size, strategy, _WHERE)
  if feed.batch < replicas:
    raise ValueError(
        f"{_WHERE}: the global batch of batch_size={batch_size} examples "
        f"cannot be split across the {replicas} replicas of `strategy` "
        f"({type(strategy).__name__}); use batch_size >= {replicas} (a "
        f"multiple of {replicas} keeps the replicas' shards equal).")


def check_variables(strategy, surrogate, optimizer) -> None:
  """Checks a given surrogate and optimizer belong to `strategy`.

  Either may be None (`vi.fit` then makes it under the scope). Their
  variables must be mirrored across the replicas, i.e. created under
  `strategy.scope()`; otherwise each replica would update a copy of its own.

  Raises:
    ValueError: Naming the object to build under `strategy.scope()`.
  """
  plain = [v.name for v in getattr(surrogate, "trainable_variables", ())
           if not strategy.extended.variable_created_in_scope(v)]
  if plain:
    raise ValueError(
        f"{_WHERE}: the `surrogate`'s variables (e.g. {plain[0]!r}) were not "
        f"created under this `strategy.scope()` "
        f"({type(strategy).__name__}); build the Surrogate inside `with "
        "strategy.scope():`, or pass surrogate=None.")
  owner = getattr(optimizer, "_distribution_strategy", strategy)
  if optimizer is not None and owner is not strategy:
    raise ValueError(
        f"{_WHERE}: the `optimizer` ({type(optimizer).__name__}) was not "
        f"created under this `strategy.scope()` ({type(strategy).__name__}); "
        "create it inside `with strategy.scope():`, or pass optimizer=None.")


def split_block(tensors, strategy):
  """Splits a block's `[T, B, ...]` steps across the replicas along `B`.

  Args:
    tensors: `(xs [T, B, ...], ys [T, B, ...], masks [T, B], kl_weights
      [T])` of `vi._feed.Block`.
    strategy: The strategy.

  Returns:
    `(xs, ys, masks, pads, kl_weights, totals)`: per-replica `[k, T, ...]`,
    `[k, T, ...]`, `[k, T]` (the block's masks) and `[k]` (0 for the
    padding of the split; `k = ceil(B / replicas)`), then the `[T]` weights
    and the `[T]` real examples of each global batch.
  """
  xs, ys, masks, kl_weights = [np.asarray(t) for t in tensors]
  replicas = strategy.num_replicas_in_sync
  if masks.shape[1] < replicas:
    # A dataset's last batch may be smaller: fill up with masked copies.
    extra = np.zeros(replicas - masks.shape[1], np.int64)
    xs, ys = (np.concatenate([a, a[:, extra]], 1) for a in (xs, ys))
    masks = np.concatenate([masks, 0 * masks[:, extra]], 1)
  totals = masks.sum(1).astype(xs.dtype if xs.dtype.kind == "f" else
                               masks.dtype)
  # `shard` splits along the leading dim: put the batch dim first.
  shards = _distribute.shard(
      tuple(np.moveaxis(a, 1, 0) for a in (xs, ys, masks)), strategy,
      _WHERE)
  return (*shards.values, shards.mask, tf.constant(kl_weights),
          tf.constant(totals))


def runner(strategy, step_terms: Callable, optimizer, variables,
           run_seed, dtype, jit_compile: Optional[bool]) -> Callable:
  """The data-parallel counterpart of `vi.fit`'s compiled block loop.

  Args:
    strategy: The checked strategy; `variables` and `optimizer` were made
      under its scope.
    step_terms: `fn(x, y, mask, kl_weight, seed, total, replicas) -> (row
      [3], grads)`: one replica's share of the loss terms and its gradient.
    optimizer: The Keras optimizer (built).
    variables: The trainable surrogate variables.
    run_seed: `[2]` int32 seed of the fit.
    dtype: The loss dtype.
    jit_compile: Compile each replica's loss and gradient with XLA (the
      all-reduce and the update run outside XLA).

  Returns:
    `run(xs, ys, masks, kl_weights, step0) -> (terms [T, 3], done,
    bad_grads [V])` on a block's host tensors, as `vi.fit`'s `run`.
  """
  replicas = strategy.num_replicas_in_sync
  # With every replica on this host (MirroredStrategy), the replicas' terms
  # and gradients are summed in the loop's graph in replica order (as TF's
  # ReductionToOneDevice): no collective ops, whose keys two strategies in
  # one process would share. Across hosts, the replicas all-reduce them.
  local = len(strategy.extended.worker_devices) == replicas
  if jit_compile:
    step_terms = tf.function(step_terms, jit_compile=True, autograph=False,
                             reduce_retracing=True)
  unconnected = []  # the variables without a gradient (as traced)

  def loop(xs, ys, masks, pads, kl_weights, totals, step0):

    def step(i):

      def replica_step(x, y, mask, pad):
        ctx = tf.distribute.get_replica_context()
        seed = replica_seed(
            tf.random.experimental.stateless_fold_in(run_seed, step0 + i),
            ctx.replica_id_in_sync_group, replicas)
        row, grads = step_terms(
            x[:, i], y[:, i], mask[:, i] * tf.cast(pad, mask.dtype),
            kl_weights[i], seed, totals[i], replicas)
        unconnected[:] = [g is None for g in grads]
        terms = [row] + [tf.zeros_like(v) if g is None else g
                         for g, v in zip(grads, variables)]
        return terms if local else ctx.all_reduce(
            tf.distribute.ReduceOp.SUM, terms)

      terms = strategy.run(replica_step, args=(xs, ys, masks, pads))
      terms = [strategy.experimental_local_results(t) for t in terms]
      # All-reduced across hosts: any replica's copy is the sum.
      row, *grads = [tf.add_n(list(t)) if local else t[0] for t in terms]
      return row, [None if u else g for u, g in zip(unconnected, grads)]

    # One update of the mirrored variables by the summed gradient per step,
    # in the cross-replica context (the strategy's `extended.update`).
    return _steps.block_loop(step, tf.shape(kl_weights)[0], optimizer,
                             variables, dtype)

  loop = tf.function(loop, autograph=False, reduce_retracing=True)

  def run(xs, ys, masks, kl_weights, step0):
    return loop(*split_block((xs, ys, masks, kl_weights), strategy), step0)
  return run
