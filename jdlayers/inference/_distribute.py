"""`tf.distribute` plumbing shared by MCMC and VI: checks and data sharding.

Inference scales out with TensorFlow's own engine: a `tf.distribute.Strategy`
(`MirroredStrategy` over one host's devices, `MultiWorkerMirroredStrategy`
over hosts configured from `TF_CONFIG`, `TPUStrategy`) runs one replica per
device and its collectives combine them. This module holds what every
inference method needs before anything is traced:

* `check_strategy`: a real strategy whose devices exist on this host;
* `check_shardable`: at least one example per replica;
* `shard`: arrays split along `N` into one shard per replica, the remainder
  padded with copies of real examples and a mask that zeroes the padding, so
  that every example counts exactly once (none is dropped);
* `check_dataset`: a `tf.data.Dataset` the strategy can split by batch.

Errors name the function the user called (`where`) and the values.
"""

from __future__ import annotations

import collections
from typing import Optional

import numpy as np
import tensorflow as tf

__all__ = ["Shards", "check_arrays", "check_dataset", "check_shardable",
           "check_strategy", "is_default", "num_replicas", "shard"]


class Shards(collections.namedtuple(
    "Shards", ["values", "mask", "shard_size", "num_examples"])):
  """Data split along `N` across replicas.

  Attributes:
    values: The input nest with every array replaced by per-replica values
      (`tf.distribute.DistributedValues`), each `[shard_size, ...]`.
    mask: Per-replica `[shard_size]` weights of the values' dtype (of the
      first floating array, else float32): 1 for a real example, 0 for
      padding.
    shard_size: `ceil(N / replicas)`.
    num_examples: `N`, the real examples over all shards.
  """


def num_replicas(strategy) -> int:
  """Replicas in sync of `strategy` (1 for None)."""
  return 1 if strategy is None else int(strategy.num_replicas_in_sync)


def is_default(strategy) -> bool:
  """Whether `strategy` is TF's default (no-op) strategy: one device, the
  current one, as without a strategy."""
  try:
    strategy.extended.worker_devices  # pylint: disable=pointless-statement
  except RuntimeError:  # "unsupported by default tf.distribute.Strategy"
    return True
  return False


def check_strategy(strategy, where: str):
  """Checks `strategy` is a `tf.distribute.Strategy` whose devices exist.

  Constructing `MirroredStrategy(["/gpu:0", "/gpu:1"])` on a host without
  those GPUs succeeds; the first step would then fail deep inside TensorFlow
  with a placement error. This check fails first, naming the devices.

  Args:
    strategy: None (no distribution) or a `tf.distribute.Strategy`.
    where: The public function's name, for the messages.

  Returns:
    `strategy`, unchanged.

  Raises:
    TypeError: If `strategy` is not a `tf.distribute.Strategy`.
    ValueError: If some of its devices are not devices of this host.

  #### Example

  ```python
  s = check_strategy(tf.distribute.MirroredStrategy(["/cpu:0"]), "vi.fit")
  ```
  """
  if strategy is None:
    return None
  if not isinstance(strategy, tf.distribute.Strategy):
    raise TypeError(f"{where}: `strategy` must be a tf.distribute.Strategy "
                    f"(e.g. tf.distribute.MirroredStrategy()); got "
                    f"{type(strategy).__name__}.")
  local = {(d.device_type, d.device_index) for d in (
      tf.DeviceSpec.from_string(ld.name)
      for ld in tf.config.list_logical_devices())}
  devices = () if is_default(strategy) else tuple(
      strategy.extended.worker_devices)
  missing = [d for d in devices
             if _type_index(d) not in local]
  if missing:
    have = sorted(f"{t}:{i}" for t, i in local)
    raise ValueError(
        f"{where}: the devices {missing} of `strategy` "
        f"({type(strategy).__name__}) cannot be found on this host; its "
        f"devices are {have}. Build the strategy from "
        "tf.config.list_logical_devices() (or pass no device list).")
  return strategy


def _type_index(device: str):
  spec = tf.DeviceSpec.from_string(device)
  return spec.device_type, (spec.device_index or 0)


def check_shardable(n_examples: int, strategy, where: str) -> int:
  """Checks there is at least one example per replica; returns the replicas.

  Raises:
    ValueError: If `n_examples < strategy.num_replicas_in_sync`.
  """
  replicas = num_replicas(strategy)
  if int(n_examples) < replicas:
    raise ValueError(
        f"{where}: cannot split N={int(n_examples)} examples across "
        f"{replicas} replicas of `strategy` ({type(strategy).__name__}); "
        "each replica needs at least one. Use fewer devices or more data.")
  return replicas


def shard(x, strategy, where: str = "shard") -> Shards:
  """Splits the arrays of `x` along `N` into one shard per replica.

  Replica `r` gets examples `[r * k, (r + 1) * k)` with `k = ceil(N / R)`;
  the last shards are filled up with copies of the first examples (real
  inputs, so the padding never evaluates to NaN or inf) whose mask is 0.
  Each replica's shard lives on its device (on each worker, its local
  replicas' shards).

  Args:
    x: An array or a nest of arrays, each `[N, ...]` with the same `N`.
    strategy: A checked `tf.distribute.Strategy`.
    where: The public function's name, for the messages.

  Returns:
    A `Shards`.

  Raises:
    ValueError: If the arrays disagree on `N`, or `N` is below the number
      of replicas.

  #### Example

  ```python
  s = tf.distribute.MirroredStrategy(["/cpu:0"])
  shards = shard((np.ones([5, 2]), np.zeros([5])), s)   # shard_size 5
  ```
  """
  leaves = [np.asarray(v.numpy() if isinstance(v, tf.Tensor) else v)
            for v in tf.nest.flatten(x)]
  sizes = sorted({a.shape[0] if a.ndim else None for a in leaves},
                 key=str)
  if len(sizes) != 1 or sizes[0] is None:
    raise ValueError(f"{where}: the arrays to split must all be [N, ...] "
                     f"with one N; got shapes "
                     f"{[list(a.shape) for a in leaves]}.")
  n = int(sizes[0])
  replicas = check_shardable(n, strategy, where)
  k = -(-n // replicas)
  pad = replicas * k - n  # < replicas <= n, so x[:pad] exists
  padded = [np.concatenate([a, a[:pad]]) if pad else a for a in leaves]
  floats = [a.dtype for a in leaves if np.issubdtype(a.dtype, np.floating)]
  mask = (np.arange(replicas * k) < n).astype(floats[0] if floats
                                               else np.float32)

  def split(arr):
    return strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(
            arr[ctx.replica_id_in_sync_group * k:
                (ctx.replica_id_in_sync_group + 1) * k]))

  values = tf.nest.pack_sequence_as(x, [split(a) for a in padded])
  return Shards(values, split(mask), k, n)


def check_arrays(where: str, **arrays) -> None:
  """Refuses a `tf.data.Dataset` where full-batch arrays are needed.

  Full-batch inference (MCMC) splits the whole `N` across replicas; a
  dataset's batches cannot be split that way (nor iterated per step).

  Raises:
    TypeError: Naming the argument that is a dataset.
  """
  for name, value in arrays.items():
    if isinstance(value, tf.data.Dataset):
      raise TypeError(
          f"{where}: `{name}` is a tf.data.Dataset ({value.element_spec}); "
          "full-batch sampling needs the whole array [N, ...], which the "
          "strategy splits along N itself. Collect it first, e.g. "
          f"np.concatenate([b for b in {name}_dataset.as_numpy_iterator()]).")


def check_dataset(dataset, strategy, where: str,
                  batch_size: Optional[int] = None) -> None:
  """Checks `strategy` can split `dataset`'s batches across its replicas.

  `strategy.experimental_distribute_dataset` splits each global batch
  along its first dim, so every component must be batched (rank >= 1) and
  a batch must hold at least one example per replica.

  Args:
    dataset: The user's input.
    strategy: A checked `tf.distribute.Strategy`.
    where: The public function's name, for the messages.
    batch_size: The global batch size, when the caller knows it better
      than the dataset's static shape (e.g. `None` batch dims).

  Raises:
    TypeError: If `dataset` is not a `tf.data.Dataset`.
    ValueError: If a component is unbatched, or a batch is smaller than the
      number of replicas.
  """
  if not isinstance(dataset, tf.data.Dataset):
    raise TypeError(f"{where}: expected a tf.data.Dataset to distribute; got "
                    f"{type(dataset).__name__}.")
  replicas = num_replicas(strategy)
  specs = tf.nest.flatten(dataset.element_spec)
  shapes = [s.shape for s in specs]
  if any(s.rank == 0 for s in shapes) or not specs:
    raise ValueError(
        f"{where}: `strategy` ({type(strategy).__name__}, {replicas} "
        f"replicas) splits each batch along its first dim, but the dataset's "
        f"elements have shapes {[str(s) for s in shapes]}: batch it first "
        "(dataset.batch(global_batch_size)).")
  if batch_size is None:
    dims = {s[0] for s in shapes if s.rank is not None and s[0] is not None}
    batch_size = min(dims) if dims else None
  if batch_size is not None and int(batch_size) < replicas:
    raise ValueError(
        f"{where}: a global batch of {int(batch_size)} examples cannot be "
        f"split across the {replicas} replicas of `strategy` "
        f"({type(strategy).__name__}); use a batch size of at least "
        f"{replicas} (a multiple of {replicas} keeps replicas equal).")
