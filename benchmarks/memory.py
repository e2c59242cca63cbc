"""Benchmark: peak memory of long MCMC runs, with and without checkpoints.

Model (issue 12, section 4): the MLP 1-50-50-1 (tanh, `Normal(0, 1)` priors)
with a Normal likelihood (sigma 0.1) on 200 points of y = sin(3x) + 0.1
noise, 16 chains of HMC ("step_size" adaptation), `--warmup` warm-up steps
then 1000 and 2000 draws (`--draws`). Each configuration runs in its own
process under `/usr/bin/time -v`, whose "Maximum resident set size" is the
figure; with `--checkpoint` the run writes a checkpoint every
`--every` steps. The table gives the peak RSS, the draw data
(`draws * chains * parameters * 4` bytes), the checkpoint size on disk, and
per checkpoint setting the growth of the peak per 1000 draws divided by the
draw data of 1000 draws (1.0 = one copy of the draws).

Memory does not depend on the number of leapfrog steps, so the default is 5
(fast); timings are not the point here.

Usage:
  python benchmarks/memory.py [--draws 1000,2000] [--warmup 100]
      [--leapfrogs 5] [--every 250]
  python benchmarks/memory.py --one DRAWS CKPT_DIR_OR_-   (one run; internal)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

CHAINS, POINTS = 16, 200


def one(draws: int, ckpt_dir: str, warmup: int, leapfrogs: int,
        every: int) -> None:
  """Runs one configuration in this process; prints the checkpoint size."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  import numpy as np  # pylint: disable=g-import-not-at-top
  import jdlayers as jdl  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  x = rng.uniform(-2, 2, size=(POINTS, 1)).astype(np.float32)
  y = (np.sin(3 * x) + 0.1 * rng.normal(size=x.shape)).astype(np.float32)
  net = jdl.Sequential(jdl.Affine(50, 1, activation="tanh"),
                       jdl.Affine(50, 50, activation="tanh"),
                       jdl.Affine(1, 50))
  model = jdl.models.Model(net, jdl.models.Normal(scale=0.1))
  kw = {}
  if ckpt_dir != "-":
    kw = dict(checkpoint=os.path.join(ckpt_dir, "run.ckpt.jdl.npz"),
              checkpoint_every=every)
  result = jdl.mcmc.sample(model, x, y, num_chains=CHAINS, num_results=draws,
                           num_burnin_steps=warmup, kernel="hmc",
                           num_leapfrog_steps=leapfrogs,
                           adaptation="step_size", seed=0, progress=False,
                           **kw)
  params = sum(int(np.prod(s.shape[2:])) for s in result.states)
  size = 0
  if ckpt_dir != "-":
    size = sum(os.path.getsize(os.path.join(ckpt_dir, f))
               for f in os.listdir(ckpt_dir))
  print(f"RESULT draws={result.num_draws} params={params} ckpt_bytes={size}")


def measure(draws: int, checkpoint: bool, args) -> dict:
  with tempfile.TemporaryDirectory() as d:
    cmd = ["/usr/bin/time", "-v", sys.executable, os.path.abspath(__file__),
           "--one", str(draws), d if checkpoint else "-",
           "--warmup", str(args.warmup), "--leapfrogs", str(args.leapfrogs),
           "--every", str(args.every)]
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
  if p.returncode:
    raise RuntimeError(f"{cmd} failed:\n{p.stdout[-2000:]}{p.stderr[-3000:]}")
  rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)",
                         p.stderr).group(1))
  found = re.search(r"RESULT draws=(\d+) params=(\d+) ckpt_bytes=(\d+)",
                    p.stdout)
  n, params, ckpt = (int(v) for v in found.groups())
  return dict(draws=n, checkpoint=checkpoint, rss_mb=rss_kb / 1024,
              data_mb=n * CHAINS * params * 4 / 2 ** 20,
              ckpt_mb=ckpt / 2 ** 20)


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--draws", default="1000,2000")
  ap.add_argument("--warmup", type=int, default=100)
  ap.add_argument("--leapfrogs", type=int, default=5)
  ap.add_argument("--every", type=int, default=250)
  ap.add_argument("--one", nargs=2, metavar=("DRAWS", "CKPT_DIR"))
  args = ap.parse_args()
  if args.one:
    one(int(args.one[0]), args.one[1], args.warmup, args.leapfrogs,
        args.every)
    return
  counts = [int(v) for v in args.draws.split(",")]
  rows = [measure(n, c, args) for c in (False, True) for n in counts]
  print(f"{'checkpoint':>10} {'draws':>6} {'peak RSS MB':>12} "
        f"{'draw data MB':>13} {'ckpt files MB':>14}")
  for r in rows:
    print(f"{str(r['checkpoint']):>10} {r['draws']:>6} {r['rss_mb']:>12.0f} "
          f"{r['data_mb']:>13.0f} {r['ckpt_mb']:>14.0f}")
  for c in (False, True):
    sel = [r for r in rows if r["checkpoint"] == c]
    a, b = sel[0], sel[-1]
    if b["draws"] > a["draws"]:
      per = 1000 / (b["draws"] - a["draws"])
      growth = (b["rss_mb"] - a["rss_mb"]) * per
      data = (b["data_mb"] - a["data_mb"]) * per
      print(f"checkpoint={c}: peak RSS grows {growth:.0f} MB per 1000 draws "
            f"for {data:.0f} MB of draw data ({growth / data:.2f}x)")


if __name__ == "__main__":
  main()
