"""The TA-TMA work-up of synthetic patients: blood pressure, LDH, UPCR, sC5b-9 and the smear on
weekly work-up days, and antihypertensive treatment, for a fraction of patients (every patient
after a prior allogeneic HCT, a few others), some of whom develop TA-TMA.

Drawn from their own random stream, so that adding them left every other value of a seed as it
was; the rows join the generator's own (``synthetic.generate_block``). Values are in canonical
units; patients of the "us-loinc" laboratory profile carry LOINC codes, the others the
catalogue codes. The rows and events are representable in every input format (course JSON,
cohort tables, FHIR, OMOP): no findings, which OMOP extracts do not carry.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from numpy.typing import NDArray

from cart_cytopenia.domain.analytes import analyte
from cart_cytopenia.domain.frames import RAW_LAB_SCHEMA

F = NDArray[np.float64]
B = NDArray[np.bool_]

WORKUP_OTHERS = 0.05  # share of patients without a prior allo-HCT that are worked up
TMA_AFTER_ALLO = 0.35  # share of worked-up patients after allo-HCT who develop TA-TMA
TMA_OTHERS = 0.02
FIRST_DAY, EVERY, LAST_DAY = 14, 7, 100  # weekly work-up days from day 14 to day 100
ANALYTES = ("sbp", "dbp", "ldh", "upcr", "sc5b9", "schistocytes")
ANTIHYPERTENSIVE = "amlodipine"


def _rng(seed: int, block: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(block), 0x7A7A]))


def _values(rng: np.random.Generator, tma: B, m: int) -> dict[str, F]:
    """One work-up day's values: ``tma`` marks the rows after a patient's TA-TMA onset."""

    def around(normal: float, sick: float, sd: float) -> F:
        out: F = np.where(tma, sick, normal) * np.exp(rng.normal(0, sd, m))
        return out

    return {
        "sbp": np.round(around(122, 152, 0.07)),
        "dbp": np.round(around(76, 95, 0.08)),
        "ldh": np.round(around(210, 520, 0.25)),
        "upcr": np.round(around(0.2, 1.6, 0.35), 2),
        "sc5b9": np.round(around(160, 390, 0.25)),
        "schistocytes": (rng.random(m) < np.where(tma, 0.8, 0.04)).astype(np.float64),
    }


def tatma_extras(
    seed: int, block: int, patients: pl.DataFrame, last_day: NDArray[np.integer]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(lab rows: patient_id, day, analyte, value, unit; medication events) of the TA-TMA
    work-up. ``patients``: the block's patient table; ``last_day``: each patient's last lab day."""
    rng = _rng(seed, block)
    n = patients.height
    allo = patients["prior_allo_hct"].fill_null(False).to_numpy()
    worked = allo | (rng.random(n) < WORKUP_OTHERS)
    tma = worked & (rng.random(n) < np.where(allo, TMA_AFTER_ALLO, TMA_OTHERS))
    onset = rng.integers(21, 61, n)
    days = np.arange(FIRST_DAY, LAST_DAY + 1, EVERY)
    who, col = np.nonzero(worked[:, None] & (days[None, :] <= np.asarray(last_day)[:, None]))
    day = days[col]
    sick = tma[who] & (day >= onset[who])
    vals = _values(rng, sick, who.size)
    loinc = (patients["lab_profile"].to_numpy() == "us-loinc")[who]
    ids = patients["patient_id"].to_numpy()
    parts = []
    for a in ANALYTES:
        take = np.ones(who.size, bool) if a != "sc5b9" else (col % 2 == 1) | sick
        an = analyte(a)
        parts.append(
            pl.DataFrame(
                {
                    "patient_id": ids[who[take]].tolist(),
                    "day": day[take].astype(np.int32),
                    "analyte": np.where(loinc[take], an.loinc[0], a).tolist(),
                    "value": vals[a][take],
                    "unit": [an.canonical_unit.ucum] * int(take.sum()),
                },
                schema=RAW_LAB_SCHEMA,
            )
        )
    treated = tma & (onset + 2 <= np.asarray(last_day))
    events = pl.DataFrame(
        {
            "patient_id": ids[treated].tolist(),
            "type": ["medication"] * int(treated.sum()),
            "start_day": (onset[treated] + 2).astype(np.int32),
            "end_day": pl.Series([None] * int(treated.sum()), dtype=pl.Int32),
            "grade": pl.Series([None] * int(treated.sum()), dtype=pl.Int8),
            "drug": [ANTIHYPERTENSIVE] * int(treated.sum()),
            "product": pl.Series([None] * int(treated.sum()), dtype=pl.String),
        },
        schema_overrides={"start_day": pl.Int32},
    )
    return pl.concat(parts), events


def with_tatma(
    seed: int, block: int, patients: pl.DataFrame, labs: pl.DataFrame, events: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The block's lab rows and events with the TA-TMA work-up added (rows kept in patient and
    day order: the ids are zero-padded, so their text order is the patients' order)."""
    last = (
        patients.select("patient_id")
        .join(
            labs.group_by("patient_id").agg(pl.col("day").max()),
            on="patient_id",
            how="left",
            maintain_order="left",
        )["day"]
        .fill_null(-1)
        .to_numpy()
    )
    extra_labs, extra_events = tatma_extras(seed, block, patients, last)
    labs = pl.concat([labs, extra_labs.select(labs.columns)]).sort(
        "patient_id", "day", maintain_order=True
    )
    events = pl.concat([events, extra_events.select(events.columns)], how="vertical_relaxed")
    return labs, events.sort("patient_id", "start_day", maintain_order=True)
