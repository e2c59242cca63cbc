"""The generalized Gauss-Newton of a likelihood head, per example.

For outputs `f(x_n; theta)` and `Lambda_n`, the Hessian of `-log p(y_n | f)`
in `f`, the GGN is `sum_n J_n^T Lambda_n J_n`. Writing `Lambda_n = L_n
L_n^T`, it is `sum_n sum_k g_nk g_nk^T` with `g_nk` the gradient of the
pseudo-output `z_nk = (L_n^T f_n)_k` (`L_n` held fixed at the point
estimate). The heads with a GGN and their factors:

* `Normal(scale=s)`: `Lambda = I / s^2`, `L^T f = f / s`;
* `Bernoulli`: `Lambda = diag(p (1 - p))`, `L^T f = sqrt(p (1 - p)) f`;
* `Categorical`: `Lambda = diag(p) - p p^T`, `L = diag(sqrt p) - p sqrt(p)^T`
  (so `L L^T = Lambda` as `sum p = 1`), `L^T f = sqrt(p) (f - p . f)`.

Per-example Jacobians come from one network copy per example (the layers'
sample dims): parameters tiled to `[n, ...]` and inputs `[n, 1, ...]`, so
the gradient of `sum_n z_nk` in the tiled parameters is every example's
gradient at once, one backward pass per output `k`; no loop over examples.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Mapping

import tensorflow as tf

from jdlayers.compose._base import CompositeLayer
from jdlayers.inference.laplace._layout import linear
from jdlayers.models import _likelihoods

SUPPORTED = (_likelihoods.Normal, _likelihoods.Bernoulli,
             _likelihoods.Categorical)


def check_head(likelihood, where: str) -> None:
  """Raises ValueError for a likelihood without a GGN here."""
  if type(likelihood) not in SUPPORTED:  # pylint: disable=unidiomatic-typecheck
    raise ValueError(
        f"{where}: the likelihood {likelihood.desc} has no generalized "
        "Gauss-Newton here; supported heads: "
        f"{[c.__name__ for c in SUPPORTED]} (jdlayers.models).")


def noise_scale(likelihood, latents: Mapping[str, tf.Tensor], dtype):
  """The Normal head's scale (fixed, or the latent at the point estimate)."""
  if "scale" in latents:
    return tf.cast(latents["scale"], dtype)
  fixed = likelihood._fixed  # pylint: disable=protected-access
  return tf.constant(fixed["scale"], dtype)


def pseudo_outputs(likelihood, latents) -> Callable:
  """`f [n, *out] -> z [n, K]` with `z = stop_gradient(L)^T f`, K = |out|."""

  def fn(f):
    n = tf.shape(f)[0]
    if isinstance(likelihood, _likelihoods.Normal):
      z = f / noise_scale(likelihood, latents, f.dtype)
    elif isinstance(likelihood, _likelihoods.Bernoulli):
      p = tf.stop_gradient(tf.math.sigmoid(f))
      z = tf.sqrt(p * (1. - p)) * f
    else:
      p = tf.stop_gradient(tf.nn.softmax(f))
      z = tf.sqrt(p) * (f - tf.reduce_sum(p * f, -1, keepdims=True))
    return tf.reshape(z, [n, -1])

  return fn


def per_example_jacobian(structure, parts: List[tf.Tensor], indices,
                         x: tf.Tensor, transform: Callable) -> tf.Tensor:
  """Jacobians of `transform(f(x_n))` in the chosen parts, every example.

  Args:
    structure: A sampled network (the structure of `parts`).
    parts: The network's flat parts at the point estimate (no sample dims).
    indices: Positions of the chosen parts.
    x: `[n, *features]`.
    transform: `f [n, *out] -> [n, K]`.

  Returns:
    `[n, K, P]`, `P` the chosen parts' total size (parts flattened
    row-major and concatenated in order).
  """
  n = int(x.shape[0])
  tiled = [tf.repeat(p[None], n, axis=0) for p in parts]
  chosen = [tiled[i] for i in indices]
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(chosen)
    network = tf.nest.pack_sequence_as(structure, tiled)
    f = network(x[:, None])
    f = tf.reshape(f, tf.concat([[n], tf.shape(f)[2:]], 0))
    z = tf.reduce_sum(transform(f), 0)
    outs = [z[k] for k in range(int(z.shape[0]))]
  rows = []
  for zk in outs:
    grads = tape.gradient(zk, chosen,
                          unconnected_gradients=tf.UnconnectedGradients.ZERO)
    rows.append(tf.concat([tf.reshape(g, [n, -1]) for g in grads], -1))
  del tape
  return tf.stack(rows, 1)


class _Tap:
  """Stands in for a layer: records its input and pre-activation."""

  def __init__(self, layer, key, record: Dict, tape):
    self.layer, self.key, self.record, self.tape = layer, key, record, tape
    self.linear = linear(layer)

  def __call__(self, x):
    pre = self.linear(x)
    self.tape.watch(pre)
    self.record[self.key] = (x, pre)
    act = self.layer.config.activation
    return pre if act is None else act(pre)


def tapped(value, keys, record: Dict, tape, prefix: str = ""):
  """`value` with the layers at paths `keys` replaced by taps (composites
  call their children, so a tap sees exactly the layer's input)."""
  if isinstance(value, CompositeLayer):
    return type(value)(tuple(
        tapped(l, keys, record, tape, f"{prefix}{i}/")
        for i, l in enumerate(value.layers)), value.config)
  path = prefix.rstrip("/")
  if path in keys:
    return _Tap(value, path, record, tape)
  return value
