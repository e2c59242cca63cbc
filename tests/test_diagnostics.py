"""Tests for `jdlayers.diagnostics`: reference values, ArviZ parity, properties.

The statistical checks use fixed seeds and average over several parameters,
so their tolerances are several standard errors wide; each would fail for a
wrong autocorrelation sum, split, rank transform or R-hat formula.
"""

from __future__ import annotations

import statistics
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jdlayers import diagnostics as diag


def _ar1(rng: np.random.Generator, num_draws: int, num_chains: int,
         param_shape: tuple[int, ...], phi) -> np.ndarray:
  """Stationary AR(1) chains `[num_draws, num_chains, *param_shape]`."""
  noise = rng.normal(size=(num_draws, num_chains) + param_shape)
  x = np.empty_like(noise)
  # Start in the stationary distribution N(0, 1 / (1 - phi^2)).
  x[0] = noise[0] / np.sqrt(1.0 - np.square(phi))
  for t in range(1, num_draws):
    x[t] = phi * x[t - 1] + noise[t]
  return x


# ----------------------------------------------------------------------------
# Inverse normal CDF.


@pytest.mark.parametrize("p, expected", [
    (0.975, 1.959963984540054),
    (0.025, -1.959963984540054),
    (0.995, 2.5758293035489004),
    (0.9, 1.2815515655446004),
    (0.999, 3.090232306167813),
    (0.8413447460685429, 1.0),
    (1e-10, -6.361340902404056),
    (0.5, 0.0),
])
def test_ndtri_known_quantiles(p, expected):
  assert abs(diag._ndtri(p) - expected) <= 1e-12 * max(1.0, abs(expected))


def test_ndtri_matches_stdlib_across_all_regions():
  # Central (|p - 1/2| <= 0.425), near tail and far tail (r > 5) branches.
  p = np.concatenate([np.linspace(0.001, 0.999, 999),
                      np.logspace(-300, -3, 300),
                      1.0 - np.logspace(-15, -3, 50)])
  nd = statistics.NormalDist()
  expected = np.array([nd.inv_cdf(v) for v in p])
  np.testing.assert_allclose(diag._ndtri(p), expected, rtol=1e-13, atol=1e-13)
  assert diag._ndtri(0.0) == -np.inf and diag._ndtri(1.0) == np.inf
  assert np.isnan(diag._ndtri([-0.1, 1.1, np.nan])).all()


def test_rank_normalize_average_ranks_with_ties():
  rng = np.random.default_rng(0)
  y = rng.integers(0, 5, size=(3, 2, 7)).astype(float)  # [p, c, n], many ties
  flat = y.reshape(3, -1)
  s = flat.shape[-1]
  # Brute-force average rank: draws below, plus the middle of the tie group.
  less = (flat[:, None, :] < flat[:, :, None]).sum(-1)
  equal = (flat[:, None, :] == flat[:, :, None]).sum(-1)
  ranks = less + (equal + 1) / 2.0
  expected = diag._ndtri((ranks - 0.375) / (s + 0.25)).reshape(y.shape)
  np.testing.assert_allclose(diag._rank_normalize(y), expected, rtol=1e-15)


# ----------------------------------------------------------------------------
# Reference values.


def test_iid_normal_rhat_near_one_and_ess_near_draw_count():
  draws = np.random.default_rng(1).normal(size=(1000, 4, 8))
  for rank_normalize in (True, False):
    rhat = diag.split_rhat(draws, rank_normalize=rank_normalize)
    assert rhat.shape == (8,)
    assert np.all(np.abs(rhat - 1.0) < 0.01)
  # Per parameter the tail ESS (of 5% indicator chains) is the noisiest.
  for method, each in (("bulk", 0.25), ("tail", 0.35), ("basic", 0.25)):
    ess = diag.ess(draws, method)
    assert abs(ess.mean() / 4000 - 1.0) < 0.1, (method, ess)
    assert np.all(np.abs(ess / 4000 - 1.0) < each), (method, ess)
  mcse = diag.mcse_mean(draws)
  assert abs(np.mean(mcse * np.sqrt(4000)) - 1.0) < 0.1
  np.testing.assert_array_equal(diag.bulk_ess(draws), diag.ess(draws, "bulk"))
  np.testing.assert_array_equal(diag.tail_ess(draws), diag.ess(draws, "tail"))


def test_ar1_basic_ess_matches_theory():
  phi = 0.9
  draws = _ar1(np.random.default_rng(2), 20000, 4, (8,), phi)
  # ESS = N (1 - phi) / (1 + phi) for a stationary AR(1).
  expected = draws.shape[0] * draws.shape[1] * (1 - phi) / (1 + phi)
  for method in ("basic", "bulk"):
    ratio = diag.ess(draws, method) / expected
    assert abs(ratio.mean() - 1.0) < 0.1, (method, ratio)
    assert np.all(np.abs(ratio - 1.0) < 0.25), (method, ratio)
  mcse = diag.mcse_mean(draws)
  sd = 1 / np.sqrt(1 - phi**2)
  assert abs(np.mean(mcse / (sd / np.sqrt(expected))) - 1.0) < 0.1


def test_antithetic_chains_ess_exceeds_draw_count():
  draws = _ar1(np.random.default_rng(3), 4000, 4, (4,), -0.5)
  expected = 16000 * 1.5 / 0.5  # N (1 - phi) / (1 + phi) = 3 N
  ratio = diag.ess(draws, "basic") / expected
  assert abs(ratio.mean() - 1.0) < 0.1, ratio


def test_shifted_chain_detected():
  draws = np.random.default_rng(4).normal(size=(1000, 4, 3))
  draws[:, 0] += 3.0
  assert np.all(diag.split_rhat(draws) > 1.1)
  assert np.all(diag.split_rhat(draws, rank_normalize=False) > 1.1)


def test_scale_only_difference_needs_folding():
  # Same mean, one chain 3x wider: only the folded (tail) R-hat sees it.
  draws = np.random.default_rng(5).normal(size=(1000, 4, 3))
  draws[:, 0] *= 3.0
  assert np.all(diag.split_rhat(draws, rank_normalize=False) < 1.01)
  assert np.all(diag.split_rhat(draws) > 1.05)


def test_cauchy_rank_normalized_rhat_is_robust():
  rng = np.random.default_rng(6)
  iid = rng.standard_cauchy(size=(1000, 4, 20))
  assert np.all(np.abs(diag.split_rhat(iid) - 1.0) < 0.01)
  # One chain shifted by 5 scale units (the IQR is 2) has not mixed, but the
  # classic R-hat is blind to it: a few huge draws dominate both the within-
  # and the between-chain variance (the paper's motivation). Rank
  # normalisation sees the shift.
  shifted = rng.standard_cauchy(size=(1000, 4, 20))
  shifted[:, 0] += 5.0
  classic = diag.split_rhat(shifted, rank_normalize=False)
  assert np.median(classic) < 1.01
  assert np.all(diag.split_rhat(shifted) > 1.1)


def test_split_drops_middle_draw_of_odd_chains():
  draws = np.random.default_rng(7).normal(size=(11, 3, 2))
  even = np.delete(draws, 5, axis=0)
  # Tail ESS is left out: its quantiles are of all draws, unsplit.
  for fn in (diag.split_rhat, diag.bulk_ess,
             lambda x: diag.split_rhat(x, rank_normalize=False),
             lambda x: diag.ess(x, "basic")):
    np.testing.assert_allclose(fn(draws), fn(even), rtol=1e-12)


# ----------------------------------------------------------------------------
# Input handling.


@pytest.mark.parametrize("shape", [(), (10,)])
def test_rejects_fewer_than_two_dims(shape):
  layout = r"\[num_draws, num_chains, \.\.\.\]"
  with pytest.raises(ValueError, match=layout) as e:
    diag.split_rhat(np.zeros(shape))
  assert str(shape) in str(e.value)


def test_rejects_fewer_than_four_draws():
  with pytest.raises(ValueError, match="at least 4 draws"):
    diag.bulk_ess(np.zeros((3, 4)))
  with pytest.raises(ValueError, match="at least 1 chain"):
    diag.bulk_ess(np.zeros((10, 0)))


def test_rejects_unknown_method():
  with pytest.raises(ValueError, match="'median'"):
    diag.ess(np.zeros((10, 2)), "median")


def test_nonfinite_and_constant_params_give_nan_without_warnings():
  draws = np.random.default_rng(8).normal(size=(100, 4, 4))
  draws[17, 2, 0] = np.nan
  draws[3, 1, 1] = np.inf
  draws[:, :, 2] = 1.5
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    results = [diag.split_rhat(draws), diag.split_rhat(draws, False),
               diag.mcse_mean(draws)]
    results += [diag.ess(draws, m) for m in ("bulk", "tail", "basic")]
  for r in results:
    assert np.isnan(r[:3]).all() and np.isfinite(r[3]), r
  # The healthy parameter is unaffected by its neighbours.
  for r, clean in zip(results[:2], [diag.split_rhat(draws[..., 3:]),
                                    diag.split_rhat(draws[..., 3:], False)]):
    assert r[3] == clean[0]


def test_single_chain_lists_and_float32():
  draws = np.random.default_rng(9).normal(size=(200, 1)).astype(np.float32)
  rhat = diag.split_rhat(draws)
  assert rhat.shape == () and np.isfinite(rhat)
  assert diag.split_rhat(draws.tolist()) == rhat
  np.testing.assert_array_equal(diag.bulk_ess(draws.astype(np.float64)),
                                diag.bulk_ess(draws))


def test_tail_ess_with_ties_at_the_maximum():
  # 10% of draws tie at the maximum: the 95% indicator is constant and counts
  # as independent (ArviZ), so the tail ESS is the 5% indicator's.
  rng = np.random.default_rng(10)
  draws = rng.normal(size=(500, 4))
  draws[rng.uniform(size=draws.shape) < 0.1] = 10.0
  low_only = diag._ess(diag._split_chains(
      (draws <= np.quantile(draws, 0.05)).astype(float).T[None]))
  np.testing.assert_allclose(diag.tail_ess(draws), low_only[0], rtol=1e-12)


# ----------------------------------------------------------------------------
# Summary table.


def test_summarize_rows_match_functions():
  draws = np.random.default_rng(11).normal(size=(400, 4, 2, 3)) + 5.0
  rows = diag.summarize(draws, "w")
  assert len(rows) == 6
  assert [r["name"] for r in rows[:4]] == ["w[0,0]", "w[0,1]", "w[0,2]",
                                           "w[1,0]"]
  assert list(rows[0]) == ["name", "mean", "sd", "q5", "q95", "rhat",
                           "ess_bulk", "ess_tail"]
  flat = draws.reshape(1600, 6)
  np.testing.assert_allclose([r["mean"] for r in rows], flat.mean(0))
  np.testing.assert_allclose([r["sd"] for r in rows], flat.std(0, ddof=1))
  np.testing.assert_allclose([r["q95"] for r in rows],
                             np.quantile(flat, 0.95, axis=0))
  np.testing.assert_allclose([r["rhat"] for r in rows],
                             diag.split_rhat(draws).ravel())
  np.testing.assert_allclose([r["ess_tail"] for r in rows],
                             diag.tail_ess(draws).ravel())
  scalar = diag.summarize(draws[..., 0, 0], "b")
  assert len(scalar) == 1 and scalar[0]["name"] == "b"
  assert all(isinstance(v, float) for v in scalar[0].values() if v != "b")


def test_format_table_alignment():
  rows = [{"name": "w[0]", "rhat": 1.0012, "ess_bulk": 3980.5, "n": 7},
          {"name": "bias", "rhat": float("nan"), "ess_bulk": 12.0, "n": 12}]
  text = diag.format_table(rows)
  lines = text.split("\n")
  assert len(lines) == 4
  assert lines[0].split() == ["name", "rhat", "ess_bulk", "n"]
  assert set(lines[1].replace(" ", "")) == {"-"}
  assert lines[2].split() == ["w[0]", "1", "3.98e+03", "7"]
  assert lines[3].split() == ["bias", "nan", "12", "12"]
  # Columns line up: numbers right-aligned, names left-aligned.
  assert len({len(line) for line in lines}) == 1
  assert lines[3].startswith("bias") and lines[3].endswith("12")
  subset = diag.format_table(rows, columns=["rhat", "name"], floatfmt=".2f")
  assert subset.split("\n")[2].split() == ["1.00", "w[0]"]
  assert diag.format_table([]) == ""
  assert diag.format_table([], columns=["a"]).split("\n")[0] == "a"
  # A missing key leaves a blank cell.
  assert diag.format_table([{"a": 1.0}, {}]).split("\n")[3] == ""


# ----------------------------------------------------------------------------
# ArviZ parity (skipped where ArviZ is not installed, as in CI).


def test_matches_arviz():
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    az = pytest.importorskip("arviz")
  rng = np.random.default_rng(12)
  phi = rng.uniform(0.0, 0.95, size=(3, 2))
  # Totals with (S - 1) * 0.05 not an integer: at an integer ArviZ's tail
  # quantile can round one ulp below the order statistic (see `_tail_ess`).
  # An odd chain length checks that the middle draw is dropped alike.
  for num_draws, num_chains in ((1000, 4), (150, 3), (51, 2)):
    draws = _ar1(rng, num_draws, num_chains, (3, 2), phi) * 2.5 - 1.0
    data = az.convert_to_dataset(np.moveaxis(draws, 0, 1))  # (chain, draw)
    pairs = [
        (diag.split_rhat(draws), az.rhat(data)),
        (diag.split_rhat(draws, False), az.rhat(data, method="split")),
        (diag.ess(draws, "bulk"), az.ess(data, method="bulk")),
        (diag.ess(draws, "tail"), az.ess(data, method="tail")),
        (diag.ess(draws, "basic"), az.ess(data, method="mean")),
        (diag.mcse_mean(draws), az.mcse(data, method="mean")),
    ]
    for ours, theirs in pairs:
      np.testing.assert_allclose(ours, theirs["x"].values, rtol=1e-6)


# ----------------------------------------------------------------------------
# Properties.


def _all_stats(x) -> list[np.ndarray]:
  return [diag.split_rhat(x), diag.split_rhat(x, rank_normalize=False),
          diag.ess(x, "bulk"), diag.ess(x, "tail"), diag.ess(x, "basic")]


@settings(deadline=None, max_examples=10)
@given(param_shape=st.lists(st.integers(1, 3), max_size=3),
       num_draws=st.integers(4, 60), num_chains=st.integers(1, 4),
       seed=st.integers(0, 2**32 - 1), scale=st.floats(0.1, 10.0),
       shift=st.floats(-100.0, 100.0), log2_scale=st.integers(-3, 3),
       dyadic_shift=st.integers(-2**17, 2**17))
def test_shapes_and_invariances(param_shape, num_draws, num_chains, seed,
                                scale, shift, log2_scale, dyadic_shift):
  rng = np.random.default_rng(seed)
  phi = rng.uniform(-0.5, 0.9)
  # On a 2^-10 grid (ties allowed), so power-of-two scales and grid shifts
  # are exact in floating point.
  draws = np.round(_ar1(rng, num_draws, num_chains, tuple(param_shape), phi)
                   * 1024) / 1024
  base = _all_stats(draws)
  mcse = diag.mcse_mean(draws)
  for r in base + [mcse]:
    assert r.shape == tuple(param_shape)
    assert np.all(np.isfinite(r))

  permuted = _all_stats(draws[:, rng.permutation(num_chains)])
  exact = _all_stats(2.0**log2_scale * draws + dyadic_shift / 1024)
  for got_perm, got_exact, want in zip(permuted, exact, base):
    np.testing.assert_allclose(got_perm, want, rtol=1e-6)
    np.testing.assert_allclose(got_exact, want, rtol=1e-6)

  # A general a x + b rounds. The two draws either side of the median are
  # equally far from it, so after folding they tie or not depending on that
  # rounding (as in Stan and ArviZ), which moves the rank-normalised R-hat of
  # tiny samples; every other statistic is invariant to rounding.
  affine = _all_stats(scale * draws + shift)
  for got, want in zip(affine[1:], base[1:]):
    np.testing.assert_allclose(got, want, rtol=1e-6)
  np.testing.assert_allclose(diag.mcse_mean(scale * draws + shift),
                             scale * mcse, rtol=1e-6)
