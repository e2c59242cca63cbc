"""Checkpointed MCMC: a killed run resumes to exactly the uninterrupted draws.

The central test SIGKILLs a sampling subprocess mid-run, resumes it in a
second one and compares every draw and trace, bit for bit, with an
uninterrupted run. The others pin the rules: an existing checkpoint is never
overwritten without `resume=True`, a checkpoint of another run or a corrupted
one is refused naming the file, and chunks end on checkpoint steps.
"""

import functools
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

import jdlayers as jdl
from jdlayers import models
from jdlayers.inference import _checkpoint, _kernels
from jdlayers.io import _files

from _mcmc_testlib import SETTINGS, assert_same_run as _assert_same_run
from _mcmc_testlib import data as _data, mlp

# -- a real SIGKILL ----------------------------------------------------------

SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    import numpy as np
    import jdlayers as jdl
    from jdlayers import models

    mode, ckpt, out = sys.argv[1:4]
    if mode == "resumed":   # started early; waits until the victim is dead
      while not os.path.exists(ckpt + ".go"):
        time.sleep(0.02)
    x, y, kw = ARGS
    steps = []

    def progress(info):
      steps.append(info["step"])
      if mode == "killed":
        # Slow enough to be killed mid-run; hangs at HANG_AT at the latest.
        time.sleep(0.1 if info["step"] < HANG_AT else 600)

    result = jdl.mcmc.sample(MODEL, x, y, checkpoint=ckpt, checkpoint_every=10,
                             resume=mode == "resumed", progress=progress, **kw)
    np.savez(out, *result.states, *result.trace, *result.warmup_trace)
    with open(out + ".json", "w") as f:
      json.dump(dict(steps=steps, draws=result.num_draws), f)
""")
SETUP = textwrap.dedent("""
    import numpy as np
    import jdlayers as jdl
    from jdlayers import models

    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, size=(20, 1)).astype(np.float32)
    Y = (np.sin(2 * X) + 0.1 * rng.normal(size=X.shape)).astype(np.float32)
    MODEL = models.Model(jdl.Sequential(jdl.Affine(8, 1, activation="tanh"),
                                        jdl.Affine(1, 8)),
                         models.Normal(scale=0.1))
    ARGS = X, Y, dict(num_chains=2, num_results=60, num_burnin_steps=60,
                      kernel="hmc", num_leapfrog_steps=3, seed=7,
                      jit_compile=True)
""")
TOTAL, KILL_AFTER, HANG_AT = 120, 70, 90


def _launch(tmp_path, mode, ckpt):
  out = str(tmp_path / f"{mode}.npz")
  with open(tmp_path / f"{mode}.log", "wb") as log:
    proc = subprocess.Popen(
        [sys.executable, str(tmp_path / "run.py"), mode, ckpt, out],
        stdout=log, stderr=subprocess.STDOUT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  proc.log_path, proc.out = log.name, out
  return proc


def _wait(proc, timeout=240):
  rc = proc.wait(timeout)
  with open(proc.log_path, encoding="utf-8", errors="replace") as f:
    log = f.read()
  assert rc == 0, f"subprocess failed ({rc}):\n{log[-3000:]}"
  with open(proc.out + ".json", encoding="utf-8") as f:
    return json.load(f)


def _checkpoint_step(path):
  try:
    return _files.read(path, "mcmc_checkpoint")[0]["step"]
  except FileNotFoundError:
    return None


def test_sigkill_mid_run_then_resume_equals_uninterrupted_run(tmp_path):
  (tmp_path / "run.py").write_text(
      SETUP + SCRIPT.replace("HANG_AT", str(HANG_AT)))
  ckpt = str(tmp_path / "run.ckpt.jdl.npz")
  # Both children start now so that their TensorFlow imports overlap with
  # each other and with the uninterrupted reference run computed here.
  victim = _launch(tmp_path, "killed", ckpt)
  resumer = _launch(tmp_path, "resumed", ckpt)
  try:
    setup = {}
    exec(SETUP, setup)  # pylint: disable=exec-used
    x, y, kw = setup["ARGS"]
    ref = jdl.mcmc.sample(setup["MODEL"], x, y, progress=False, **kw)
    deadline = time.monotonic() + 180
    while (_checkpoint_step(ckpt) or 0) < KILL_AFTER:
      assert victim.poll() is None, "the run ended before it was killed"
      assert time.monotonic() < deadline, "no mid-run checkpoint appeared"
      time.sleep(0.01)
    os.kill(victim.pid, signal.SIGKILL)
    assert victim.wait(60) == -signal.SIGKILL
    killed_at = _checkpoint_step(ckpt)
    assert KILL_AFTER <= killed_at <= HANG_AT and killed_at % 10 == 0
    open(ckpt + ".go", "w").close()
    resumed = _wait(resumer)
  finally:
    for proc in (victim, resumer):
      if proc.poll() is None:
        proc.kill()
        proc.wait()
  # It continued from the checkpoint: no step run twice, none skipped.
  assert resumed["steps"] == list(range(killed_at + 10, TOTAL + 1, 10))
  assert resumed["draws"] == ref.num_draws == 60
  with np.load(resumer.out) as got:
    want = list(ref.states) + list(ref.trace) + list(ref.warmup_trace)
    assert len(got.files) == len(want) == 4 + 2 * len(jdl.mcmc.Trace._fields)
    for i, w in enumerate(want):
      np.testing.assert_array_equal(got[f"arr_{i}"], w, err_msg=str(i))
  assert _checkpoint_step(ckpt) == TOTAL


# -- in-process resume -------------------------------------------------------

@functools.lru_cache(None)
def _model(scale=0.1):
  return models.Model(mlp(), models.Normal(scale=scale))


@functools.lru_cache(None)
def _posterior():
  return _model().posterior(*_data())


def _sampler(path, model=None, data=None, **kw):
  """A Sampler of SETTINGS; `model` a likelihood scale (default 0.1)."""
  post = _posterior() if model is data is None else (
      _model(model or 0.1).posterior(*(data or _data())))
  args = dict(SETTINGS, checkpoint=path, checkpoint_every=10)
  args.update(kw)
  return jdl.mcmc.Sampler(post, **args)


@pytest.fixture(scope="module")
def reference():
  x, y = _data()
  return jdl.mcmc.sample(_model(), x, y, progress=False, **SETTINGS)


@pytest.fixture(scope="module")
def partial(tmp_path_factory):
  """A checkpoint at step 10 of 40 (manifest + segment), and its bytes."""
  path = str(tmp_path_factory.mktemp("ckpt") / "partial.jdl.npz")
  _sampler(path).run(13, progress=False)
  with open(path, "rb") as f:
    return path, f.read()


def _copy_segments(src, dst_dir):
  """Copies the segment files of checkpoint `src` into `dst_dir`."""
  directory = os.path.dirname(src)
  for name in os.listdir(directory):
    if name.startswith(os.path.basename(src) + ".") and name.endswith(
        _checkpoint.SUFFIX):
      with open(os.path.join(directory, name), "rb") as f:
        data = f.read()
      with open(os.path.join(dst_dir, name), "wb") as f:
        f.write(data)


def test_keyboard_interrupt_keeps_last_checkpoint_and_resume_is_exact(
    tmp_path, reference):
  path = str(tmp_path / "run.jdl.npz")
  x, y = _data()
  seen = []

  def progress(info):
    seen.append(info["step"])
    if info["step"] >= 25:
      raise KeyboardInterrupt

  # resume=True without a file starts afresh.
  with pytest.warns(UserWarning, match="holds step 20 of 40; pass resume=True"):
    part = jdl.mcmc.sample(_model(), x, y, checkpoint=path, checkpoint_every=10,
                           chunk_size=3, resume=True, progress=progress,
                           **SETTINGS)
  # Chunks of 3 end on every multiple of 10, where checkpoints are written.
  assert seen == [3, 6, 9, 10, 13, 16, 19, 20, 23, 26]
  assert part.num_draws == 6 and _checkpoint_step(path) == 20
  resumed = jdl.mcmc.sample(_model(), x, y, checkpoint=path,
                            checkpoint_every=10, resume=True, progress=False,
                            **SETTINGS)
  _assert_same_run(resumed, reference)
  assert resumed.complete and _checkpoint_step(path) == 40


def test_sampler_resumes_from_a_partial_run(partial, reference, tmp_path):
  path = str(tmp_path / "copy.jdl.npz")
  with open(path, "wb") as f:
    f.write(partial[1])
  _copy_segments(partial[0], str(tmp_path))  # the manifest names them
  sampler = _sampler(path, resume=True, seed=None)  # seed from the file
  assert sampler.resumed_from == sampler.step == 10
  assert sampler.checkpoint_every == 10 and sampler.chunk_size == 4
  assert sampler.result().num_draws == 0
  np.testing.assert_array_equal(sampler.full_trace().step_size,
                                reference.warmup_trace.step_size[:10])
  _assert_same_run(sampler.run(progress=False).result(), reference)
  # A complete checkpoint resumes to the same result without sampling.
  again = _sampler(path, resume=True)
  assert again.done and again.resumed_from == 40
  _assert_same_run(again.run(progress=lambda i: pytest.fail("sampled")).result(),
                   reference)


def test_existing_checkpoint_without_resume_is_never_overwritten(partial):
  path, data = partial
  with pytest.raises(FileExistsError, match=r"partial\.jdl\.npz.* exists\. "
                     "Pass resume=True .* or delete it"):
    _sampler(path)
  with open(path, "rb") as f:
    assert f.read() == data


@pytest.mark.parametrize("change, match", [
    (dict(num_results=30), "num_results: 20 in the checkpoint, 30 now"),
    (dict(seed=6), r"seed: \[.*\] in the checkpoint"),
    (dict(step_size=0.01), "step_size: None in the checkpoint, 0.01 now"),
    (dict(kernel="nuts"), "kernel: 'hmc' in the checkpoint, 'nuts' now"),
    (dict(jit_compile=True), "jit_compile: False in the checkpoint"),
    (dict(data=(_data()[0], _data()[1] + 1.)), "y_sha256"),
    (dict(model=0.2),
     r"the model \(log density at the initial state\)"),
])
def test_checkpoint_of_another_run_is_refused(partial, change, match):
  path = partial[0]
  with pytest.raises(ValueError, match="partial.jdl.npz: this checkpoint "
                     "belongs to a different run") as info:
    _sampler(path, resume=True, **change)
  assert info.match(match)
  assert "delete the file" in str(info.value)


def test_fingerprint_covers_every_setting_and_names_each_difference():
  sampler = _sampler(None, checkpoint_every=None)
  assert sampler.checkpoint_every is None and sampler.chunk_size == 4
  fp = _checkpoint.fingerprint(sampler, "shrunk")
  assert sorted(fp) == sorted([
      "adaptation", "dtype", "init", "init_scale", "jit_compile", "kernel",
      "log_prob_at_init", "max_leapfrog_steps", "max_tree_depth", "model",
      "num_burnin_steps",
      "num_chains", "num_leapfrog_steps", "num_results", "parts", "seed",
      "step_size", "step_size_jitter", "target_accept_prob", "x_sha256",
      "y_sha256"])
  assert fp["parts"][0] == ["0/weights", [2, 3, 1]]
  other = dict(fp, num_chains=3, init="prior", step_size_jitter=0.2)
  with pytest.raises(ValueError, match="f.npz: .*init: 'shrunk' in the "
                     "checkpoint, 'prior' now; num_chains: 2 in the "
                     "checkpoint, 3 now; step_size_jitter: 0.1 in"):
    _checkpoint.check_fingerprint("f.npz", fp, other)
  _checkpoint.check_fingerprint("f.npz", fp, dict(fp))
  # A checkpoint written before `max_leapfrog_steps` existed had its default.
  old = {k: v for k, v in fp.items() if k != "max_leapfrog_steps"}
  _checkpoint.check_fingerprint("f.npz", old, dict(fp))
  with pytest.raises(ValueError, match="max_leapfrog_steps: 1000 in the "
                     "checkpoint, 50 now"):
    _checkpoint.check_fingerprint("f.npz", old,
                                  dict(fp, max_leapfrog_steps=50))


def _tamper(src, dst, drop_kr=False, kind="mcmc_checkpoint", **meta_changes):
  _copy_segments(src, os.path.dirname(dst))
  meta, arrays = _files.read(src, "mcmc_checkpoint")
  for k in ("format", "version", "kind"):
    meta.pop(k)
  meta.update(meta_changes)
  if drop_kr:
    arrays.pop(f"kr_{meta['num_kernel_results'] - 1}")
    meta["num_kernel_results"] -= 1
  _files.write(dst, kind, meta, arrays)


@pytest.mark.parametrize("damage, match", [
    ("garbage", "not a jdlayers file"),
    ("truncated", "not a jdlayers file|truncated or corrupted"),
    ("kernel_results", "holds 5[0-9] kernel-result tensors but this kernel "
     "has 5[0-9]"),
    ("kind", "holds a 'mcmc_result', expected 'mcmc_checkpoint'"),
    ("step", "checkpoint metadata lacks a valid 'step'"),
    ("draws", r"the segments cover steps 0\.\.10, not 0\.\.25"),
])
def test_corrupted_checkpoint_names_the_file(partial, tmp_path, damage, match):
  path = str(tmp_path / "bad.jdl.npz")
  if damage == "garbage":
    with open(path, "wb") as f:
      f.write(b"\x00not a checkpoint" * 50)
  elif damage == "truncated":
    with open(path, "wb") as f:
      f.write(partial[1][:len(partial[1]) // 2])
  else:
    changes = dict(step="ten") if damage == "step" else dict(
        step=25) if damage == "draws" else {}
    _tamper(partial[0], path, drop_kr=damage == "kernel_results",
            kind="mcmc_result" if damage == "kind" else "mcmc_checkpoint",
            **changes)
  with pytest.raises(_files.FileFormatError, match="bad.jdl.npz: ") as info:
    _sampler(path, resume=True)
  assert info.match(match)


@pytest.mark.parametrize("kw, error, match", [
    (dict(checkpoint=None, resume=True), ValueError,
     "`resume` and `checkpoint_every` need a `checkpoint` path"),
    (dict(checkpoint=None, checkpoint_every=10), ValueError,
     "need a `checkpoint` path"),
    (dict(checkpoint_every=0), ValueError,
     "`checkpoint_every` must be an int >= 1; got 0"),
    (dict(resume="yes"), ValueError, "`resume` must be True or False"),
    (dict(checkpoint="/no/such/dir/run.jdl.npz"), FileNotFoundError,
     "the directory of checkpoint"),
])
def test_bad_checkpoint_settings_fail_before_sampling(tmp_path, kw, error,
                                                      match):
  kw.setdefault("checkpoint", str(tmp_path / "c.jdl.npz"))
  with pytest.raises(error, match=match):
    _sampler(kw.pop("checkpoint"), **kw)


def test_chunk_sizes_and_a_checkpoint_before_the_first_step(tmp_path):
  from jdlayers.inference._sampler import _chunk_size  # pylint: disable=g-import-not-at-top
  assert _chunk_size(None, 1000, None) == 100
  assert _chunk_size(None, 1000, 250) == 84     # 84 + 84 + 82
  assert _chunk_size(None, 1000, 50) == 50
  assert _chunk_size(7, 1000, 50) == 7          # 7 * 7, then 1
  path = str(tmp_path / "c.jdl.npz")
  sampler = _sampler(path, checkpoint_every=None)
  assert sampler.checkpoint_every == sampler.chunk_size == 4
  sampler.write_checkpoint()   # before any step: resumes to a fresh start
  again = _sampler(path, resume=True, adaptation="step_size")  # = "auto" here
  assert again.resumed_from == again.step == 0
  assert again.full_trace().is_accepted.shape == (0, 2)
  assert again.full_trace().is_accepted.dtype == bool


def test_windowed_kernel_results_round_trip():
  """Mass-matrix state (a composite momentum distribution) packs back."""
  post = _posterior()
  state = post.init(2, seed=1)
  kernel = _kernels.make_kernel(post.log_prob, post.bijectors, state,
                                kernel="hmc", num_adaptation_steps=100,
                                adaptation="windowed")
  results = kernel.bootstrap_results(state)
  leaves = [a + (1 if a.dtype.kind in "iu" else 0.5) if a.dtype.kind != "b"
            else a for a in _checkpoint.flatten_results(results)]
  packed = _checkpoint.unflatten_results("p", results, leaves)
  tf.nest.assert_same_structure(results, packed, expand_composites=True)
  for a, b in zip(leaves, _checkpoint.flatten_results(packed)):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(_files.FileFormatError, match="p: kernel-result tensor "
                     "0 is float64"):
    _checkpoint.unflatten_results(
        "p", results, [leaves[0].astype(np.float64)] + leaves[1:])


@pytest.mark.slow
def test_windowed_adaptation_resumes_exactly(tmp_path):
  x, y = _data()
  kw = dict(SETTINGS, num_burnin_steps=100, num_results=10,
            adaptation="windowed", progress=False)
  ref = jdl.mcmc.sample(_model(), x, y, **kw)
  path = str(tmp_path / "w.jdl.npz")
  _sampler(path, **{k: v for k, v in kw.items() if k != "progress"},
           checkpoint_every=30).run(75, progress=False)
  assert _checkpoint_step(path) == 60
  _assert_same_run(jdl.mcmc.sample(_model(), x, y, checkpoint=path,
                                   resume=True, checkpoint_every=30, **kw), ref)


# -- segments ----------------------------------------------------------------

def _segments(directory):
  return sorted(n for n in os.listdir(directory)
                if n.endswith(_checkpoint.SUFFIX))


def test_each_checkpoint_writes_only_the_new_steps(tmp_path, reference):
  path = str(tmp_path / "run.jdl.npz")
  sampler = _sampler(path)
  sizes = []
  sampler.run(progress=lambda info: info["step"] % 10 or sizes.append(
      (os.path.getsize(path), _segments(tmp_path))))
  # One segment per checkpoint, named by the run and its steps; the manifest
  # stays small (state and kernel results only).
  names = _segments(tmp_path)
  run_id = names[0].split(".")[3]
  assert names == [f"run.jdl.npz.{run_id}.{a}-{a + 10}{_checkpoint.SUFFIX}"
                   for a in (0, 10, 20, 30)]
  assert [len(s) for _, s in sizes] == [1, 2, 3, 4]
  growth = np.diff([size for size, _ in sizes])   # only the segment list
  assert (growth < 100).all(), growth
  meta, arrays = _files.read(str(tmp_path / names[2]),
                             "mcmc_checkpoint_segment")
  assert (meta["start"], meta["stop"], meta["num_draws"]) == (20, 30, 10)
  np.testing.assert_array_equal(arrays["draws_0"], reference.states[0][:10])
  _assert_same_run(sampler.result(), reference)


def test_a_missing_or_foreign_segment_is_refused(partial, tmp_path):
  path = str(tmp_path / "partial.jdl.npz")
  with open(path, "wb") as f:
    f.write(partial[1])
  with pytest.raises(_files.FileFormatError, match=r"partial\.jdl\.npz: its "
                     r"segment file .*0-10\.seg\.jdl\.npz.* is missing"):
    _sampler(path, resume=True)
  _copy_segments(partial[0], str(tmp_path))
  name = _segments(tmp_path)[0]
  meta, arrays = _files.read(str(tmp_path / name), "mcmc_checkpoint_segment")
  for k in ("format", "version", "kind"):
    meta.pop(k)
  meta["run_id"] = "0" * 12
  _files.write(str(tmp_path / name), "mcmc_checkpoint_segment", meta, arrays,
               overwrite=True)
  with pytest.raises(_files.FileFormatError, match="not the segment 0..10 of "
                     "run"):
    _sampler(path, resume=True)


@pytest.mark.parametrize("segments, match", [
    ([["../../etc/x.seg.jdl.npz", 0, 10]], "is not one of this checkpoint's"),
    ([["a", 0, 5], ["b", 5, 10]], "is not one of this checkpoint's"),
    ([["a", 0, 10 ** 12]], "the segments cover steps 0..1000000000000, not "
     "0..10"),
    ([["a", 0, 10]] * 10 ** 5, "the segments cover steps 0..10, not 0..10|"
     "cover steps"),
])
def test_crafted_segment_lists_are_refused(partial, tmp_path, segments, match):
  path = str(tmp_path / "bad.jdl.npz")
  _tamper(partial[0], path, segments=segments)
  with pytest.raises(_files.FileFormatError, match="bad.jdl.npz: ") as info:
    _sampler(path, resume=True)
  assert info.match(match)


BOMBS = textwrap.dedent("""
    import json, os, resource, sys, time
    import numpy as np
    sys.path.insert(0, os.path.dirname(TEST))
    import test_mcmc_checkpoint as t
    from jdlayers.io import _files

    src = os.path.join(sys.argv[1], "src.jdl.npz")
    t._sampler(src).run(13, progress=False)
    crafted = {}
    for name, change in (("kr", dict(num_kernel_results=10 ** 7)),
                         ("parts", dict(num_state_parts=10 ** 7)),
                         ("steps", dict(step=10 ** 9, total_steps=10 ** 9,
                                        segments=[["x", 0, 10 ** 9]]))):
      crafted[name] = os.path.join(sys.argv[1], name + ".jdl.npz")
      t._tamper(src, crafted[name], **change)
    with open("/proc/self/status") as f:
      data_kb = int([l for l in f if l.startswith("VmData")][0].split()[1])
    limit = data_kb * 1024 + (256 << 20)   # 256 MB above what is in use
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    out = {}
    for name, path in crafted.items():
      t0 = time.perf_counter()
      try:
        t._sampler(path, resume=True)
        out[name] = "loaded"
      except _files.FileFormatError as e:
        out[name] = str(e)
      except MemoryError:
        out[name] = "MemoryError"
      out[name + "_s"] = time.perf_counter() - t0
    print("RESULT " + json.dumps(out))
""")


def test_crafted_counts_fail_fast_under_a_memory_limit(tmp_path):
  """`num_kernel_results = 10**7` once built 10**7 names (+961 MB)."""
  script = tmp_path / "bombs.py"
  script.write_text(f"TEST = {__file__!r}\n" + BOMBS)
  proc = subprocess.run([sys.executable, str(script), str(tmp_path)],
                        capture_output=True, text=True, timeout=300,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
                        check=False)
  lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
  assert proc.returncode == 0 and lines, proc.stderr[-3000:]
  out = json.loads(lines[0][len("RESULT "):])
  for name in ("kr", "parts"):
    assert re.search(name + r"\.jdl\.npz: the metadata implies 10,?000,?0\d\d "
                     r"arrays but the file holds \d\d\.$", out[name]), out[name]
  assert re.search(r"steps\.jdl\.npz: step 1000000000 is outside this run's "
                   r"0\.\.40\.$", out["steps"]), out["steps"]
  assert max(out[k + "_s"] for k in ("kr", "parts", "steps")) < 5


KILL_IN_WRITE = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, os.path.dirname(TEST))
    import test_mcmc_checkpoint as t
    from jdlayers.io import _files

    path, where = sys.argv[1:3]
    real = _files.atomic_write_bytes

    def write(target, data, **kw):
      if target.endswith(".20-30" + t._checkpoint.SUFFIX):
        if where == "segment":  # half the bytes on disk, then SIGKILL
          tmp = os.path.join(os.path.dirname(target),
                             "." + os.path.basename(target) + ".partial")
          with open(tmp, "wb") as f:
            f.write(data[:len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
          os.kill(os.getpid(), signal.SIGKILL)
        real(target, data, **kw)   # the whole segment: killed before the
        os.kill(os.getpid(), signal.SIGKILL)   # manifest names it
      return real(target, data, **kw)

    _files.atomic_write_bytes = write
    t._sampler(path).run(progress=False)
""")


def test_sigkill_during_a_segment_write_resumes_exactly(tmp_path, reference):
  script = tmp_path / "kill.py"
  script.write_text(f"TEST = {__file__!r}\n" + KILL_IN_WRITE)
  procs = {}
  for where in ("segment", "manifest"):
    (tmp_path / where).mkdir()
    procs[where] = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / where / "r.jdl.npz"),
         where], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  for where, proc in procs.items():
    out = proc.communicate(timeout=300)[0].decode(errors="replace")
    assert proc.returncode == -signal.SIGKILL, out[-3000:]
    path = str(tmp_path / where / "r.jdl.npz")
    assert _checkpoint_step(path) == 20
    left = _segments(tmp_path / where)
    assert any(".20-30" in n for n in left) == (where == "manifest")
    sampler = _sampler(path, resume=True)
    # The orphaned whole segment (never named by a manifest) is removed.
    assert len(_segments(tmp_path / where)) == 2
    assert sampler.resumed_from == 20
    _assert_same_run(sampler.run(progress=False).result(), reference)
