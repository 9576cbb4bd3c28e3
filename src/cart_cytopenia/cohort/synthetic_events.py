"""The event table of a synthetic block (``synthetic.generate_block``, step 10): CRS, ICANS and
IEC-HS with their treatment, growth factors, TPO-receptor agonists, boosts, prophylaxis,
infections, transfusions and outcomes, each drawn from the block's random stream in a fixed
order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from cart_cytopenia.cohort.synthetic_mix import (
    DAYS,
    IA,
    B,
    F,
    _choice,
)


class _Events:
    """Accumulates event rows as column arrays."""

    def __init__(self, ids: NDArray[np.object_], alive_on: IA) -> None:
        self.ids = ids
        self.alive_on = alive_on  # events are only recorded up to the last day with data
        self.cols: dict[str, list[Any]] = {
            k: [] for k in ("idx", "type", "start_day", "end_day", "grade", "drug", "product")
        }

    def add(
        self,
        mask: B,
        kind: str,
        start: IA | F,
        end: IA | F | None = None,
        grade: IA | F | None = None,
        drug: str | NDArray[np.object_] | None = None,
        product: str | NDArray[np.object_] | None = None,
    ) -> None:
        idx = np.nonzero(mask)[0]
        if not idx.size:
            return

        def pick(x: Any, dtype: Any) -> NDArray[Any] | str | None:
            if x is None or isinstance(x, str):
                return x
            return np.asarray(x)[idx].astype(dtype)

        self.add_rows(
            idx,
            kind,
            np.asarray(start)[idx].astype(np.int64),
            pick(end, np.int64),  # type: ignore[arg-type]
            pick(grade, np.int64),  # type: ignore[arg-type]
            pick(drug, object),
            pick(product, object),
        )

    def add_rows(
        self,
        idx: IA,
        kind: str,
        start: IA | F,
        end: IA | None = None,
        grade: IA | None = None,
        drug: str | NDArray[Any] | None = None,
        product: str | NDArray[Any] | None = None,
    ) -> None:
        """Rows already aligned with ``idx`` (patient index of each row)."""
        k = idx.size

        def text(x: str | NDArray[Any] | None) -> NDArray[Any]:
            if x is None or isinstance(x, str):
                return np.full(k, x, dtype=object)
            return np.asarray(x, dtype=object)

        self.cols["idx"].append(idx)
        self.cols["type"].append(np.full(k, kind, dtype=object))
        self.cols["start_day"].append(np.asarray(start).astype(np.int64))
        self.cols["end_day"].append(
            np.full(k, -(10**9)) if end is None else np.asarray(end).astype(np.int64)
        )
        self.cols["grade"].append(
            np.full(k, -1) if grade is None else np.asarray(grade).astype(np.int64)
        )
        self.cols["drug"].append(text(drug))
        self.cols["product"].append(text(product))

    def frame(self) -> pl.DataFrame:
        if not self.cols["idx"]:
            return pl.DataFrame(
                schema={
                    "patient_id": pl.String,
                    "type": pl.String,
                    "start_day": pl.Int32,
                    "end_day": pl.Int32,
                    "grade": pl.Int8,
                    "drug": pl.String,
                    "product": pl.String,
                }
            )
        idx = np.concatenate(self.cols["idx"])
        start = np.concatenate(self.cols["start_day"])
        order = np.lexsort((start, idx))
        end = np.concatenate(self.cols["end_day"])[order]
        grade = np.concatenate(self.cols["grade"])[order]
        df = pl.DataFrame(
            {
                "patient_id": pl.Series(self.ids.tolist(), dtype=pl.String).gather(idx[order]),
                "type": np.concatenate(self.cols["type"])[order].tolist(),
                "start_day": pl.Series(start[order], dtype=pl.Int32),
                "end_day": pl.Series(end, dtype=pl.Int32),
                "grade": pl.Series(grade, dtype=pl.Int8),
                "drug": pl.Series(
                    np.concatenate(self.cols["drug"])[order].tolist(), dtype=pl.String
                ),
                "product": pl.Series(
                    np.concatenate(self.cols["product"])[order].tolist(), dtype=pl.String
                ),
            }
        )
        return df.with_columns(
            pl.when(pl.col("end_day") > -(10**8)).then(pl.col("end_day")).alias("end_day"),
            pl.when(pl.col("grade") >= 0).then(pl.col("grade")).alias("grade"),
        )

    def upto(self, mask: B, day: IA | F) -> B:
        """``mask`` where ``day`` is within the simulated days with data."""
        return mask & (np.asarray(day) <= self.alive_on) & (np.asarray(day) >= -10)

    def clip_end(self, day: IA | F) -> IA:
        return np.minimum(np.asarray(day).astype(np.int64), self.alive_on)


def _event_rows(
    rng: np.random.Generator,
    ids: NDArray[np.object_],
    n: int,
    *,
    end: IA,
    crs: tuple[IA, IA, IA],
    icans: tuple[IA, IA, IA],
    iechs: tuple[B, IA],
    gcsf: tuple[B, IA, IA, B, F, F],
    tpo: tuple[B, IA, IA],
    boost: tuple[B, IA, NDArray[Any]],
    transfusions: tuple[NDArray[np.int8], NDArray[np.int8]],
    outcomes: tuple[IA, IA, IA],
    infections: tuple[B, B, F, F],
    consolid: B,
) -> pl.DataFrame:
    """The event table of a block: CRS/ICANS/IEC-HS and their treatment, growth factors, TPO-RA
    and boosts, prophylaxis, infections, transfusions and outcomes (drawn in that order)."""
    ev = _Events(ids, end)
    _crs_icans_events(ev, rng, n, crs, icans, iechs)
    _supportive_events(ev, rng, n, gcsf, tpo, boost)
    _prophylaxis_events(ev, rng, n, infections)
    _infection_events(ev, rng, n, infections)
    _transfusion_events(ev, transfusions)
    _outcome_events(ev, outcomes, consolid)
    return ev.frame()


def _crs_icans_events(
    ev: _Events,
    rng: np.random.Generator,
    n: int,
    crs: tuple[IA, IA, IA],
    icans: tuple[IA, IA, IA],
    iechs: tuple[B, IA],
) -> None:
    """CRS, ICANS and IEC-HS, and their treatment (tocilizumab, dexamethasone, anakinra)."""
    crs_g, crs_s, crs_e = crs
    ev.add(ev.upto(crs_g > 0, crs_s), "crs", crs_s, ev.clip_end(crs_e), crs_g)
    ic_g, ic_s, ic_e = icans
    ev.add(ev.upto(ic_g > 0, ic_s), "icans", ic_s, ev.clip_end(ic_e), ic_g)
    ie, ie_day = iechs
    ev.add(
        ev.upto(ie, ie_day),
        "iec_hs",
        ie_day,
        ev.clip_end(ie_day + rng.integers(4, 15, n)),
        rng.integers(1, 4, n),
    )
    # CRS / ICANS treatment
    toci = (crs_g >= 2) | ((crs_g == 1) & (rng.random(n) < 0.25))
    toci_day = crs_s + rng.integers(0, 2, n)
    ev.add(
        ev.upto(toci, toci_day),
        "medication",
        toci_day,
        ev.clip_end(toci_day + rng.integers(0, 2, n)),
        drug="tocilizumab",
    )
    dex = (ic_g >= 2) | (crs_g >= 3)
    dex_day = np.where(ic_g >= 2, ic_s, crs_s + 1)
    ev.add(
        ev.upto(dex, dex_day),
        "medication",
        dex_day,
        ev.clip_end(dex_day + rng.integers(2, 8, n)),
        drug="dexamethasone",
    )
    ana = (ic_g >= 3) & (rng.random(n) < 0.35)
    ana_day = ic_s + rng.integers(1, 3, n)
    ev.add(
        ev.upto(ana, ana_day),
        "medication",
        ana_day,
        ev.clip_end(ana_day + rng.integers(3, 10, n)),
        drug="anakinra",
    )


def _supportive_events(
    ev: _Events,
    rng: np.random.Generator,
    n: int,
    gcsf: tuple[B, IA, IA, B, F, F],
    tpo: tuple[B, IA, IA],
    boost: tuple[B, IA, NDArray[Any]],
) -> None:
    """Growth factors (G-CSF, also for a biphasic drop), a TPO-receptor agonist, a boost."""
    # growth factors, TPO-RA, boost
    g, g_s, g_e, gdip, gd_s, gd_e = gcsf
    ev.add(ev.upto(g, g_s), "medication", g_s, ev.clip_end(np.maximum(g_e, g_s)), drug="filgrastim")
    gd_s = np.round(gd_s).astype(np.int64)
    gd_e = np.round(gd_e).astype(np.int64)
    ev.add(
        ev.upto(gdip & (gd_s > np.where(g, g_e, -1) + 1), gd_s),
        "medication",
        gd_s,
        ev.clip_end(gd_e),
        drug="filgrastim",
    )
    t, t_s, t_e = tpo
    t_drug = np.where(rng.random(n) < 0.7, "eltrombopag", "romiplostim").astype(object)
    ev.add(ev.upto(t, t_s), "medication", t_s, ev.clip_end(t_e), drug=t_drug)
    bo, bo_day, bo_src = boost
    ev.add(ev.upto(bo, bo_day), "stem_cell_boost", bo_day, bo_day, product=bo_src.astype(object))


def _prophylaxis_events(
    ev: _Events, rng: np.random.Generator, n: int, infections: tuple[B, B, F, F]
) -> None:
    """Antiviral, PJP, antibacterial and antifungal prophylaxis."""
    # prophylaxis
    zeros = np.zeros(n, np.int64)
    ev.add(
        ev.upto(np.ones(n, bool), zeros),
        "medication",
        zeros,
        None,
        drug=np.where(rng.random(n) < 0.6, "acyclovir", "valacyclovir").astype(object),
    )
    pjp_day = rng.integers(21, 35, n)
    # the review uses TMP-SMX and "pentamidine or atovaquone as acceptable alternatives if there
    # are concerns for persistent cytopenias": persistent (aplastic) courses mostly get those
    u = rng.random(n)
    pjp_drug = np.where(
        infections[0],
        np.where(u < 0.7, "pentamidine", "atovaquone"),
        np.where(u < 0.85, "trimethoprim-sulfamethoxazole", "atovaquone"),
    ).astype(object)
    ev.add(ev.upto(rng.random(n) < 0.9, pjp_day), "medication", pjp_day, None, drug=pjp_drug)
    aplastic, never, onset, recover = infections
    lev = ~never & (rng.random(n) < 0.6)
    ev.add(ev.upto(lev, onset), "medication", onset, ev.clip_end(recover), drug="levofloxacin")
    af_drug = np.where(aplastic & (rng.random(n) < 0.7), "posaconazole", "fluconazole").astype(
        object
    )
    ev.add(
        ev.upto(~never & (rng.random(n) < 0.5), onset),
        "medication",
        onset,
        ev.clip_end(recover + 3),
        drug=af_drug,
    )


def _infection_events(
    ev: _Events, rng: np.random.Generator, n: int, infections: tuple[B, B, F, F]
) -> None:
    """Bacterial / viral / fungal infections, more often during long neutropenia."""
    aplastic, _, onset, _ = infections
    # infections: bacterial / viral / fungal, more often during long neutropenia
    inf = rng.random(n) < np.where(aplastic, 0.6, 0.25)
    inf_day = np.where(
        rng.random(n) < 0.6, onset + rng.integers(0, 20, n), rng.integers(15, 200, n)
    )
    cat = np.array(["bacterial", "viral", "fungal"], dtype=object)[
        _choice(rng, [0.55, 0.35, 0.10], n)
    ]
    sev_code = 1 + _choice(rng, [0.3, 0.4, 0.22, 0.08], n)
    ev.add(
        ev.upto(inf, inf_day),
        "infection",
        inf_day,
        ev.clip_end(inf_day + rng.integers(3, 21, n)),
        sev_code,
        product=cat,
    )


def _transfusion_events(
    ev: _Events, transfusions: tuple[NDArray[np.int8], NDArray[np.int8]]
) -> None:
    # transfusions
    p_units, h_units = transfusions
    for units, prod in ((p_units, "platelets"), (h_units, "rbc")):
        pi, ci = np.nonzero(units)
        if pi.size:
            ev.add_rows(
                pi, "transfusion", DAYS[ci], DAYS[ci], units[pi, ci].astype(np.int64), product=prod
            )


def _outcome_events(ev: _Events, outcomes: tuple[IA, IA, IA], consolid: B) -> None:
    # outcomes
    rel, nxt, death = outcomes
    ev.add(rel < 10_000, "relapse", rel)
    ev.add((nxt < 10_000) & ~consolid, "next_therapy", nxt)
    ev.add((nxt < 10_000) & consolid, "next_therapy", nxt)
    ev.add((nxt < 10_000) & consolid, "hct", nxt, product="allogeneic")
    ev.add(death < 10_000, "death", death)
