"""HMC over a Bayesian neural network on several workers with tf.distribute.

Each worker runs this script with its `TF_CONFIG` (the cluster's addresses
and its own task index, as `tf.distribute.MultiWorkerMirroredStrategy`
documents). `jdl.mcmc.sample(..., strategy=strategy)` splits the data along
N across the workers' replicas; every step, each replica computes its
shard's log-likelihood and gradient and the collectives sum them. All
workers hold the same chains and draws; the chief (task 0) prints the
diagnostics and the test RMSE.

With `--local-workers K` the script starts K workers itself as local
processes talking over 127.0.0.1, so anyone can try it on one machine; it
waits for them at most `--timeout` seconds and always stops them. On real
hosts, run on each one (same data, same arguments):

  TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
              "task": {"type": "worker", "index": 0}}' \\
    python examples/distributed_hmc.py

(index 1 on host2, ...). Without `TF_CONFIG` it runs on this host's devices
alone.

Data: `examples/data/noisy_sine.csv`; model: a `1 -> 32 -> 32 -> 1` tanh MLP
with a latent noise scale, as `hmc_regression.py`.

Usage:
  python examples/distributed_hmc.py [--local-workers K] [--chains C]
      [--draws D] [--warmup W] [--seed N] [--timeout S] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _common  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--local-workers", default=0, type=int,
                 help="start this many workers on 127.0.0.1 and wait")
  p.add_argument("--chains", default=8, type=int)
  p.add_argument("--draws", default=300, type=int)
  p.add_argument("--warmup", default=300, type=int)
  p.add_argument("--seed", default=0, type=int)
  p.add_argument("--timeout", default=1800., type=float,
                 help="seconds to wait for --local-workers")
  p.add_argument("--smoke", action="store_true", help="tiny run, for CI")
  args = p.parse_args(argv)
  if args.smoke:
    args.chains, args.draws, args.warmup = 4, 10, 10
  if args.local_workers < 0 or args.local_workers == 1:
    p.error(f"--local-workers must be 0 or >= 2; got {args.local_workers}")
  return args


def free_ports(n: int):
  socks = [socket.socket() for _ in range(n)]
  try:
    for s in socks:
      s.bind(("127.0.0.1", 0))
    return [s.getsockname()[1] for s in socks]
  finally:
    for s in socks:
      s.close()


def launch(args, argv) -> int:
  """Starts `args.local_workers` workers; returns the chief's exit status."""
  ports = free_ports(args.local_workers)
  cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
  rest, skip = [], False  # argv less "--local-workers K" / "=K"
  for a in argv:
    if skip or a.startswith("--local-workers="):
      skip = False
    elif a == "--local-workers":
      skip = True
    else:
      rest.append(a)
  procs = []
  try:
    for i in range(args.local_workers):
      env = dict(os.environ, TF_CONFIG=json.dumps(
          {"cluster": cluster, "task": {"type": "worker", "index": i}}))
      procs.append(subprocess.Popen(
          [sys.executable, os.path.abspath(__file__), *rest], env=env,
          start_new_session=True))  # own group: killpg stops its children
    print(f"started {len(procs)} workers on {cluster['worker']}", flush=True)
    deadline = time.monotonic() + args.timeout
    codes = []
    for proc in procs:
      try:
        codes.append(proc.wait(timeout=max(1., deadline - time.monotonic())))
      except subprocess.TimeoutExpired:
        print(f"workers did not finish within --timeout {args.timeout} s; "
              "stopping them", file=sys.stderr)
        return 124
    bad = [i for i, c in enumerate(codes) if c]
    if bad:
      print(f"workers {bad} failed (exit codes {codes})", file=sys.stderr)
      return 1
    return 0
  finally:  # always: timeout, failure, Ctrl-C
    for proc in procs:
      if proc.poll() is None:
        try:
          os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
          pass
      proc.wait()


def work(args) -> int:
  """One worker: sample with the cluster's strategy; the chief reports."""
  tf = _common.quiet_start()
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow_probability as tfp  # pylint: disable=g-import-not-at-top

  import jdlayers as jdl  # pylint: disable=g-import-not-at-top

  strategy = tf.distribute.MultiWorkerMirroredStrategy()
  task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
  chief = int(task.get("index", 0)) == 0
  x, y, x_test, y_test = _common.load_split_csv("noisy_sine.csv")
  net = jdl.Sequential(jdl.Affine(32, 1, activation="tanh"),
                       jdl.Affine(32, 32, activation="tanh"),
                       jdl.Affine(1, 32))
  model = jdl.models.Model(net, jdl.models.Normal(
      scale=tfp.distributions.HalfNormal(np.float32(0.5))))
  if chief:
    print(f"{strategy.num_replicas_in_sync} replicas, N={len(x)} split "
          f"along N; compiling the sampler...", flush=True)
  t0 = time.perf_counter()
  result = jdl.mcmc.sample(model, x, y, strategy=strategy,
                           num_chains=args.chains, num_results=args.draws,
                           num_burnin_steps=args.warmup, seed=args.seed,
                           progress=chief)
  seconds = time.perf_counter() - t0
  if chief:
    print(result.diagnostics())
    mean = result.predict(x_test).mean
    rmse = float(np.sqrt(np.mean((np.asarray(mean) - y_test) ** 2)))
    print(f"test RMSE {rmse:.3f}; {seconds:.1f} s for "
          f"{args.warmup + args.draws} steps "
          f"({strategy.num_replicas_in_sync} replicas)", flush=True)
  return 0


def main(argv=None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  args = parse_args(argv)
  if args.local_workers:
    return launch(args, argv)
  return work(args)


if __name__ == "__main__":
  sys.exit(main())
