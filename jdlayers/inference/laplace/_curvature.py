"""Accumulates the GGN over the data: diagonal, full, or KFAC factors.

All three are sums over examples, taken in chunks whose per-example
Jacobians (`chunk * K * P` numbers) fit the memory budget.

KFAC (Martens & Grosse 2015; Grosse & Martens 2016 for convolutions): a
layer with pre-activations `s_t = M [p_t; 1]` at positions `t` (one for a
dense layer) has the GGN block `sum_n sum_k vec(G_nk) vec(G_nk)^T` with
`G_nk = sum_t g_nkt [p_nt; 1]^T` (`g` the pseudo-output gradients in `s`).
KFAC replaces it by `B (x) A`, with `A = (1/N) sum_{n,t} [p;1][p;1]^T` and
`B = (1/T) sum_{n,t,k} g g^T` (row-major `vec(M)`). For one example and one
position (any dense layer, a conv whose output is a single position) this
is exact; otherwise it assumes activations and gradients independent and
gradients spatially uncorrelated.
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np
import tensorflow as tf

from jdlayers.inference.laplace import _ggn, _layout

# Bytes of per-example terms held at once (16 MiB: the digits CNN's KFAC
# then peaks 29 MiB above its baseline; 64 MiB peaked at 130 MiB, no faster).
DEFAULT_CHUNK_BYTES = 16 * 2 ** 20


def chunks(n: int, per_example_bytes: int, budget: int):
  """Slices of `range(n)` whose examples take at most `budget` bytes."""
  size = max(1, min(n, budget // max(1, per_example_bytes)))
  return [slice(i, min(n, i + size)) for i in range(0, n, size)]


def ggn(structure, parts, indices, x, transform, num_outputs: int,
        num_params: int, kind: str, budget: int) -> np.ndarray:
  """The GGN's diagonal `[P]` or full matrix `[P, P]` (float64).

  Args:
    structure: A sampled network (the structure of `parts`).
    parts: The network's parts at the point estimate.
    indices: Chosen parts.
    x: `[N, *features]`.
    transform: Pseudo outputs (`_ggn.pseudo_outputs`).
    num_outputs: K.
    num_params: P.
    kind: "diag" or "full".
    budget: Bytes of per-example Jacobians held at once.
  """
  itemsize = parts[0].dtype.size
  acc = np.zeros([num_params] if kind == "diag" else [num_params] * 2)
  # The tiled parameters of a chunk also take room, once per example.
  per = (num_outputs * num_params + sum(int(tf.size(p)) for p in parts)
         ) * itemsize
  for sl in chunks(int(x.shape[0]), per, budget):
    jac = _ggn.per_example_jacobian(structure, parts, indices, x[sl],
                                    transform)
    jac = tf.cast(jac, tf.float64)
    if kind == "diag":
      acc += tf.reduce_sum(tf.square(jac), [0, 1]).numpy()
    else:
      flat = tf.reshape(jac, [-1, num_params])
      acc += tf.matmul(flat, flat, transpose_a=True).numpy()
  return acc


def kfac(structure, parts, blocks, x, transform, budget: int
         ) -> List[Tuple[np.ndarray, np.ndarray]]:
  """KFAC factors `(A [width, width], B [out, out])` per block (float64)."""
  n_total = int(x.shape[0])
  sums = [[np.zeros([b.width] * 2), np.zeros([b.out] * 2)] for b in blocks]
  network = tf.nest.pack_sequence_as(structure, parts)
  # A chunk holds, per example and block, K * T * out gradients and
  # T * width patches; probe one example to size it.
  per = max(1, _per_example_bytes(network, blocks, x[:1], transform))
  for sl in chunks(n_total, per, budget):
    record = {}
    with tf.GradientTape(persistent=True) as tape:
      net = _ggn.tapped(network, {b.group for b in blocks}, record, tape)
      z = tf.reduce_sum(transform(net(x[sl])), 0)
      outs = [z[k] for k in range(int(z.shape[0]))]
    pres = [record[b.group][1] for b in blocks]
    grads = [tape.gradient(zk, pres,
                           unconnected_gradients=tf.UnconnectedGradients.ZERO)
             for zk in outs]
    del tape
    for j, b in enumerate(blocks):
      p = _homogeneous(b, record[b.group][0])
      p = tf.cast(p, tf.float64)
      sums[j][0] += tf.einsum("ntc,ntd->cd", p, p).numpy()
      g = tf.stack([_layout.to_positions(gk[j], b.layer) for gk in grads])
      g = tf.cast(g, tf.float64)
      t = int(g.shape[2])
      sums[j][1] += (tf.einsum("knto,kntp->op", g, g) / t).numpy()
  return [(a / n_total, bb) for a, bb in sums]


def _homogeneous(block, x) -> tf.Tensor:
  """Patches `[n, T, width]`: the kernel's columns (if chosen), then 1."""
  cols = []
  patches = _layout.patches(block.layer, x)
  if block.kernel is not None:
    cols.append(patches)
  if block.bias is not None:
    cols.append(tf.ones_like(patches[..., :1]))
  return tf.concat(cols, -1) if len(cols) > 1 else cols[0]


def _per_example_bytes(network, blocks, x1, transform) -> int:
  record = {}
  with tf.GradientTape() as tape:
    net = _ggn.tapped(network, {b.group for b in blocks}, record, tape)
    k = int(transform(net(x1)).shape[-1])
  total = 0
  for b in blocks:
    pre = _layout.to_positions(record[b.group][1], b.layer)
    t = int(pre.shape[1])
    total += (k * t * b.out + t * b.width) * 8
  return total
