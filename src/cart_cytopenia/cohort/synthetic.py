"""Synthetic CAR-T cohorts: realistic, calibrated, deterministic, vectorised.

There is no open patient-level data after CAR-T, so the project makes its own. This module
simulates patients treated with the seven catalogue products for their approved diseases and
writes them in the project's long format (``patients``, ``labs``, ``events``; see
docs/data-formats.md), which ``cart-cytopenia grade`` and ``io.tables.read_cohort`` read.

How a patient is made (every step is vectorised over a block of patients; docs/cohort.md gives
the numbers):

1. product and disease from a real-world mix (``STRATA``): adults with LBCL, FL, MCL, CLL and
   MM, adults with B-ALL, and children / young adults with B-ALL treated with tisa-cel; age, sex,
   prior autologous / allogeneic HCT, stored stem cells, laboratory "centre" (which decides the
   units and analyte names used in the lab file);
2. two latent factors, marrow reserve and inflammation, drive the baseline (pre-lymphodepletion)
   platelets, ANC, haemoglobin, CRP and ferritin; the CAR-HEMATOTOX score is computed from those
   values with the project's own rule table, and the risk of each neutrophil recovery phenotype
   (quick, intermittent, aplastic) and of long, deep neutropenia rises with the score and with
   product / disease modifiers;
3. daily trajectories (piecewise linear in log scale) for ANC, platelets, haemoglobin and
   lymphocytes, with the lymphodepletion nadir, recovery, the second dip after day 21
   (intermittent), prolonged aplasia, G-CSF with response, TPO-receptor agonists, stem cell
   boosts and the count drop of a next therapy; CRS and ICANS grades per product, correlated with
   inflammation and severity, with CRP and ferritin courses;
4. a lab schedule as in practice (daily to about day 14, 2-3 times a week to day 30, weekly to
   day 100, monthly after, more often while cytopenic), with missed draws and repeat draws;
   platelet and red-cell transfusions triggered by the day's count, raising the following counts;
5. competing events: relapse / progression, next therapy, death (non-relapse deaths mostly in
   aplastic patients), loss to follow-up (return to the referring centre) and the data cut.

Everything is drawn from ``numpy.random.Generator`` streams seeded by ``(seed, block)``: the same
seed and size always give the same cohort. Patients are made in blocks of ``BLOCK`` so memory is
bounded whatever the size; ``iter_cohort`` yields the blocks, ``write_cohort`` streams them to
Parquet or CSV (atomically: a failed run leaves nothing behind) and
``synthetic_courses.generate_courses`` turns a few patients into full ``Course`` documents for
the app and FHIR demos.

One module per step: the mix and the centres (``synthetic_mix``), steps 1-5
(``synthetic_patients``), step 6 (``synthetic_trajectories``), steps 7-9 (``synthetic_labs``)
and the events (``synthetic_events``); ``generate_block`` here runs them in order.

The numbers the cohort is calibrated against (and the tolerances) are in
``cart_cytopenia.cohort.calibration``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from cart_cytopenia.cohort.synthetic_events import _event_rows
from cart_cytopenia.cohort.synthetic_iechs import (
    IecHsCourse,
    admitted_until,
    draw_iechs,
    panel_reported,
    panel_values,
    treatment_events,
    worsen_counts,
)
from cart_cytopenia.cohort.synthetic_labs import (
    Transfused,
    _lab_rows,
    lab_schedule,
    lab_values,
    reported,
    transfuse,
)
from cart_cytopenia.cohort.synthetic_mix import (
    APLASTIC,
    IA,
    INTERMITTENT,
    PHENOTYPES,
    PROFILES,
    QUICK,
    STRATA,
    LabProfile,
    Stratum,
)
from cart_cytopenia.cohort.synthetic_patients import (
    Baseline,
    CrsIcans,
    Gcsf,
    Neutropenia,
    Outcomes,
    Who,
    draw_baseline,
    draw_crs_icans,
    draw_gcsf,
    draw_neutropenia,
    draw_outcomes,
    draw_who,
)
from cart_cytopenia.cohort.synthetic_tatma import with_tatma
from cart_cytopenia.cohort.synthetic_trajectories import (
    AncCurve,
    PlateletCurve,
    anc_curve,
    haemoglobin_curve,
    platelet_curve,
)
from cart_cytopenia.domain.frames import (
    EVENT_SCHEMA,
    PATIENT_SCHEMA,
    CohortFrames,
    conform,
    normalise_labs,
)

__all__ = [
    "APLASTIC",
    "BLOCK",
    "INTERMITTENT",
    "PHENOTYPES",
    "PROFILES",
    "QUICK",
    "STRATA",
    "Block",
    "CohortFiles",
    "LabProfile",
    "Stratum",
    "block_frames",
    "generate_block",
    "generate_cohort",
    "iter_cohort",
    "write_cohort",
]


BLOCK = 5000  # patients per random stream / per generated block
GENERATOR_VERSION = "2"  # 2: the liver/coagulation panel and IEC-HS courses (issue 12)


@dataclass(frozen=True)
class Block:
    """One block of synthetic patients in the long format, plus what the generator intended."""

    patients: pl.DataFrame
    labs: pl.DataFrame
    events: pl.DataFrame
    truth: pl.DataFrame  # per patient: intended phenotype, latent factors (for tests and demos)


def _rng(seed: int, block: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(block), 0x5EED]))


def generate_block(
    seed: int, block: int, n: int, first_number: int, width: int, prefix: str = "SYN"
) -> Block:
    """Simulate ``n`` patients (numbered from ``first_number``) with the stream ``(seed, block)``:
    draw the patients, each lineage's trajectory, the labs as drawn in practice, then the events.
    Every step draws from the one stream in this order (the order is part of the cohort)."""
    rng = _rng(seed, block)
    ids = np.array([f"{prefix}{first_number + i:0{width}d}" for i in range(n)], dtype=object)
    # ---- 1-5. who, baseline and CAR-HEMATOTOX, neutropenia, outcomes, CRS/ICANS and G-CSF
    who = draw_who(rng, n)
    base = draw_baseline(rng, who)
    neu = draw_neutropenia(rng, who, base)
    out = draw_outcomes(rng, who, neu)
    crs = draw_crs_icans(rng, who, base, neu)
    g = draw_gcsf(rng, neu, out, crs)
    ih = draw_iechs(seed, block, crs)  # the IEC-HS courses (their own stream)
    # ---- 6. trajectories (daily curves on the whole grid), with the IEC-HS cytopenias
    anc = anc_curve(rng, who, base, neu, out, g)
    plt_c = platelet_curve(rng, base, neu, out, anc)
    hb_int = haemoglobin_curve(rng, base, neu, anc)
    anc_d, plt_d, hb_d = worsen_counts(ih, anc.anc, plt_c.plt_int, hb_int)
    # ---- 7-9. lab schedule, transfusions, lab rows (with the liver/coagulation panel)
    sched, base_day = lab_schedule(rng, who, crs, out, anc_d, plt_d, admitted_until(ih))
    tx = transfuse(rng, who, plt_d, hb_d, sched)
    curves = (anc_d, tx.plt_obs, tx.hb_obs)
    pi, dd, vals, is_base = lab_values(
        rng, seed, block, sched, base_day, curves, base, crs, anc.ldf
    )
    panel_values(vals, seed, block, pi, dd.astype(float), crs, ih)
    want, repeat = reported(rng, dd, pi, is_base, base)
    panel_reported(want, dd, pi, is_base, ih)
    labs = _lab_rows(pi, dd, vals, want, repeat, who.profile, ids, rng)
    # ---- 10. patient and event tables
    patients = _patient_table(rng, ids, who, out)
    events = _block_events(rng, ids, who, neu, out, crs, g, anc, plt_c, tx)
    events = _with_iechs_treatment(events, ids, ih, out.end, seed, block)
    # ---- 11. the TA-TMA work-up (its own random stream: every other value is unchanged)
    labs, events = with_tatma(seed, block, patients, labs, events)
    truth = _truth(ids, who, base, neu, out, g, plt_c).with_columns(_iechs_truth(ih, out.end))
    return Block(patients, labs, events, truth)


def _patient_table(
    rng: np.random.Generator, ids: NDArray[np.object_], who: Who, out: Outcomes
) -> pl.DataFrame:
    """The patient table, with calendar dates (as an EHR extract has them)."""
    n, infusion, ld_start, age, male = who.n, who.infusion, who.ld_start, who.age, who.male
    disease, status, product, profile = who.disease, who.status, who.product, who.profile
    prior_auto, prior_allo, stored_auto = who.prior_auto, who.prior_allo, who.stored_auto
    relapse_day, next_tx_day, last_fu, death_day = (
        out.relapse_day, out.next_tx_day, out.last_fu, out.death_day
    )  # fmt: skip

    def date_of(day: IA) -> NDArray[Any]:
        out = infusion + day.astype("timedelta64[D]")
        return np.where(day >= 10_000, np.datetime64("NaT"), out)

    prog = np.where(relapse_day < 10_000, relapse_day, 10_000)
    patients = pl.DataFrame(
        {
            "patient_id": ids.tolist(),
            "infusion_date": infusion.astype("datetime64[D]"),
            "ld_start_date": date_of(ld_start.astype(np.int64)).astype("datetime64[D]"),
            "progression_date": date_of(prog).astype("datetime64[D]"),
            "next_therapy_date": date_of(next_tx_day).astype("datetime64[D]"),
            "last_followup_date": date_of(last_fu).astype("datetime64[D]"),
            "death_date": date_of(death_day).astype("datetime64[D]"),
            "age_years": age,
            "sex": np.where(male, "male", "female").tolist(),
            "disease": disease.tolist(),
            "disease_status": status.tolist(),
            "product": product.tolist(),
            "lymphodepletion": np.where(rng.random(n) < 0.95, "flu-cy", "bendamustine").tolist(),
            "prior_auto_hct": prior_auto,
            "prior_allo_hct": prior_allo,
            "stored_autologous_cells": stored_auto,
            "lab_profile": np.array([p.name for p in PROFILES], dtype=object)[profile].tolist(),
        }
    )
    return patients


def _block_events(
    rng: np.random.Generator,
    ids: NDArray[np.object_],
    who: Who,
    neu: Neutropenia,
    out: Outcomes,
    crs: CrsIcans,
    g: Gcsf,
    a: AncCurve,
    plt_c: PlateletCurve,
    tx: Transfused,
) -> pl.DataFrame:
    """The block's event table from what was drawn (``synthetic_events``)."""
    n, prior_allo, stored_auto = who.n, who.prior_allo, who.stored_auto
    aplastic, never, onset = neu.aplastic, neu.never, neu.onset
    gdip, dip_start, dip_down, dip_hold, dip_up = (
        a.gdip,
        a.dip_start,
        a.dip_down,
        a.dip_hold,
        a.dip_up,
    )
    tpo, tpo_start, tpo_resp = plt_c.tpo, plt_c.tpo_start, plt_c.tpo_resp
    end, boosted, boost_day, consolid = out.end, out.boosted, out.boost_day, out.consolid
    relapse_day, next_tx_day, death_day = out.relapse_day, out.next_tx_day, out.death_day
    crs_grade, crs_start, crs_end = crs.crs_grade, crs.crs_start, crs.crs_end
    icans_grade, icans_start, icans_end = crs.icans_grade, crs.icans_start, crs.icans_end
    iechs, iechs_day = crs.iechs, crs.iechs_day
    gets_gcsf, g_start, g_end, recover_day = g.gets_gcsf, g.g_start, g.g_end, g.recover_day
    p_units, h_units = tx.p_units, tx.h_units
    events = _event_rows(
        rng,
        ids,
        n,
        end=end,
        crs=(crs_grade, crs_start, crs_end),
        icans=(icans_grade, icans_start, icans_end),
        iechs=(iechs, iechs_day),
        gcsf=(
            gets_gcsf,
            g_start,
            g_end,
            gdip,
            dip_start + dip_down - 2,
            dip_start + dip_down + dip_hold + dip_up,
        ),
        tpo=(
            tpo,
            tpo_start,
            np.where(
                tpo_resp, tpo_start + rng.integers(42, 120, n), tpo_start + rng.integers(28, 50, n)
            ),
        ),
        boost=(boosted, boost_day, np.where(prior_allo & ~stored_auto, "allogeneic", "autologous")),
        transfusions=(p_units, h_units),
        outcomes=(relapse_day, next_tx_day, death_day),
        infections=(aplastic, never, onset, recover_day),
        consolid=consolid,
    )
    return events


def _truth(
    ids: NDArray[np.object_],
    who: Who,
    base: Baseline,
    neu: Neutropenia,
    out: Outcomes,
    g: Gcsf,
    plt_c: PlateletCurve,
) -> pl.DataFrame:
    """What the generator intended, per patient (for tests and demos)."""
    phen, score, dur, z_r, z_i = neu.phen, base.score, g.dur, base.z_r, base.z_i
    boosted, tpo, paediatric = out.boosted, plt_c.tpo, who.paediatric
    truth = pl.DataFrame(
        {
            "patient_id": ids.tolist(),
            "phenotype": phen.tolist(),
            "hematotox_score": score.astype(np.int32),
            "severe_days_intended": dur.astype(np.int32),
            "marrow_factor": z_r,
            "inflammation_factor": z_i,
            "boosted": boosted,
            "tpo_ra": tpo,
            "paediatric": paediatric,
        }
    )
    return truth


def _with_iechs_treatment(
    events: pl.DataFrame, ids: NDArray[np.object_], ih: IecHsCourse, end: IA, seed: int, block: int
) -> pl.DataFrame:
    """The block's events with the IEC-HS treatment added (up to each patient's last day with
    data), in patient and day order."""
    parts = [events]
    for tr, start, stop in treatment_events(ih, seed, block):
        sel = tr.given & (start <= end)
        k = int(sel.sum())
        parts.append(
            pl.DataFrame(
                {
                    "patient_id": ids[sel].tolist(),
                    "type": ["medication"] * k,
                    "start_day": start[sel],
                    "end_day": np.minimum(stop, end)[sel],
                    "grade": [None] * k,
                    "drug": [tr.drug] * k,
                    "product": [None] * k,
                },
                schema=events.schema,
            )
        )
    return pl.concat(parts).sort("patient_id", "start_day", maintain_order=True)


def _iechs_truth(ih: IecHsCourse, end: IA) -> list[pl.Series]:
    """The truth's IEC-HS columns: generated yes/no, onset day, the marrow and what it showed."""
    marrow = (ih.marrow_day >= 0) & (ih.marrow_day <= end)

    def where(ok: NDArray[np.bool_], name: str, x: NDArray[Any], dtype: Any) -> pl.Series:
        return pl.Series(name, x, dtype=dtype).zip_with(
            pl.Series(ok), pl.Series([None] * ok.size, dtype=dtype)
        )

    return [
        pl.Series("iec_hs", ih.has),
        where(ih.has, "iec_hs_onset_day", ih.onset, pl.Int32),
        where(marrow, "iec_hs_marrow_day", ih.marrow_day, pl.Int32),
        where(marrow, "iec_hs_haemophagocytosis", ih.haemophagocytosis, pl.Boolean),
    ]


def _width(n: int) -> int:
    return max(6, len(str(n)))


def iter_cohort(n: int, seed: int, block: int = BLOCK) -> Iterator[Block]:
    """The cohort of ``n`` patients for ``seed``, block by block (bounded memory)."""
    if n < 1:
        raise ValueError("a cohort needs at least one patient")
    width = _width(n)
    for b, lo in enumerate(range(0, n, block)):
        yield generate_block(seed, b, min(block, n - lo), lo + 1, width)


def generate_cohort(n: int, seed: int) -> Block:
    """A whole cohort in memory (for tests and small demos; use ``write_cohort`` for large ones)."""
    blocks = list(iter_cohort(n, seed))
    return Block(
        pl.concat([b.patients for b in blocks]),
        pl.concat([b.labs for b in blocks]),
        pl.concat([b.events for b in blocks]),
        pl.concat([b.truth for b in blocks]),
    )


@dataclass(frozen=True)
class CohortFiles:
    directory: Path
    patients: Path
    labs: Path
    events: Path
    n_patients: int
    n_labs: int
    n_events: int


def _with_dates(block: Block, lab_dates: bool) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Labs and events with calendar dates instead of days (as an EHR extract has them)."""
    if not lab_dates:
        return block.labs, block.events
    inf = block.patients.select("patient_id", "infusion_date")
    labs = (
        block.labs.join(inf, on="patient_id", how="left", maintain_order="left")
        .with_columns((pl.col("infusion_date") + pl.duration(days=pl.col("day"))).alias("date"))
        .select("patient_id", "date", "analyte", "value", "unit")
    )
    events = (
        block.events.join(inf, on="patient_id", how="left", maintain_order="left")
        .with_columns(
            (pl.col("infusion_date") + pl.duration(days=pl.col("start_day"))).alias("start_date"),
            (pl.col("infusion_date") + pl.duration(days=pl.col("end_day"))).alias("end_date"),
        )
        .select("patient_id", "type", "start_date", "end_date", "grade", "drug", "product")
    )
    return labs, events


def write_cohort(
    out_dir: str | Path,
    n: int,
    seed: int,
    fmt: str = "parquet",
    lab_dates: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> CohortFiles:
    """Generate and write ``patients``, ``labs`` and ``events`` (.parquet or .csv) to ``out_dir``.

    Blocks are streamed to files in a temporary directory beside ``out_dir`` and moved into
    place only when all three are complete: an interrupted or failed run writes nothing.
    ``progress(done, total)`` is called after each block.
    """
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"unknown format '{fmt}' (use parquet or csv)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".cohort-", dir=out))
    try:
        paths = {k: tmp / f"{k}.{fmt}" for k in ("patients", "labs", "events")}
        writers: dict[str, Any] = {}
        counts = dict.fromkeys(paths, 0)
        done = 0
        for block in iter_cohort(n, seed):
            labs, events = _with_dates(block, lab_dates)
            for key, df in (("patients", block.patients), ("labs", labs), ("events", events)):
                counts[key] += df.height
                if fmt == "parquet":
                    import pyarrow.parquet as pq

                    table = df.to_arrow()
                    if key not in writers:
                        writers[key] = pq.ParquetWriter(
                            paths[key], table.schema, compression="zstd"
                        )
                    writers[key].write_table(table)
                else:
                    with paths[key].open("a", encoding="utf-8", newline="") as fh:
                        df.write_csv(fh, include_header=key not in writers, float_precision=None)
                    writers[key] = True
            done += block.patients.height
            if progress is not None:
                progress(done, n)
        for w in writers.values():
            if w is not True:
                w.close()
        final = {k: out / p.name for k, p in paths.items()}
        for k, p in paths.items():
            p.replace(final[k])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return CohortFiles(
        out,
        final["patients"],
        final["labs"],
        final["events"],
        counts["patients"],
        counts["labs"],
        counts["events"],
    )


def block_frames(block: Block) -> CohortFrames:
    """Canonical frames of a block in memory (what ``io.tables.read_cohort`` reads from files)."""
    p = block.patients
    day_cols = {
        f"{f}_day": (pl.col(f"{f}_date") - pl.col("infusion_date")).dt.total_days().cast(pl.Int32)
        for f in ("progression", "next_therapy", "last_followup", "death", "ld_start")
    }
    patients = conform(p.with_columns(**day_cols), PATIENT_SCHEMA)
    labs = normalise_labs(block.labs, source="synthetic labs")
    events = conform(block.events, EVENT_SCHEMA).select(list(EVENT_SCHEMA))
    return CohortFrames(patients, labs, events)
