"""A posterior's log density and gradient summed over tf.distribute replicas.

The MCMC loop itself runs once (the chain state, adaptation and checkpoints
are the single-device ones); only the target's value and gradient are
distributed, inside each step:

* "data" mode (Izmailov et al. 2021): `x`, `y` are split along `N`
  (`_distribute.shard`). Each replica computes its shard's log-likelihood
  and, with its own `GradientTape`, its gradient; a cross-replica sum gives
  the likelihood and its gradient, and the prior is added once, outside.
  `tf.custom_gradient` hands that gradient to `tfp.mcmc`, which then sees the
  exact gradient. (Differentiating through `all_reduce` instead would count
  the replicated state's gradient once per replica.)
* "chains" mode: replica `r` evaluates the full-data density of chains
  `[r * C / R, (r + 1) * C / R)`; an all-gather joins them in chain order.

On one host the replicas' terms are summed (or joined) in the loop's graph in
replica order; across hosts, the strategy's all-reduce (all-gather) does it,
which works inside the loop's `tf.while_loop` (two workers on 127.0.0.1 are
tested). The per-replica function is compiled with XLA when `jit_compile`
(XLA cannot compile `strategy.run` itself, so the loop around it runs as a
graph).
"""

from __future__ import annotations

from typing import List, Sequence

import tensorflow as tf

from jdlayers.inference import _distribute

MODES = ("data", "chains")


class ShardedPosterior:
  """Stands in for a `Posterior` in the compiled loop under a strategy.

  `with_data(x, y)` returns a view whose `log_prob(*parts)` is the target
  and `bijectors` those of the posterior, which is all `make_kernel` reads.
  In "data" mode `x` is the per-replica `x` shards and `y` the pair
  `(y shards, mask shards)`; in "chains" mode they are the full `x`, `y`.

  Args:
    posterior: The `Posterior` (its structure and densities).
    strategy: A checked `tf.distribute.Strategy`.
    mode: "data" or "chains".
    jit_compile: Compile the per-replica function with XLA.

  Attributes:
    model, x, y: The posterior's (the loop cache keys on them).
    cache_key: What besides settings and shapes tells loops apart.
  """

  def __init__(self, posterior, strategy, mode: str, jit_compile: bool):
    self.posterior, self.strategy, self.mode = posterior, strategy, mode
    self.model, self.x, self.y = posterior.model, posterior.x, posterior.y
    self.bijectors = posterior.bijectors
    self.cache_key = ("strategy", id(strategy), strategy.num_replicas_in_sync,
                      mode, bool(jit_compile))
    # With every replica on this host (MirroredStrategy), the terms are
    # combined in the loop's graph, in replica order, like TF's
    # ReductionToOneDevice: no collective ops, whose keys two strategies in
    # one process would share (TF gives every MirroredStrategy the same
    # group key). Across hosts the replicas' collectives combine them.
    self._local = (len(strategy.extended.worker_devices)
                   == strategy.num_replicas_in_sync)
    body = self._shard_terms if mode == "data" else self._chain_terms
    self._replica_terms = tf.function(body, jit_compile=jit_compile,
                                      autograph=False)

  def with_data(self, x, y) -> "_Target":
    return _Target(self, x, y)

  # -- per replica ---------------------------------------------------------
  def _shard_terms(self, parts, x, y, mask):
    """This shard's log-likelihood `[*S]` and its gradient per part."""
    post = self.posterior.with_data(x, y)
    with tf.GradientTape() as tape:
      tape.watch(parts)
      point = post.log_likelihood(*parts, pointwise=True)  # [*S, k]
      # Padding rows are copies of real examples, so `point` is finite
      # there; `where` keeps them out of the value and the gradient.
      ll = tf.reduce_sum(tf.where(mask > 0, point, tf.zeros_like(point)), -1)
      total = tf.reduce_sum(ll)  # chains are independent: d total / d part
    grads = tape.gradient(total, parts,
                          unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return [ll] + list(grads)

  def _chain_terms(self, parts, x, y):
    """The full-data log density `[c]` of this replica's chains, gradients."""
    post = self.posterior.with_data(x, y)
    with tf.GradientTape() as tape:
      tape.watch(parts)
      lp = post.log_prob(*parts)
      total = tf.reduce_sum(lp)
    grads = tape.gradient(total, parts,
                          unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return [lp] + list(grads)

  def _data_step(self, parts, x, y, mask):
    out = self._replica_terms(parts, x, y, mask)
    if self._local:
      return out
    ctx = tf.distribute.get_replica_context()
    return ctx.all_reduce(tf.distribute.ReduceOp.SUM, out)

  def _chain_step(self, parts, x, y):
    ctx = tf.distribute.get_replica_context()
    per = parts[0].shape[0] // self.strategy.num_replicas_in_sync
    start = ctx.replica_id_in_sync_group * per
    out = self._replica_terms([p[start:start + per] for p in parts], x, y)
    return out if self._local else ctx.all_gather(out, axis=0)

  def evaluate(self, parts: List[tf.Tensor], x, y):
    """`(value, gradients)`: the distributed term and its gradient per part.

    Called in the cross-replica context (inside the loop's `tf.function`).
    """
    if self.mode == "data":
      y, mask = y
      out = self.strategy.run(self._data_step, args=(parts, x, y, mask))
    else:
      out = self.strategy.run(self._chain_step, args=(parts, x, y))
    local = [self.strategy.experimental_local_results(o) for o in out]
    if not self._local:  # all-reduced / all-gathered: any replica's copy
      out = [r[0] for r in local]
    elif self.mode == "data":
      out = [tf.add_n(list(r)) for r in local]
    else:
      out = [tf.concat(list(r), axis=0) for r in local]
    return out[0], out[1:]


class _Target:
  """`log_prob(*parts)` over the replicas, with its exact gradient."""

  def __init__(self, sharded: ShardedPosterior, x, y):
    self._sharded, self._x, self._y = sharded, x, y
    self.bijectors = sharded.bijectors

  def log_prob(self, *parts) -> tf.Tensor:
    sharded = self._sharded
    term = _with_gradient(
        lambda ps: sharded.evaluate(ps, self._x, self._y), list(parts))
    if sharded.mode == "data":
      return sharded.posterior.log_prior(*parts) + term
    return term


def _with_gradient(evaluate, parts: Sequence[tf.Tensor]) -> tf.Tensor:
  """`evaluate(parts)`'s value, whose gradient is the one it returns."""

  @tf.custom_gradient
  def term(*ps):
    value, grads = evaluate(list(ps))

    def grad(upstream):
      # upstream `[*S]` scales each chain's gradient `[*S, ...]`.
      return [tf.reshape(upstream, tf.concat(
          [tf.shape(upstream), tf.ones([g.shape.rank - upstream.shape.rank],
                                       tf.int32)], 0)) * g for g in grads]

    return value, grad

  return term(*parts)


def check_mode(shard: str, num_chains: int, strategy, where: str) -> None:
  """Checks the `shard` mode, and that "chains" divide among the replicas.

  Raises:
    ValueError: For an unknown mode or `num_chains` not a multiple of the
      replicas in "chains" mode.
  """
  if shard not in MODES:
    raise ValueError(f"{where}: `shard` must be one of {MODES}; got "
                     f"{shard!r}.")
  replicas = _distribute.num_replicas(strategy)
  if shard == "chains" and num_chains % replicas:
    raise ValueError(
        f"{where}: shard='chains' spreads the chains over the {replicas} "
        f"replicas of `strategy` ({type(strategy).__name__}), so "
        f"`num_chains` must be a multiple of {replicas}; got "
        f"num_chains={num_chains}.")


def for_sampler(posterior, strategy, shard: str, num_chains: int,
                jit_compile: bool, where: str):
  """The loop's posterior, data and XLA flag for a run under `strategy`.

  Args:
    posterior: The run's `Posterior`.
    strategy: None or a `tf.distribute.Strategy`.
    shard: "data" or "chains".
    num_chains: Chains `C`.
    jit_compile: The user's flag.
    where: The public function's name, for the messages.

  Returns:
    `(loop posterior, (x, y) loop arguments, loop jit_compile)`: without a
    strategy, the posterior, its data and `jit_compile` unchanged.

  Raises:
    TypeError, ValueError: As `check_strategy`, `check_mode` and, in "data"
      mode, `check_shardable`; all before anything is traced.
  """
  strategy = _distribute.check_strategy(strategy, where)
  check_mode(shard, num_chains, strategy, where)
  if strategy is None or _distribute.is_default(strategy):
    return posterior, (posterior.x, posterior.y), jit_compile
  target = ShardedPosterior(posterior, strategy, shard, jit_compile)
  if shard == "chains":
    return target, (posterior.x, posterior.y), False
  shards = _distribute.shard((posterior.x, posterior.y), strategy, where)
  x, y = shards.values
  return target, (x, (y, shards.mask)), False
