"""Every ```python block of README.md runs as written, twice, and quickly.

Each block runs in a fresh namespace in an empty working directory, so a
block cannot lean on an earlier one: a reader can copy any single block. A
block that writes files runs a second time in the same directory, because a
reader reruns it, and it must not then fail on its own output. A block may
be skipped only with a `# readme-test: skip (<why>)` line in it; none is.
"""

import os
import pathlib
import re
import time

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)
# Each block must take well under a minute on an idle 2-core CPU. Bounded in
# CPU seconds (all threads), which a machine shared with other jobs does not
# inflate the way it inflates wall time; 60 CPU-s is at most ~60 s of wall
# time on one idle core, ~30-40 s on two.
BLOCK_CPU_SECONDS = 60


def _blocks():
  text = README.read_text(encoding="utf-8")
  out = []
  for i, m in enumerate(FENCE.finditer(text)):
    # Named by the heading or bold lead-in above it ("3-MCMC"): line numbers
    # move whenever the README grows.
    above = re.findall(r"^(?:#+ |\*\*)([^*\n(]+)", text[:m.start()], re.M)
    name = re.sub(r"\W+", "-", above[-1].strip()).strip("-") if above else ""
    out.append(pytest.param(m.group(1), id=f"{i}-{name}",
                            marks=_skip_mark(m.group(1))))
  return out


def _skip_mark(code):
  reason = re.search(r"# readme-test: skip \((.+)\)", code)
  return [pytest.mark.skip(reason=reason.group(1))] if reason else []


def _run(code, name):
  """Runs `code` in a fresh namespace; returns the CPU seconds it took."""
  start = time.process_time()
  exec(compile(code, name, "exec"), {"__name__": "__readme__"})  # pylint: disable=exec-used
  return time.process_time() - start


def test_readme_has_python_blocks():
  # The README's usage, MCMC, VI, Keras, I/O and testing examples.
  assert len(_blocks()) >= 6


@pytest.mark.parametrize("code", _blocks())
def test_readme_block_runs(code, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
  seconds = _run(code, "README.md")
  print(f"README block: {seconds:.1f} CPU-s")
  assert seconds < BLOCK_CPU_SECONDS, f"block took {seconds:.0f} CPU-s"
  written = sorted(os.listdir(tmp_path))
  if written:
    # A rerun must not trip over the files the first run saved.
    _run(code, "README.md (second run)")
    assert sorted(os.listdir(tmp_path)) == written
