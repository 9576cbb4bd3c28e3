"""IEC-HS facts of ``Context``: the features of immune effector cell-associated HLH-like syndrome
(ferritin, fever and new cytopenia after CRS, supportive laboratory values and findings, marrow
haemophagocytosis) read against the CRS record, and ONE suspicion level (``iechs_level``) that
every item speaking of IEC-HS uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from cart_cytopenia.domain.analytes import resolve_analyte
from cart_cytopenia.domain.course import IECHS, Fever, Finding
from cart_cytopenia.grading import ferritin_trend
from cart_cytopenia.guidance.context_base import ContextBase, LabValue, fmt
from cart_cytopenia.rules import tables

IECHS_LEVELS = ("possible", "suspected", "high")


@dataclass(frozen=True)
class IechsSignals:
    """The IEC-HS picture, feature by feature (None: not measured), and ONE suspicion level.

    ``level`` is decided once (``Context.iechs``) and every item that speaks of IEC-HS uses it,
    so an output never says "possible" in one place and "high" in another.
    """

    crs_state: str  # "none" recorded, "active" (known ongoing), "resolved", "end-unknown"
    crs_recorded: bool
    ferritin: LabValue | None
    ferritin_high: bool
    ferritin_very_high: bool
    ferritin_rising: bool
    recurrent_fever: bool
    new_cytopenia: bool
    supportive: tuple[str, ...]
    haemophagocytosis: bool
    recorded_active: bool
    recorded_any: bool
    level: str | None  # None, "possible", "suspected", "high" (IECHS_LEVELS)
    onset_day: int | None = None  # earliest day of the current features (ferritin, fever, record)
    # the grading's ASTCT read-out (grading/iec_hs.py): its status raises ``level`` (never lowers
    # it) by rules/tables/iec_hs.toml [astct] guidance_level
    astct: str | None = None  # met, suspected, not met, not assessable
    astct_onset_day: int | None = None
    astct_detail: str = ""  # status, grade, carHLH and HScore as the rationale cites them

    @property
    def after_crs(self) -> bool:
        """CRS resolved, its end unknown, or none recorded (IEC-HS follows or outlasts CRS)."""
        return self.crs_state != "active"

    @property
    def ferritin_signal(self) -> bool:
        return self.ferritin_high or self.ferritin_rising

    @property
    def possible(self) -> bool:
        """Enough to ask for the IEC-HS laboratory work-up."""
        return self.level is not None

    @property
    def suspected(self) -> bool:
        return self.level in ("suspected", "high")

    @property
    def high(self) -> bool:
        return self.level == "high"

    def features(self) -> list[str]:
        out: list[str] = []
        if self.astct in ("met", "suspected"):
            day = f" (onset day {self.astct_onset_day})" if self.astct_onset_day is not None else ""
            out.append(f"ASTCT IEC-HS criteria {self.astct}{day}")
        if self.recorded_active:
            out.append("IEC-HS recorded")
        if self.ferritin is not None and (self.ferritin_high or self.ferritin_rising):
            what = "rising" if self.ferritin_rising else "high"
            out.append(f"ferritin {fmt(self.ferritin.value)} ng/mL {what}")
        if self.recurrent_fever:
            out.append("fever after CRS" if self.crs_recorded else "fever")
        if self.new_cytopenia:
            out.append("new cytopenia")
        if self.haemophagocytosis:
            out.append("haemophagocytosis in marrow (supports IEC-HS)")
        out.extend(self.supportive)
        return out

    def headline(self, n: int = 3) -> str:
        """The first ``n`` features, for a one-line summary (the rationale lists them all)."""
        feats = self.features()
        return ", ".join(feats[:n]) + (f" +{len(feats) - n}" if len(feats) > n else "")

    def level_text(self) -> str:
        return {"possible": "possible", "suspected": "suspected", "high": "high suspicion"}.get(
            self.level or "", "not suspected"
        )

    def as_inputs(self) -> dict[str, Any]:
        return {
            "iec_hs_level": self.level,
            "crs_state": self.crs_state,
            "crs_recorded": self.crs_recorded,
            "after_crs": self.after_crs,
            "ferritin_ng_ml": self.ferritin.value if self.ferritin else None,
            "ferritin_day": self.ferritin.day if self.ferritin else None,
            "ferritin_high": self.ferritin_high,
            "ferritin_rising": self.ferritin_rising,
            "recurrent_fever": self.recurrent_fever,
            "new_cytopenia": self.new_cytopenia,
            "haemophagocytosis": self.haemophagocytosis,
            "supportive": list(self.supportive),
            "iec_hs_recorded_active": self.recorded_active,
            "iec_hs_astct": self.astct,
            "iec_hs_astct_detail": self.astct_detail,
        }


def raised_level(level: str | None, to: str | None) -> str | None:
    """``level`` raised to ``to``, never lowered (None is below every level)."""
    order = (None, *IECHS_LEVELS)
    return max(level, to, key=order.index)


def iechs_level(
    crs_state: str,
    *,
    recorded_active: bool,
    ferritin_high: bool,
    ferritin_signal: bool,
    fever: bool,
    new_cytopenia: bool,
    haemophagocytosis: bool,
    n_supportive: int,
    min_supportive: int,
) -> str | None:
    """One suspicion level from the features (docs/guidance.md, IEC-HS).

    While CRS is known to be ongoing its own fever and ferritin are expected, so only marrow
    haemophagocytosis, or high ferritin with two supportive features (carHLH-like), raise it.
    """
    if recorded_active:
        return "high"
    if crs_state == "active":
        if ferritin_signal and haemophagocytosis:
            return "high"
        return "possible" if ferritin_high and n_supportive >= 2 else None
    core = ferritin_signal and (fever or new_cytopenia)
    if core and (haemophagocytosis or (ferritin_high and n_supportive >= min_supportive)):
        return "high"
    if core:
        return "suspected"
    if ferritin_signal or (fever and new_cytopenia) or haemophagocytosis:
        return "possible"
    return None


class IechsFacts(ContextBase):
    """IEC-HS facts: the CRS state the features are read against, each feature, and the one
    suspicion level (``iechs``)."""

    @property
    def crs_state(self) -> str:
        """'active' (known ongoing), 'end-unknown', 'resolved', or 'none' recorded."""
        inf = self.a.inflammation
        if inf.crs_active:
            return "active"
        if inf.crs_end_unknown:
            return "end-unknown"
        return "resolved" if inf.crs_resolved_day is not None else "none"

    @property
    def crs_end_unknown_since(self) -> int | None:
        return self.a.inflammation.crs_end_unknown_since_day

    @property
    def _iechs_reference_day(self) -> int | None:
        """The day after which features count as 'after CRS' (None: no CRS recorded)."""
        state = self.crs_state
        if state == "resolved":
            return self.crs_resolved_day
        if state == "end-unknown" and self.crs_end_unknown_since is not None:
            # when it ended is not known: every feature after its start counts (the 7-day
            # windows keep the CRS's own early fever out), so IEC-HS is never missed for it
            return self.crs_end_unknown_since
        if state == "active":
            return self.day
        return None

    def _iechs_ferritin(self, since: int | None) -> tuple[LabValue | None, bool, bool, bool]:
        """(last ferritin of the recent window, high, very high, rising); a value drawn before
        the CRS ended belongs to the CRS (one drawn on its end day is used). Rising by the one
        convention of the grading (``grading/ferritin_trend.py``, iec_hs.toml [ferritin])."""
        t = self.t
        window = t.whole("iechs_recent_days")
        ferritin = self.series("ferritin")
        last = ferritin[-1] if ferritin and self.day - ferritin[-1].day <= window else None
        if last is None or (since is not None and self.crs_state != "active" and last.day < since):
            return None, False, False, False
        return (
            last,
            last.value > t.num("iechs_ferritin_high"),
            last.value > t.num("iechs_ferritin_very_high"),
            self._ferritin_rising(last),
        )

    def _ferritin_rising(self, last: LabValue) -> bool:
        """``last`` rises against the earlier ferritin values (baseline included) by the
        grading's convention; an unknown trend is no rising signal here (the ASTCT read-out
        lists it as missing)."""
        rows = sorted(  # by day only (stable): the last row is ``last``, as in ``series``
            (
                (lab.day, lab.canonical_value())
                for lab in (*self.course.baseline_labs, *self.course.labs)
                if lab.day is not None
                and lab.day <= last.day
                and resolve_analyte(lab.analyte).code == "ferritin"
            ),
            key=lambda r: r[0],
        )
        # the grading's rule: after a recorded CRS end only values from that end day on count
        end = self.crs_resolved_day if self.crs_state == "resolved" else None
        since = end if end is not None and last.day >= end else ferritin_trend.NO_LIMIT
        n = len(rows)
        tr = ferritin_trend.trend(
            np.zeros(n, np.int64),
            np.array([d for d, _ in rows], np.int64),
            np.array([v for _, v in rows], np.float64),
            np.full(n, since, np.int64),
            tables.iec_hs(),
        )
        return bool(tr.state[-1] == ferritin_trend.RISING)

    def _iechs_new_cytopenia(self, ref: int | None) -> bool:
        if ref is not None and self.crs_state != "active":
            return any(
                lin.significant
                and lin.episode_start_day is not None
                and lin.episode_start_day > ref
                for lin in self.a.lineages
            )
        return ref is None and self.a.phenotype.second_dip_day is not None

    def _iechs_supportive(self) -> list[str]:
        t = self.t
        window = t.whole("iechs_recent_days")
        rs = self.settings.reference_ranges
        out: list[str] = []
        for code, uln in (("ast", rs.ast_uln_u_l), ("alt", rs.alt_uln_u_l)):
            v = self.latest(code, window)
            if v is not None and v.value > t.num("iechs_transaminase_uln_multiple") * uln:
                out.append(f"{code.upper()} {fmt(v.value)} U/L")
        tg = self.latest("triglycerides", window)
        if tg is not None and tg.value > t.num("iechs_triglycerides_above"):
            out.append(f"triglycerides {fmt(tg.value)} mg/dL")
        fib = self.latest("fibrinogen", window)
        if fib is not None and fib.value < t.num("iechs_fibrinogen_below"):
            out.append(f"fibrinogen {fmt(fib.value)} mg/dL")
        ldh = self.latest("ldh", window)
        if ldh is not None and ldh.value > rs.ldh_uln_u_l:
            out.append(f"LDH {fmt(ldh.value)} U/L")
        for kind, label in (
            (Finding.COAGULOPATHY, "coagulopathy"),
            (Finding.SPLENOMEGALY, "splenomegaly"),
            (Finding.ORGAN_DYSFUNCTION, "organ dysfunction"),
        ):
            if self.findings(kind, window):
                out.append(label)
        return out

    @cached_property
    def iechs(self) -> IechsSignals:
        """IEC-HS features evaluated whatever the CRS record says (Hines 2023: it can begin
        while CRS resolves or after it first improves), with one suspicion level."""
        t = self.t
        recorded = self.course.events_of(IECHS)
        recorded_active = any(e.active_on(self.day) for e in recorded)
        ref = self._iechs_reference_day
        last, high, very_high, rising = self._iechs_ferritin(ref)
        window = t.whole("iechs_recent_days")
        fever_after = [
            f
            for f in self.course.events_of(Fever)
            if f.day is not None
            and f.day > (ref if ref is not None else 0)
            and self.day - f.day <= window
            and f.max_temp_c >= t.num("fever_c")
        ]
        new_cytopenia = self._iechs_new_cytopenia(ref)
        supportive = self._iechs_supportive()
        hlh = any(m.haemophagocytosis for m in self.marrows if (m.day or 0) >= 0)
        onsets = [e.start for e in recorded if e.active_on(self.day)]
        onsets += [f.day for f in fever_after if f.day is not None]
        if last is not None and (high or rising):
            onsets.append(last.day)
        level = iechs_level(
            self.crs_state,
            recorded_active=recorded_active,
            ferritin_high=high,
            ferritin_signal=high or rising,
            fever=bool(fever_after),
            new_cytopenia=new_cytopenia,
            haemophagocytosis=hlh,
            n_supportive=len(supportive),
            min_supportive=t.whole("iechs_min_supportive"),
        )
        astct = self.a.iechs
        level = raised_level(level, tables.iec_hs().guidance_level.get(astct.status))
        if astct.status == "met" and astct.onset_day is not None:
            onsets.append(astct.onset_day)  # (a "suspected" onset may be an old single value)
        return IechsSignals(
            crs_state=self.crs_state,
            crs_recorded=self.crs_recorded,
            ferritin=last,
            ferritin_high=high,
            ferritin_very_high=very_high,
            ferritin_rising=rising,
            recurrent_fever=bool(fever_after),
            new_cytopenia=new_cytopenia,
            supportive=tuple(supportive),
            haemophagocytosis=hlh,
            recorded_active=recorded_active,
            recorded_any=bool(recorded),
            level=level,
            onset_day=min(onsets) if onsets else None,
            astct=astct.status,
            astct_onset_day=astct.onset_day,
            astct_detail=astct.summary,
        )

    def describe_crs(self) -> str:
        """The CRS record as the IEC-HS and G-CSF items name it."""
        state = self.crs_state
        if state == "resolved":
            return f"CRS resolved on day {self.crs_resolved_day}"
        if state == "end-unknown":
            return (
                f"CRS from day {self.crs_end_unknown_since} has no end day (end unknown, "
                "read as not ongoing after "
                f"{self.timing.crs_open_read_as_ongoing_days} days)"
            )
        if state == "active":
            return f"CRS ongoing since day {self.active_crs_start}"
        return "no CRS recorded"
