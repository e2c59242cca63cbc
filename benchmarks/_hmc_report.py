"""Aggregates `benchmarks/hmc.py` runs over seeds into a markdown table.

One table row per (model, chains, sampler): the median and the min-max over
seeds of ESS/s (wall time including compilation, and excluding it), ESS per
gradient evaluation, compile time, the second call's compile time and
overhead (jdl rows), and the max R-hat. Then the targets of issue 13: the
best jdl kernel's median ESS/s against hand-written TFP HMC and jdl NUTS.

Example:
  print(markdown(rows))   # rows: the dicts `hmc.py` collects per run
"""

from __future__ import annotations

import math
from typing import Dict, List

import numpy as np

JDL_KERNELS = ("jdl-chees", "jdl-snaper", "jdl-hmc", "jdl-hmc-windowed",
               "jdl-nuts")
# (column title, row key, format, scale)
COLUMNS = (
    ("ESS/s (wall)", "ess_per_s", ".2f", 1.),
    ("ESS/s (excl. compile)", "ess_per_s_run", ".2f", 1.),
    ("ESS/1k grads", "ess_per_grad", ".3f", 1e3),
    ("compile s", "compile_s", ".1f", 1.),
    ("2nd call: compile s", "second_compile_s", ".2f", 1.),
    ("2nd call: setup+1-step chunk s", "second_overhead_s", ".2f", 1.),
    ("R-hat max", "rhat_max", ".3f", 1.),
    ("min ESS", "min_ess", ".0f", 1.),
    ("leapfrogs/step", "mean_leapfrogs", ".0f", 1.),
    ("ms/step", "ms_per_step", ".0f", 1.),
)


def groups(rows: List[dict]) -> Dict[tuple, List[dict]]:
  """Rows keyed by (model, chains, name), in first-seen order."""
  out: Dict[tuple, List[dict]] = {}
  for r in rows:
    out.setdefault((r["model"], r["chains"], r["name"]), []).append(r)
  return out


def _stat(rs, key, scale=1.):
  v = np.array([r.get(key, math.nan) for r in rs], float) * scale
  v = v[np.isfinite(v)]
  if not v.size:
    return None
  return float(np.median(v)), float(v.min()), float(v.max())


def _cell(stat, fmt):
  if stat is None:
    return "-"
  med, lo, hi = stat
  if len({format(med, fmt), format(lo, fmt), format(hi, fmt)}) == 1:
    return format(med, fmt)
  return f"{med:{fmt}} ({lo:{fmt}}-{hi:{fmt}})"


def summary(rows: List[dict]) -> List[dict]:
  """Per group: model, chains, name, seeds, steps and (median, min, max) of
  every column's key."""
  out = []
  for (model, chains, name), rs in groups(rows).items():
    s = dict(model=model, chains=chains, name=name, n=len(rs),
             seeds=[r["seed"] for r in rs],
             steps=f"{rs[0]['warmup']}+{rs[0]['draws']}")
    for _, key, _, scale in COLUMNS:
      s[key] = _stat(rs, key, scale)
    s["trajectory_length"] = _stat(rs, "trajectory_length")
    out.append(s)
  return out


def ratios(summ: List[dict]) -> List[dict]:
  """Per (model, chains): the best jdl kernel by median ESS/s (wall) and its
  ratio of medians to hand-tfp, jdl-nuts and anchor."""
  out = []
  for key in dict.fromkeys((s["model"], s["chains"]) for s in summ):
    here = {s["name"]: s for s in summ if (s["model"], s["chains"]) == key}
    jdl = [here[n] for n in JDL_KERNELS if n in here and here[n]["ess_per_s"]]
    if not jdl:
      continue
    best = max(jdl, key=lambda s: s["ess_per_s"][0])
    r = dict(model=key[0], chains=key[1], best=best["name"],
             best_ess_per_s=best["ess_per_s"][0])
    for ref in ("hand-tfp", "jdl-nuts", "anchor"):
      q = here.get(ref)
      if q is not None and q["ess_per_s"]:
        r[f"vs_{ref}"] = best["ess_per_s"][0] / q["ess_per_s"][0]
        r[f"vs_{ref}_run"] = (best["ess_per_s_run"][0]
                              / q["ess_per_s_run"][0])
    out.append(r)
  return out


def markdown(rows: List[dict], header: str = "") -> str:
  """The summary table and the target ratios, as markdown."""
  summ = summary(rows)
  cols = ["model", "chains", "sampler", "seeds", "warm-up+draws"] + [
      c[0] for c in COLUMNS]
  lines = [header, ""] if header else []
  lines += ["| " + " | ".join(cols) + " |",
            "|" + "|".join("---" for _ in cols) + "|"]
  for s in summ:
    cells = [s["model"], str(s["chains"]), s["name"], str(s["n"]), s["steps"]]
    cells += [_cell(s[key], fmt) for _, key, fmt, _ in COLUMNS]
    lines.append("| " + " | ".join(cells) + " |")
  lines += ["", "Cells: median (min-max) over seeds. ESS: min over the probe "
            "inputs of the bulk ESS of the predictive function; ESS/1k grads: "
            "per 1000 gradient evaluations (leapfrog steps summed over all "
            "chains and steps, warm-up included). 2nd call: a second Sampler "
            "on the same model object, data of the same shapes, another seed "
            "(jdl rows)."]
  rat = ratios(summ)
  if rat:
    lines += ["", "| model | chains | best jdl kernel | its ESS/s | vs "
              "hand-tfp | vs jdl-nuts | vs hand-tfp (excl. compile) | vs "
              "jdl-nuts (excl. compile) |", "|---|---|---|---|---|---|---|---|"]
    for r in rat:
      def f(k):
        return f"{r[k]:.2f}x" if k in r else "-"
      lines.append(
          f"| {r['model']} | {r['chains']} | {r['best']} | "
          f"{r['best_ess_per_s']:.2f} | {f('vs_hand-tfp')} | "
          f"{f('vs_jdl-nuts')} | {f('vs_hand-tfp_run')} | "
          f"{f('vs_jdl-nuts_run')} |")
    lines += ["", "Ratios of medians over seeds; targets (issue 13): >= 2x "
              "hand-tfp and >= 5x jdl-nuts on the MLP at 16 and 64 chains."]
  return "\n".join(lines)
