"""`mcmc.sample(..., strategy=)`: one posterior over 2 and 4 logical CPUs and
over two workers on 127.0.0.1.

Each check runs in a subprocess (logical devices and `TF_CONFIG` must be set
before TensorFlow initialises); one subprocess per device count batches the
checks, since each start costs ~5 s of imports.

Tolerances. The models are float64 and N = 37 does not divide by 2 or 4, so
the last shards hold padding. The distributed target differs from the
single-device one only in the order of the sums over examples and replicas:
|error| <= ~N * eps * sum |terms| ~ 37 * 2.2e-16 * 1e3 < 1e-11, so values and
gradients are compared at rtol = atol = 1e-9. Every example's log-likelihood
is checked to exceed 1e-3 in magnitude (> 1e6 x the tolerance), so dropping
or double-counting any example (padding unmasked, a shard lost) fails.
Draws after 5 HMC steps (5 leapfrogs, step 0.01) are compared at atol
1e-8: the leapfrog map of this smooth model amplifies a 1e-13 difference by
far less than 1e5 in 25 steps, and a Metropolis decision flips only if the
uniform falls within ~1e-12 of the acceptance ratio (probability ~20 x
1e-12 per run): a correct implementation fails with probability < 1e-9.
The reference is the single-device run with `jit_compile=False`: under a
strategy the loop runs as a graph (XLA cannot compile `strategy.run`) and
XLA's stateless random numbers on CPU differ from the graph kernels' (a
different stream, not a different distribution), so the XLA run is another
valid chain, not a reference.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import _distributed_testlib as dtl

MODEL = """
import tensorflow_probability as tfp
from jdlayers.inference import _distribute, _loop, _sharded
rng = np.random.default_rng(0)
N = 37
x = rng.normal(size=(N, 2))
y = x @ [[1.], [-2.]] + 0.3 + 0.1 * rng.normal(size=(N, 1))
def make_model():
  net = jdl.Sequential(
      jdl.Affine(6, 2, activation="tanh", dtype=tf.float64),
      jdl.Affine(1, 6, dtype=tf.float64))
  return jdl.models.Model(net, jdl.models.Normal(
      scale=tfp.distributions.HalfNormal(np.float64(1.))))
model = make_model()
post = model.posterior(x, y)
parts = post.init(4, seed=1)
strategy = tf.distribute.MirroredStrategy(
    [f"/cpu:{i}" for i in range(_n)])
KW = dict(num_chains=4, num_results=5, num_burnin_steps=0, kernel="hmc",
          seed=3, progress=False, adaptation="none", step_size=0.01,
          num_leapfrog_steps=5)

def value_and_grad(mode):
  target, data, _ = _sharded.for_sampler(post, strategy, mode, 4, True, "t")
  @tf.function(autograph=False)
  def vg(parts, data):
    return tfp.math.value_and_gradient(
        lambda *p: target.with_data(*data).log_prob(*p), parts)
  return vg(parts, data)

def diff(a, b):
  return max(float(np.max(np.abs(np.asarray(u) - np.asarray(v))
                      / (1 + np.abs(np.asarray(v))))) for u, v in zip(a, b))

def states(result):
  return [s.tolist() for s in result.states]
"""

CHECKS = MODEL + """
FULL = _n == 2  # 4 devices: the data mode only (each trace costs seconds)
ref_v, ref_g = tfp.math.value_and_gradient(post.log_prob, parts)
out = {}
for mode in ("data", "chains") if FULL else ("data",):
  v, g = value_and_grad(mode)
  out[mode] = [diff([v], [ref_v]), diff(g, ref_g)]
point = post.log_likelihood(*parts, pointwise=True).numpy()
shards = _distribute.shard((x, y), strategy)
masks = [m.numpy().tolist() for m in
         strategy.experimental_local_results(shards.mask)]
ref = jdl.mcmc.sample(model, x, y, jit_compile=False, **KW)
draws = jdl.mcmc.sample(model, x, y, strategy=strategy, **KW)
again = jdl.mcmc.sample(model, x, y, strategy=strategy, **KW)
res = dict(target=out, min_abs_point=float(np.abs(point).min()),
           masks=masks, ref=states(ref), draws=states(draws),
           again=states(again))
if FULL:
  res["chains"] = states(jdl.mcmc.sample(
      model, x, y, strategy=strategy, shard="chains", jit_compile=False,
      **KW))
"""


def check_matches_one_device(res, num_devices):
  for mode, (value_err, grad_err) in res["target"].items():
    assert value_err < 1e-9 and grad_err < 1e-9, (mode, value_err, grad_err)
  # Every example matters far above the tolerance, and the masks hold
  # exactly N = 37 ones, the padding (37 -> 38 or 40) last.
  assert res["min_abs_point"] > 1e-3
  masks = np.concatenate(res["masks"])
  k = -(-37 // num_devices)
  assert masks.shape == (num_devices * k,)
  np.testing.assert_array_equal(masks, np.arange(num_devices * k) < 37)
  for name in ("draws", "chains") if num_devices == 2 else ("draws",):
    for got, want in zip(res[name], res["ref"]):
      np.testing.assert_allclose(got, want, rtol=0, atol=1e-8, err_msg=name)
  # The chains moved (the comparison is not of initial states).
  assert np.abs(np.diff(np.asarray(res["ref"][0]), axis=0)).max() > 1e-3
  assert res["draws"] == res["again"]  # bit for bit across reruns


RESUME_AND_ERRORS = """
import os, tempfile
def kwargs(**kw):
  out = {k: v for k, v in KW.items() if k not in ("progress",)}
  out.update(num_results=6, **kw)
  return out
full = jdl.mcmc.Sampler(post, strategy=strategy, **kwargs()).run(
    progress=False).result()
ckpt = os.path.join(tempfile.mkdtemp(), "run.ckpt.jdl.npz")
first = jdl.mcmc.Sampler(post, strategy=strategy, checkpoint=ckpt,
                         checkpoint_every=3, **kwargs())
first.run(3, progress=False)
# A new model object and strategy: a newly traced loop resumes the file.
model2 = make_model()
strategy2 = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(_n)])
resumed = jdl.mcmc.Sampler(model2.posterior(x, y), strategy=strategy2,
                           checkpoint=ckpt, checkpoint_every=3, resume=True,
                           **kwargs()).run(progress=False).result()
errors = {}
fresh = make_model()
cases = {
  "few": lambda: jdl.mcmc.sample(fresh, x[:1], y[:1], strategy=strategy,
                                 **KW),
  "gpus": lambda: jdl.mcmc.sample(
      fresh, x, y, strategy=tf.distribute.MirroredStrategy(
          ["/gpu:0", "/gpu:1"]), **KW),
  "chains": lambda: jdl.mcmc.sample(
      fresh, x, y, strategy=strategy, shard="chains",
      **{**KW, "num_chains": 3}),
  "mode": lambda: jdl.mcmc.sample(fresh, x, y, strategy=strategy,
                                  shard="rows", **KW),
  "type": lambda: jdl.mcmc.sample(fresh, x, y, strategy="mirrored", **KW),
  "dataset": lambda: jdl.mcmc.sample(
      fresh, tf.data.Dataset.from_tensor_slices(x).batch(8), y,
      strategy=strategy, **KW),
  "sampler_few": lambda: jdl.mcmc.Sampler(
      fresh.posterior(x[:1], y[:1]), strategy=strategy,
      **{k: v for k, v in KW.items() if k != "progress"}),
  "unbatched": lambda: _distribute.check_dataset(
      tf.data.Dataset.range(10), strategy, "vi.fit"),
  "small_batch": lambda: _distribute.check_dataset(
      tf.data.Dataset.range(10).batch(1, drop_remainder=True), strategy,
      "vi.fit"),
}
for name, fn in cases.items():
  try:
    fn()
    errors[name] = None
  except (TypeError, ValueError) as e:
    errors[name] = [type(e).__name__, str(e)]
# TF's default strategy is one device: the plain posterior and loop.
default = _sharded.for_sampler(post, tf.distribute.get_strategy(), "data", 4,
                               True, "t")
res["default_plain"] = default[0] is post and default[2] is True
res.update(full=states(full), resumed=states(resumed), errors=errors,
           compiled=len(vars(fresh).get(_loop._ATTR, {})))
"""


def test_four_devices_match_one_device():
  res = dtl.run_snippet(CHECKS + "emit(**res)", 4)
  check_matches_one_device(res, 4)


def test_two_devices_match_one_device_resume_and_errors():
  # One subprocess for all two-device checks (each start costs ~5 s).
  res = dtl.run_snippet(CHECKS + RESUME_AND_ERRORS + "emit(**res)", 2)
  check_matches_one_device(res, 2)
  assert res["resumed"] == res["full"]  # bit-identical resume
  e = res["errors"]
  assert e["few"][0] == "ValueError" and "N=1" in e["few"][1]
  assert "2 replicas" in e["few"][1] and "mcmc" in e["few"][1]
  assert e["sampler_few"][0] == "ValueError" and "N=1" in e["sampler_few"][1]
  assert e["gpus"][0] == "ValueError" and "GPU:0" in e["gpus"][1]
  assert "cannot be found" in e["gpus"][1]
  assert e["chains"][0] == "ValueError" and "num_chains=3" in e["chains"][1]
  assert e["mode"][0] == "ValueError" and "'rows'" in e["mode"][1]
  assert e["type"][0] == "TypeError" and "str" in e["type"][1]
  assert e["dataset"][0] == "TypeError" and "`x`" in e["dataset"][1]
  assert e["unbatched"][0] == "ValueError" and "batch" in e["unbatched"][1]
  assert e["small_batch"][0] == "ValueError"
  assert "batch of 1" in e["small_batch"][1]
  assert res["default_plain"]
  # Refused before anything was traced or compiled.
  assert res["compiled"] == 0


# The strategy first: collectives must be configured before any TF op.
WORKER = "strategy = tf.distribute.MultiWorkerMirroredStrategy()\n" + (
    MODEL.replace('strategy = tf.distribute.MirroredStrategy(\n'
                  '    [f"/cpu:{i}" for i in range(_n)])', "")) + """
draws = jdl.mcmc.sample(model, x, y, strategy=strategy, **KW)
ref = jdl.mcmc.sample(model, x, y, jit_compile=False, **KW)
emit(draws=states(draws), ref=states(ref),
     replicas=strategy.num_replicas_in_sync)
"""


@pytest.mark.slow
def test_two_workers_on_localhost():
  # Two processes (TF_CONFIG each) on 127.0.0.1; ~45 s on the 2-core box,
  # bounded by the timeout, processes killed on every exit path.
  assert WORKER.count("MirroredStrategy(") == 1  # the multi-worker one
  res = dtl.run_workers(WORKER, 2, timeout=300)
  for r in res:
    assert r["replicas"] == 2
    for got, want in zip(r["draws"], r["ref"]):
      np.testing.assert_allclose(got, want, rtol=0, atol=1e-8)
  assert res[0]["draws"] == res[1]["draws"]


@pytest.mark.slow
def test_example_two_local_workers_smoke(tmp_path):
  # examples/distributed_hmc.py starts its two workers itself (~60 s here).
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  proc = subprocess.run(
      [sys.executable, str(dtl.ROOT / "examples" / "distributed_hmc.py"),
       "--local-workers", "2", "--smoke", "--timeout", "400"],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=500)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "2 replicas" in proc.stdout and "test RMSE" in proc.stdout


KERNELS = MODEL + """
out = {}
for kernel in ("nuts", "chees", "snaper"):
  kw = dict(KW, kernel=kernel, num_burnin_steps=3, num_results=3,
            adaptation="auto", max_tree_depth=3)
  if kernel != "nuts":
    kw.update(max_leapfrog_steps=20)
  ref = jdl.mcmc.sample(model, x, y, jit_compile=False, **kw)
  got = jdl.mcmc.sample(model, x, y, strategy=strategy, **kw)
  out[kernel] = [states(ref), states(got)]
emit(**out)
"""


@pytest.mark.slow
def test_every_kernel_matches_one_device():
  # NUTS, ChEES, SNAPER with step-size adaptation, 3 + 3 steps on 2 devices;
  # the tolerance argument of the module docstring (float64) holds for them.
  res = dtl.run_snippet(KERNELS, 2, timeout=900)
  for kernel, (ref, got) in res.items():
    assert np.abs(np.diff(np.asarray(ref[0]), axis=0)).max() > 1e-4, kernel
    for g, w in zip(got, ref):
      np.testing.assert_allclose(g, w, rtol=0, atol=1e-8, err_msg=kernel)
