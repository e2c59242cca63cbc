"""Benchmark: time per HMC step and per VI epoch against the number of replicas.

Models: the 1-50-50-1 MLP and the digits CNN of `benchmarks/hmc.py`
(`_hmc_models.py`). Each replica count runs in its own subprocess, since
logical devices must be configured before TensorFlow initialises: R logical
CPU devices and `tf.distribute.MirroredStrategy` over them.

Rows per model and R:
  hmc-xla        (R = 1 only) `Sampler` without a strategy: the default
                 single-device run, the whole loop compiled with XLA.
  hmc-graph      (R = 1 only) the same with `jit_compile=False`: the loop
                 structure every strategy run has (XLA cannot compile
                 `strategy.run`).
  hmc-data       `strategy=` MirroredStrategy over R devices, shard="data"
                 (per-replica density and gradient compiled with XLA).
  hmc-chains     the same with shard="chains".
  vi-data        `jdl.vi.fit(..., strategy=)`, per epoch (batch 64).
HMC: fixed-trajectory HMC, 20 leapfrog steps, 8 chains, no adaptation; the
time per step of a second call of `--steps` steps (the first compiles). VI:
the median epoch time after the first (which compiles).

On this CPU the logical devices share the same cores, so the figure that
matters is the overhead: the ratio of each row to the single-device
`hmc-xla` (and to `hmc-graph`). Run it when nothing else is timing work; the
JSON records the load average before and after.

Measured (2-core shared dev box, load average 5.2-6.2, `--replicas 1 2
--steps 30`, ms per HMC step, 8 chains, 20 leapfrogs):
  mlp: hmc-xla 9.8, hmc-graph 18.5, hmc-data R=1 13.8, R=2 15.2 (1.54x the
       XLA single-device step, 1.10x the one-replica strategy step, 0.82x
       the graph loop); hmc-chains R=2 14.1.
  cnn: hmc-xla 227.6, hmc-graph 185.1, hmc-data R=1 177.5, R=2 163.0
       (0.72x XLA); hmc-chains R=2 201.3.
The digits CNN meets "2 devices <= 1.25x one device"; the MLP's step is
dominated by the loop's own small ops, which only the single-device path
can fuse (XLA compiles the whole loop there), so it costs 1.54x the XLA
step but 1.10x the same loop on one replica.

Usage: python benchmarks/distributed.py [--models mlp cnn] [--replicas 1 2 4]
       [--steps S] [--epochs E] [--out DIR]
Prints a table and writes JSON to benchmarks/results/distributed-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))
import _common  # noqa: E402

_common.quiet_start(tf32=True)  # the children import TF themselves

import jdlayers as jdl  # noqa: E402  (for the provenance record)

import _provenance  # noqa: E402  (benchmarks/ is sys.path[0])

CHILD = r"""
import json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import tensorflow as tf
tf.get_logger().setLevel("ERROR")
cfg = json.loads(sys.argv[1])
R = cfg["replicas"]
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * R)
sys.path.insert(0, cfg["here"])
import jdlayers as jdl
import _hmc_models as hm

m = hm.get(cfg["model"])
strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(R)])
rows = []

def hmc(name, **kw):
  steps, chains = cfg["steps"], cfg["chains"]
  post = m.jdl_model().posterior(m.x, m.y)
  s = jdl.mcmc.Sampler(post, num_chains=chains, num_results=2 * steps,
                       num_burnin_steps=0, kernel="hmc", adaptation="none",
                       step_size=hm.init_step_size(m),
                       num_leapfrog_steps=hm.LEAPFROGS, chunk_size=steps,
                       seed=0, **kw)
  t0 = time.perf_counter()
  s.run(steps, progress=False)
  first = time.perf_counter() - t0
  t0, c0 = time.perf_counter(), time.process_time()
  s.run(steps, progress=False)
  ms = (time.perf_counter() - t0) / steps * 1e3
  cpu = (time.process_time() - c0) / steps * 1e3
  rows.append(dict(row=name, ms=ms, cpu_ms=cpu, first_s=first))

def vi(name, **kw):
  c0 = time.process_time()
  q = jdl.vi.fit(m.jdl_model(), m.x, m.y, epochs=cfg["epochs"],
                 batch_size=64, seed=0, progress=False, **kw)
  sec = q.history.seconds
  # CPU time of all epochs less the first's wall time (its compilation).
  cpu = (time.process_time() - c0 - sec[0]) / max(1, len(sec) - 1)
  rows.append(dict(row=name, ms=float(np.median(sec[1:])) * 1e3,
                   cpu_ms=cpu * 1e3, first_s=sec[0]))

if R == 1:
  hmc("hmc-xla")
  hmc("hmc-graph", jit_compile=False)
hmc("hmc-data", strategy=strategy)
hmc("hmc-chains", strategy=strategy, shard="chains")
if "strategy" in jdl.vi.fit.__code__.co_varnames:
  if R == 1:
    vi("vi-none")
  vi("vi-data", strategy=strategy)
print("JSON: " + json.dumps(rows), flush=True)
"""


def run_child(model: str, replicas: int, args) -> list:
  cfg = dict(model=model, replicas=replicas, steps=args.steps,
             chains=args.chains, epochs=args.epochs, here=HERE)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
             PYTHONPATH=os.path.dirname(HERE) + os.pathsep
             + os.environ.get("PYTHONPATH", ""))
  proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg)],
                        env=env, capture_output=True, text=True,
                        timeout=args.timeout)
  lines = [l for l in proc.stdout.splitlines() if l.startswith("JSON: ")]
  if proc.returncode or not lines:
    raise RuntimeError(f"{model} R={replicas} failed:\n{proc.stderr[-3000:]}")
  return [dict(model=model, replicas=replicas, **r)
          for r in json.loads(lines[-1][6:])]


def table(rows) -> str:
  base = {(r["model"], r["row"]): r["ms"] for r in rows if r["replicas"] == 1}
  out = [f"{'model':5s} {'row':11s} {'R':>2s} {'ms/step':>9s} {'cpu ms':>8s} "
         f"{'first s':>8s} {'/ 1-dev xla':>11s} {'/ 1-dev graph':>13s} "
         f"{'/ same R=1':>10s}"]
  for r in rows:
    xla = base.get((r["model"], "hmc-xla" if r["row"].startswith("hmc")
                    else "vi-none"))
    graph = base.get((r["model"], "hmc-graph"))
    same = base.get((r["model"], r["row"]))
    f = lambda b: f"{r['ms'] / b:.2f}x" if b else "-"  # noqa: E731
    out.append(f"{r['model']:5s} {r['row']:11s} {r['replicas']:2d} "
               f"{r['ms']:9.2f} {r['cpu_ms']:8.1f} {r['first_s']:8.1f} "
               f"{f(xla):>11s} "
               f"{f(graph) if r['row'].startswith('hmc') else '-':>13s} "
               f"{f(same):>10s}")
  return "\n".join(out)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--models", nargs="+", default=["mlp", "cnn"])
  p.add_argument("--replicas", nargs="+", type=int, default=[1, 2, 4])
  p.add_argument("--steps", type=int, default=20)
  p.add_argument("--chains", type=int, default=8)
  p.add_argument("--epochs", type=int, default=4)
  p.add_argument("--timeout", type=float, default=1200)
  p.add_argument("--out", default=os.path.join(HERE, "results"))
  args = p.parse_args(argv)
  load0 = os.getloadavg()
  rows = []
  for model in args.models:
    for r in sorted(args.replicas):
      rows += run_child(model, r, args)
      print(f"  {model} R={r} done", flush=True)
  load1 = os.getloadavg()
  print(table(rows))
  print(f"load average before {load0[0]:.2f}, after {load1[0]:.2f} "
        f"({os.cpu_count()} CPUs)")
  os.makedirs(args.out, exist_ok=True)
  stamp = time.strftime("%Y%m%d-%H%M%S")
  path = os.path.join(args.out, f"distributed-{stamp}.json")
  with open(path, "x", encoding="utf-8") as fh:  # never overwrites
    json.dump(dict(rows=rows, settings=vars(args), load_before=load0,
                   load_after=load1, **_provenance.source_info(jdl)),
              fh, indent=1)
  print(f"wrote {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
