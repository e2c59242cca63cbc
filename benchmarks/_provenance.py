"""Which jdlayers a benchmark measured (shared by the benchmark scripts)."""

import os
import subprocess


def source_info(jdl) -> dict:
  """The `jdl` package's path, its git HEAD and whether it has uncommitted
  changes (git fields are left out outside a git checkout)."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(jdl.__file__)))
  info = dict(jdlayers=os.path.dirname(os.path.abspath(jdl.__file__)))
  try:
    def git(*a):
      return subprocess.run(["git", "-C", root, *a], check=True,
                            capture_output=True, text=True).stdout
    info["git_head"] = git("rev-parse", "HEAD").strip()
    info["jdlayers_dirty"] = bool(git("status", "--porcelain", "jdlayers"))
  except (OSError, subprocess.CalledProcessError):
    pass
  return info
