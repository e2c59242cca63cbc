"""`vi.fit`'s block of training steps, shared by one device and replicas."""

from __future__ import annotations

from typing import Callable, Sequence

import tensorflow as tf


def block_loop(step: Callable, num, optimizer, variables: Sequence,
               dtype: tf.DType):
  """Up to `num` training steps in one `tf.while_loop`.

  A step whose loss terms or gradients are not finite ends the loop (it is
  applied: a conditional update costs XLA 2-3x per step; `vi.fit` restores
  the block's start and replays the good steps).

  Args:
    step: `fn(i) -> (row [3], grads)`: step `i`'s loss terms and gradients
      (None for a variable without one), summed over replicas if any.
    num: Number of steps in the block (scalar int tensor).
    optimizer: The Keras optimizer, applied once per step.
    variables: The trainable variables, in `grads` order.
    dtype: The loss dtype.

  Returns:
    `[num, 3]` terms (rows past the steps done are 0), the steps done (the
    last one the bad one, if any) and `[V]` flags of the variables whose
    gradient was not finite at the last step.
  """

  def body(i, stop, out, bad_grads):
    del stop
    row, grads = step(i)
    bad_grads = tf.stack([
        tf.constant(False) if g is None else
        ~tf.reduce_all(tf.math.is_finite(g)) for g in grads])
    ok = tf.reduce_all(tf.math.is_finite(row)) & ~tf.reduce_any(bad_grads)
    optimizer.apply_gradients(zip(grads, variables))
    return i + 1, ~ok, out.write(i, row), bad_grads

  ta = tf.TensorArray(dtype, size=num, element_shape=[3])
  done, _, ta, bad_grads = tf.while_loop(
      lambda i, stop, *_: (i < num) & ~stop, body,
      (tf.constant(0), tf.constant(False), ta,
       tf.zeros([len(variables)], tf.bool)))
  return ta.stack(), done, bad_grads
