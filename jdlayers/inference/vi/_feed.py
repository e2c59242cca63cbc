"""The data of `vi.fit`: validated, batched, padded and stacked in blocks.

Every batch is padded to the batch size (repeating real examples, masked out
of the loss), so one compiled shape serves the whole fit; a block stacks
whole epochs of batches, with each step's KL weight, for one compiled call.
A `tf.data.Dataset` streams one batch per call instead.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, List, Optional

import numpy as np
import tensorflow as tf

from jdlayers import _validate
from jdlayers.inference.vi import _checks
from jdlayers.layers._base import stateless_seed


@dataclasses.dataclass
class Block:
  """Several epochs of batches, fed to one compiled call."""
  tensors: tuple          # xs [T, B, ...], ys [T, B, ...], masks [T, B],
                          # KL weights [T]
  epochs: List[int]       # the epochs that end in this block
  ends: List[int]         # the row after each of those epochs' last step


@dataclasses.dataclass
class Feeder:
  num_examples: int
  blocks: Callable
  # What a strategy splits across its replicas: the examples (None for a
  # dataset) and the examples per step (a dataset's first batch).
  size: Optional[int] = None
  batch: Optional[int] = None


# Steps per compiled call: long enough to amortise the call, short enough
# for timely progress; the data of a call is copied once (capped in size).
_STEPS_PER_CALL = 100
_MAX_BLOCK_ELEMENTS = 2 ** 24


def feeder(model, x, y, batch_size, shuffle, seed, num_examples, weights
            ) -> Feeder:
  """Validates the data; returns the dataset size and a block iterator.

  `weights` are the `[epochs]` KL weights; each step gets its epoch's.
  """
  epochs = len(weights)
  if isinstance(x, tf.data.Dataset):
    return _dataset_feeder(model, x, y, num_examples, weights)
  if y is None:
    raise ValueError("vi.fit: y is required with array inputs.")
  xt, out_shape = model.check_x(x)
  yt = model.check_y(y, int(xt.shape[0]), out_shape)
  n = int(xt.shape[0])
  x_np, y_np = xt.numpy(), yt.numpy()
  b = min(batch_size, n)
  per_epoch = -(-n // b)
  # Every batch is padded to `b` examples (repeating real ones, masked out
  # of the loss), so one compiled shape serves the whole fit; a block holds
  # a divisor of `epochs` epochs, so every call has the same length too.
  target = max(1, min(-(-_STEPS_PER_CALL // per_epoch),
                      _MAX_BLOCK_ELEMENTS // max(1, x_np.size)))
  per_block = max(d for d in range(1, epochs + 1)
                  if epochs % d == 0 and d <= target)
  base = _seed_int(seed)

  def order(epoch):
    if not shuffle:
      return np.arange(n)
    return np.random.default_rng([base, epoch]).permutation(n)

  def blocks():
    for e0 in range(0, epochs, per_block):
      idx, mask = [], []
      for e in range(e0, e0 + per_block):
        o = order(e)
        pad = per_epoch * b - n
        idx.append(np.concatenate([o, o[:pad]]).reshape(per_epoch, b))
        m = np.ones(per_epoch * b, np.float32)
        m[n:] = 0.
        mask.append(m.reshape(per_epoch, b))
      idx = np.concatenate(idx)
      kl_w = np.repeat(weights[e0:e0 + per_block], per_epoch)
      yield Block((tf.constant(x_np[idx]), tf.constant(y_np[idx]),
                    tf.constant(np.concatenate(mask)), tf.constant(kl_w)),
                   list(range(e0, e0 + per_block)),
                   [per_epoch * k for k in range(1, per_block + 1)])
  return Feeder(_check_n(n if num_examples is None else num_examples),
                 blocks, n, b)


def _dataset_feeder(model, dataset, y, num_examples, weights) -> Feeder:
  if y is not None:
    raise ValueError("vi.fit: pass y=None when x is a tf.data.Dataset of "
                     "(x, y) batches.")
  first = next(iter(dataset), None)
  if first is None or len(first) != 2:
    raise ValueError("vi.fit: the dataset must yield (x, y) batches.")
  try:
    xb, out_shape = model.check_x(first[0])
  except ValueError:
    _checks.check_unbatched(model, first)
    raise
  first_batch = int(xb.shape[0])
  model.check_y(first[1], first_batch, out_shape)
  if num_examples is None:
    num_examples = sum(int(tf.shape(b[0])[0]) for b in dataset)
  dtype = model.dtype
  x_dtype = xb.dtype  # The model's float dtype, or integer token ids.

  def blocks():
    # One step per call: a dataset streams, so its batches are not stacked.
    for epoch in range(len(weights)):
      # One batch of lookahead marks the epoch's last batch without holding
      # the epoch in memory.
      it = iter(dataset)
      batch = next(it, None)
      while batch is not None:
        following = next(it, None)
        xb, yb = batch
        yb = model.likelihood.check_y(np.asarray(yb), out_shape, dtype)
        tensors = (tf.cast(xb, x_dtype)[None], tf.convert_to_tensor(yb)[None],
                   tf.ones([1, int(tf.shape(xb)[0])], tf.float32),
                   tf.constant(weights[epoch:epoch + 1]))
        last = following is None
        yield Block(tensors, [epoch] if last else [], [1] if last else [])
        batch = following
  return Feeder(_check_n(num_examples), blocks, None, first_batch)


def _check_n(n) -> int:
  return _validate.count(n, "num_examples", "vi.fit", minimum=1)


def _seed_int(seed) -> int:
  s = np.asarray(stateless_seed(seed) if seed is not None else [0, 0])
  return int(np.abs(s.astype(np.int64)).sum())
