"""Hostile files: memory bombs are refused under a memory limit, and every
malformed file raises `FileFormatError` naming the file and the field.

The files are crafted here (see `_hostile_testlib`), never stored.
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import jdlayers as jdl
from jdlayers import vi
from jdlayers.inference import _result_schema
from jdlayers.io import _files

sys.path.insert(0, os.path.dirname(__file__))
import _hostile_testlib as H  # noqa: E402  pylint: disable=wrong-import-position

FileFormatError = jdl.io.FileFormatError

# -- memory bombs, in a subprocess under RLIMIT_AS ----------------------------
# The child first does a normal save/load round trip (TensorFlow's thread
# pools and kernels warmed up), then caps its address space at its current
# size + HEADROOM_MIB. Measured on the dev machine: the child's address space
# is ~2.1 GiB after the warm-up and a normal load grows RSS by < 1 MiB; each
# bomb below needs >= 3.5 GiB more (the zip members inflate to 3.5 GiB, the
# declared 40000-wide networks are 6.4 GB per draw), far above the 1 GiB
# headroom. A loader that inflated or allocated first would die with
# MemoryError instead of FileFormatError.
HEADROOM_MIB = 1024

EXPECTED = {
    "bomb_declared": r"arrays hold 3,758,096,376 bytes, more than max_bytes",
    "bomb_lying": "weights.npy",
    "non_npy": "holds member 'payload.bin', which is not a .npy array",
    "surrogate_6000": r"array '0/weights/loc' has shape \[3, 2\] but the "
                      r"config implies \[6000, 2\]",
    "surrogate_40000": "declares a network of 1,600,200,001 parameters",
    "result_6000": r"array 'state_0' has shape \[2, 2, 1\] but the config "
                   r"implies \[2, 2, 6000, 1\]",
    "result_40000": "declares a network of 1,600,160,001 parameters",
}


def test_bombs_are_refused_fast_and_small_under_a_memory_limit(tmp_path):
  files = H.craft_all(str(tmp_path))
  assert all(os.path.getsize(p) < 4 << 20 for _, p in files.values())
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
             PYTHONPATH=os.pathsep.join(
                 [os.path.dirname(os.path.dirname(jdl.__file__))]
                 + os.environ.get("PYTHONPATH", "").split(os.pathsep)))
  proc = subprocess.run(
      [sys.executable, H.__file__, "run", str(tmp_path), str(HEADROOM_MIB)],
      capture_output=True, text=True, timeout=300, env=env, check=False)
  lines = [json.loads(l) for l in proc.stdout.splitlines()
           if l.startswith("{")]
  got = {r["name"]: r for r in lines}
  assert proc.returncode == 0 and set(EXPECTED) <= set(got), (
      proc.stdout[-2000:], proc.stderr[-2000:])
  assert got["normal"]["grew_mib"] < 100
  for name, pattern in EXPECTED.items():
    r = got[name]
    assert r["type"] == "FileFormatError", r
    assert r["error"].startswith(files[name][1] + ": "), r
    assert re.search(pattern, r["error"]), r
    assert r["seconds"] < 20 and r["grew_mib"] < 100, r


def test_max_bytes_is_the_documented_bound(tmp_path):
  net = jdl.Affine(2, 3)
  path = jdl.io.save_network(tmp_path / "n.jdl.npz", net, net.sample(10,
                                                                     seed=0))
  with pytest.raises(FileFormatError, match=r"n.jdl.npz: its arrays hold 320 "
                     r"bytes, more than max_bytes=100 \(the largest, "
                     r"'weights', is \[10, 2, 3\] float32\)"):
    jdl.io.load_network(path, max_bytes=100)
  jdl.io.load_network(path, max_bytes=320)
  jdl.io.load_network(path, max_bytes=None)


# -- malformed files: each names the file and the field ----------------------
def _net_file(tmp_path, name="n.jdl.npz"):
  net = jdl.Affine(2, 3)
  path = jdl.io.save_network(tmp_path / name, net, net.sample(2, seed=0))
  meta, arrays = _files.read(path, "network")
  return path, _strip(meta), arrays


def _strip(meta):
  return {k: v for k, v in meta.items() if k not in _files.HEADER_FIELDS}


def _rewrite(path, kind, meta, arrays):
  _files.write(path, kind, meta, arrays, overwrite=True)
  return str(path)


@pytest.mark.parametrize("change, match", [
    (dict(config={"class": "Affine", "config": {"out_units": 10 ** 30,
                                                "in_units": 3}}),
     "invalid configuration: "),
    (dict(config={"class": "Affine", "config": {"out_units": 2,
                                                "in_units": [3]}}),
     "invalid configuration: "),
    (dict(config=5), "network metadata lacks a valid 'config'"),
    (dict(sample_shape=[2.5]), "lacks a valid 'sample_shape'"),
    (dict(sample_shape=[-1]), "lacks a valid 'sample_shape'"),
    (dict(arrays="weights"), "lacks a valid 'arrays'"),
    (dict(arrays=["bias", "weights"]), r"metadata 'arrays' lists \['bias', "
     r"'weights'\] but the configuration's parts are \['weights', 'bias'\]"),
    (dict(extra_field=1), r"unknown fields \['extra_field'\]"),
])
def test_malformed_network_fields(tmp_path, change, match):
  path, meta, arrays = _net_file(tmp_path)
  meta.update(change)
  with pytest.raises(FileFormatError, match="n.jdl.npz: ") as info:
    jdl.io.load_network(_rewrite(path, "network", meta, arrays))
  assert info.match(match)


def test_extra_and_non_npy_members(tmp_path):
  path, meta, arrays = _net_file(tmp_path)
  _rewrite(path, "network", meta, {**arrays, "extra": np.zeros(2)})
  with pytest.raises(FileFormatError, match=r"n.jdl.npz: unexpected arrays "
                     r"\['extra'\] \(the metadata implies"):
    jdl.io.load_network(path)
  members = [H.meta("network", meta)] + [H.array(k, v)
                                         for k, v in arrays.items()]
  H.write_zip(path, members + [H.stored("notes.txt", b"hi")])
  with pytest.raises(FileFormatError, match="member 'notes.txt', which is "
                     "not a .npy array"):
    jdl.io.load_network(path)
  # A `__meta__` that is not an .npy array at all, or not uint8 JSON.
  text = json.dumps({"format": "jdlayers", "version": 1, "kind": "network",
                     **meta}).encode()
  H.write_zip(path, [H.stored("__meta__.npy", text)] + members[1:])
  with pytest.raises(FileFormatError, match=r"n.jdl.npz: array '__meta__' "
                     r"is not a valid .npy array"):
    jdl.io.load_network(path)
  H.write_zip(path, [H.array("__meta__", np.zeros(3, np.float32))]
              + members[1:])
  with pytest.raises(FileFormatError, match="corrupted metadata"):
    jdl.io.load_network(path)
  H.write_zip(path, members + [H.array("bias", np.zeros(2, np.float32))])
  with pytest.raises(FileFormatError, match="holds member 'bias.npy' twice"):
    jdl.io.load_network(path)


def test_metadata_is_bounded_and_never_inflated_from_a_few_bytes(tmp_path):
  path, meta, arrays = _net_file(tmp_path)
  rest = [H.array(k, v) for k, v in arrays.items()]
  text = json.dumps({"format": "jdlayers", "version": 1, "kind": "network",
                     **meta, "pad": " " * (2 << 20)}).encode()
  head = H.npy_header((len(text),), "|u1")
  H.write_zip(path, [H.zeros_member("__meta__.npy", head + text, 0)] + rest)
  with pytest.raises(FileFormatError, match=r"n.jdl.npz: corrupted metadata "
                     r"\('__meta__' is compressed and inflates to 2,097,"):
    jdl.io.load_network(path)
  head = H.npy_header((40 << 20,), "|u1")
  H.write_zip(path, [H.zeros_member("__meta__.npy", head, 40)] + rest)
  with pytest.raises(FileFormatError, match=r"expected at most 33,554,432 "
                     "bytes of uint8 JSON"):
    jdl.io.load_network(path)


def test_headers_must_match_declared_sizes_and_dtypes(tmp_path):
  path, meta, arrays = _net_file(tmp_path)
  good = H.array("weights", arrays["weights"])
  short = H.stored(good[0], good[2][:-4])  # data cut short, CRC right
  H.write_zip(path, [H.meta("network", meta), short,
                     H.array("bias", arrays["bias"])])
  with pytest.raises(FileFormatError, match=r"array 'weights': its header "
                     r"implies \[2, 2, 3\] float32 \(48 bytes\) but the "
                     "member holds 44 bytes"):
    jdl.io.load_network(path)
  H.write_zip(path, [H.meta("network", meta), H.array(
      "weights", np.zeros((2, 2, 3), np.complex64)), H.array(
          "bias", arrays["bias"])])
  with pytest.raises(FileFormatError, match="'weights' has dtype complex64; "
                     "only numeric arrays"):
    jdl.io.load_network(path)


def _surrogate_file(tmp_path):
  q = vi.Surrogate(jdl.Affine(2, 3), seed=0)
  path = q.save(tmp_path / "q.jdl.npz")
  meta, arrays = _files.read(path, "surrogate")
  return path, _strip(meta), arrays


@pytest.mark.parametrize("change, match", [
    (dict(part_names=5), "surrogate metadata lacks a valid 'part_names'"),
    (dict(part_names=["bias", "weights"]), r"the configuration gives parts "
     r"\['weights', 'bias'\] but the file lists \['bias', 'weights'\]"),
    (dict(history={"loss": ["a"], "nll": [], "kl": [], "step_loss": [],
                   "seconds": []}), "lacks a valid 'history'"),
    (dict(history={"loss": [float("nan")], "nll": [], "kl": [],
                   "step_loss": [], "seconds": []}),
     "lacks a valid 'history'"),
    (dict(history={"loss": [1.0]}), "lacks a valid 'history'"),
    (dict(history=[1, 2]), "lacks a valid 'history'"),
    (dict(point_mass=3), "lacks a valid 'point_mass'"),
    (dict(default={"name": "mystery", "config": {}}),
     "lacks a valid 'default'"),
    (dict(default={"name": "point_mass", "config": {"nope": 1.0}}),
     "invalid surrogate configuration"),
    (dict(target={"class": "models.Model", "config": {
        "network": {"class": "Affine", "config": {"out_units": -1,
                                                  "in_units": 2}},
        "likelihood": {"class": "models.Normal", "config": {"scale": 0.1}}}}),
     r"invalid configuration \(target.network\)"),
    (dict(variables=["weights/loc"]), r"unexpected arrays \['bias/loc', "),
])
def test_malformed_surrogate_fields(tmp_path, change, match):
  path, meta, arrays = _surrogate_file(tmp_path)
  meta.update(change)
  with pytest.raises(FileFormatError, match="q.jdl.npz: ") as info:
    vi.load_surrogate(_rewrite(path, "surrogate", meta, arrays))
  assert info.match(match)


def test_crafted_valid_result_loads(tmp_path):
  fields, arrays = H.result_contents(3, tiny_states=False)
  path = _rewrite(tmp_path / "r.jdl.npz", "mcmc_result", fields, arrays)
  r = jdl.mcmc.load_result(path)
  assert (r.num_draws, r.num_chains, len(r.states)) == (2, 2, 6)


@pytest.mark.parametrize("change, match", [
    (dict(num_draws="abc"), "result metadata lacks a valid 'num_draws': "
     "'abc' is not an int"),
    (dict(num_chains=2.5), "lacks a valid 'num_chains': 2.5 is not an int"),
    (dict(num_draws=-1), "lacks a valid 'num_draws': -1 is out of range"),
    (dict(kernel=5), "lacks a valid 'kernel': 5 is not a string"),
    (dict(kernel="gibbs"), r"'kernel': 'gibbs' is not a known value; "
     r"expected one of \['nuts', 'hmc', 'chees', 'snaper'\]"),
    (dict(seconds=float("inf")), "lacks a valid 'seconds'"),
    (dict(part_names=["a", "a"]), "lacks a valid 'part_names'"),
    (dict(num_draws=3), "complete=True with 3 of 2 draws|num_draws=3 "
     "exceeds num_results=2"),
    (dict(model={"class": "models.Model", "config": {"network": 1}}),
     "invalid configuration \\(model\\)"),
    (dict(state_1=np.zeros((5, 2, 3), np.float32)),
     r"array 'state_1' has shape \[5, 2, 3\] but the config implies "
     r"\[2, 2, 3\]"),
    (dict(extra=np.zeros(1)), r"unexpected arrays \['extra'\]"),
    (dict(x=np.zeros((3, 1), np.float32)), "must share their first dim"),
    (dict(trace_is_accepted=np.zeros((2, 2), np.float32)),
     "'trace_is_accepted' has dtype float32"),
])
def test_malformed_result_fields(tmp_path, change, match):
  fields, arrays = H.result_contents(3, tiny_states=False)
  for k, v in change.items():
    (arrays if isinstance(v, np.ndarray) else fields)[k] = v
  path = _rewrite(tmp_path / "r.jdl.npz", "mcmc_result", fields, arrays)
  with pytest.raises(FileFormatError, match="r.jdl.npz: ") as info:
    jdl.mcmc.load_result(path)
  assert info.match(match)


def test_writers_refuse_what_readers_would_refuse(tmp_path):
  fields, arrays = H.result_contents(3, tiny_states=False)
  fields["num_chains"] = 2.5
  with pytest.raises(ValueError, match="refusing to write an invalid result "
                     "file: .*'num_chains': 2.5 is not an int"):
    _result_schema.RESULT.write(tmp_path / "r.jdl.npz", fields, arrays)
  assert not os.listdir(tmp_path)


def test_huge_counts_in_metadata_build_no_lists(tmp_path):
  """A declared count is compared with the members before names are made."""
  fields, arrays = H.result_contents(3, tiny_states=False)
  fields["part_names"] = [f"p{i}" for i in range(10 ** 5)]
  path = _rewrite(tmp_path / "r.jdl.npz", "mcmc_result", fields, arrays)
  with pytest.raises(FileFormatError, match=r"the metadata implies "
                     r"100,017 arrays but the file holds 21"):
    jdl.mcmc.load_result(path)
