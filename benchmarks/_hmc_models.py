"""The models `benchmarks/hmc.py` samples: a 1-50-50-1 MLP and a digits CNN.

Each `BenchModel` holds its data, the jdlayers model, a hand-written batched
TensorFlow target over the same parts in the same layout as jdlayers'
posterior parts (`check_same_target` checks that the two log densities
agree), and the predictive function whose bulk ESS the benchmark reports.

* "mlp": 1-50-50-1 tanh MLP, `Normal(0, 1)` priors, Normal likelihood
  (sigma 0.1) on 200 points of y = sin(3x) + 0.1 noise, x ~ U[-2, 2]
  (`np.random.default_rng(0)`). Function: f(x) at `linspace(-2, 2, 5)`.
* "cnn": Conv2D(8, 3x3, relu) -> Conv2D(8, 3x3, stride 2, relu) -> Flatten
  -> Affine(10) ("same" padding, `Normal(0, 1)` priors, 1954 parameters),
  Categorical likelihood on the first 300 images of scikit-learn's bundled
  8x8 digits (grey levels / 16). Function: the log-probability of the true
  class of 5 held-out images (the last 5 of the set).

The hand-written CNN is plain TF: im2col (strided slices of the padded
input; the first layer's patches computed once) and a batched einsum.

Example:
  model = get("mlp"); target = model.hand_target(model.x, model.y)
"""

from __future__ import annotations

import dataclasses
from typing import Callable, List, Sequence, Tuple

import numpy as np
import tensorflow as tf

import jdlayers as jdl

LOG_2PI = float(np.log(2 * np.pi))
# Settings every row shares: HMC's fixed leapfrog count, the dual-averaging
# target, the "shrunk" init scale and NUTS' maximum tree depth.
LEAPFROGS, TARGET_ACCEPT, INIT_SCALE, MAX_DEPTH = 20, 0.75, 0.1, 10
MLP_POINTS, MLP_WIDTH, MLP_SIGMA = 200, 50, 0.1
CNN_IMAGES, CNN_PROBES, CNN_CH = 300, 5, 8


@dataclasses.dataclass
class BenchModel:
  """One benchmark model (see the module docstring).

  Attributes:
    name, desc: Short name and a one-line description.
    x, y: Training data. probe: Inputs of the predictive function.
    shapes: Per-chain shapes of the parts, in jdlayers' part order.
    jdl_model: `() -> jdl.models.Model` (a fresh object per call).
    hand_target: `(x, y) -> ((*parts [C, ...]) -> [C])` log density.
    forward: `(parts [B, ...], x) -> [B, M, K]` network outputs.
    function: `(draws [D, C, ...]) -> [D, C, M]` numpy predictive function.
  """
  name: str
  desc: str
  x: np.ndarray
  y: np.ndarray
  probe: np.ndarray
  shapes: List[Tuple[int, ...]]
  jdl_model: Callable
  hand_target: Callable
  forward: Callable
  function: Callable = None

  @property
  def num_params(self) -> int:
    return sum(int(np.prod(s)) for s in self.shapes)


def _normal_prior(parts: Sequence[tf.Tensor]) -> tf.Tensor:
  """Sum of `Normal(0, 1)` log densities over each chain's parts, `[C]`."""
  return tf.add_n([
      tf.reduce_sum(-0.5 * tf.square(w) - 0.5 * LOG_2PI,
                    axis=list(range(1, w.shape.rank))) for w in parts])


def _batched_function(forward, readout, probe, batch=4096):
  """`draws [D, C, ...] -> [D, C, M]`: `readout(forward(parts, probe))` over
  the draws folded into one batch dim (in pieces of `batch` networks)."""

  def function(draws):
    d, c = draws[0].shape[:2]
    flat = [np.reshape(p, (d * c,) + p.shape[2:]) for p in draws]
    out = []
    for i in range(0, d * c, batch):
      piece = [tf.constant(p[i:i + batch], tf.float32) for p in flat]
      out.append(readout(forward(piece, probe)).numpy())
    return np.concatenate(out).reshape(d, c, -1).astype(np.float64)

  return function


# ------------------------------------------------------------------ MLP ----
def _mlp_forward(parts, x):
  w1, b1, w2, b2, w3, b3 = parts
  h = tf.tanh(tf.linalg.matmul(x, w1, transpose_b=True) + b1[:, None])
  h = tf.tanh(tf.linalg.matmul(h, w2, transpose_b=True) + b2[:, None])
  return tf.linalg.matmul(h, w3, transpose_b=True) + b3[:, None]  # [B, N, 1]


def _mlp_target(x, y):
  """log N(0,1) priors + Normal(f(x), 0.1) log-likelihood, `[C]`."""
  x, y = tf.constant(x), tf.constant(y)
  n = int(x.shape[0])

  def target(*parts):
    out = _mlp_forward(parts, x)
    ll = tf.reduce_sum(-0.5 * tf.square((out - y) / MLP_SIGMA), axis=[1, 2])
    return _normal_prior(parts) + ll - n * (0.5 * LOG_2PI + np.log(MLP_SIGMA))

  return target


def mlp() -> BenchModel:
  rng = np.random.default_rng(0)
  x = rng.uniform(-2, 2, size=(MLP_POINTS, 1)).astype(np.float32)
  y = (np.sin(3 * x) + 0.1 * rng.normal(size=x.shape)).astype(np.float32)
  probe = np.linspace(-2, 2, 5, dtype=np.float32)[:, None]
  w = MLP_WIDTH

  def jdl_model():
    net = jdl.Sequential(jdl.Affine(w, 1, activation="tanh"),
                         jdl.Affine(w, w, activation="tanh"),
                         jdl.Affine(1, w))
    return jdl.models.Model(net, jdl.models.Normal(scale=MLP_SIGMA))

  model = BenchModel(
      name="mlp", desc=f"MLP 1-{w}-{w}-1 on {MLP_POINTS} points",
      x=x, y=y, probe=probe,
      shapes=[(w, 1), (w,), (w, w), (w,), (1, w), (1,)],
      jdl_model=jdl_model, hand_target=_mlp_target, forward=_mlp_forward)
  model.function = _batched_function(_mlp_forward, lambda o: o[..., 0],
                                     tf.constant(probe))
  return model


# ------------------------------------------------------------------ CNN ----
def _patches(h, stride):
  """3x3 "same" patches of `[B, H, W, K]` -> `[B, H', W', 9K]`, in the
  (row, column, channel) order of a `[3, 3, K, out]` kernel reshaped: nine
  strided slices of the padded input (`tf.image.extract_patches` is several
  times slower to differentiate under XLA on a CPU)."""
  size = int(h.shape[1])
  out = -(-size // stride)
  total = max((out - 1) * stride + 3 - size, 0)  # TF's "SAME" rule
  lo = total // 2
  h = tf.pad(h, [[0, 0], [lo, total - lo], [lo, total - lo], [0, 0]])
  end = (out - 1) * stride + 1
  return tf.concat([h[:, i:i + end:stride, j:j + end:stride, :]
                    for i in range(3) for j in range(3)], axis=-1)


def _cnn_logits(parts, patches1):
  """Logits `[C, N, 10]` from the first layer's patches `[N, 8, 8, 9]`."""
  k1, b1, k2, b2, w3, b3 = parts
  c, n = int(k1.shape[0]), int(patches1.shape[0])
  h = tf.nn.relu(tf.einsum("nhwp,cpo->cnhwo", patches1,
                           tf.reshape(k1, [c, 9, CNN_CH]))
                 + b1[:, None, None, None, :])              # [C, N, 8, 8, 8]
  p2 = _patches(tf.reshape(h, [c * n, 8, 8, CNN_CH]), 2)    # [CN, 4, 4, 72]
  p2 = tf.reshape(p2, [c, n, 4, 4, 9 * CNN_CH])
  h = tf.nn.relu(tf.einsum("cnhwp,cpo->cnhwo", p2,
                           tf.reshape(k2, [c, 9 * CNN_CH, CNN_CH]))
                 + b2[:, None, None, None, :])              # [C, N, 4, 4, 8]
  flat = tf.reshape(h, [c, n, 16 * CNN_CH])
  return tf.einsum("cnf,ckf->cnk", flat, w3) + b3[:, None, :]


def _cnn_forward(parts, x):
  return _cnn_logits(parts, _patches(x, 1))


def _cnn_target(x, y):
  """log N(0,1) priors + Categorical(logits) log-likelihood, `[C]`."""
  patches1 = tf.constant(_patches(tf.constant(x), 1))
  onehot = tf.one_hot(y, 10)

  def target(*parts):
    logp = tf.nn.log_softmax(_cnn_logits(parts, patches1))
    return _normal_prior(parts) + tf.reduce_sum(logp * onehot, axis=[1, 2])

  return target


def cnn() -> BenchModel:
  from sklearn.datasets import load_digits  # optional: only for --model cnn
  digits = load_digits()
  images = (digits.images / 16.).astype(np.float32)[..., None]
  labels = digits.target.astype(np.int32)
  x, y = images[:CNN_IMAGES], labels[:CNN_IMAGES]
  probe, probe_y = images[-CNN_PROBES:], labels[-CNN_PROBES:]
  ch = CNN_CH

  def jdl_model():
    net = jdl.Sequential(
        jdl.Conv2D(ch, 3, 1, activation="relu"),             # [N, 8, 8, 8]
        jdl.Conv2D(ch, 3, ch, strides=2, activation="relu"),  # [N, 4, 4, 8]
        jdl.Flatten(),                                       # [N, 128]
        jdl.Affine(10, 16 * ch))                             # [N, 10]
    return jdl.models.Model(net, jdl.models.Categorical())

  model = BenchModel(
      name="cnn", desc=f"CNN conv8-conv8/2-affine10 on {CNN_IMAGES} 8x8 "
      "digits", x=x, y=y, probe=probe,
      shapes=[(3, 3, 1, ch), (ch,), (3, 3, ch, ch), (ch,), (10, 16 * ch),
              (10,)],
      jdl_model=jdl_model, hand_target=_cnn_target, forward=_cnn_forward)
  pick = tf.one_hot(probe_y, 10)
  model.function = _batched_function(
      _cnn_forward,
      lambda logits: tf.reduce_sum(tf.nn.log_softmax(logits) * pick, -1),
      tf.constant(probe), batch=2048)
  return model


MODELS = {"mlp": mlp, "cnn": cnn}


# ------------------------------------------------------- shared helpers ----
def init_step_size(model: BenchModel) -> float:
  """jdlayers' default initial step size `0.5 * d ** -0.25`, for every row."""
  return 0.5 * model.num_params ** -0.25


def shrunk_init(model: BenchModel, num_chains: int, seed: int):
  """0.1 * N(0, 1) per weight, `[C, ...]` (jdlayers' `init="shrunk"`)."""
  rng = np.random.default_rng(seed)
  return [(INIT_SCALE * rng.normal(size=(num_chains,) + tuple(s))).astype(
      np.float32) for s in model.shapes]


def summarize(f) -> Tuple[float, float]:
  """min bulk ESS and max split R-hat of function values `[D, C, M]`."""
  ess = jdl.diagnostics.bulk_ess(f)
  rhat = jdl.diagnostics.split_rhat(f)
  return float(np.min(ess)), float(np.max(rhat))


def get(name: str) -> BenchModel:
  if name not in MODELS:
    raise ValueError(f"unknown model {name!r}; choose from {list(MODELS)}")
  return MODELS[name]()


def check_same_target(model: BenchModel, num_chains: int = 3) -> None:
  """Asserts that the hand-written target equals jdlayers' `log_prob` at
  shrunk random parts, and that the part shapes agree."""
  post = model.jdl_model().posterior(model.x, model.y)
  init = post.init(num_chains, seed=0)
  shapes = [tuple(p.shape[1:]) for p in init]
  if shapes != [tuple(s) for s in model.shapes]:
    raise AssertionError(f"{model.name}: jdlayers parts {shapes} != "
                         f"{model.shapes}")
  np.testing.assert_allclose(
      post.log_prob(*init).numpy(),
      model.hand_target(model.x, model.y)(*init).numpy(), rtol=1e-4)
