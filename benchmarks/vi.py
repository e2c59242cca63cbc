"""Benchmark: seconds per VI training epoch of a Bayesian CNN on the digits.

Network (all rows): Conv2D 3x3 1->16 relu, MaxPool 2, Conv2D 3x3 16->32
relu, MaxPool 2, Flatten, Dense 128->10 ("same" padding), mean-field normal
posteriors on every kernel and bias, `Normal(0, 1)` priors, the per-example
negative ELBO (mean cross-entropy + KL / N). Data: scikit-learn's digits,
images / 16, a stratified 1347/450 split (`random_state=0`); batch size 64
(21 full batches and one of 3 per epoch), Adam (learning rate 3e-3).

Rows:
  jdl-<estimator>-xla    `jdlayers.vi.fit(..., jit_compile=True)` (the default)
  jdl-<estimator>-nojit  `jdlayers.vi.fit(..., jit_compile=False)`
  tfp-<estimator>        `tfp.layers.Convolution2D{Flipout,Reparameterization}`
                         / `Dense...` under tf_keras, `model.fit`, KL / N via
                         `kernel_divergence_fn` and `bias_divergence_fn`
  jdlk-flipout           `jdlayers.keras` layers under Keras 3 `model.fit`
                         (when the module exists)
  jdlk-flipout-spe       the same with `compile(steps_per_execution=22)`
                         (one compiled call per epoch)
  jdl-*-xla+philox       experiment: the -xla row with TF's stateless
                         samplers defaulting to `alg="philox"` (a proposed
                         change, simulated by patching `tf.random`)
  jdl-local-xla+philox-est  experiment: only jdlayers' own sampler call
                         (local noise, vi/_estimators.py) uses Philox
for estimator in flipout, reparam, local (tfp.layers has no local
reparameterization for convolutions).

Per run: the median epoch time excluding the first epoch, the first epoch
(tracing + compilation + one epoch), and the test accuracy of the predictive
mean over 20 weight draws. `vi.fit` runs several epochs per compiled call
and reports their mean time for each, so for jdlayers rows "first epoch" is
the first call's time less its other epochs at the steady rate (older
versions report each epoch; both are handled). Runs are interleaved (repeat
r of every row, then repeat r + 1) so load on the machine affects all rows
alike; the table shows medians over repeats.

`--investigate` times where the first epoch of `jdl-flipout-xla` goes:
tracing and XLA compilation of the loss, its gradient and the full step, a
second compilation for a smaller last batch, and the XLA CPU cost of
stateless random ops (compile and run).

`--jdlayers DIR` measures the jdlayers package found in DIR instead of this
checkout's (e.g. an older commit unpacked with `git archive`).

Usage: python benchmarks/vi.py [--rows ...] [--epochs E] [--repeats R]
       [--quick] [--investigate] [--jdlayers DIR] [--out DIR]
Prints a table and writes JSON to benchmarks/results/vi-<time>.json.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import json
import os
import platform
import sys
import time
import warnings

# A quiet TensorFlow start, shared with the examples; before TF is imported.
# TF32 stays at TensorFlow's default: the benchmarks time what users get.
sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "examples"))
import _common  # noqa: E402

_common.quiet_start(tf32=True)
warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402


def _jdlayers_root(argv) -> str:
  """`--jdlayers DIR` (read before jdlayers is imported), else this repo."""
  for i, a in enumerate(argv):
    if a == "--jdlayers" and i + 1 < len(argv):
      return os.path.abspath(argv[i + 1])
    if a.startswith("--jdlayers="):
      return os.path.abspath(a.split("=", 1)[1])
  return os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


sys.path.insert(0, _jdlayers_root(sys.argv[1:]))
import jdlayers as jdl  # noqa: E402
import _provenance  # noqa: E402  (benchmarks/ is sys.path[0])
from jdlayers.inference import vi  # noqa: E402

tfd = tfp.distributions
BATCH, LR, PRED_SAMPLES = 64, 3e-3, 20


# ---------------------------------------------------------------- data ----
def digits():
  """`(x_train, y_train, x_test, y_test)`: float32 `[N, 8, 8, 1]`, int32."""
  d = load_digits()
  x = (d.images / 16.).astype(np.float32)[..., None]
  y = d.target.astype(np.int32)
  x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=450, stratify=y,
                                            random_state=0)
  return x_tr, y_tr, x_te, y_te


def accuracy(probs, labels) -> float:
  return float(np.mean(np.argmax(probs, -1) == labels))


# ------------------------------------------------------------ jdlayers ----
def jdl_model():
  net = jdl.Sequential(
      jdl.Conv2D(16, 3, 1, activation="relu"), jdl.MaxPool2D(2),
      jdl.Conv2D(32, 3, 16, activation="relu"), jdl.MaxPool2D(2),
      jdl.Flatten(), jdl.Affine(10, 128))
  return jdl.models.Model(net, jdl.models.Categorical())


def run_jdl(data, estimator, jit, epochs, seed):
  x_tr, y_tr, x_te, y_te = data
  q = vi.fit(jdl_model(), x_tr, y_tr, estimator=estimator, epochs=epochs,
             batch_size=BATCH, learning_rate=LR, seed=seed, jit_compile=jit,
             progress=False)
  probs = np.asarray(q.predict(x_te, PRED_SAMPLES, seed=seed).mean)
  return list(q.history.seconds), accuracy(probs, y_te)


# ------------------------------------------------- tfp.layers (tf_keras) ----
def run_tfp(data, estimator, epochs, seed):
  import tf_keras  # pylint: disable=g-import-not-at-top
  tfpl = tfp.layers
  x_tr, y_tr, x_te, y_te = data
  n = len(x_tr)
  tf_keras.utils.set_random_seed(seed)

  def kl(q, p, _):
    return tfd.kl_divergence(q, p) / n
  conv, dense = {
      "flipout": (tfpl.Convolution2DFlipout, tfpl.DenseFlipout),
      "reparam": (tfpl.Convolution2DReparameterization,
                  tfpl.DenseReparameterization)}[estimator]
  # Mean-field normal biases with a N(0, 1) prior, as jdlayers' default
  # (tfp.layers' own default is a point-mass bias without prior).
  vi_kw = dict(kernel_divergence_fn=kl,
               bias_posterior_fn=tfpl.default_mean_field_normal_fn(),
               bias_prior_fn=tfpl.default_multivariate_normal_fn,
               bias_divergence_fn=kl)
  model = tf_keras.Sequential([
      tf_keras.Input((8, 8, 1)),
      conv(16, 3, padding="same", activation="relu", **vi_kw),
      tf_keras.layers.MaxPool2D(2),
      conv(32, 3, padding="same", activation="relu", **vi_kw),
      tf_keras.layers.MaxPool2D(2),
      tf_keras.layers.Flatten(),
      dense(10, **vi_kw)])
  model.compile(tf_keras.optimizers.Adam(LR),
                tf_keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True))
  timer = _EpochTimer(tf_keras.callbacks.Callback)()
  model.fit(x_tr, y_tr, batch_size=BATCH, epochs=epochs, shuffle=True,
            verbose=0, callbacks=[timer])
  probs = np.mean([tf.nn.softmax(model(x_te)).numpy()
                   for _ in range(PRED_SAMPLES)], 0)
  return timer.seconds, accuracy(probs, y_te)


# -------------------------------------------- jdlayers.keras (Keras 3) ----
def have_jdl_keras() -> bool:
  try:
    from jdlayers import keras as _  # noqa: F401
    return True
  except Exception:  # noqa: BLE001 - a colleague's module, maybe unfinished
    return False


def run_jdl_keras(data, estimator, epochs, seed, steps_per_execution=1):
  import keras  # pylint: disable=g-import-not-at-top
  from jdlayers import keras as jdk  # pylint: disable=g-import-not-at-top
  x_tr, y_tr, x_te, y_te = data
  n = len(x_tr)
  keras.utils.set_random_seed(seed)
  kw = dict(estimator=estimator, num_examples=n)
  model = keras.Sequential([
      keras.Input((8, 8, 1)),
      jdk.Conv2D(16, 3, padding="same", activation="relu", seed=seed + 1,
                 **kw),
      keras.layers.MaxPool2D(2),
      jdk.Conv2D(32, 3, padding="same", activation="relu", seed=seed + 2,
                 **kw),
      keras.layers.MaxPool2D(2),
      keras.layers.Flatten(),
      jdk.Dense(10, seed=seed + 3, **kw)])
  model.compile(keras.optimizers.Adam(LR),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                steps_per_execution=steps_per_execution)
  timer = _EpochTimer(keras.callbacks.Callback)()
  model.fit(x_tr, y_tr, batch_size=BATCH, epochs=epochs, shuffle=True,
            verbose=0, callbacks=[timer])
  logits = jdk.predict_samples(model, x_te, PRED_SAMPLES, seed=seed)
  probs = tf.nn.softmax(logits).numpy().mean(0)
  return timer.seconds, accuracy(probs, y_te)


def _EpochTimer(base):  # pylint: disable=invalid-name
  """A Keras callback class (of `base`'s Keras) recording epoch seconds."""

  class EpochTimer(base):

    def __init__(self):
      super().__init__()
      self.seconds = []
      self._t = 0.

    def on_epoch_begin(self, epoch, logs=None):
      self._t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
      self.seconds.append(time.perf_counter() - self._t)
  return EpochTimer


@contextlib.contextmanager
def philox_rng():
  """Makes TF's stateless normal/uniform samplers default to `alg="philox"`.

  Simulates the proposed one-argument change in jdlayers (and shows what it
  would do for TFP's samplers, which jdlayers' surrogates call): under XLA
  on CPU the default `alg="auto_select"` lowers to XLA's own RNG, which
  this benchmark measures at tens of times slower than Philox.
  """
  mods = {id(m): m for m in (tf.random, tf.compat.v2.random)}.values()
  saved = [(m, n, getattr(m, n)) for m in mods
           for n in ("stateless_normal", "stateless_uniform")]

  def wrap(fn):
    @functools.wraps(fn)
    def call(*args, **kwargs):
      if len(args) < 7:  # alg is the 7th positional argument of both
        kwargs.setdefault("alg", "philox")
      return fn(*args, **kwargs)
    return call
  try:
    for m, n, fn in saved:
      setattr(m, n, wrap(fn))
    yield
  finally:
    for m, n, fn in saved:
      setattr(m, n, fn)


@contextlib.contextmanager
def philox_in_estimators():
  """Only jdlayers' own sampler call (the local estimator's per-example
  noise in `vi/_estimators.py`) gets `alg="philox"`: the one-line change
  proposed there, without touching TFP's samplers."""
  from jdlayers.inference.vi import _estimators
  real_tf = _estimators.tf

  class _Random:
    def __getattr__(self, name):
      return getattr(real_tf.random, name)

    @staticmethod
    def stateless_normal(*args, **kwargs):
      kwargs.setdefault("alg", "philox")
      return real_tf.random.stateless_normal(*args, **kwargs)

  class _TF:
    random = _Random()

    def __getattr__(self, name):
      return getattr(real_tf, name)
  _estimators.tf = _TF()
  try:
    yield
  finally:
    _estimators.tf = real_tf


def run_jdl_philox_local(data, epochs, seed):
  with philox_in_estimators():
    return run_jdl(data, "local", True, epochs, seed)


def run_jdl_philox(data, estimator, epochs, seed):
  with philox_rng():
    return run_jdl(data, estimator, True, epochs, seed)


ROWS = collections.OrderedDict([
    ("jdl-flipout-xla", lambda d, e, s: run_jdl(d, "flipout", True, e, s)),
    ("jdl-flipout-nojit", lambda d, e, s: run_jdl(d, "flipout", False, e, s)),
    ("jdl-reparam-xla", lambda d, e, s: run_jdl(d, "reparam", True, e, s)),
    ("jdl-reparam-nojit", lambda d, e, s: run_jdl(d, "reparam", False, e, s)),
    ("jdl-local-xla", lambda d, e, s: run_jdl(d, "local", True, e, s)),
    ("jdl-local-nojit", lambda d, e, s: run_jdl(d, "local", False, e, s)),
    ("tfp-flipout", lambda d, e, s: run_tfp(d, "flipout", e, s)),
    ("tfp-reparam", lambda d, e, s: run_tfp(d, "reparam", e, s)),
    ("jdlk-flipout", lambda d, e, s: run_jdl_keras(d, "flipout", e, s)),
    ("jdlk-flipout-spe", lambda d, e, s: run_jdl_keras(
        d, "flipout", e, s, steps_per_execution=-(-len(d[0]) // BATCH))),
    # Experiments for proposed changes (not what jdlayers does today).
    ("jdl-local-xla+philox", lambda d, e, s: run_jdl_philox(d, "local", e, s)),
    ("jdl-flipout-xla+philox",
     lambda d, e, s: run_jdl_philox(d, "flipout", e, s)),
    ("jdl-local-xla+philox-est", run_jdl_philox_local),
])


# ------------------------------------------------------- investigation ----
def _timed(fn, *args):
  t = time.perf_counter()
  out = fn(*args)
  if out is not None:
    tf.nest.map_structure(lambda v: v.numpy() if hasattr(v, "numpy") else v,
                          out)
  return time.perf_counter() - t


def investigate(data, estimator="flipout"):
  """Where the first epoch of `vi.fit(jit_compile=True)` goes.

  Returns:
    A dict of seconds (and counts), each also printed.
  """
  import keras  # pylint: disable=g-import-not-at-top
  from jdlayers.inference.vi._elbo import elbo_terms
  x_tr, y_tr = data[0], data[1]
  n = len(x_tr)
  out = {}

  def say(key, value, note=""):
    out[key] = value
    unit = "" if isinstance(value, int) else " s"
    print(f"  {key:42s} {value:8.3f}{unit}  {note}" if unit else
          f"  {key:42s} {value:8d}  {note}", flush=True)

  # A first XLA compilation in the process pays one-time set-up; pay it.
  tf.function(lambda a: a * 2., jit_compile=True)(tf.ones([2]))
  print(f"investigate: vi.fit step of the digits CNN ({estimator}), batch "
        f"{BATCH}, N={n}")
  model = jdl_model()
  xb, yb = tf.constant(x_tr[:BATCH]), tf.constant(y_tr[:BATCH])
  xr, yr = tf.constant(x_tr[:n % BATCH]), tf.constant(y_tr[:n % BATCH])
  seed = tf.constant([1, 2])
  for what in ("loss", "grad", "step"):
    for jit in (True, False):
      q = vi.Surrogate(model, seed=0)
      variables = list(q.trainable_variables)
      opt = keras.optimizers.Adam(LR)

      def loss(x, y, s, q=q):
        return elbo_terms(q, x, y, num_examples=n, estimator=estimator,
                          seed=s).loss

      def grad(x, y, s, loss=loss, variables=variables):
        with tf.GradientTape() as tape:
          l = loss(x, y, s)
        return tape.gradient(l, variables)

      def step(x, y, s, grad=grad, variables=variables, opt=opt):
        opt.apply_gradients(zip(grad(x, y, s), variables))
        return tf.constant(0.)
      fn = tf.function({"loss": loss, "grad": grad, "step": step}[what],
                       jit_compile=jit, autograph=False,
                       reduce_retracing=True)
      tag = f"{what} {'xla' if jit else 'nojit'}"
      t_trace = _timed(lambda: fn.get_concrete_function(xb, yb, seed) and
                       None)
      t_first = _timed(fn, xb, yb, seed)
      t_run = min(_timed(fn, xb, yb, seed) for _ in range(5))
      t_partial = _timed(fn, xr, yr, seed)
      say(f"{tag}: trace (batch {BATCH})", t_trace)
      say(f"{tag}: first call - steady call", t_first - t_run,
          "(XLA compile)" if jit else "(first-run set-up)")
      say(f"{tag}: steady call", t_run)
      say(f"{tag}: first call at batch {n % BATCH}", t_partial,
          "(retrace + recompile: what vi.fit's padded batches avoid)"
          if jit else "(retrace)")
      if what == "step" and jit:
        graph = fn.get_concrete_function(xb, yb, seed).graph
        ops = collections.Counter(o.type for o in graph.get_operations())
        rng = sum(v for k, v in ops.items() if k.startswith("StatelessRandom")
                  or k.startswith("StatelessTruncated"))
        say("step: graph ops", sum(ops.values()))
        say("step: stateless random ops in the graph", rng)

  # XLA CPU compile of random ops, alone.
  s = tf.constant([3, 4])
  for name, fn in (
      ("1 stateless_normal [3,3,16,32]", lambda s: tf.random.stateless_normal(
          [3, 3, 16, 32], s)),
      ("8 stateless_normal [3,3,16,32]", lambda s: tf.add_n(
          [tf.random.stateless_normal([3, 3, 16, 32], s + i)
           for i in range(8)])),
      ("8 x (matmul+relu) [64,128]x[128,128]", lambda s: tf.add_n(
          [tf.nn.relu(tf.matmul(tf.ones([64, 128]) * tf.cast(s[0] + i,
                                                              tf.float32),
                                tf.ones([128, 128]))) for i in range(8)])),
  ):
    f = tf.function(fn, jit_compile=True, autograph=False)
    say(f"xla compile: {name}", _timed(f, s) - min(_timed(f, s)
                                                   for _ in range(3)))

  # The local estimator's per-example noise under XLA, default vs Philox.
  for alg in ("auto_select", "philox"):
    f = tf.function(lambda s, alg=alg: tf.random.stateless_normal(
        [BATCH, 8, 8, 16], s, alg=alg), jit_compile=True, autograph=False)
    f(s)
    say(f"xla run: stateless_normal [64,8,8,16] {alg}",
        min(_timed(f, s) for _ in range(10)))

  return out


# ---------------------------------------------------------------- main ----
def epoch_times(seconds):
  """`(steady s/epoch, first epoch s)` from per-epoch wall times.

  `vi.fit` times a compiled call of `k` epochs and records its mean `k`
  times; the first call includes tracing and compilation. The leading run
  of equal values is that call; steady = median of the later values; first
  epoch = first call - (k - 1) * steady.
  """
  k = 1
  while k < len(seconds) and seconds[k] == seconds[0]:
    k += 1
  if k == len(seconds):
    raise ValueError(f"need epochs beyond the first compiled call (got "
                     f"{len(seconds)} epochs in one call); raise --epochs")
  steady = float(np.median(seconds[k:]))
  return steady, float(k * seconds[0] - (k - 1) * steady)


def summarize(rows):
  """Median over repeats per row name."""
  out = []
  for name in dict.fromkeys(r["row"] for r in rows):
    rs = [r for r in rows if r["row"] == name and r["error"] is None]
    if not rs:
      out.append(dict(row=name, error=next(r["error"] for r in rows
                                           if r["row"] == name)))
      continue
    out.append(dict(
        row=name, repeats=len(rs),
        epoch_s=float(np.median([r["epoch_s"] for r in rs])),
        epoch_s_min=float(np.min([r["epoch_s"] for r in rs])),
        first_epoch_s=float(np.median([r["first_epoch_s"] for r in rs])),
        test_acc=float(np.median([r["test_acc"] for r in rs])),
        error=None))
  return out


def table(summary) -> str:
  ref = {s["row"]: s for s in summary if s.get("error") is None}
  lines = [f"{'row':20s} {'s/epoch':>8s} {'(min)':>7s} {'1st epoch s':>11s} "
           f"{'test acc':>8s} {'vs tfp':>7s}"]
  for s in summary:
    if s.get("error"):
      lines.append(f"{s['row']:20s} FAILED {s['error']}")
      continue
    est = s["row"].split("-")[1]
    base = ref.get(f"tfp-{est}") or ref.get("tfp-flipout")
    rel = f"{s['epoch_s'] / base['epoch_s']:6.2f}x" if base else "     -"
    lines.append(f"{s['row']:20s} {s['epoch_s']:8.3f} {s['epoch_s_min']:7.3f} "
                 f"{s['first_epoch_s']:11.1f} {100 * s['test_acc']:7.1f}% "
                 f"{rel:>7s}")
  return "\n".join(lines)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
  p.add_argument("--epochs", type=int, default=20,
                 help="per run; vi.fit compiles 5 epochs per call here, so "
                 "use a multiple of 5, at least 10")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--quick", action="store_true",
                 help="10 epochs, 1 repeat, no +philox experiment rows (smoke)")
  p.add_argument("--investigate", action="store_true",
                 help="also break down the first epoch of jdl-flipout-xla")
  p.add_argument("--jdlayers", default=None,
                 help="directory holding the jdlayers package to measure")
  p.add_argument("--label", default="",
                 help="free text stored in the JSON (e.g. which commit)")
  p.add_argument("--out", default=os.path.join(os.path.dirname(__file__),
                                               "results"))
  args = p.parse_args(argv)
  src = _provenance.source_info(jdl)
  if args.label:
    src["label"] = args.label
  if args.quick:
    args.epochs, args.repeats = 10, 1
    args.rows = [r for r in args.rows if "+" not in r]
  rows_wanted = [r for r in args.rows
                 if not (r.startswith("jdlk-") and not have_jdl_keras())]
  data = digits()
  load0 = os.getloadavg()
  print(f"jdlayers from {src['jdlayers']} (git "
        f"{src.get('git_head', '?')[:8]}"
        f"{', dirty' if src.get('jdlayers_dirty') else ''})")
  print(f"digits CNN, N={len(data[0])}, batch {BATCH}, {args.epochs} epochs, "
        f"{args.repeats} repeats; load average {load0[0]:.1f} on "
        f"{os.cpu_count()} CPUs; devices "
        f"{[d.device_type for d in tf.config.list_physical_devices()]}")
  rows = []
  for rep in range(args.repeats):
    for name in rows_wanted:
      try:
        secs, acc = ROWS[name](data, args.epochs, rep)
        steady, first = epoch_times(secs)
        r = dict(row=name, repeat=rep, seconds=secs, epoch_s=steady,
                 first_epoch_s=first, test_acc=acc, error=None)
        print(f"  [{rep}] {name:20s} {r['epoch_s']:.3f} s/epoch, first "
              f"{r['first_epoch_s']:.1f} s, test acc {100 * acc:.1f}%",
              flush=True)
      except Exception as e:  # noqa: BLE001 - report, keep going
        r = dict(row=name, repeat=rep, error=f"{type(e).__name__}: "
                 f"{str(e)[:200]}")
        print(f"  [{rep}] {name:20s} FAILED {r['error']}", flush=True)
      rows.append(r)
  summary = summarize(rows)
  print()
  print(table(summary))
  inv = investigate(data) if args.investigate else None
  os.makedirs(args.out, exist_ok=True)
  path = os.path.join(args.out, time.strftime("vi-%Y%m%d-%H%M%S.json"))
  meta = dict(python=platform.python_version(), tf=tf.__version__,
              tfp=tfp.__version__, jdlayers_version=jdl.__version__,
              machine=platform.machine(), cpus=os.cpu_count(),
              devices=[d.name for d in tf.config.list_physical_devices()],
              loadavg_start=load0, loadavg_end=os.getloadavg(),
              epochs=args.epochs, repeats=args.repeats, batch_size=BATCH,
              learning_rate=LR, quick=args.quick, **src)
  with open(path + ".tmp", "w") as fh:
    json.dump(dict(meta=meta, summary=summary, rows=rows, investigate=inv),
              fh, indent=1)
  os.replace(path + ".tmp", path)
  print(f"wrote {path}")
  return summary


if __name__ == "__main__":
  main()
