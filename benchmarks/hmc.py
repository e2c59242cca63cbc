"""Benchmark: many-chain HMC over a whole Bayesian network, jdlayers vs baselines.

Models (`--model`, see `_hmc_models`): "mlp", the 1-50-50-1 tanh MLP
(`Normal(0, 1)` priors, Normal likelihood, sigma 0.1) on 200 points of
y = sin(3x) + 0.1 noise; "cnn", Conv2D(8, 3x3) -> Conv2D(8, 3x3, stride 2)
-> Flatten -> Affine(10) (ReLU) with a Categorical likelihood on 300 of the
bundled 8x8 digits. Rows (select with `--only a,b`):

  jdl-chees         `jdl.mcmc.Sampler`, kernel "chees" (ChEES-HMC: trajectory
                    length learned across chains, jittered; dual averaging)
  jdl-snaper        kernel "snaper" (SNAPER-HMC: + diagonal preconditioner
                    and principal-component criterion)
  jdl-hmc           kernel "hmc" (20 leapfrog steps), adaptation "step_size"
                    (with jdlayers' default step-size jitter U(0.9, 1.1))
  jdl-hmc-nojitter  the same with `step_size_jitter=0` (only with `--only`)
  jdl-hmc-windowed  the same with adaptation "windowed" (+ diagonal mass)
  jdl-nuts          kernel "nuts", adaptation "auto" (windowed from 100
                    warm-up steps, else step size only), max tree depth 10,
                    run for `--nuts-steps` warm-up + as many draws: NUTS hits
                    its maximum depth here (~1000 leapfrogs a step), so it
                    gets a shorter budget; its ESS/s comes from short runs
  hand-tfp          hand-written TFP: plain `[C, ...]` tensors, a batched
                    target (matmuls; im2col + einsum for the CNN),
                    `DualAveragingStepSizeAdaptation(HamiltonianMonteCarlo)`
                    in `tfp.mcmc.sample_chain` under XLA
  anchor            the MLP with the TFP anchor layers, same kernel (slow)
  numpyro-hmc(-mass)  NumPyro HMC in its own virtualenv (`--numpyro`; MLP)

Every row starts from 0.1 * N(0, 1) draws per weight (jdlayers' default
`init="shrunk"`), uses an initial step size `0.5 * d ** -0.25` and an
acceptance target 0.75. ESS: the min over the probe inputs of the bulk ESS
(`jdl.diagnostics.bulk_ess`) of the predictive function (MLP: f(x) at 5
inputs; CNN: the log-probability of the true class of 5 held-out images).
Reported per run and, over seeds, as median (min-max): ESS per second of wall
time including tracing and XLA compilation, and excluding it; ESS per
gradient evaluation (leapfrog steps summed over chains and all steps, NUTS:
those taken); compile time (jdl: the first chunk `Sampler.run(1)` minus one
step; the others: a separate 1 + 1 step build); for jdl rows a second Sampler
on the same model object with data of the same shapes and another seed, which
reuses the compiled loop: its `compile_seconds` and its construction + first
one-step chunk (that step included); and the max split R-hat.

`--chains 16,64` and `--seeds 0,1,2,3,4` run every row at every count and
seed. `--scaling` runs one kernel (`--scaling-kernel`, default jdl-chees) on
the MLP at 8, 16, 32, 64 and 128 chains (or `--chains`). `--investigate`
instead times the pieces of one HMC step (`_hmc_investigate`).

Usage:
  python benchmarks/hmc.py [--model mlp|cnn] [--only jdl-chees,hand-tfp]
      [--quick] [--numpyro] [--chains 16,64] [--warmup 500] [--draws 500]
      [--nuts-steps 60] [--max-tree-depth 10] [--seeds 0,1,2,3,4]
      [--repeat 1] [--scaling [--scaling-kernel jdl-chees]] [--investigate]
  python benchmarks/hmc.py --report benchmarks/results/hmc-*.json

`--quick`: 4 chains, 100 + 100 steps, NUTS 30 + 30 with tree depth <= 6,
anchor skipped unless `--only` names it (smoke run, < 2 min). Prints the runs,
a markdown table of medians and the target ratios, and writes JSON to
benchmarks/results/hmc-<time>.json (gitignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

# A quiet TensorFlow start, shared with the examples; before TF is imported.
# TF32 stays at TensorFlow's default: the benchmarks time what users get.
sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                             "..", "examples"))
import _common  # noqa: E402

_common.quiet_start(tf32=True)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import jdlayers as jdl  # noqa: E402
import _provenance  # noqa: E402  (benchmarks/ is sys.path[0])
import _hmc_baselines as baselines  # noqa: E402
import _hmc_investigate  # noqa: E402
import _hmc_models as models  # noqa: E402
import _hmc_report as report  # noqa: E402
from _hmc_models import LEAPFROGS, MAX_DEPTH, TARGET_ACCEPT  # noqa: E402

# Every row builds its own tf.function: TF's retracing warnings are noise here.
tf.get_logger().setLevel("ERROR")

HERE = os.path.dirname(os.path.abspath(__file__))
ROWS = ("jdl-chees", "jdl-snaper", "jdl-hmc", "jdl-hmc-windowed", "jdl-nuts",
        "hand-tfp", "anchor", "numpyro-hmc", "numpyro-hmc-mass",
        "jdl-hmc-nojitter")
OPTIONAL = ("numpyro-hmc", "numpyro-hmc-mass", "jdl-hmc-nojitter")
SCALING_CHAINS = (8, 16, 32, 64, 128)


# ------------------------------------------------------------ jdlayers ----
def _sampler(cfg, post, kernel, adaptation, seed, warmup, draws, **kwargs):
  return jdl.mcmc.Sampler(
      post, num_chains=cfg["chains"], num_results=draws,
      num_burnin_steps=warmup, kernel=kernel, adaptation=adaptation,
      seed=seed, num_leapfrog_steps=LEAPFROGS,
      max_tree_depth=cfg["max_depth"], target_accept_prob=TARGET_ACCEPT,
      step_size=models.init_step_size(cfg["model"]), **kwargs)


def run_jdl(cfg, kernel, adaptation="auto", **kwargs):
  m = cfg["model"]
  warmup, draws = cfg["warmup"], cfg["draws"]
  if kernel == "nuts":
    warmup = draws = cfg["nuts_steps"]
  model = m.jdl_model()
  sampler = _sampler(cfg, model.posterior(m.x, m.y), kernel, adaptation,
                     cfg["seed"], warmup, draws, **kwargs)
  sampler.run(1, progress=False)     # trace + XLA compile + one step
  first = sampler.wall_time
  sampler.run(progress=False)
  result = sampler.result()
  wall = sampler.wall_time           # as `jdl.mcmc.sample`'s result.seconds
  steps = warmup + draws
  ms = (wall - first) / (steps - 1) * 1e3
  full = sampler.full_trace()
  leap = result.trace.num_leapfrog_steps
  ess, rhat = models.summarize(m.function(sampler.draws()))
  row = dict(wall_s=wall, compile_s=max(first - ms / 1e3, 0.), ms_per_step=ms,
             accept=result.acceptance_rate, step_size=result.step_size,
             mean_leapfrogs=float(leap.mean()), min_ess=ess, rhat_max=rhat,
             grads=float(full.num_leapfrog_steps.astype(np.float64).sum()),
             divergences=result.num_divergences, warmup=warmup, draws=draws,
             trajectory_length=result.trajectory_length, mode="xla",
             adaptation=sampler.adaptation,
             first_compile_seconds=sampler.compile_seconds)
  if kernel == "nuts":
    depth = np.log2(leap + 1.)
    row.update(mean_tree_depth=float(depth.mean()),
               max_depth=cfg["max_depth"],
               max_depth_hits=int(np.sum(leap >= 2 ** cfg["max_depth"] - 1)),
               trees=int(leap.size),
               warmup_mean_leapfrogs=float(
                   result.warmup_trace.num_leapfrog_steps.mean()))
  row.update(_second_call(cfg, model, sampler, kernel, adaptation, warmup,
                          draws, **kwargs))
  return row


def _second_call(cfg, model, first, kernel, adaptation, warmup, draws,
                 **kwargs):
  """A second Sampler on the same model object, data of the same shapes and
  another seed: its compile time and its setup + first one-step chunk (one
  step included: an upper bound on the overhead)."""
  m = cfg["model"]
  traces = first.loop.traces
  t0 = time.perf_counter()
  s = _sampler(cfg, model.posterior(m.x, m.y), kernel, adaptation,
               cfg["seed"] + 1000, warmup, draws, **kwargs)
  setup = time.perf_counter() - t0
  s.run(1, progress=False)
  total = time.perf_counter() - t0
  return dict(second_compile_s=s.compile_seconds, second_setup_s=setup,
              second_overhead_s=total,
              second_retraced=bool(s.loop is not first.loop
                                   or s.loop.traces > traces))


RUNNERS = {
    "jdl-chees": lambda cfg: run_jdl(cfg, "chees"),
    "jdl-snaper": lambda cfg: run_jdl(cfg, "snaper"),
    "jdl-hmc": lambda cfg: run_jdl(cfg, "hmc", "step_size"),
    "jdl-hmc-nojitter": lambda cfg: run_jdl(cfg, "hmc", "step_size",
                                            step_size_jitter=0.),
    "jdl-hmc-windowed": lambda cfg: run_jdl(cfg, "hmc", "windowed"),
    "jdl-nuts": lambda cfg: run_jdl(cfg, "nuts"),
    "hand-tfp": baselines.run_hand,
    "anchor": baselines.run_anchor,
    "numpyro-hmc": lambda cfg: baselines.run_numpyro(cfg, mass=False),
    "numpyro-hmc-mass": lambda cfg: baselines.run_numpyro(cfg, mass=True),
}


def _finish(row, name, cfg, seed, rep, total_s):
  row.setdefault("warmup", cfg["warmup"])
  row.setdefault("draws", cfg["draws"])
  steps = row["warmup"] + row["draws"]
  row.setdefault("grads", row["mean_leapfrogs"] * steps * cfg["chains"])
  run_s = row["wall_s"] - row["compile_s"]
  row.update(name=name, model=cfg["model"].name, chains=cfg["chains"],
             rep=rep, seed=seed, total_s=total_s,
             ess_per_s=row["min_ess"] / row["wall_s"],
             ess_per_s_run=row["min_ess"] / run_s if run_s > 0 else np.nan,
             ess_per_grad=row["min_ess"] / row["grads"])
  return row


def _line(row):
  extra = ""
  if "second_compile_s" in row:
    extra = (f", 2nd call compile {row['second_compile_s']:.2f} s "
             f"(overhead {row['second_overhead_s']:.2f} s, retraced "
             f"{row['second_retraced']})")
  if np.isfinite(row.get("trajectory_length", np.nan)):
    extra += f", trajectory {row['trajectory_length']:.3g}"
  return (f"  {row['name']} C={row['chains']} seed {row['seed']}: wall "
          f"{row['wall_s']:.1f} s (compile {row['compile_s']:.1f} s, "
          f"{row['ms_per_step']:.1f} ms/step, {row['mean_leapfrogs']:.0f} "
          f"leapfrogs), accept {row['accept']:.2f}, min ESS "
          f"{row['min_ess']:.1f}, ESS/s {row['ess_per_s']:.2f} (excl. compile "
          f"{row['ess_per_s_run']:.2f}), R-hat {row['rhat_max']:.3f}, "
          f"divergences {row['divergences']}, adaptation "
          f"{row.get('adaptation', '-')}{extra}")


# ----------------------------------------------------------------- main ----
def _ints(text):
  return [int(v) for v in str(text).split(",") if v.strip()]


def parse(argv):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--model", default="mlp", choices=sorted(models.MODELS))
  p.add_argument("--only", default=None,
                 help=f"comma-separated rows, of {', '.join(ROWS)}")
  p.add_argument("--quick", action="store_true",
                 help="4 chains, 100 + 100 steps, no anchor (smoke run)")
  p.add_argument("--numpyro", action="store_true",
                 help="add the NumPyro rows (creates its virtualenv)")
  p.add_argument("--chains", default=None,
                 help="chain counts, comma-separated (default 16)")
  p.add_argument("--warmup", type=int, default=None)
  p.add_argument("--draws", type=int, default=None)
  p.add_argument("--nuts-steps", type=int, default=None,
                 help="NUTS warm-up steps and draws (default 60 each)")
  p.add_argument("--max-tree-depth", type=int, default=None,
                 help=f"NUTS maximum tree depth (default {MAX_DEPTH})")
  p.add_argument("--repeat", type=int, default=1,
                 help="run the selected rows this many times per seed")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--seeds", default=None,
                 help="comma-separated seeds: run the rows once per seed")
  p.add_argument("--scaling", action="store_true",
                 help="ESS/s vs number of chains for one kernel on the MLP")
  p.add_argument("--scaling-kernel", default="jdl-chees", choices=ROWS[:5])
  p.add_argument("--investigate", action="store_true",
                 help="time the pieces of an HMC step instead")
  p.add_argument("--report", default=None, nargs="+", metavar="JSON",
                 help="print the table of earlier runs' JSON files instead")
  p.add_argument("--out", default=os.path.join(HERE, "results"))
  args = p.parse_args(argv)
  if args.only:
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    bad = [n for n in names if n not in ROWS]
    if bad:
      p.error(f"unknown rows {bad}; choose from {', '.join(ROWS)}")
  elif args.scaling:
    names = [args.scaling_kernel]
  else:
    names = [n for n in ROWS if n not in OPTIONAL]
    if args.numpyro:
      names += ["numpyro-hmc", "numpyro-hmc-mass"]
    if args.quick or args.model != "mlp":
      names.remove("anchor")
  args.names = names
  return args


def main(argv=None):
  args = parse(argv)
  if args.report:
    rows = []
    for path in args.report:
      with open(path, encoding="utf-8") as fh:
        rows += json.load(fh)["rows"]
    print(report.markdown(rows))
    return rows
  quick = args.quick
  if args.scaling:
    args.model = "mlp"
  chains = (_ints(args.chains) if args.chains else
            [4] if quick else list(SCALING_CHAINS) if args.scaling else [16])
  model = models.get(args.model)
  models.check_same_target(model)
  cfg = dict(model=model, chains=chains[0],
             warmup=args.warmup or (100 if quick else 500),
             draws=args.draws or (100 if quick else 500),
             nuts_steps=args.nuts_steps or (30 if quick else 60),
             max_depth=args.max_tree_depth or (6 if quick else MAX_DEPTH),
             repeat=args.repeat, investigate_steps=50 if quick else 200,
             grad_iters=200 if quick else 2000)
  seeds = _ints(args.seeds) if args.seeds else [args.seed]
  meta = dict(python=platform.python_version(), tf=tf.__version__,
              tfp=tfp.__version__, machine=platform.machine(),
              cpus=os.cpu_count(), argv=sys.argv[1:] if argv is None else argv,
              loadavg_at_start=os.getloadavg(), model=model.name,
              num_params=model.num_params, chain_counts=chains, seeds=seeds,
              rows=args.names, **_provenance.source_info(jdl),
              **{k: v for k, v in cfg.items() if k not in ("model", "chains")})
  header = (f"{model.desc} ({model.num_params} params); chains {chains}; "
            f"seeds {seeds}; {cfg['warmup']} warm-up + {cfg['draws']} draws "
            f"(NUTS {cfg['nuts_steps']} + {cfg['nuts_steps']}, depth <= "
            f"{cfg['max_depth']}); load average {os.getloadavg()[0]:.1f} on "
            f"{os.cpu_count()} CPUs")
  print(header, flush=True)
  print(f"jdlayers from {meta['jdlayers']} (git {meta.get('git_head', '?')[:8]}"
        f"{', uncommitted changes' if meta.get('jdlayers_dirty') else ''})",
        flush=True)
  os.makedirs(args.out, exist_ok=True)
  stamp = time.strftime("%Y%m%d-%H%M%S")

  if args.investigate:
    res = _hmc_investigate.investigate(cfg)
    _write(os.path.join(args.out, f"hmc-investigate-{stamp}.json"),
           dict(meta=meta, investigate=res))
    return res

  _warm_up_xla()
  rows = []
  path = os.path.join(args.out, f"hmc-{model.name}-{stamp}.json")
  for c in chains:
    for sd in seeds:
      for rep in range(1, args.repeat + 1):
        for name in args.names:
          run_cfg = dict(cfg, chains=c, seed=sd)
          print(f"running {name} C={c} seed {sd} #{rep} ...", flush=True)
          t0 = time.perf_counter()
          try:
            row = RUNNERS[name](run_cfg)
          except Exception as e:  # noqa: BLE001 - report, keep going
            print(f"  {name} FAILED: {type(e).__name__}: {e}", flush=True)
            continue
          if row is None:
            continue
          rows.append(_finish(row, name, run_cfg, sd, rep,
                              time.perf_counter() - t0))
          print(_line(rows[-1]), flush=True)
          _write(path, dict(meta=meta, rows=rows))  # partial results kept
  table = report.markdown(rows, header="**" + header + "**")
  print()
  print(table)
  _write(path, dict(meta=meta, rows=rows, table=table,
                    summary=report.summary(rows),
                    ratios=report.ratios(report.summary(rows))))
  print(f"wrote {path}")
  return rows


def _warm_up_xla():
  """Compiles one small XLA loop so that the process's one-time XLA/LLVM
  start-up cost is not charged to whichever row runs first."""
  a = tf.random.stateless_normal([16, 50, 50], [0, 0])
  f = tf.function(lambda a: tf.while_loop(
      lambda i, m: i < 3, lambda i, m: (i + 1, tf.tanh(m @ a)), (0, a))[1],
                  jit_compile=True)
  f(a).numpy()


def _write(path, obj):
  with open(path + ".tmp", "w") as fh:
    json.dump(obj, fh, indent=1, default=float)
  os.replace(path + ".tmp", path)


if __name__ == "__main__":
  main()
