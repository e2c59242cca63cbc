"""Temporary files of killed writers are recognised and cleaned up; a full
disk names the file and keeps the old one."""

import errno
import os
import signal
import subprocess
import sys
import time

import pytest

import jdlayers as jdl
from jdlayers.io import _atomic

_ATOMIC = os.path.abspath(_atomic.__file__)

# A writer killed (SIGKILL) between writing its temporary file and moving it
# into place. `_atomic` has no jdlayers imports, so the child loads it alone.
_KILLED_WRITER = f"""
import importlib.util, os, signal
spec = importlib.util.spec_from_file_location("a", {_ATOMIC!r})
a = importlib.util.module_from_spec(spec)
spec.loader.exec_module(a)
def die(fd):
  os.kill(os.getpid(), signal.SIGKILL)
a.os.fsync = die
a.atomic_write_bytes(os.environ["TARGET"], b"x" * 1000, overwrite=True)
"""


def _dead_pid() -> int:
  p = subprocess.Popen([sys.executable, "-c", "pass"])
  p.wait()
  return p.pid


def _save(path):
  net = jdl.Affine(2, 3)
  return jdl.io.save_network(path, net, net.sample(seed=0), overwrite=True)


def test_a_killed_writer_leaves_a_recognisable_file_the_next_save_removes(
    tmp_path):
  target = tmp_path / "n.jdl.npz"
  _save(target)
  before = target.read_bytes()
  p = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER],
                       env=dict(os.environ, TARGET=str(target)))
  assert p.wait(timeout=120) == -signal.SIGKILL
  left = [n for n in os.listdir(tmp_path) if n != "n.jdl.npz"]
  assert len(left) == 1 and left[0].startswith(
      f".n.jdl.npz.jdltmp-{p.pid}-"), left
  assert target.read_bytes() == before  # the old file is intact
  _save(target)
  assert os.listdir(tmp_path) == ["n.jdl.npz"]


def test_only_dead_writers_leftovers_of_the_same_target_are_removed(
    tmp_path):
  dead = _dead_pid()
  live = subprocess.Popen([sys.executable, "-c",
                           "import time; time.sleep(60)"])
  try:
    names = {
        "stale": f".n.jdl.npz.jdltmp-{dead}-ab12cd",
        "live": f".n.jdl.npz.jdltmp-{live.pid}-ef34gh",
        "ours": f".n.jdl.npz.jdltmp-{os.getpid()}-ij56kl",
        "reused": f".n.jdl.npz.jdltmp-{live.pid}-mn78op",
        "other_target": f".m.jdl.npz.jdltmp-{dead}-ab12cd",
        "old_style": ".n.jdl.npz.x1y2z3.tmp",
        "user": "n.jdl.npz.jdltmp-1-backup",
        "not_a_pid": f".n.jdl.npz.jdltmp-{dead}x-ab12cd",
    }
    for name in names.values():
      (tmp_path / name).write_bytes(b"partial")
    # The "reused" file predates the live process by an hour: its writer
    # was an earlier process that had the same PID.
    hour_ago = time.time() - 3600
    os.utime(tmp_path / names["reused"], (hour_ago, hour_ago))
    removed = _atomic.remove_stale_temporaries(tmp_path / "n.jdl.npz")
    expect = {"stale"} | ({"reused"} if _atomic._process_start_time(  # pylint: disable=protected-access
        live.pid) is not None else set())
    assert sorted(os.path.basename(p) for p in removed) == sorted(
        names[k] for k in expect)
    _save(tmp_path / "n.jdl.npz")
    kept = set(os.listdir(tmp_path))
    assert kept == {"n.jdl.npz"} | {names[k] for k in names if k not in expect}
  finally:
    live.kill()
    live.wait()


def test_full_disk_names_the_target_and_keeps_the_old_file(tmp_path,
                                                            monkeypatch):
  target = tmp_path / "n.jdl.npz"
  _save(target)
  before = target.read_bytes()

  def full(fd):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
  monkeypatch.setattr(_atomic.os, "fsync", full)
  with pytest.raises(OSError) as info:
    _save(target)
  assert info.value.errno == errno.ENOSPC
  assert str(target) in str(info.value)
  assert "nothing was replaced" in str(info.value)
  monkeypatch.undo()
  assert target.read_bytes() == before
  assert os.listdir(tmp_path) == ["n.jdl.npz"]
