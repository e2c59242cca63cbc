"""Runs a snippet in a subprocess whose CPU is split into logical devices.

Logical devices must be configured before TensorFlow initialises, which a
pytest process has long done; so each distributed check runs a script in a
fresh interpreter (about 5 s of imports) and reads back what it printed.
"""

import json
import os
import subprocess
import sys
import textwrap

_PRELUDE = """\
import json, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
tf.get_logger().setLevel("ERROR")
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration()] * {devices})
RESULT = {{}}
"""

_EPILOGUE = """
print("RESULT=" + json.dumps(RESULT))
"""


def run_with_devices(code: str, devices: int, timeout: float = 300.):
  """Runs `code` with `devices` logical CPUs; returns its `RESULT` dict.

  Args:
    code: Python source; it fills the dict `RESULT` with JSON values.
    devices: Logical CPU devices to configure ("/cpu:0" ...).
    timeout: Seconds before the subprocess is killed (the test fails).

  Returns:
    The `RESULT` dict the snippet built.

  Raises:
    AssertionError: With the subprocess's output if it failed.
  """
  script = _PRELUDE.format(devices=devices) + textwrap.dedent(code) + \
      _EPILOGUE
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  proc = subprocess.run([sys.executable, "-c", script], capture_output=True,
                        text=True, timeout=timeout, env=env,
                        cwd=os.path.dirname(os.path.dirname(
                            os.path.dirname(os.path.abspath(__file__)))))
  lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT=")]
  assert proc.returncode == 0 and lines, (
      f"subprocess failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
      f"{proc.stderr[-5000:]}")
  return json.loads(lines[-1][len("RESULT="):])
