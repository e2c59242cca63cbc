"""`vi.fit(..., strategy=)`: data-parallel SVI over 2 and 4 logical CPUs.

One subprocess (logical devices must be set before TensorFlow starts) runs
every fit; the tests check what it recorded:

* Point-mass surrogates draw no noise, so a data-parallel fit must give the
  single-device per-step losses (and KL, counted once per step, not once per
  replica) at the same global batch, for batches that do not divide by the
  replicas and a last partial batch (padding masked, nothing dropped).
  Tolerance: the replicas' partial sums are added in another order, a
  relative error of ~1e-7 per step in float32 (measured: <= 2.4e-7 over 6
  Adam steps); 1e-5 relative is 40x that, and no float32 machine or oneDNN
  setting adds error of that size to sums of a few dozen terms.
* With noise, step 0's loss must equal the sum of the replicas' shares
  computed here on one device with seeds `fold_in(fold_in(seed, step),
  replica)` (so the replicas drew distinct noise: with replica 0's seed for
  both, the loss differs by >> the tolerance), reruns must be bit-identical,
  and a one-replica strategy must reproduce the fit without one.
* Bad inputs fail before anything compiles, naming the values.
"""

import numpy as np
import pytest

from tests.inference import _distributed_testlib as dtl

pytestmark = pytest.mark.filterwarnings("ignore")

_SCRIPT = """
import keras
from jdlayers.layers._base import stateless_seed
RESULT = {}

def strategy(r):
  return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(r)])

# Two strategies of different sizes in one process: TF would give their
# collective ops the same keys, so on one host vi.fit sums in its graph.
S2, S4 = strategy(2), strategy(4)
rng = np.random.default_rng(0)
X = rng.normal(size=(23, 2)).astype(np.float32)
Y = (X[:, :1] - X[:, 1:] + 0.3 * rng.normal(size=(23, 1))).astype(np.float32)
MODEL = jdl.models.Model(
    jdl.Sequential(jdl.Affine(4, 2, activation="tanh"), jdl.Affine(1, 4)),
    jdl.models.Normal(scale=0.5))
KW = dict(epochs=2, seed=3, progress=False, learning_rate=1e-2)

def record(key, q):
  RESULT[key] = dict(
      step_loss=q.history.step_loss, kl=q.history.kl, nll=q.history.nll,
      params=[v.numpy().ravel().tolist() for v in q.trainable_variables])

# Point masses: no noise. 23 examples in batches of 7 (7 = 2 * 4 - 1 =
# 4 * 2 - 1, and a last batch of 2): padding at both levels.
for name, s in (("none", None), ("r2", S2), ("r4", S4)):
  record("pm_" + name, jdl.vi.fit(MODEL, X, Y, batch_size=7, strategy=s,
                                  point_mass=True, **KW))
# XLA: each replica's loss and gradient compiled (one epoch, 4 steps).
for name, s in (("none", None), ("r2", S2)):
  record("jit_" + name, jdl.vi.fit(MODEL, X, Y, batch_size=7, strategy=s,
                                   point_mass=True, jit_compile=True,
                                   **dict(KW, epochs=1)))
# A dataset whose last batch (1 example) is smaller than the replicas.
ds = tf.data.Dataset.from_tensor_slices((X[:22], Y[:22])).batch(7)
for name, s in (("none", None), ("r2", S2)):
  record("ds_" + name, jdl.vi.fit(MODEL, ds, strategy=s, point_mass=True,
                                  **KW))

# Noise: reparameterised weights with a wide surrogate, so distinct draws
# give clearly distinct losses.
NOISY = dict(KW, batch_size=8, shuffle=False, estimator="reparam",
             init_scale=0.3)
for name, s in (("a", S2), ("b", S2), ("one", strategy(1)), ("none", None)):
  record("noisy_" + name, jdl.vi.fit(MODEL, X[:16], Y[:16], strategy=s,
                                     **NOISY))
# Step 0 by hand on one device: global batch X[:8], replica r has X[4r:4r+4].
q = jdl.vi.Surrogate(MODEL, seed=3, init_scale=0.3)
step = tf.random.experimental.stateless_fold_in(stateless_seed(3), 0)
def share(r, seed_of):
  return jdl.vi.elbo_terms(
      q, X[4 * r:4 * r + 4], Y[4 * r:4 * r + 4], num_examples=16,
      estimator="reparam", mask=tf.ones([4]), total=8., replicas=2,
      seed=tf.random.experimental.stateless_fold_in(step, seed_of(r)))
RESULT["step0_expected"] = float(sum(share(r, lambda r: r).loss
                                     for r in range(2)))
RESULT["step0_same_seed"] = float(sum(share(r, lambda r: 0).loss
                                      for r in range(2)))

# Errors, raised before any tracing.
def error(**kw):
  args = dict(KW, x=X, y=Y, strategy=S2)
  args.update(kw)
  try:
    jdl.vi.fit(MODEL, **args)
  except Exception as e:  # pylint: disable=broad-except
    return f"{type(e).__name__}: {e}"
  return "no error"
RESULT["errors"] = dict(
    few=error(x=X[:3], y=Y[:3], strategy=S4),
    batch=error(batch_size=3, strategy=S4),
    devices=error(strategy=tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:9"])),
    unbatched=error(x=tf.data.Dataset.from_tensor_slices((X, Y)), y=None),
    small_batches=error(x=tf.data.Dataset.from_tensor_slices((X, Y)).batch(
        3), y=None, strategy=S4),
    surrogate=error(surrogate=jdl.vi.Surrogate(MODEL)),
    optimizer=error(optimizer=keras.optimizers.Adam()),
    kind=error(strategy="mirrored"))

# Divergence under a strategy: SGD at learning rate 1 goes to inf at step 10
# (as in test_vi_fit_faults); the last finite state is kept.
XL = np.linspace(-1, 1, 64, dtype=np.float32)[:, None]
model = jdl.models.Model(jdl.Affine(1, 1), jdl.models.Normal(scale=0.1))
with S2.scope():
  q = jdl.vi.Surrogate(model, seed=0)
  opt = keras.optimizers.SGD(1.0)
try:
  jdl.vi.fit(model, XL, 2 * XL, surrogate=q, epochs=20, optimizer=opt,
             batch_size=16, shuffle=False, progress=False, strategy=S2)
  RESULT["diverged"] = "no error"
except FloatingPointError as e:
  RESULT["diverged"] = str(e)
RESULT["diverged_finite"] = all(
    bool(np.isfinite(v.numpy()).all()) for v in q.trainable_variables)
RESULT["diverged_iterations"] = int(opt.iterations.numpy())
emit(**RESULT)
"""


@pytest.fixture(scope="module")
def result():
  return dtl.run_snippet(_SCRIPT, num_devices=4, timeout=400)


def _same(a, b, rtol=1e-5):
  for key in ("step_loss", "kl", "nll"):
    np.testing.assert_allclose(a[key], b[key], rtol=rtol, err_msg=key)
  for pa, pb in zip(a["params"], b["params"]):
    np.testing.assert_allclose(pa, pb, rtol=rtol, atol=1e-6)


def test_point_mass_losses_equal_the_single_device_losses(result):
  single = result["pm_none"]
  assert len(single["step_loss"]) == 2 * 4  # 2 epochs of ceil(23 / 7)
  _same(result["pm_r2"], single)
  _same(result["pm_r4"], single)
  # The KL (-log prior of the point) is in the loss once: counted per
  # replica it would add (R - 1) * KL / N, above 1e-5 of the loss.
  kl_share = np.array(single["kl"]) / 23 / np.array(single["step_loss"][::4])
  assert kl_share.min() > 1e-2


def test_xla_compiled_replicas_equal_the_single_device_losses(result):
  _same(result["jit_r2"], result["jit_none"])


def test_a_dataset_last_batch_smaller_than_the_replicas_counts_once(result):
  _same(result["ds_r2"], result["ds_none"])


def test_replicas_draw_distinct_noise_deterministically(result):
  a, b = result["noisy_a"], result["noisy_b"]
  assert a == b  # reruns: bit for bit, histories and parameters
  got = a["step_loss"][0]
  np.testing.assert_allclose(got, result["step0_expected"], rtol=1e-5)
  # With one seed for both replicas the loss is another number.
  assert abs(result["step0_same_seed"] - got) > 1e-3 * abs(got)
  # One replica draws the noise of a fit without a strategy.
  _same(result["noisy_one"], result["noisy_none"])


def test_errors_come_before_tracing_and_name_the_values(result):
  e = result["errors"]
  assert e["few"].startswith("ValueError: vi.fit: cannot split N=3 "
                             "examples across 4 replicas"), e["few"]
  assert "batch_size=3" in e["batch"] and "4 replicas" in e["batch"], e
  assert "CPU:9" in e["devices"] and "cannot be found" in e["devices"], e
  assert "yields single examples" in e["unbatched"], e
  assert "global batch of 3" in e["small_batches"], e
  assert "strategy.scope()" in e["surrogate"] and "Surrogate" in \
      e["surrogate"], e
  assert "strategy.scope()" in e["optimizer"] and "Adam" in \
      e["optimizer"], e
  assert e["kind"].startswith("TypeError: vi.fit: `strategy` must be"), e


def test_divergence_under_a_strategy_keeps_the_last_finite_state(result):
  assert "vi.fit: training went non-finite at step 10 " in \
      result["diverged"], result["diverged"]
  assert result["diverged_finite"]
  assert result["diverged_iterations"] == 10


# Two workers of one replica each, or one process with two logical CPUs:
# the same 2 replicas, seeds and shards; only the sum's transport differs.
_WORKER = """
# First: a multi-worker strategy configures TF's collectives at startup.
if "TF_CONFIG" in os.environ:
  s = tf.distribute.MultiWorkerMirroredStrategy()
else:
  s = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
rng = np.random.default_rng(0)
X = rng.normal(size=(23, 2)).astype(np.float32)
Y = (X[:, :1] - X[:, 1:]).astype(np.float32)
model = jdl.models.Model(
    jdl.Sequential(jdl.Affine(4, 2, activation="tanh"), jdl.Affine(1, 4)),
    jdl.models.Normal(scale=0.5))
q = jdl.vi.fit(model, X, Y, epochs=2, batch_size=7, seed=3, strategy=s,
               estimator="reparam", progress=False, learning_rate=1e-2)
emit(loss=q.history.step_loss,
     params=[v.numpy().ravel().tolist() for v in q.trainable_variables])
"""


@pytest.mark.slow
def test_two_workers_train_as_two_local_replicas():
  # ~35 s on the loaded 2-core box (two TF processes start and connect).
  workers = dtl.run_workers(_WORKER, 2, timeout=300)
  local = dtl.run_snippet(_WORKER, num_devices=2, timeout=300)
  assert workers[0] == workers[1]  # every worker holds the same surrogate
  # The same noise: only the order of the 2-term sums may differ (rtol as
  # in the module docstring).
  np.testing.assert_allclose(workers[0]["loss"], local["loss"], rtol=1e-5)
  for a, b in zip(workers[0]["params"], local["params"]):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
