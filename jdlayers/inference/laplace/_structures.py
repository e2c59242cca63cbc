"""Posterior precisions `H + diag(delta)`: diagonal, Kronecker, full.

`H` is the GGN of the chosen parameters (flattened row-major, concatenated
in part order), `delta` the prior precision of each parameter's layer.
Each structure gives the log-determinant (for the marginal likelihood),
posterior draws and the functional covariance `J Sigma J^T` of the
linearised (GLM) predictive. All of them work in float64.

Memory (float64, `P` parameters; KFAC blocks of `out x width`):
* "diag": `8 P` bytes;
* "kron": `16 sum_b (out_b^2 + width_b^2)` bytes (factors and their
  eigenvectors);
* "full": `16 P^2` bytes (the GGN and its Cholesky factor).
"""

from __future__ import annotations

from typing import Dict, List

import numpy as np
import tensorflow as tf

from jdlayers.inference.laplace import _layout

KINDS = ("diag", "kron", "full")


def nbytes(kind: str, num_params: int, blocks=()) -> int:
  """Bytes the structure holds (see the module docstring)."""
  if kind == "diag":
    return 8 * num_params
  if kind == "full":
    return 16 * num_params ** 2
  return 16 * sum(b.out ** 2 + b.width ** 2 for b in blocks)


class _Base:
  """Shared parts: the selection's layout and the prior's expansion."""

  def __init__(self, kind, shapes, groups, group_names):
    self.kind = kind
    self.shapes = [tuple(s) for s in shapes]
    self.sizes = [int(np.prod(s, dtype=np.int64)) for s in self.shapes]
    gid = {g: i for i, g in enumerate(group_names)}
    self.part_group = np.array([gid[g] for g in groups], np.int64)
    self.param_group = np.repeat(self.part_group, self.sizes)

  @property
  def num_params(self) -> int:
    return int(sum(self.sizes))

  def expand(self, delta) -> tf.Tensor:
    """Per-layer prior precisions `[G]` -> per-parameter `[P]`."""
    return tf.gather(tf.cast(delta, tf.float64), self.param_group)

  def split(self, flat) -> List[tf.Tensor]:
    """`[*B, P]` -> per part `[*B, *shape]`."""
    lead = tf.shape(flat)[:-1]
    pieces = tf.split(flat, self.sizes, axis=-1)
    return [tf.reshape(p, tf.concat([lead, s], 0))
            for p, s in zip(pieces, self.shapes)]


class Diag(_Base):
  """`diag(h) + diag(delta)`."""

  def __init__(self, h, shapes, groups, group_names):
    super().__init__("diag", shapes, groups, group_names)
    self.h = tf.constant(np.maximum(np.asarray(h, np.float64), 0.))

  def logdet(self, delta):
    return tf.reduce_sum(tf.math.log(self.h + self.expand(delta)))

  def sample_flat(self, n, delta, seed):
    z = tf.random.stateless_normal([n, self.num_params], seed,
                                   dtype=tf.float64)
    return z / tf.sqrt(self.h + self.expand(delta))

  def functional_cov(self, jac, delta):
    return tf.einsum("nkp,nlp->nkl", jac / (self.h + self.expand(delta)),
                     jac)

  def precision(self, delta):
    return tf.linalg.diag(self.h + self.expand(delta))

  def arrays(self) -> Dict[str, np.ndarray]:
    return {"h": self.h.numpy()}


class Full(_Base):
  """`H + diag(delta)` held densely (small subsets)."""

  def __init__(self, h, shapes, groups, group_names):
    super().__init__("full", shapes, groups, group_names)
    h = np.asarray(h, np.float64)
    self.h = tf.constant(0.5 * (h + h.T))

  def _chol(self, delta):
    return tf.linalg.cholesky(self.h + tf.linalg.diag(self.expand(delta)))

  def logdet(self, delta):
    return 2. * tf.reduce_sum(tf.math.log(tf.linalg.diag_part(
        self._chol(delta))))

  def sample_flat(self, n, delta, seed):
    z = tf.random.stateless_normal([self.num_params, n], seed,
                                   dtype=tf.float64)
    chol = self._chol(delta)
    return tf.transpose(tf.linalg.triangular_solve(chol, z, lower=True,
                                                   adjoint=True))

  def functional_cov(self, jac, delta):
    chol = self._chol(delta)
    n, k = tf.shape(jac)[0], tf.shape(jac)[1]
    rows = tf.reshape(jac, [-1, self.num_params])
    w = tf.linalg.triangular_solve(chol, tf.transpose(rows), lower=True)
    w = tf.reshape(tf.transpose(w), [n, k, self.num_params])
    return tf.einsum("nkp,nlp->nkl", w, w)

  def precision(self, delta):
    return self.h + tf.linalg.diag(self.expand(delta))

  def arrays(self):
    return {"h": self.h.numpy()}


class Kron(_Base):
  """Per layer `B (x) A + delta I`, through the factors' eigenvectors.

  With `A = Q_A diag(mu) Q_A^T` and `B = Q_B diag(lam) Q_B^T`, the block is
  `(Q_B (x) Q_A) diag(lam (x) mu + delta) (Q_B (x) Q_A)^T`: determinant,
  draws and solves cost two small eigendecompositions, at any `delta`.
  """

  def __init__(self, factors, blocks, shapes, groups, group_names):
    super().__init__("kron", shapes, groups, group_names)
    self.blocks = list(blocks)
    self.factors = [(np.asarray(a, np.float64), np.asarray(b, np.float64))
                    for a, b in factors]
    self.eig = []
    for a, b in self.factors:
      mu, qa = np.linalg.eigh(0.5 * (a + a.T))
      lam, qb = np.linalg.eigh(0.5 * (b + b.T))
      self.eig.append(tuple(tf.constant(v) for v in (
          np.maximum(lam, 0.), qb, np.maximum(mu, 0.), qa)))
    self.block_group = [int(self.part_group[b.kernel if b.kernel is not None
                                            else b.bias]) for b in blocks]

  def _denominators(self, delta):
    delta = tf.cast(delta, dtype=tf.float64)
    return [lam[:, None] * mu[None, :] + delta[g]
            for (lam, _, mu, _), g in zip(self.eig, self.block_group)]

  def logdet(self, delta):
    return tf.add_n([tf.reduce_sum(tf.math.log(d))
                     for d in self._denominators(delta)])

  def sample_flat(self, n, delta, seed):
    parts = [None] * len(self.shapes)
    seeds = tf.random.experimental.stateless_split(seed, len(self.blocks))
    for blk, (lam, qb, mu, qa), den, s in zip(
        self.blocks, self.eig, self._denominators(delta), seeds):
      z = tf.random.stateless_normal([n, blk.out, blk.width], s,
                                     dtype=tf.float64)
      m = tf.matmul(qb, tf.matmul(z / tf.sqrt(den), qa, transpose_b=True))
      parts_b = _layout.matrix_to_block(blk, m, self.shapes)
      for j, v in parts_b.items():
        parts[j] = tf.reshape(v, [n, -1])
    return tf.concat(parts, -1)

  def _to_matrices(self, flat):
    parts = self.split(flat)
    return [_layout.block_to_matrix(blk, parts) for blk in self.blocks]

  def functional_cov(self, jac, delta):
    out = 0.
    for m, (lam, qb, mu, qa), den in zip(
        self._to_matrices(jac), self.eig, self._denominators(delta)):
      jt = tf.matmul(qb, tf.matmul(m, qa), transpose_a=True)
      out += tf.einsum("nkoc,nloc->nkl", jt / den, jt)
    return out

  def precision(self, delta):
    """Dense `[P, P]` in the flat layout (for tests on small layers):
    `u^T P v = sum_b <M_u, B M_v A + delta_b M_v>`."""
    eye = tf.eye(self.num_params, dtype=tf.float64)
    delta = tf.cast(delta, dtype=tf.float64)
    out = 0.
    for m, (a, b), g in zip(self._to_matrices(eye), self.factors,
                            self.block_group):
      pm = tf.matmul(tf.constant(b), tf.matmul(m, tf.constant(a))) + (
          delta[g] * m)
      out += tf.einsum("ioc,joc->ij", m, pm)
    return out

  def arrays(self):
    out = {}
    for i, (a, b) in enumerate(self.factors):
      out[f"kron_a_{i}"] = a
      out[f"kron_b_{i}"] = b
    return out

