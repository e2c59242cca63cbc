"""Batched LSTM and GRU over sample dims: one time loop for all S networks.

Weights use Keras 3's layouts and gate orders, so they move between the two:
`kernel` `[*S, in, G*units]`, `recurrent_kernel` `[*S, units, G*units]`,
LSTM gates (i, f, c, o) and bias `[*S, 4*units]`; GRU gates (z, r, h) and
bias `[*S, 2, 3*units]` (input and recurrent bias) with `reset_after=True`,
`[*S, 3*units]` otherwise.

As Keras, the input projections of all T steps are one batched matmul
before the loop; the loop (`tf.scan`, or `tf.foldl` when only the last
output is needed) then runs once over T, carrying the states of every
sampled network and example at once, and compiles under XLA. Kernels go
through `ops.linear`, so `jdl.vi` flipout can pass `Perturbed` kernels: the
input kernel shares its signs over time (`shared_axes=(-2,)`) and the
recurrent kernel, applied at every step with the same seed and shape, flips
the same signs at every step (one sequence sees one kernel).
"""

from __future__ import annotations

from typing import Callable, Optional

import tensorflow as tf

from jdlayers.ops import _shapes
from jdlayers.ops._perturbed import Perturbed, linear

_CORE = "[..., N, T, input_size]"


def lstm(x, kernel, recurrent_kernel, bias=None, *, mask=None,
         activation: Optional[Callable] = tf.math.tanh,
         recurrent_activation: Optional[Callable] = tf.math.sigmoid,
         return_sequences: bool = False, go_backwards: bool = False,
         zero_output_for_mask: bool = False,
         layer: str = "LSTM") -> tf.Tensor:
  """Runs `S` sampled LSTMs (Keras 3 semantics) over a batch of sequences.

  Args:
    x: Input `[*B, N, T, in]`; `B` broadcasts against the sample shape `S`.
    kernel: `[*S, in, 4*units]` (gates i, f, c, o) or an `ops.Perturbed`.
    recurrent_kernel: `[*S, units, 4*units]` or an `ops.Perturbed`.
    bias: `[*S, 4*units]` or None.
    mask: Optional boolean `[*B', N, T]`; False steps keep the state and
      repeat the previous output (zeros with `zero_output_for_mask`).
    activation: Cell activation (None: identity).
    recurrent_activation: Gate activation (None: identity).
    return_sequences: Return every step's output, not only the last.
    go_backwards: Process the sequence in reverse; the returned sequence is
      then in processing (reversed) order, as Keras.
    zero_output_for_mask: Zeros as the output of masked steps (as Keras,
      also the last output when the last processed step is masked).
    layer: Layer description for error messages.

  Returns:
    `[*broadcast(B, S), N, units]`, or `[*broadcast(B, S), N, T, units]`
    with `return_sequences`.

  Raises:
    TypeError: For a non-floating input or a non-boolean mask.
    ValueError: For an input of rank < 3 or with the wrong feature size, a
      mask whose `[N, T]` differs from the input's, or leading dims that do
      not broadcast with `S`.

  #### Example

  ```python
  import tensorflow as tf
  from jdlayers import ops
  k, rk = tf.ones([3, 2, 8]), tf.ones([3, 2, 8])   # S = [3], units = 2
  ops.lstm(tf.ones([5, 4, 2]), k, rk).shape      # [3, 5, 2]
  ```
  """
  act, ract = _identity(activation), _identity(recurrent_activation)
  kernel, recurrent_kernel, bias = _tensors(kernel, recurrent_kernel, bias)
  units = _units(recurrent_kernel, 4, layer)
  xp, mask = _project_inputs(x, mask, kernel, recurrent_kernel, units, 4,
                             layer)
  if bias is not None:
    xp = xp + bias[..., tf.newaxis, tf.newaxis, :]

  def step(xt, states):
    h, c = states
    z = xt + linear(tf.linalg.matmul, h, recurrent_kernel)
    i, f, g, o = tf.split(z, 4, axis=-1)
    c = ract(f) * c + ract(i) * act(g)
    return ract(o) * act(c), c

  zeros = tf.zeros_like(xp[..., 0, :units])
  return _run(step, xp, mask, (zeros, zeros), return_sequences, go_backwards,
              zero_output_for_mask)


def gru(x, kernel, recurrent_kernel, bias=None, *, mask=None,
        reset_after: bool = True,
        activation: Optional[Callable] = tf.math.tanh,
        recurrent_activation: Optional[Callable] = tf.math.sigmoid,
        return_sequences: bool = False, go_backwards: bool = False,
        zero_output_for_mask: bool = False, layer: str = "GRU") -> tf.Tensor:
  """Runs `S` sampled GRUs (Keras 3 semantics) over a batch of sequences.

  Args:
    x: Input `[*B, N, T, in]`; `B` broadcasts against the sample shape `S`.
    kernel: `[*S, in, 3*units]` (gates z, r, h) or an `ops.Perturbed`.
    recurrent_kernel: `[*S, units, 3*units]` or an `ops.Perturbed`.
    bias: `[*S, 2, 3*units]` (input, recurrent) with `reset_after`, else
      `[*S, 3*units]`; or None.
    mask, activation, recurrent_activation, return_sequences, go_backwards,
      zero_output_for_mask, layer: As `lstm`.
    reset_after: Apply the reset gate after the recurrent matmul (Keras 3's
      default, cuDNN-compatible) or before it.

  Returns:
    `[*broadcast(B, S), N, units]`, or `[..., N, T, units]` with
    `return_sequences`.

  Raises:
    TypeError, ValueError: As `lstm`.

  #### Example

  ```python
  import tensorflow as tf
  from jdlayers import ops
  k, rk = tf.ones([2, 6]), tf.ones([2, 6])      # units = 2
  ops.gru(tf.ones([5, 4, 2]), k, rk, return_sequences=True).shape  # [5, 4, 2]
  ```
  """
  act, ract = _identity(activation), _identity(recurrent_activation)
  kernel, recurrent_kernel, bias = _tensors(kernel, recurrent_kernel, bias)
  units = _units(recurrent_kernel, 3, layer)
  xp, mask = _project_inputs(x, mask, kernel, recurrent_kernel, units, 3,
                             layer)
  rbias = None
  if bias is not None:
    if reset_after:
      bias, rbias = bias[..., 0, :], bias[..., 1, tf.newaxis, :]
    xp = xp + bias[..., tf.newaxis, tf.newaxis, :]
  if reset_after:
    rk_zr = rk_h = None
  else:  # The reset gate scales h before its matmul: two kernel slices.
    rk_zr = _slice(recurrent_kernel, 0, 2 * units, 1)
    rk_h = _slice(recurrent_kernel, 2 * units, None, 2)

  def step(xt, states):
    (h,) = states
    xz, xr, xh = tf.split(xt, 3, axis=-1)
    if reset_after:
      inner = linear(tf.linalg.matmul, h, recurrent_kernel)
      if rbias is not None:
        inner = inner + rbias
      rz, rr, rh = tf.split(inner, 3, axis=-1)
      z, r = ract(xz + rz), ract(xr + rr)
      hh = act(xh + r * rh)
    else:
      rz, rr = tf.split(linear(tf.linalg.matmul, h, rk_zr), 2, axis=-1)
      z, r = ract(xz + rz), ract(xr + rr)
      hh = act(xh + linear(tf.linalg.matmul, r * h, rk_h))
    return (z * h + (1. - z) * hh,)

  zeros = tf.zeros_like(xp[..., 0, :units])
  return _run(step, xp, mask, (zeros,), return_sequences, go_backwards,
              zero_output_for_mask)


def _identity(fn: Optional[Callable]) -> Callable:
  return (lambda v: v) if fn is None else fn


def _tensors(kernel, recurrent_kernel, bias):
  """Array-like parameters as tensors (of the kernel's dtype); `Perturbed`
  kernels pass through."""
  if not isinstance(kernel, Perturbed):
    kernel = tf.convert_to_tensor(kernel)
  dtype = _shape_src(kernel).dtype
  if not isinstance(recurrent_kernel, Perturbed):
    recurrent_kernel = tf.convert_to_tensor(recurrent_kernel, dtype)
  if bias is not None:
    bias = tf.convert_to_tensor(bias, dtype)
  return kernel, recurrent_kernel, bias


def _shape_src(kernel) -> tf.Tensor:
  return kernel.mean if isinstance(kernel, Perturbed) else kernel


def _shape(kernel) -> tf.TensorShape:
  return (kernel.mean if isinstance(kernel, Perturbed) else kernel).shape


def _units(recurrent_kernel, gates: int, layer: str) -> int:
  shape = _shape(recurrent_kernel)
  if (shape.rank is None or shape.rank < 2 or shape[-1] is None
      or shape[-1] != gates * shape[-2]):
    raise ValueError(f"{layer}: `recurrent_kernel` must be [..., units, "
                     f"{gates} * units]; got shape {shape}.")
  return int(shape[-2])


def _project_inputs(x, mask, kernel, recurrent_kernel, units: int,
                    gates: int, layer: str):
  """Checks `x` and `mask`; returns the projection of all steps,
  `[*broadcast(B, S), N, T, gates * units]` (one batched matmul), and the
  mask broadcast to `[*broadcast(B, S), N, T]` (or None)."""
  kshape = _shape(kernel)
  dtype = (kernel.mean if isinstance(kernel, Perturbed) else kernel).dtype
  x = _shapes.check_input(x, dtype, layer, 3, _CORE)
  if x.shape.rank is None:
    raise ValueError(f"{layer} needs an input of known rank ({_CORE}).")
  if kshape[-1] != gates * units:
    raise ValueError(f"{layer}: `kernel` must be [..., input_size, {gates} * "
                     f"units] with units={units}; got shape {kshape}.")
  in_size = kshape[-2]
  if x.shape[-1] is not None and x.shape[-1] != in_size:
    raise ValueError(f"{layer} got input with {x.shape[-1]} features (input "
                     f"shape {x.shape.as_list()}); expected input_size="
                     f"{in_size} ({_CORE}).")
  rshape = _shape(recurrent_kernel)
  _shapes.broadcast_batch_shape(x.shape[:-3], kshape[:-2], layer, x.shape,
                                kshape)
  _shapes.broadcast_batch_shape(x.shape[:-3], rshape[:-2], layer, x.shape,
                                rshape)
  xp = linear(_project, x, kernel, shared_axes=(-2,))
  if mask is not None:
    mask = _check_mask(mask, x, layer)
    _shapes.broadcast_batch_shape(mask.shape[:-2], xp.shape[:-3],
                                  f"{layer} (`mask`)", mask.shape, xp.shape)
    mask = tf.broadcast_to(mask, tf.shape(xp)[:-1])
  return xp, mask


def _project(x: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
  """`[*B, N, T, in] @ [*S, in, G] -> [*broadcast(B, S), N, T, G]`: N and T
  merge into the matmul's row axis, so the data never tiles over S."""
  shape = _shapes.static_or_dynamic_shape(x)
  flat = tf.reshape(x, shape[:-3] + [shape[-3] * shape[-2], shape[-1]])
  y = tf.linalg.matmul(flat, kernel)
  out = _shapes.static_or_dynamic_shape(y)
  return tf.reshape(y, out[:-2] + [shape[-3], shape[-2], out[-1]])


def _slice(kernel, start: int, stop: Optional[int], salt: int):
  """Columns `[start:stop)` of a kernel; each slice of a `Perturbed` kernel
  draws its signs from its own stream (valid Flipout: the slices' deltas
  are independent)."""
  if not isinstance(kernel, Perturbed):
    return kernel[..., start:stop]
  return Perturbed(kernel.mean[..., start:stop], kernel.delta[..., start:stop],
                   tf.random.experimental.stateless_fold_in(kernel.seed, salt))


def _check_mask(mask, x: tf.Tensor, layer: str) -> tf.Tensor:
  if not (isinstance(mask, tf.Tensor) and mask.dtype == tf.bool):
    mask = tf.convert_to_tensor(mask)
  if mask.dtype != tf.bool:
    raise TypeError(f"{layer}: `mask` must be boolean [..., N, T] (True = "
                    f"keep the step); got dtype {mask.dtype.name}.")
  core = x.shape[-3:-1]
  if mask.shape.rank is not None and (
      mask.shape.rank < 2 or not mask.shape[-2:].is_compatible_with(core)):
    raise ValueError(f"{layer}: `mask` must be [..., N, T] = [..., "
                     f"{core[0]}, {core[1]}] for input shape "
                     f"{x.shape.as_list()}; got shape {mask.shape.as_list()}.")
  return mask


def _run(step, xp, mask, init, return_sequences, go_backwards,
         zero_output_for_mask):
  """One loop over T for every network and example; `init[0]` is h."""
  r = xp.shape.rank
  perm = [r - 2] + list(range(r - 2)) + [r - 1]  # time-major
  xs = tf.transpose(xp, perm)
  if go_backwards:
    xs = tf.reverse(xs, [0])
  if mask is None:
    elems = xs

    def body(states, xt):
      return step(xt, states)
  else:
    ms = tf.transpose(mask, perm[:-1])[..., tf.newaxis]
    if go_backwards:
      ms = tf.reverse(ms, [0])
    elems = (xs, ms)

    def body(states, e):
      # Masked steps carry the states over (and so repeat the output).
      new = step(e[0], states)
      return tuple(tf.where(e[1], n, s) for n, s in zip(new, states))

  if not return_sequences:
    h = tf.foldl(body, elems, initializer=init)[0]
    if mask is not None and zero_output_for_mask:
      # Keras returns the last step's (zeroed) output, not the carried state.
      h = tf.where(ms[-1], h, tf.zeros_like(h))
    return h
  hs = tf.scan(body, elems, initializer=init)[0]
  if mask is not None and zero_output_for_mask:
    hs = tf.where(ms, hs, tf.zeros_like(hs))
  inv = list(range(1, r - 1)) + [0, r - 1]
  return tf.transpose(hs, inv)
