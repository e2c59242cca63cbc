"""MCMC convergence diagnostics: split R-hat, bulk/tail ESS and MCSE in numpy.

Follows Vehtari, Gelman, Simpson, Carpenter and Bürkner (2021),
"Rank-normalization, folding, and localization: An improved R-hat for
assessing convergence of MCMC", as implemented by Stan and ArviZ. Draws are
laid out `[num_draws, num_chains, *param_shape]` (the layout `tfp.mcmc`
returns), and every statistic is computed for all parameters at once.

Only numpy is needed: the inverse normal CDF is Wichura's AS241 and ranks are
computed with `np.argsort`, so neither scipy nor TensorFlow is imported.

Parameters whose draws contain NaN or inf, or are constant, get NaN for every
diagnostic rather than an error: a sampler that diverged on one parameter
should not hide the diagnostics of the others. Otherwise the results equal
ArviZ's to rounding, with three deliberate differences: ArviZ reports an ESS
of `num_draws * num_chains` for constant draws and ranks infinite draws; it
returns NaN R-hat for a single chain, which the split-chain definition
handles (each half is a chain); and its tail quantile can round one ulp below
an order statistic or a run of tied draws (see `_tail_ess`).

#### Example

```python
import numpy as np
from jdlayers import diagnostics
draws = np.random.default_rng(0).normal(size=[1000, 4, 3])
diagnostics.split_rhat(draws)      # shape [3], all close to 1
diagnostics.bulk_ess(draws)        # shape [3], close to 4000
print(diagnostics.format_table(diagnostics.summarize(draws, "w")))
```
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import Callable, Sequence

import numpy as np

__all__ = [
    "split_rhat", "ess", "bulk_ess", "tail_ess", "mcse_mean", "summarize",
    "format_table",
]

_ESS_METHODS = ("bulk", "tail", "basic")
_TAIL_PROBS = (0.05, 0.95)
# Parameters are processed in blocks of about this many draws (2 MiB of
# float64): each block is fully vectorised, its sort and FFT temporaries stay
# in cache, and memory stays flat for [1000, 16, 5000] inputs. Measured
# fastest among 2^16..2^22.
_BLOCK_ELEMENTS = 1 << 18


@dataclasses.dataclass(frozen=True)
class _Draws:
  """Validated draws, reshaped to `[num_draws, num_chains, num_params]`."""
  x: np.ndarray
  param_shape: tuple[int, ...]
  # [num_params] bool: True where a parameter has non-finite or constant
  # draws; every diagnostic is NaN there.
  invalid: np.ndarray


def split_rhat(draws, rank_normalize: bool = True) -> np.ndarray:
  """Potential scale reduction factor R-hat of split chains.

  With `rank_normalize=True` this is the R-hat of Vehtari et al. (2021): the
  maximum of the bulk R-hat (split chains, rank-normalised) and the tail R-hat
  (split chains folded about their median, then rank-normalised), as
  `arviz.rhat(method="rank")` and Stan's `rhat`. It is robust to heavy tails
  and also detects chains that differ only in scale. With
  `rank_normalize=False` it is the classic split R-hat of Gelman et al.
  (BDA3) on the raw draws, as `arviz.rhat(method="split")`.

  Each chain is split into halves (the middle draw of an odd-length chain is
  dropped), so a single chain is accepted.

  Args:
    draws: Array-like of shape `[num_draws, num_chains, *param_shape]` with
      `num_draws >= 4`.
    rank_normalize: Whether to use the rank-normalised (bulk and tail) R-hat
      instead of the classic split R-hat.

  Returns:
    A float64 array of shape `param_shape`. Values near 1 (below 1.01)
    indicate convergence; NaN for parameters with non-finite or constant
    draws.

  Raises:
    ValueError: If `draws` has fewer than 2 dimensions, fewer than 4 draws or
      no chains.

  #### Example

  ```python
  rng = np.random.default_rng(0)
  draws = rng.normal(size=[1000, 4, 2])
  split_rhat(draws)            # ~[1.0, 1.0]
  draws[:, 0] += 3.0           # one chain stuck elsewhere
  split_rhat(draws)            # >> 1.1
  ```
  """
  d = _prepare(draws)
  fn = _rank_rhat if rank_normalize else _classic_rhat
  return _apply(fn, d)


def ess(draws, method: str = "bulk") -> np.ndarray:
  """Effective sample size of split chains.

  Autocorrelations are estimated with FFTs and truncated with Geyer's initial
  monotone sequence, combining chains as in Stan (`arviz.ess` internals).

  Args:
    draws: Array-like of shape `[num_draws, num_chains, *param_shape]` with
      `num_draws >= 4`.
    method: One of
      - `"bulk"`: ESS of the rank-normalised split chains; measures how well
        the centre of the distribution is explored (`arviz.ess(method="bulk")`).
      - `"tail"`: minimum of the ESS of the indicator chains `draws <= q05`
        and `draws <= q95` (`arviz.ess(method="tail")`).
      - `"basic"`: ESS of the raw split chains; the ESS of the mean, valid
        when the mean and variance are finite (`arviz.ess(method="mean")`).

  Returns:
    A float64 array of shape `param_shape`, at most about
    `num_draws * num_chains * log10(num_draws * num_chains)` (antithetic
    chains can exceed the number of draws). NaN for parameters with
    non-finite or constant draws.

  Raises:
    ValueError: If `method` is unknown, or `draws` has fewer than 2
      dimensions, fewer than 4 draws or no chains.

  #### Example

  ```python
  draws = np.random.default_rng(0).normal(size=[1000, 4])
  ess(draws, "bulk")    # ~4000
  ess(draws, "tail")    # ~4000
  ```
  """
  if method not in _ESS_METHODS:
    raise ValueError(
        f"Unknown ESS method {method!r}; expected one of {_ESS_METHODS}.")
  d = _prepare(draws)
  fn = {"bulk": _bulk_ess, "tail": _tail_ess, "basic": _basic_ess}[method]
  return _apply(fn, d)


def bulk_ess(draws) -> np.ndarray:
  """Bulk effective sample size, `ess(draws, "bulk")`.

  Args:
    draws: Array-like of shape `[num_draws, num_chains, *param_shape]`.

  Returns:
    A float64 array of shape `param_shape`.

  Raises:
    ValueError: As `ess`.

  #### Example

  ```python
  bulk_ess(np.random.default_rng(0).normal(size=[1000, 4]))  # ~4000
  ```
  """
  return ess(draws, "bulk")


def tail_ess(draws) -> np.ndarray:
  """Tail effective sample size, `ess(draws, "tail")`.

  Args:
    draws: Array-like of shape `[num_draws, num_chains, *param_shape]`.

  Returns:
    A float64 array of shape `param_shape`.

  Raises:
    ValueError: As `ess`.

  #### Example

  ```python
  tail_ess(np.random.default_rng(0).normal(size=[1000, 4]))  # ~4000
  ```
  """
  return ess(draws, "tail")


def mcse_mean(draws) -> np.ndarray:
  """Monte Carlo standard error of the posterior mean.

  `sd / sqrt(ess(draws, "basic"))` with the sample standard deviation
  (`ddof=1`) over all draws of all chains, as `arviz.mcse(method="mean")`.

  Args:
    draws: Array-like of shape `[num_draws, num_chains, *param_shape]`.

  Returns:
    A float64 array of shape `param_shape`; NaN for parameters with
    non-finite or constant draws.

  Raises:
    ValueError: As `ess`.

  #### Example

  ```python
  mcse_mean(np.random.default_rng(0).normal(size=[1000, 4]))  # ~1/sqrt(4000)
  ```
  """
  d = _prepare(draws)

  def fn(y):
    sd = y.reshape(y.shape[0], -1).std(axis=-1, ddof=1)
    return sd / np.sqrt(_basic_ess(y))

  return _apply(fn, d)


def summarize(draws, name: str = "") -> list[dict]:
  """Posterior summary and convergence diagnostics per scalar parameter.

  Args:
    draws: Array-like of shape `[num_draws, num_chains, *param_shape]`.
    name: Parameter name; element `(i, j)` is reported as `f"{name}[i,j]"`,
      and a scalar parameter as `name`.

  Returns:
    A list with one dict per element of `param_shape` (row-major order), with
    keys `"name"`, `"mean"`, `"sd"` (`ddof=1`), `"q5"`, `"q95"`, `"rhat"`
    (rank-normalised split R-hat), `"ess_bulk"` and `"ess_tail"`; values are
    Python floats.

  Raises:
    ValueError: As `ess`.

  #### Example

  ```python
  draws = np.random.default_rng(0).normal(size=[1000, 4, 2])
  rows = summarize(draws, "bias")
  rows[1]["name"]           # 'bias[1]'
  print(format_table(rows))
  ```
  """
  d = _prepare(draws)
  n, c, p = d.x.shape
  # Moments and quantiles of the raw draws: a constant parameter still has a
  # mean, and NaN/inf propagate as numpy does.
  with np.errstate(invalid="ignore", over="ignore"):
    flat = d.x.reshape(n * c, p).astype(np.float64)
    mean = flat.mean(axis=0)
    sd = flat.std(axis=0, ddof=1)
    q5, q95 = np.quantile(flat, [0.05, 0.95], axis=0)
  columns = {
      "mean": mean,
      "sd": sd,
      "q5": q5,
      "q95": q95,
      "rhat": _apply(_rank_rhat, d).reshape(p),
      "ess_bulk": _apply(_bulk_ess, d).reshape(p),
      "ess_tail": _apply(_tail_ess, d).reshape(p),
  }
  rows = []
  for i, index in enumerate(itertools.product(*map(range, d.param_shape))):
    label = f"{name}[{','.join(map(str, index))}]" if index else name
    row = {"name": label}
    row.update({k: float(v[i]) for k, v in columns.items()})
    rows.append(row)
  return rows


def format_table(rows: list[dict], columns: Sequence[str] | None = None,
                 floatfmt: str = ".3g") -> str:
  """Formats dicts as a plain-text table with aligned columns.

  Numeric columns are right-aligned, others left-aligned; floats use
  `floatfmt`, integers and strings are printed as is, and a key missing
  from a row leaves its cell blank.

  Args:
    rows: The table rows, e.g. from `summarize`.
    columns: Keys to print, in order. Defaults to the keys of `rows[0]`.
    floatfmt: A format spec for floats, as in `format(value, floatfmt)`.

  Returns:
    The table as a string: a header row, a rule, then one line per row,
    without a trailing newline. An empty string if there are no rows and no
    `columns`.

  #### Example

  ```python
  print(format_table([{"name": "w", "rhat": 1.0012, "ess_bulk": 3980.5}]))
  # name  rhat  ess_bulk
  # ----  ----  --------
  # w        1  3.98e+03
  ```
  """
  if columns is None:
    if not rows:
      return ""
    columns = list(rows[0])
  columns = list(columns)
  cells = [[_format_cell(row.get(col), floatfmt) for col in columns]
           for row in rows]
  # Right-align a column when every value present in it is a number.
  numeric = [any(col in row for row in rows)
             and all(_is_number(row[col]) for row in rows if col in row)
             for col in columns]
  widths = [max([len(str(col))] + [len(r[j]) for r in cells])
            for j, col in enumerate(columns)]

  def join(values):
    parts = [v.rjust(w) if num else v.ljust(w)
             for v, w, num in zip(values, widths, numeric)]
    return "  ".join(parts).rstrip()

  lines = [join([str(col) for col in columns]),
           join(["-" * w for w in widths])]
  lines.extend(join(r) for r in cells)
  return "\n".join(lines)


def _is_number(value) -> bool:
  return (isinstance(value, (int, float, np.integer, np.floating))
          and not isinstance(value, (bool, np.bool_)))


def _format_cell(value, floatfmt: str) -> str:
  if value is None:
    return ""
  if isinstance(value, (bool, np.bool_, int, np.integer)):
    return str(value)
  if isinstance(value, (float, np.floating)):
    return format(float(value), floatfmt)
  return str(value)


# ----------------------------------------------------------------------------
# Input handling.


def _prepare(draws) -> _Draws:
  x = np.asarray(draws)
  if x.ndim < 2:
    raise ValueError(
        f"draws must have shape [num_draws, num_chains, ...] (at least 2 "
        f"dimensions); got shape {x.shape}. For a single chain use "
        f"draws[:, None].")
  if np.iscomplexobj(x):
    raise TypeError(f"draws must be real, got dtype {x.dtype}.")
  num_draws, num_chains = x.shape[:2]
  if num_draws < 4:
    raise ValueError(
        f"draws must have at least 4 draws along axis 0 of "
        f"[num_draws, num_chains, ...]; got shape {x.shape}.")
  if num_chains < 1:
    raise ValueError(
        f"draws must have at least 1 chain along axis 1 of "
        f"[num_draws, num_chains, ...]; got shape {x.shape}.")
  param_shape = tuple(x.shape[2:])
  if not np.issubdtype(x.dtype, np.floating):
    x = x.astype(np.float64)
  # Kept in the input's float dtype; blocks are cast to float64 in `_apply`,
  # which avoids a full float64 copy of large float32 inputs.
  x = x.reshape(num_draws, num_chains, -1)
  if x.shape[-1]:
    with np.errstate(invalid="ignore"):
      finite = np.isfinite(x).all(axis=(0, 1))
      constant = x.max(axis=(0, 1)) == x.min(axis=(0, 1))
    invalid = ~finite | constant
  else:
    invalid = np.zeros(0, bool)
  return _Draws(x=x, param_shape=param_shape, invalid=invalid)


def _apply(fn: Callable[[np.ndarray], np.ndarray], d: _Draws) -> np.ndarray:
  """Maps `fn: [p, c, n] float64 -> [p]` over parameter blocks of `d.x`."""
  n, c, p = d.x.shape
  block = max(1, _BLOCK_ELEMENTS // (n * c))
  out = np.empty(p, dtype=np.float64)
  # A non-constant finite stand-in for invalid parameters, so the kernels run
  # without warnings; their results are replaced by NaN below.
  placeholder = np.arange(c * n, dtype=np.float64).reshape(c, n)
  with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
    for start in range(0, p, block):
      sl = slice(start, start + block)
      # Parameter-major [p, c, n] puts each chain contiguous in memory, which
      # is what the per-chain sorts and FFTs want.
      y = np.ascontiguousarray(
          d.x[:, :, sl].transpose(2, 1, 0), dtype=np.float64)
      y[d.invalid[sl]] = placeholder
      out[sl] = fn(y)
  out[d.invalid] = np.nan
  return out.reshape(d.param_shape)


# ----------------------------------------------------------------------------
# Kernels: each maps draws [p, c, n] (parameter, chain, draw) to [p].


def _split_chains(y: np.ndarray) -> np.ndarray:
  # The middle draw of an odd-length chain is dropped, as in Stan and ArviZ.
  n = y.shape[-1]
  half = n // 2
  return np.concatenate([y[..., :half], y[..., n - half:]], axis=1)


def _rank_normalize(y: np.ndarray) -> np.ndarray:
  """Normal scores of the ranks pooled over all draws and chains.

  `z = Phi^-1((r - 3/8) / (S + 1/4))` with Blom's offset, where `r` are
  average ranks (ties share the mean of their positions) and `S` the total
  number of draws, as `scipy.stats.rankdata(method="average")` in ArviZ.
  """
  p, c, n = y.shape
  s = c * n
  flat = y.reshape(p, s)
  # Ties get their average rank below, so the sort need not be stable.
  order = np.argsort(flat, axis=-1)
  ordered = np.take_along_axis(flat, order, axis=-1)
  table = _score_table(s)
  equal = ordered[:, 1:] == ordered[:, :-1]
  index = np.broadcast_to(2 * np.arange(s), (p, s))
  if equal.any():
    # A run of ties spans sorted positions [first, last]; its average rank is
    # (first + last) / 2 + 1, i.e. 2r - 2 = first + last. Only tied draws are
    # visited (folding usually ties the two draws either side of the median).
    index = index.copy()
    tie_prev = np.zeros((p, s), bool)
    tie_prev[:, 1:] = equal
    tie_next = np.zeros((p, s), bool)
    tie_next[:, :-1] = equal
    # Row-major order, so runs are contiguous and never cross rows.
    row, col = np.nonzero(tie_prev | tie_next)
    starts = ~tie_prev[row, col]
    run = np.cumsum(starts) - 1
    index[row, col] = col[starts][run] + col[~tie_next[row, col]][run]
  sorted_z = table[index]
  z = np.empty_like(flat)
  np.put_along_axis(z, order, sorted_z, axis=-1)
  return z.reshape(p, c, n)


@functools.lru_cache(maxsize=8)
def _score_table(s: int) -> np.ndarray:
  """Normal scores of the average ranks r = 1, 1.5, ..., s, indexed by 2r - 2.

  Average ranks are multiples of 1/2, so one ndtri call of size 2s serves
  every parameter of every block, instead of one per draw.
  """
  table = _ndtri((np.arange(2 * s - 1) / 2.0 + 1.0 - 0.375) / (s + 0.25))
  table.flags.writeable = False
  return table


def _rhat(y: np.ndarray) -> np.ndarray:
  """Classic R-hat of the chains of `y` (no splitting), BDA3 eq. 11.4."""
  n = y.shape[-1]
  between = n * y.mean(axis=-1).var(axis=-1, ddof=1)
  within = y.var(axis=-1, ddof=1).mean(axis=-1)
  return np.sqrt((between / within + n - 1.0) / n)


def _classic_rhat(y: np.ndarray) -> np.ndarray:
  return _rhat(_split_chains(y))


def _rank_rhat(y: np.ndarray) -> np.ndarray:
  split = _split_chains(y)
  bulk = _rhat(_rank_normalize(split))
  p = split.shape[0]
  median = np.median(split.reshape(p, -1), axis=-1)
  tail = _rhat(_rank_normalize(np.abs(split - median[:, None, None])))
  # Python's max(bulk, tail) as in ArviZ: a NaN tail (folded draws constant,
  # e.g. symmetric two-point draws) keeps the bulk value.
  return np.where(tail > bulk, tail, bulk)


def _basic_ess(y: np.ndarray) -> np.ndarray:
  return _ess(_split_chains(y))


def _bulk_ess(y: np.ndarray) -> np.ndarray:
  return _ess(_rank_normalize(_split_chains(y)))


def _tail_ess(y: np.ndarray) -> np.ndarray:
  # R's type 7 quantiles of the unsplit draws, as Stan's posterior package.
  # ArviZ's `mquantiles` computes the same up to rounding, except where the
  # quantile falls on an order statistic ((S - 1) p an integer) or in a run
  # of ties: it can land one ulp below, dropping those draws from the
  # indicator; numpy's lerp is exact there.
  quantiles = np.quantile(y.reshape(y.shape[0], -1), _TAIL_PROBS, axis=-1)
  low, high = (_ess(_split_chains(y <= q[:, None, None])) for q in quantiles)
  return np.where(high < low, high, low)


def _next_fast_len(n: int) -> int:
  """Smallest 2^a 3^b 5^c >= n: FFT sizes pocketfft handles fastest."""
  best = 1 << max(0, (n - 1).bit_length())
  p5 = 1
  while p5 < best:
    p35 = p5
    while p35 < best:
      m = p35
      while m < n:
        m *= 2
      best = min(best, m)
      p35 *= 3
    p5 *= 5
  return best


def _mean_autocov(y: np.ndarray) -> np.ndarray:
  """Biased autocovariance at lags 0..n-1, averaged over chains: [p, n]."""
  n = y.shape[-1]
  # Zero-padding to >= 2n turns the FFT's circular correlation into the
  # linear one; averaging the power spectra over chains before the inverse
  # FFT (it is linear) saves one inverse transform per chain.
  m = _next_fast_len(2 * n)
  f = np.fft.rfft(y - y.mean(axis=-1, keepdims=True), n=m, axis=-1)
  power = (f.real ** 2 + f.imag ** 2).mean(axis=1)
  return np.fft.irfft(power, n=m, axis=-1)[:, :n] / n


def _ess(y: np.ndarray) -> np.ndarray:
  """ESS of chains `y` [p, c, n] with Geyer's initial monotone sequence.

  A vectorised transcription of Stan's `compute_effective_sample_size` /
  ArviZ's `_ess`: autocorrelations `rho_t` are summed in pairs
  `P_k = rho_2k + rho_2k+1` up to the first non-positive pair `k*` (initial
  positive sequence), the pairs before it are made non-increasing (initial
  monotone sequence), and `rho_2k*` is added when positive.
  """
  y = y.astype(np.float64, copy=False)
  p, c, n = y.shape
  total = n * c
  rows = np.arange(p)
  acov = _mean_autocov(y)
  mean_var = acov[:, 0] * n / (n - 1.0)
  var_plus = mean_var * (n - 1.0) / n
  if c > 1:
    var_plus = var_plus + y.mean(axis=-1).var(axis=-1, ddof=1)
  # Stan evaluates pairs k = 1, 2, ... while 2k - 1 < n - 3.
  kmax = max(0, (n - 3) // 2)
  rho = 1.0 - (mean_var[:, None] - acov[:, :2 * kmax + 2]) / var_plus[:, None]
  rho[:, 0] = 1.0
  pairs = rho[:, 0::2] + rho[:, 1::2]  # [p, kmax + 1]
  nonpositive = pairs <= 0.0
  kstar = np.where(nonpositive.any(axis=-1), nonpositive.argmax(axis=-1),
                   kmax)
  monotone = np.minimum.accumulate(pairs, axis=-1)
  head = np.concatenate([np.zeros((p, 1)), np.cumsum(monotone, axis=-1)],
                        axis=-1)
  even = rho[rows, 2 * kstar]
  # Stan keeps the failing pair when its sum is exactly 0 and otherwise adds
  # only a positive even term.
  even = np.where((even > 0.0) | (pairs[rows, kstar] >= 0.0), even, 0.0)
  tau = -1.0 + 2.0 * head[rows, kstar] + even
  tau = np.maximum(tau, 1.0 / np.log10(total))
  out = total / tau
  # Constant transformed chains (e.g. a tail indicator that is always 1 when
  # 5% of the draws tie at the maximum) count as independent, as in ArviZ.
  constant = y.max(axis=(1, 2)) == y.min(axis=(1, 2))
  return np.where(constant, float(total), out)


# ----------------------------------------------------------------------------
# Inverse normal CDF: Wichura (1988), Algorithm AS241 (PPND16), accurate to
# about 1e-16 relative; the same coefficients as CPython's
# `statistics.NormalDist.inv_cdf`, vectorised.

_AS241_A = (3.3871328727963666080e0, 1.3314166789178437745e2,
            1.9715909503065514427e3, 1.3731693765509461125e4,
            4.5921953931549871457e4, 6.7265770927008700853e4,
            3.3430575583588128105e4, 2.5090809287301226727e3)
_AS241_B = (1.0, 4.2313330701600911252e1, 6.8718700749205790830e2,
            5.3941960214247511077e3, 2.1213794301586595867e4,
            3.9307895800092710610e4, 2.8729085735721942674e4,
            5.2264952788528545610e3)
_AS241_C = (1.42343711074968357734e0, 4.63033784615654529590e0,
            5.76949722146069140550e0, 3.64784832476320460504e0,
            1.27045825245236838258e0, 2.41780725177450611770e-1,
            2.27238449892691845833e-2, 7.74545014278341407640e-4)
_AS241_D = (1.0, 2.05319162663775882187e0, 1.67638483018380384940e0,
            6.89767334985100004550e-1, 1.48103976427480074590e-1,
            1.51986665636164571966e-2, 5.47593808499534494600e-4,
            1.05075007164441684324e-9)
_AS241_E = (6.65790464350110377720e0, 5.46378491116411436990e0,
            1.78482653991729133580e0, 2.96560571828504891230e-1,
            2.65321895265761230930e-2, 1.24266094738807843860e-3,
            2.71155556874348757815e-5, 2.01033439929228813265e-7)
_AS241_F = (1.0, 5.99832206555887937690e-1, 1.36929880922735805310e-1,
            1.48753612908506148525e-2, 7.86869131145613259100e-4,
            1.84631831751005468180e-5, 1.42151175831644588870e-7,
            2.04426310338993978564e-15)


def _polyval(coeffs: Sequence[float], r: np.ndarray) -> np.ndarray:
  # Coefficients in increasing degree; Horner from the top.
  out = np.full_like(r, coeffs[-1])
  for c in coeffs[-2::-1]:
    out = out * r + c
  return out


def _ndtri(p) -> np.ndarray:
  """Inverse of the standard normal CDF, elementwise.

  Args:
    p: Array-like of probabilities.

  Returns:
    A float64 array of the shape of `p`: `-inf` at 0, `inf` at 1, NaN
    outside [0, 1].

  #### Example

  ```python
  _ndtri(0.975)  # 1.959963984540054
  ```
  """
  p = np.asarray(p, dtype=np.float64)
  q = p - 0.5
  out = np.empty_like(p)
  with np.errstate(divide="ignore", invalid="ignore"):
    central = np.abs(q) <= 0.425
    qc = q[central]
    r = 0.180625 - qc * qc
    out[central] = qc * _polyval(_AS241_A, r) / _polyval(_AS241_B, r)
    tails = ~central
    qt = q[tails]
    r = np.sqrt(-np.log(np.where(qt <= 0.0, p[tails], 1.0 - p[tails])))
    near = r <= 5.0
    rn = r - 1.6
    rf = r - 5.0
    x = np.where(near,
                 _polyval(_AS241_C, rn) / _polyval(_AS241_D, rn),
                 _polyval(_AS241_E, rf) / _polyval(_AS241_F, rf))
    x = np.where(np.isinf(r), np.inf, x)
    out[tails] = np.where(qt < 0.0, -x, x)
  out[(p < 0.0) | (p > 1.0) | np.isnan(p)] = np.nan
  return out if out.ndim else out[()]
