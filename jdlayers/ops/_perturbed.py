"""Kernels as Flipout sees them, for layers with several linear kernels.

Flipout (Wen et al., 2018) gives every example a pseudo-independent kernel
`mean + delta * s_out s_in^T` from one shared draw `delta` and random signs
per example, using only that the layer is linear in the kernel:
`op(x, mean) + s_out * op(x * s_in, delta)`. Affine and convolution layers
get this from `jdl.vi`'s estimator directly; layers that apply several
kernels, or one kernel at every time step (recurrent cells, attention,
embeddings), route each kernel through `linear(apply, x, kernel)` instead, so
the estimator can hand them a `Perturbed` kernel and the layer's own code
computes the Flipout output.

Signs come from a stateless seed and depend only on the shape of what they
multiply, so a recurrent cell applying one `Perturbed` kernel at every step
flips the same signs at every step: one sequence sees one kernel.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import tensorflow as tf
import tensorflow_probability as tfp


class Perturbed(NamedTuple):
  """A kernel to apply by Flipout: `mean` plus per-example flipped `delta`.

  Attributes:
    mean: `[*S, *kernel_shape]` surrogate mean.
    delta: `[*S, *kernel_shape]` one draw minus the mean.
    seed: Stateless seed pair for the signs.
  """
  mean: tf.Tensor
  delta: tf.Tensor
  seed: tf.Tensor


@tf.autograph.experimental.do_not_convert
def signs(like: tf.Tensor, shared_axes: Sequence[int], seed) -> tf.Tensor:
  """Rademacher signs shaped like `like`, constant along `shared_axes`.

  Args:
    like: Tensor whose shape (and dtype) the signs take.
    shared_axes: Axes (negative, counted from the end) along which one sign
      is shared, e.g. the time axis of a sequence.
    seed: Stateless seed pair.

  Returns:
    `+1`/`-1` of `like`'s dtype, shape `like.shape` with 1 on `shared_axes`.
  """
  shape = tf.unstack(tf.shape(like))
  for ax in shared_axes:
    shape[ax] = 1
  return tfp.random.rademacher(tf.stack(shape), like.dtype, seed=seed)


@tf.autograph.experimental.do_not_convert
def linear(apply: Callable, x: tf.Tensor, kernel,
           shared_axes: Sequence[int] = ()) -> tf.Tensor:
  """`apply(x, kernel)` for a tensor kernel; Flipout for a `Perturbed` one.

  Args:
    apply: `(x, kernel) -> y`, linear in `kernel` (a batched matmul or
      einsum); it must accept the kernel's sample dims as it does for a
      tensor kernel.
    x: Input of `apply`, `[..., N, ..., in]`.
    kernel: A tensor, or a `Perturbed` kernel.
    shared_axes: Axes of `x` and of `apply`'s output (negative) that share
      one sign per example, e.g. `(-2,)` for `[..., N, T, in]` sequences.

  Returns:
    `apply(x, kernel)`, or `apply(x, mean) + s_out * apply(x * s_in, delta)`
    with signs `s_in` shaped like `x` and `s_out` like the output.

  #### Example

  ```python
  import tensorflow as tf
  from jdlayers import ops
  x, w = tf.ones([5, 3]), tf.ones([3, 2])
  k = ops.Perturbed(w, 0.1 * w, tf.constant([0, 1]))
  ops.linear(tf.matmul, x, k).shape  # [5, 2]
  ```
  """
  if not isinstance(kernel, Perturbed):
    return apply(x, kernel)
  in_seed, out_seed = tfp.random.split_seed(kernel.seed)
  x = tf.convert_to_tensor(x, kernel.mean.dtype)
  pert = apply(x * signs(x, shared_axes, in_seed), kernel.delta)
  return apply(x, kernel.mean) + pert * signs(pert, shared_axes, out_seed)
