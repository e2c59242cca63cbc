"""Atomic file writes with recognisable, self-cleaning temporary files.

A write goes to a temporary file in the target's directory named
`.{target name}.jdltmp-{writer pid}-{random}`, is fsync'ed and is then moved
into place, so a crash mid-write leaves any previous file intact. A writer
killed mid-write (SIGKILL, power loss) leaves its temporary file behind; the
next write of the same target removes such leftovers: only files matching
that pattern for that target, and only when the process that wrote them is
gone (no process has its PID, or the one that has it started after the file
was last written, i.e. the PID was reused). A live writer's file is never
touched. `remove_stale_temporaries` does the same on demand (e.g. when a run
resumes from a checkpoint). Liveness is judged by PID on this machine: on a
directory shared between machines or PID namespaces, another host's live
writer may look dead (its save then fails loudly; nothing is lost).
"""

from __future__ import annotations

import os
import re
import tempfile
from typing import List, Optional, Union

PathLike = Union[str, os.PathLike]

TMP_MARKER = ".jdltmp-"


def temporary_pattern(target: PathLike) -> "re.Pattern[str]":
  """The regex matching the temporary files of writes to `target`.

  Group 1 is the PID of the writing process.
  """
  name = os.path.basename(os.fspath(target))
  return re.compile(rf"\.{re.escape(name)}{re.escape(TMP_MARKER)}"
                    r"(\d+)-[A-Za-z0-9_]+\Z")


def _process_start_time(pid: int) -> Optional[float]:
  """Unix start time of process `pid` (Linux /proc), or None if unknown."""
  try:
    with open(f"/proc/{pid}/stat", "rb") as f:
      stat = f.read().decode("ascii", "replace")
    with open("/proc/stat", "rb") as f:
      btime = next(float(line.split()[1]) for line in f
                   if line.startswith(b"btime"))
    # Field 22 (starttime, in clock ticks after boot) follows the command
    # name, which may itself contain spaces and parentheses.
    ticks = float(stat.rsplit(")", 1)[1].split()[19])
    return btime + ticks / os.sysconf("SC_CLK_TCK")
  except (OSError, ValueError, IndexError, StopIteration):
    return None


def _writer_gone(pid: int, mtime: float) -> bool:
  """True if the process that wrote a temporary file at `mtime` has ended."""
  if pid == os.getpid() or pid <= 0 or os.name != "posix":
    # Ours (perhaps another thread's write in progress); elsewhere than
    # POSIX, os.kill(pid, 0) would not probe but terminate: keep the file.
    return False
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return True
  except (PermissionError, OSError):
    return False  # alive (another user's) or unknowable: keep it
  started = _process_start_time(pid)
  # A process that started after the file was last written did not write it
  # (the PID was reused). One second of slack covers clock granularity.
  return started is not None and started > mtime + 1.


def remove_stale_temporaries(target: PathLike) -> List[str]:
  """Removes temporary files left by dead writers of `target`.

  Only files named `.{name}.jdltmp-{pid}-{random}` next to `target` whose
  writer is no longer running are removed; anything else is left alone.
  Errors (e.g. a file another process removes first) are ignored.

  Args:
    target: The file whose leftover temporaries to remove.

  Returns:
    The paths removed.

  #### Example

  ```python
  from jdlayers.io import _atomic
  _atomic.remove_stale_temporaries("run.ckpt.jdl.npz")  # [] when clean
  ```
  """
  target = os.fspath(target)
  directory = os.path.dirname(os.path.abspath(target))
  pattern = temporary_pattern(target)
  removed = []
  try:
    names = os.listdir(directory)
  except OSError:
    return removed
  for name in names:
    m = pattern.match(name)
    if not m:
      continue
    full = os.path.join(directory, name)
    try:
      if _writer_gone(int(m.group(1)), os.stat(full).st_mtime):
        os.unlink(full)
        removed.append(full)
    except OSError:
      pass
  return removed


def _named_error(e: OSError, path: str) -> OSError:
  """`e` (e.g. ENOSPC, which names no file) re-raised naming the target."""
  err = OSError(e.errno, f"{e.strerror or os.strerror(e.errno)} while "
                f"writing {path} (nothing was replaced: any previous file "
                "is intact)")
  err.filename = path
  return err


def atomic_write_bytes(path: PathLike, data: bytes, *,
                       overwrite: bool = False) -> str:
  """Writes `data` to `path` atomically (temp file, fsync, rename).

  Leftover temporaries of earlier writers of `path` that died mid-write are
  removed first (see the module docstring).

  Args:
    path: Destination file.
    data: The bytes to write.
    overwrite: Replace an existing file; without it an existing `path`
      raises and is left untouched.

  Returns:
    The path written, as a string.

  Raises:
    FileExistsError: If `path` exists and `overwrite` is False.
    OSError: If writing fails (e.g. errno 28, a full disk); the message
      names `path`, `errno` is kept, and any previous file is intact.

  #### Example

  ```python
  from jdlayers.io import _atomic
  _atomic.atomic_write_bytes("/tmp/x.bin", b"abc", overwrite=True)
  ```
  """
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  if not overwrite and os.path.exists(path):
    raise FileExistsError(f"{path} exists; pass overwrite=True to replace it "
                          "(nothing was written).")
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"cannot write {path}: the directory {directory} "
                            "does not exist (nothing was written).")
  remove_stale_temporaries(path)
  try:
    fd, tmp = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}{TMP_MARKER}{os.getpid()}-",
        dir=directory)
  except OSError as e:
    if e.errno is None:
      raise
    raise _named_error(e, path) from e
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    if overwrite:
      os.replace(tmp, path)
    else:
      # link() refuses to clobber: a file created since the check above is
      # kept, not silently replaced.
      try:
        os.link(tmp, path)
      except FileExistsError:
        raise FileExistsError(f"{path} exists; pass overwrite=True to "
                              "replace it (nothing was written).") from None
      os.unlink(tmp)
    _fsync_dir(directory)
  except BaseException as e:
    if os.path.exists(tmp):
      os.unlink(tmp)
    if (isinstance(e, OSError) and e.errno is not None
        and not isinstance(e, FileExistsError)):
      raise _named_error(e, path) from e
    raise
  return path


def _fsync_dir(directory: str) -> None:
  try:
    fd = os.open(directory, os.O_RDONLY)
  except OSError:  # e.g. platforms without directory handles
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


