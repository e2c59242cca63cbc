"""jdlayers.keras layers under `tf.distribute.MirroredStrategy` with `fit`.

Logical CPU devices must be configured before TensorFlow initialises, so
the checks run in two fresh interpreters (one with 2 logical CPUs under a
MirroredStrategy, one single-device reference), started together; each
prints one `RESULT=` line of JSON that the tests below compare.

Every check is deterministic (no statistics): equal seeds give equal
weights, so the only difference between the runs is the order of
floating-point reductions (the all-reduce sums two half-batch gradients),
about 1e-7 relative in float32; the tolerance 1e-5 leaves a wide margin.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

_SCRIPT = """\
import json, os, sys, tempfile
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
tf.get_logger().setLevel("ERROR")
R = {replicas}
if R > 1:
  tf.config.set_logical_device_configuration(
      tf.config.list_physical_devices("CPU")[0],
      [tf.config.LogicalDeviceConfiguration()] * R)
import numpy as np
import keras
import jdlayers as jdl
from jdlayers import keras as jdk

strategy = (tf.distribute.MirroredStrategy([f"/cpu:{{i}}" for i in range(R)])
            if R > 1 else tf.distribute.get_strategy())
rng = np.random.default_rng(0)
x = rng.normal(size=(32, 6, 6, 1)).astype("float32")
y = rng.integers(0, 3, 32).astype("int32")
PM = dict(kernel_posterior_fn=jdl.vi.point_mass(),
          bias_posterior_fn=jdl.vi.point_mass())

def make(point_mass=False, kl_only=False):
  kw = dict(PM if point_mass else {{}}, num_examples=4)
  model = keras.Sequential([
      keras.Input((6, 6, 1)),
      jdk.Conv2D(4, 3, activation="tanh", seed=1, **kw),
      keras.layers.Flatten(),
      jdk.Dense(3, seed=2, **kw)])
  loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
  if kl_only:  # the data term is 0: the loss and its gradient are the KL's
    loss = lambda yt, yp: 0. * keras.ops.mean(yp)
  model.compile(keras.optimizers.SGD(0.05), loss)
  return model

def weights(model):
  return [v.numpy().tolist() for v in model.trainable_variables]

RESULT = {{}}
# One global batch of 32 (16 per replica), 3 steps, no shuffling.
for name, kw in (("point_mass", dict(point_mass=True)),
                 ("kl_only", dict(kl_only=True))):
  with strategy.scope():
    model = make(**kw)
  hist = model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0)
  RESULT[name] = dict(loss=hist.history["loss"], weights=weights(model))

# With noise (flipout): two equal fits give equal results.
runs = []
for _ in range(2):
  with strategy.scope():
    model = make()
  hist = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
  runs.append(dict(loss=hist.history["loss"], weights=weights(model)))
RESULT["noisy"] = runs

# Each replica's draw on the same inputs, twice from the same seed.
@tf.function
def per_replica(inputs):
  return strategy.run(model, args=(inputs,))
draws = []
for _ in range(2):
  jdk.reseed(model, 7)
  out = strategy.experimental_local_results(per_replica(tf.constant(x[:4])))
  draws.append([o.numpy().tolist() for o in out])
RESULT["replica_draws"] = draws

# Save the strategy-built model; load it outside and inside the scope.
path = os.path.join(tempfile.mkdtemp(), "m.keras")
model.save(path)
jdk.reseed(model, 3)
RESULT["saved_pred"] = model(x[:5]).numpy().tolist()
loaded = keras.models.load_model(path)
jdk.reseed(loaded, 3)
RESULT["loaded_pred"] = loaded(x[:5]).numpy().tolist()
RESULT["loaded_weights_equal"] = all(
    np.array_equal(a.numpy(), b.numpy())
    for a, b in zip(model.trainable_variables, loaded.trainable_variables))
with strategy.scope():
  in_scope = keras.models.load_model(path)
jdk.reseed(in_scope, 3)
jdk.reseed(model, 3)
RESULT["in_scope_samples"] = jdk.predict_samples(in_scope, x[:8], 2).tolist()
RESULT["saved_samples"] = jdk.predict_samples(model, x[:8], 2).tolist()
hist = in_scope.fit(x, y, batch_size=16, epochs=1, verbose=0)
RESULT["in_scope_fit_loss"] = hist.history["loss"]
print("RESULT=" + json.dumps(RESULT))
"""


def _start(replicas: int) -> subprocess.Popen:
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
             PYTHONPATH=_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  return subprocess.Popen(
      [sys.executable, "-c", textwrap.dedent(_SCRIPT.format(
          replicas=replicas))], cwd=_ROOT, env=env, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen, timeout: float = 240.) -> dict:
  try:
    out, err = proc.communicate(timeout=timeout)
  except subprocess.TimeoutExpired:
    proc.kill()
    out, err = proc.communicate()
  lines = [l for l in out.splitlines() if l.startswith("RESULT=")]
  assert proc.returncode == 0 and lines, (
      f"subprocess failed ({proc.returncode}):\n{out[-2000:]}\n"
      f"{err[-5000:]}")
  return json.loads(lines[-1][len("RESULT="):])


@pytest.fixture(scope="module")
def runs():
  procs = {r: _start(r) for r in (1, 2)}  # in parallel: ~5 s of imports each
  return {r: _result(p) for r, p in procs.items()}


def _close(a, b):
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["point_mass", "kl_only"])
def test_loss_and_update_equal_single_device(runs, name):
  """Same global batch, same weights: the loss `fit` reports and the
  weights after 3 steps equal the single-device run's. With point masses
  (no noise) this checks the data term; with the data term zeroed it
  checks that the KL counts once per step, not once per replica (Keras
  scales `add_loss` terms by 1 / replicas before the gradients are
  summed)."""
  one, two = runs[1][name], runs[2][name]
  _close(two["loss"], one["loss"])
  for a, b in zip(two["weights"], one["weights"]):
    _close(np.asarray(a), np.asarray(b))


def test_kl_only_loss_is_the_kl(runs):
  # Without the data term the reported loss is the KL / N of every layer,
  # counted once, so it is far from 0 and decreases under SGD.
  loss = runs[2]["kl_only"]["loss"]
  assert loss[0] > 1. and loss[-1] < loss[0]


def test_replicas_draw_distinct_deterministic_noise(runs):
  first, second = runs[2]["replica_draws"]
  assert len(first) == 2
  # Same inputs on both replicas, different weight noise.
  assert not np.allclose(first[0], first[1])
  # The same seed gives the same draws on every replica.
  np.testing.assert_array_equal(first, second)


def test_noisy_fit_is_deterministic(runs):
  for r in (1, 2):
    a, b = runs[r]["noisy"]
    np.testing.assert_array_equal(a["loss"], b["loss"])
    for u, v in zip(a["weights"], b["weights"]):
      np.testing.assert_array_equal(u, v)


def test_save_load_round_trip_of_strategy_model(runs):
  res = runs[2]
  assert res["loaded_weights_equal"]
  np.testing.assert_array_equal(res["loaded_pred"], res["saved_pred"])
  # Loaded into the scope, it predicts (per replica) as the original does.
  np.testing.assert_array_equal(res["in_scope_samples"],
                                res["saved_samples"])
  assert np.isfinite(res["in_scope_fit_loss"]).all()
