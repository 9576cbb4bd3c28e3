"""Kaplan-Meier and Aalen-Johansen estimators, vectorised, with pointwise confidence intervals.

``kaplan_meier(time, event)``: survival S(t) = prod over event times t_i <= t of (1 - d_i / n_i),
Greenwood variance of log S, and the log(-log) ("exponential Greenwood") 95% interval.

``aalen_johansen(time, cause, of_interest)``: the cumulative incidence of one cause in the
presence of competing causes, F_j(t) = sum over t_i <= t of S(t_i-) d_ji / n_i with S the
all-cause Kaplan-Meier; variance by the delta method (Greenwood-type, Collett, Modelling Survival
Data in Medical Research, 3rd ed., p. 411; as in SAS PROC LIFETEST), interval on the
log(-log F) scale so it stays within 0-1. Ties between causes need no jittering: d_ji / n_i is
the exact Aalen-Johansen increment for tied times.

Both are validated against lifelines (KaplanMeierFitter, AalenJohansenFitter) in
tests/cohort/test_survival.py. ``cause`` codes: 0 censored, 1, 2, ... event causes.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

F = NDArray[np.float64]


@dataclass(frozen=True)
class Curve:
    """A step function estimated at the distinct observed times (events and censorings).

    ``time[0]`` is 0 (the estimate before any event); ``estimate`` holds from each time up to
    the next one. ``lower``/``upper``: pointwise confidence limits (NaN where undefined).
    """

    time: F
    estimate: F
    variance: F
    lower: F
    upper: F
    at_risk: F
    events: F  # events of the estimated kind at each time
    n: int

    def at(self, t: float | F) -> F:
        """The estimate (with limits) at time(s) t: (estimate, lower, upper)."""
        tt = np.atleast_1d(np.asarray(t, dtype=float))
        i = np.searchsorted(self.time, tt, side="right") - 1
        i = np.clip(i, 0, self.time.size - 1)
        return np.stack([self.estimate[i], self.lower[i], self.upper[i]])


def _z(alpha: float) -> float:
    return NormalDist().inv_cdf(1 - alpha / 2)


def _table(time: F, cause: NDArray[np.integer]) -> tuple[F, F, F, NDArray[np.intp]]:
    """Distinct times (with 0 first), number at risk, all-cause events, index of each subject."""
    t = np.asarray(time, dtype=float)
    if t.size and (np.isnan(t).any() or (t < 0).any()):
        raise ValueError("times must be non-negative numbers")
    uniq, inv = np.unique(t, return_inverse=True)
    if not uniq.size or uniq[0] > 0:
        uniq = np.concatenate([[0.0], uniq])
        inv = inv + 1
    removed = np.bincount(inv, minlength=uniq.size).astype(float)
    at_risk = t.size - np.concatenate([[0.0], np.cumsum(removed)[:-1]])
    d_all = np.bincount(inv, weights=(np.asarray(cause) > 0).astype(float), minlength=uniq.size)
    return uniq.astype(float), at_risk.astype(float), d_all.astype(float), inv


def kaplan_meier(time: F, event: NDArray[np.integer], alpha: float = 0.05) -> Curve:
    """Kaplan-Meier estimate of the probability of no event (any nonzero ``event``) by time t."""
    uniq, n, d, _ = _table(time, event)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(n > 0, 1 - d / n, 1.0)
        s = np.cumprod(factor)
        gw = np.cumsum(np.where((n > d) & (n > 0), d / (n * (n - d)), np.where(d > 0, np.inf, 0)))
        var = s**2 * gw
        z = _z(alpha)
        log_s = np.log(s)
        se = np.sqrt(gw) / np.abs(log_s)
        llog = np.log(-log_s)
        lo = np.exp(-np.exp(llog + z * se))
        hi = np.exp(-np.exp(llog - z * se))
    # S = 1 (no event yet) and S = 0 (everyone had one): the interval collapses on the estimate
    lo = np.where((s > 0) & (s < 1), lo, np.where(s >= 1, 1.0, np.where(s <= 0, 0.0, np.nan)))
    hi = np.where((s > 0) & (s < 1), hi, np.where(s >= 1, 1.0, np.where(s <= 0, 0.0, np.nan)))
    return Curve(uniq, s.astype(float), var, lo, hi, n, d, int(np.asarray(time).size))


def aalen_johansen(
    time: F, cause: NDArray[np.integer], of_interest: int, alpha: float = 0.05
) -> Curve:
    """Cumulative incidence of ``of_interest`` with every other nonzero cause competing."""
    c = np.asarray(cause)
    uniq, n, d, inv = _table(time, c)
    dj = np.bincount(inv, weights=(c == of_interest).astype(float), minlength=uniq.size).astype(
        float
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.cumprod(np.where(n > 0, 1 - d / n, 1.0))
        s_prev = np.concatenate([[1.0], s[:-1]])
        hazard = np.where(n > 0, dj / n, 0.0)
        f = np.cumsum(s_prev * hazard)
        # delta-method variance with prefix sums (O(m)):
        #   sum_i (F - F_i)^2 a_i + sum_i S_{i-1}^2 dj_i (n_i - dj_i) / n_i^3
        #   - 2 sum_i (F - F_i) S_{i-1} dj_i / n_i^2
        a = np.where(n > d, d / (n * (n - d)), np.where(d > 0, np.inf, 0.0))
        a0, a1, a2 = np.cumsum(a), np.cumsum(a * f), np.cumsum(a * f * f)
        second = np.cumsum(np.where(n > 0, s_prev**2 * dj * (n - dj) / n**3, 0.0))
        cc = np.where(n > 0, s_prev * dj / n**2, 0.0)
        c0, c1 = np.cumsum(cc), np.cumsum(cc * f)
        first = f * f * a0 - 2 * f * a1 + a2
        third = f * c0 - c1
        var = first + second - 2 * third
        z = _z(alpha)
        log_f = np.log(f)
        se = np.sqrt(var) / (f * np.abs(log_f))
        llog = np.log(-log_f)
        lo = np.exp(-np.exp(llog + z * se))
        hi = np.exp(-np.exp(llog - z * se))
    defined = (f > 0) & (f < 1) & np.isfinite(se)
    lo = np.where(defined, lo, np.where(f <= 0, 0.0, np.where(f >= 1, 1.0, np.nan)))
    hi = np.where(defined, hi, np.where(f <= 0, 0.0, np.where(f >= 1, 1.0, np.nan)))
    return Curve(uniq, f, var, lo, hi, n, dj, int(c.size))
