"""Batched multi-head dot-product attention over sample dims (Keras 3 math).

Kernels use `keras.layers.MultiHeadAttention`'s layouts: query/key/value
`[*S, in, heads, dim]` with biases `[*S, heads, dim]`, output
`[*S, heads, value_dim, out]` with bias `[*S, out]`. Each projection is one
batched matmul over the flattened `N * T` rows and `heads * dim` columns,
applied through `ops.linear` (so `jdl.vi` flipout can hand it a `Perturbed`
kernel, with one sign per sequence: `shared_axes=(-2,)`).
"""

from __future__ import annotations

from typing import Optional, Sequence

import tensorflow as tf

from jdlayers.ops import _perturbed, _shapes

# Keras 3's TF backend fills masked logits with this before the softmax
# (`_get_large_negative`); its explicit-scores path uses -1e9. Both give
# the same probabilities, including uniform rows for fully masked queries.
_LARGE_NEGATIVE = -0.7 * 3.38953e38


def _kernel_part(kernel):
  """A tensor that has the kernel's core shape and dtype (the mean of a
  `Perturbed` kernel)."""
  return kernel.mean if isinstance(kernel, _perturbed.Perturbed) else kernel


def _sample_shape(kernel, core_rank: int):
  """Static sample dims `S` of a (possibly `Perturbed`) kernel."""
  if isinstance(kernel, _perturbed.Perturbed):
    a, b = kernel.mean.shape[:-core_rank], kernel.delta.shape[:-core_rank]
    return tuple(_shapes.broadcast_batch_shape(a, b, "Perturbed", a, b))
  return tuple(kernel.shape[:-core_rank])


def _dims(x: tf.Tensor, start: int, stop: Optional[int] = None):
  """`x.shape[start:stop]` as a list of ints where static, scalars else."""
  return _shapes.static_or_dynamic_shape(x)[start:stop]


def _reshape(x: tf.Tensor, shape: Sequence) -> tf.Tensor:
  if all(isinstance(d, int) for d in shape):
    return tf.reshape(x, shape)
  return tf.reshape(x, tf.stack([tf.cast(d, tf.int32) for d in shape]))


def _flat_matmul(x: tf.Tensor, kernel: tf.Tensor, k_in: int) -> tf.Tensor:
  """`[*B, N, T, in] x [*S, *in_dims, *out_dims] -> [*L, N, T, prod(out)]`.

  The first `k_in` core dims of the kernel are contracted with `x`'s last
  axis (flattened); `N * T` are folded into matmul rows so `B = []` costs one
  batched matmul per sample, not one per example.
  """
  out = _shapes.num_elements(kernel.shape[-(3 - k_in):])
  n_in = _shapes.num_elements(kernel.shape[-3:-3 + k_in])
  k = _reshape(kernel, _dims(kernel, 0, -3) + [n_in, out])
  rows = _reshape(x, _dims(x, 0, -3) + [_num(x, -3, -1), n_in])
  y = tf.linalg.matmul(rows, k)               # [*L, N * T, out]
  return _reshape(y, _dims(y, 0, -2) + _dims(x, -3, -1) + [out])


def _num(x: tf.Tensor, start: int, stop: int):
  dims = _dims(x, start, stop)
  if all(isinstance(d, int) for d in dims):
    return _shapes.num_elements(dims)
  return tf.reduce_prod(tf.stack([tf.cast(d, tf.int32) for d in dims]))


def project(x: tf.Tensor, kernel, bias: Optional[tf.Tensor],
            k_in: int) -> tf.Tensor:
  """One attention projection, as Keras' `EinsumDense`, over sample dims.

  Args:
    x: `[*B, N, T, in]` (`k_in=1`) or `[*B, N, T, heads, dim]` flattened to
      `[*B, N, T, heads * dim]` (`k_in=2`).
    kernel: `[*S, in, heads, dim]` (`k_in=1`) or `[*S, heads, dim, out]`
      (`k_in=2`), or an `ops.Perturbed` kernel of that shape.
    bias: `[*S, heads, dim]`, `[*S, out]` or None.
    k_in: How many leading core dims of the kernel are contracted.

  Returns:
    `[*L, N, T, heads * dim]` or `[*L, N, T, out]`, `L = broadcast(B, S)`.
  """
  y = _perturbed.linear(lambda a, k: _flat_matmul(a, k, k_in), x, kernel,
                        shared_axes=(-2,))
  if bias is not None:
    flat = _reshape(bias, _dims(bias, 0, -(3 - k_in)) + [y.shape[-1]])
    y = y + flat[..., tf.newaxis, tf.newaxis, :]
  return y


def _check(x, dtype, layer: str, arg: str, dim: int) -> tf.Tensor:
  x = _shapes.check_input(x, dtype, f"{layer} `{arg}`", 3,
                          f"[..., N, T, {dim}]")
  if x.shape[-1] is not None and x.shape[-1] != dim:
    raise ValueError(f"{layer}: `{arg}` has {x.shape[-1]} features (shape "
                     f"{x.shape.as_list()}); expected {dim}.")
  return x


def _check_mask(mask, layer: str, arg: str, want: Sequence,
                names: str) -> tf.Tensor:
  """`mask` as a bool tensor whose last dims are `want` (or 1).

  Args:
    mask: Boolean or numeric (non-zero attends, as Keras) array-like.
    layer: Layer description for messages.
    arg: The argument's name, e.g. "attention_mask".
    want: Expected static sizes of the last dims (None: any).
    names: Their names, e.g. "T, Tv".
  """
  mask = tf.convert_to_tensor(mask)
  if mask.dtype != tf.bool:
    if not (mask.dtype.is_integer or mask.dtype.is_floating):
      raise TypeError(f"{layer}: `{arg}` must be boolean (True = attend) or "
                      f"numeric; got dtype {mask.dtype.name}.")
    mask = tf.cast(mask, tf.bool)
  shape, k = mask.shape, len(want)
  if shape.rank is not None:
    bad = shape.rank < k or any(
        g is not None and w is not None and g not in (1, w)
        for g, w in zip(shape[shape.rank - k:], want))
    if bad:
      sizes = ", ".join(str(w) for w in want)
      raise ValueError(f"{layer}: `{arg}` must be [..., N, {names}] = "
                       f"[..., N, {sizes}] (leading dims broadcast); got "
                       f"shape {shape.as_list()}.")
  return mask


def _combined_mask(layer, t, tv, attention_mask, query_mask, value_mask,
                   key_mask):
  """AND of the given masks as `[..., T, Tv]` (as Keras merges them), or
  None."""
  parts = []
  if attention_mask is not None:
    parts.append(_check_mask(attention_mask, layer, "attention_mask",
                             (t, tv), "T, Tv"))
  if query_mask is not None:
    parts.append(_check_mask(query_mask, layer, "query_mask", (t,),
                             "T")[..., :, tf.newaxis])
  for arg, m in (("value_mask", value_mask), ("key_mask", key_mask)):
    if m is not None:
      parts.append(_check_mask(m, layer, arg, (tv,), "Tv")[..., tf.newaxis, :])
  if not parts:
    return None
  mask = parts[0]
  for part in parts[1:]:
    mask = tf.logical_and(mask, part)
  return mask


def multi_head_attention(query, value, key, kernels, biases, *,
                         attention_mask=None, use_causal_mask: bool = False,
                         query_mask=None, value_mask=None, key_mask=None,
                         layer: str = "MultiHeadAttention"):
  """Keras 3 multi-head attention for `S` sampled weight sets at once.

  Args:
    query: `[*B, N, T, in]`.
    value: `[*Bv, N, Tv, in_v]`.
    key: `[*Bk, N, Tv, in_k]`.
    kernels: `(query, key, value, output)` kernels, shapes
      `[*S, in, H, Dk]`, `[*S, in_k, H, Dk]`, `[*S, in_v, H, Dv]`,
      `[*S, H, Dv, out]`; tensors or `ops.Perturbed`.
    biases: The four biases `[*S, H, Dk]`, `[*S, H, Dk]`, `[*S, H, Dv]`,
      `[*S, out]`, or None each.
    attention_mask: Optional `[..., N, T, Tv]` (leading dims broadcast),
      True (non-zero) where a query may attend to a key.
    use_causal_mask: Also mask keys after the query's position.
    query_mask: Optional `[..., N, T]` padding mask of the query; a False
      position attends to nothing (uniform weights, as Keras).
    value_mask: Optional `[..., N, Tv]` padding mask of the value.
    key_mask: Optional `[..., N, Tv]` padding mask of the key.
    layer: Layer description for error messages.

  Returns:
    `(output, scores)`: `[*L, N, T, out]` and the attention probabilities
    `[*L, N, H, T, Tv]`, `L` the broadcast of `B`, `Bv`, `Bk` and `S`.

  Raises:
    ValueError: For inputs of rank < 3, feature sizes other than the
      kernels', unequal key/value lengths, leading dims that do not
      broadcast with `S`, or a mask of the wrong shape.
    TypeError: For non-floating inputs or another float dtype.

  #### Example

  ```python
  import tensorflow as tf
  from jdlayers.ops import multi_head_attention
  k = [tf.ones([4, 2, 3]), tf.ones([4, 2, 3]), tf.ones([4, 2, 3]),
       tf.ones([2, 3, 4])]
  x = tf.ones([5, 7, 4])
  y, p = multi_head_attention(x, x, x, k, [None] * 4)  # [5, 7, 4]
  ```
  """
  qk, kk, vk, ok = kernels
  ref = _kernel_part(qk)
  dtype = ref.dtype
  heads, key_dim = ref.shape[-2], ref.shape[-1]
  value_dim = _kernel_part(vk).shape[-1]
  query = _check(query, dtype, layer, "query", ref.shape[-3])
  value = _check(value, dtype, layer, "value", _kernel_part(vk).shape[-3])
  key = _check(key, dtype, layer, "key", _kernel_part(kk).shape[-3])
  s = _sample_shape(qk, 3)
  for name, x in (("query", query), ("key", key), ("value", value)):
    _shapes.broadcast_batch_shape(x.shape[:-3], s, f"{layer} `{name}`",
                                  x.shape, list(s) + ref.shape[-3:].as_list())
  tk, tv = key.shape[-2], value.shape[-2]
  if tk is not None and tv is not None and tk != tv:
    raise ValueError(f"{layer}: `key` and `value` must have the same length "
                     f"Tv; got key shape {key.shape.as_list()} and value shape "
                     f"{value.shape.as_list()}.")
  for name, x in (("key", key), ("value", value)):
    _shapes.broadcast_batch_shape(x.shape[:-2], query.shape[:-2],
                                  f"{layer} `{name}` vs `query`", x.shape,
                                  query.shape)
  t = query.shape[-2]
  mask = _combined_mask(layer, t, tv, attention_mask, query_mask, value_mask,
                        key_mask)
  if mask is not None:
    lead = list(_shapes.broadcast_batch_shape(query.shape[:-3], s, layer,
                                              query.shape, s))
    lead.append(query.shape[-3])
    try:
      _shapes.broadcast_batch_shape(mask.shape[:-2], lead, layer, mask.shape,
                                    lead)
    except ValueError:
      raise ValueError(
          f"{layer}: the attention mask has leading dims "
          f"{mask.shape[:-2].as_list()} (shape {mask.shape.as_list()}), which "
          f"do not broadcast with the output's [*S, N] = {lead} (query shape "
          f"{query.shape.as_list()}, sample shape {list(s)}).") from None
  if use_causal_mask:
    n_t, n_s = tf.shape(query)[-2], tf.shape(value)[-2]
    causal = tf.linalg.band_part(tf.ones([n_t, n_s], tf.bool), -1, 0)
    mask = causal if mask is None else tf.logical_and(mask, causal)

  q = project(query, qk, biases[0], 1)       # [*L, N, T, H * Dk]
  k = project(key, kk, biases[1], 1)         # [*L, N, Tv, H * Dk]
  v = project(value, vk, biases[2], 1)       # [*L, N, Tv, H * Dv]
  split = lambda a, d: _reshape(a, _dims(a, 0, -1) + [heads, d])
  # Keras scales the query before the dot product.
  q = split(q, key_dim) * tf.constant(1.0 / float(key_dim) ** 0.5, dtype)
  logits = tf.einsum("...thd,...shd->...hts", q, split(k, key_dim))
  if mask is not None:
    # The head axis is inserted as Keras does: mask [..., T, Tv] -> [..., 1,
    # T, Tv].
    logits = tf.where(mask[..., tf.newaxis, :, :], logits,
                      tf.constant(_LARGE_NEGATIVE, dtype))
  # Softmax over rows of a rank-2 view: oneDNN's CPU softmax refuses rank
  # > 5, and `[*S, N, H, T, Tv]` exceeds it for two sample dims.
  scores = _reshape(tf.nn.softmax(tf.reshape(logits, [-1, tf.shape(
      logits)[-1]])), _dims(logits, 0))       # [*L, N, H, T, Tv]
  context = tf.einsum("...hts,...shd->...thd", scores, split(v, value_dim))
  flat = _reshape(context, _dims(context, 0, -2) + [heads * value_dim])
  return project(flat, ok, biases[3], 2), scores
