"""Kaplan-Meier and Aalen-Johansen (cohort/survival.py) against lifelines, the reference."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from lifelines import AalenJohansenFitter, KaplanMeierFitter

from cart_cytopenia.cohort.survival import aalen_johansen, kaplan_meier


def _competing(n: int, seed: int, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t1 = rng.exponential(20, n)  # recovery
    t2 = rng.exponential(60, n)  # relapse
    t3 = rng.exponential(150, n)  # death
    c = rng.uniform(5, 120, n)  # censoring
    t = np.minimum.reduce([t1, t2, t3, c])
    cause = np.select([t == t1, t == t2, t == t3], [1, 2, 3], 0)
    if ties:
        t = np.ceil(t)  # whole days, as the cohort data are
    return t, cause


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kaplan_meier_matches_lifelines(seed: int) -> None:
    t, cause = _competing(400, seed, ties=True)
    event = (cause > 0).astype(int)
    ours = kaplan_meier(t, event)
    ref = KaplanMeierFitter().fit(t, event)
    times = ref.survival_function_.index.to_numpy()
    est, lo, hi = ours.at(times)
    np.testing.assert_allclose(est, ref.survival_function_.iloc[:, 0].to_numpy(), rtol=1e-12)
    ci = ref.confidence_interval_.to_numpy()
    ok = ~np.isnan(ci).any(axis=1) & (est < 1)
    np.testing.assert_allclose(lo[ok], ci[ok, 0], rtol=1e-9)
    np.testing.assert_allclose(hi[ok], ci[ok, 1], rtol=1e-9)
    assert ours.at_risk[0] == 400


@pytest.mark.parametrize("cause_of_interest", [1, 2, 3])
def test_aalen_johansen_matches_lifelines_without_ties(cause_of_interest: int) -> None:
    t, cause = _competing(300, 7, ties=False)
    ours = aalen_johansen(t, cause, cause_of_interest)
    ref = AalenJohansenFitter(calculate_variance=True).fit(
        t, cause, event_of_interest=cause_of_interest
    )
    times = ref.cumulative_density_.index.to_numpy()
    est, lo, hi = ours.at(times)
    np.testing.assert_allclose(est, ref.cumulative_density_.iloc[:, 0].to_numpy(), atol=1e-12)
    var_ref = ref.variance_.to_numpy()
    i = np.searchsorted(ours.time, times, side="right") - 1
    ok = np.isfinite(var_ref) & (est > 0)
    np.testing.assert_allclose(ours.variance[i][ok], var_ref[ok], rtol=1e-8, atol=1e-15)
    ci = ref.confidence_interval_.to_numpy()  # lifelines' columns: the two limits
    lo_ref, hi_ref = ci.min(axis=1), ci.max(axis=1)
    ok &= np.isfinite(lo_ref) & np.isfinite(hi_ref)
    np.testing.assert_allclose(lo[ok], lo_ref[ok], rtol=1e-8)
    np.testing.assert_allclose(hi[ok], hi_ref[ok], rtol=1e-8)


def test_aalen_johansen_with_tied_days_equals_lifelines_jittered() -> None:
    """Whole-day event times tie across causes: lifelines jitters the event times apart, which
    leaves the cumulative incidence between days unchanged; ours needs no jitter. (Censorings
    are put at half days here: lifelines does not jitter them, so a censoring tied with an event
    would change sides.)"""
    t, cause = _competing(500, 11, ties=True)
    t = np.where(cause == 0, t - 0.5, t)
    ours = aalen_johansen(t, cause, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = AalenJohansenFitter(jitter_level=1e-6, seed=0).fit(t, cause, event_of_interest=1)
    days = np.arange(0.5, t.max(), 1.0)  # between the jittered event times
    cd = ref.cumulative_density_
    idx = np.searchsorted(cd.index.to_numpy(), days, side="right") - 1
    ref_at = cd.iloc[:, 0].to_numpy()[idx]
    np.testing.assert_allclose(ours.at(days)[0], ref_at, atol=1e-9)


def test_cumulative_incidences_and_survival_add_up() -> None:
    t, cause = _competing(300, 5, ties=True)
    km = kaplan_meier(t, (cause > 0).astype(int))
    total = sum(aalen_johansen(t, cause, k).estimate for k in (1, 2, 3))
    np.testing.assert_allclose(total + km.estimate, 1.0, atol=1e-12)


def test_naive_one_minus_km_overestimates_with_competing_risks() -> None:
    """Treating the competing events as censoring overstates the incidence (why AJ is used)."""
    t, cause = _competing(2000, 9, ties=False)
    aj = aalen_johansen(t, cause, 1)
    naive = 1 - kaplan_meier(t, (cause == 1).astype(int)).estimate
    km_at = np.interp(aj.time, aj.time, naive)
    assert (km_at[-1] - aj.estimate[-1]) > 0.05


def test_hand_computed_example() -> None:
    # times 1 (cause 1), 2 (cause 2), 3 (censored), 4 (cause 1): F1 = 1/4 then + S(3)*1/1
    t = np.array([1.0, 2.0, 3.0, 4.0])
    c = np.array([1, 2, 0, 1])
    aj = aalen_johansen(t, c, 1)
    est = aj.at(np.array([0.5, 1, 2, 3, 4]))[0]
    np.testing.assert_allclose(est, [0, 0.25, 0.25, 0.25, 0.25 + 0.5 * 1.0])
    with pytest.raises(ValueError, match="non-negative"):
        aalen_johansen(np.array([-1.0]), np.array([1]), 1)
