"""The grade table: one row per patient, its columns and their types declared once.

``GRADE_COLUMNS`` is the single declaration of the table that ``cart-cytopenia grade`` writes
(CSV or Parquet), that the Spark job returns (``cart_cytopenia.spark``) and that the cohort report
reads: every column has a fixed type whatever the data, so the outputs of two runs (two shards,
two centres, two Spark partitions) concatenate without casting. docs/grade-table-schema.json is
generated from it (``make docs``) and checked against it by the tests.

Missing is never written as zero. A count or duration that needs data the patient does not have
is empty (null), and ``missing_data`` says which data were missing:

- ``early_days_anc_le_500``, ``early_days_anc_le_100``, ``early_never_recovered``: empty without an
  ANC value in the early ICAHT window (day 0-30);
- ``days_anc_le_500_d0_60`` / ``days_platelets_lt_50_d0_60``: empty without an ANC / platelet
  value in the duration window (day 0-60);
- transfusion counts and CRS/ICANS maximum grades: empty when the cohort was graded without an
  event table, or for a patient with neither a blood count nor an event. With an event table,
  0 means "none recorded in the event table" (the table is taken as the record of every event).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
from numpy.typing import NDArray

from cart_cytopenia.grading import iec_hs, tatma
from cart_cytopenia.rules.settings import Settings

if TYPE_CHECKING:
    from cart_cytopenia.grading.engine import GradedChunk

SCHEMA_VERSION = "3"  # bump when a column is added, removed, renamed or changes type


@dataclass(frozen=True)
class Column:
    name: str
    dtype: type[pl.DataType]
    meaning: str


_B, _I, _F, _S = pl.Boolean, pl.Int32, pl.Float64, pl.String

GRADE_COLUMNS: tuple[Column, ...] = (
    Column("patient_id", _S, "the patient table's id"),
    Column("early_icaht_grade", _I, "early ICAHT 0-4; empty when it cannot be graded"),
    Column("early_icaht_provisional", _B, "the early window (day 0-30) is still open"),
    Column("early_days_anc_le_500", _I, "longest joined run of ANC <=500/uL in day 0-30"),
    Column("early_days_anc_le_100", _I, "longest joined run of ANC <=100/uL in day 0-30"),
    Column("early_never_recovered", _B, "the never-recovered rule applied"),
    Column("early_icaht_reason", _S, "why early ICAHT could not be graded"),
    Column("late_icaht_grade", _I, "late ICAHT 0-4; empty when it cannot be graded"),
    Column("late_anc_1", _F, "lowest ANC (cells/uL) in the late window"),
    Column("late_anc_2", _F, "second lowest ANC (cells/uL, another day) in the late window"),
    Column("late_n_values", _I, "ANC values in the late window"),
    Column("late_window_end_day", _I, "the day the late window ended"),
    Column("late_window_end_reason", _S, "why the late window ended there"),
    Column("late_icaht_reason", _S, "why late ICAHT could not be graded"),
    Column("early_ticaht_grade", _I, "early T-ICAHT (thrombocytopenia) 0-4; empty when not graded"),
    Column("early_ticaht_provisional", _B, "the early T-ICAHT window is still open"),
    Column(
        "early_days_plt_lt_50", _I, "early T-ICAHT: days with platelets <50; empty when not graded"
    ),
    Column(
        "early_days_plt_lt_20", _I, "early T-ICAHT: days with platelets <20; empty when not graded"
    ),
    Column("early_ticaht_reason", _S, "why early T-ICAHT could not be graded"),
    Column("late_ticaht_grade", _I, "late T-ICAHT 0-4; empty when not graded"),
    Column("late_ticaht_provisional", _B, "the late T-ICAHT window is still open"),
    Column("late_plt_1", _F, "lowest platelet count (10*3/uL) in the late window"),
    Column("late_plt_2", _F, "second lowest platelet count in the late window"),
    Column(
        "late_days_plt_lt_20", _I, "late T-ICAHT: days with platelets <20; empty when not graded"
    ),
    Column("late_ticaht_reason", _S, "why late T-ICAHT could not be graded"),
    Column("platelet_recovery_day", _I, "platelet recovery (T-ICAHT)"),
    Column("ctcae_version", _S, "CTCAE version of the ctcae_* grades"),
    Column("ctcae_worst_neutrophils", _I, "worst CTCAE neutrophil count decreased from day 0"),
    Column("ctcae_worst_platelets", _I, "worst CTCAE platelet count decreased from day 0"),
    Column("ctcae_worst_anaemia", _I, "worst CTCAE anaemia from day 0"),
    Column("ctcae_worst_wbc", _I, "worst CTCAE white blood cell decreased from day 0"),
    Column("ctcae_worst_lymphocytes", _I, "worst CTCAE lymphocyte count decreased from day 0"),
    Column("anc_nadir", _F, "lowest ANC (cells/uL) from day 0"),
    Column("anc_nadir_day", _I, "day of anc_nadir"),
    Column("platelet_nadir", _F, "lowest platelet count (10*3/uL) from day 0"),
    Column("platelet_nadir_day", _I, "day of platelet_nadir"),
    Column("hb_nadir", _F, "lowest haemoglobin (g/dL) from day 0"),
    Column("hb_nadir_day", _I, "day of hb_nadir"),
    Column("days_anc_le_500_d0_60", _I, "days (interpolated) with ANC <=500/uL in day 0-60"),
    Column("days_platelets_lt_50_d0_60", _I, "days (interpolated) with platelets <50 in day 0-60"),
    Column("neutropenia_latest_phase", _S, "phase of the last day with significant neutropenia"),
    Column("thrombocytopenia_latest_phase", _S, "phase of the last significant thrombocytopenia"),
    Column("anaemia_latest_phase", _S, "phase of the last day with significant anaemia"),
    Column("phenotype", _S, "recovery phenotype: quick, intermittent or aplastic"),
    Column("phenotype_reason", _S, "why the phenotype was (not) called"),
    Column("first_recovery_day", _I, "first neutrophil recovery"),
    Column("second_dip_day", _I, "start of a second dip (intermittent phenotype)"),
    Column("sustained_recovery_day", _I, "sustained neutrophil recovery"),
    Column("hematotox_score", _I, "CAR-HEMATOTOX score; empty when markers are missing"),
    Column("hematotox_points_counted", _I, "CAR-HEMATOTOX points from the markers present"),
    Column("hematotox_risk", _S, "CAR-HEMATOTOX low/high"),
    Column("hematotox_missing", _S, "CAR-HEMATOTOX markers missing (;-separated)"),
    Column("hematotox_warnings", _S, "CAR-HEMATOTOX validity warnings"),
    Column("easix_baseline", _F, "EASIX at baseline"),
    Column("m_easix_baseline", _F, "modified EASIX at baseline"),
    Column("easix_baseline_above_cutoff", _I, "EASIX at baseline above its cut-off (1/0)"),
    Column("easix_baseline_missing", _S, "EASIX inputs missing at baseline"),
    Column("easix_d0_3", _F, "EASIX day 0-3"),
    Column("m_easix_d0_3", _F, "modified EASIX day 0-3"),
    Column(
        "tatma_status",
        _S,
        "TA-TMA harmonised criteria: meets / not met / work-up incomplete / not evaluated",
    ),
    Column("tatma_criteria_met", _I, "TA-TMA criteria met (of 7) at the reference time point"),
    Column("tatma_assessable", _I, "TA-TMA criteria assessable (of 7) there"),
    Column("tatma_reference_day", _I, "TA-TMA reference time point (first met, else most met)"),
    Column("tatma_first_met_day", _I, "first day the TA-TMA criteria were met"),
    Column("tatma_criteria", _S, "TA-TMA criteria met there (;-separated)"),
    Column("tatma_not_assessable", _S, "TA-TMA criteria not assessable there (;-separated)"),
    Column("tatma_high_risk", _I, "TA-TMA met with a high-risk feature 1, without 0, else empty"),
    Column("tatma_high_risk_features", _S, "TA-TMA high-risk features present (;-separated)"),
    Column("iechs_astct_status", _S, "IEC-HS by ASTCT: met, suspected, not met, not assessable"),
    Column("iechs_astct_grade", _I, "IEC-HS grade 1-5: always empty (grading table not read)"),
    Column("iechs_onset_day", _I, "day the IEC-HS ferritin criterion was first met"),
    Column("iechs_astct_missing", _S, "inputs missing for the ASTCT status (;-separated)"),
    Column("carhlh_met", _B, "carHLH (Neelapu 2018) met; empty when incomplete"),
    Column("hscore", _I, "HScore points of the items present (a lower bound when incomplete)"),
    Column("hscore_items", _I, "HScore items scored, of 9"),
    Column("hscore_at_cutoff", _B, "HScore >= 169; empty when the missing items decide"),
    Column("hscore_missing", _S, "HScore items not scored (;-separated)"),
    Column("rbc_transfusions_d0_30", _I, "red-cell transfusion episodes day 0-30"),
    Column("rbc_transfusions_d31_100", _I, "red-cell transfusion episodes day 31-100"),
    Column("platelet_transfusions_d0_30", _I, "platelet transfusion episodes day 0-30"),
    Column("platelet_transfusions_d31_100", _I, "platelet transfusion episodes day 31-100"),
    Column("gcsf_first_day", _I, "first G-CSF day from day 0"),
    Column("gcsf_response", _S, "G-CSF response"),
    Column("crs_max_grade", _I, "maximum CRS grade (ASTCT)"),
    Column("icans_max_grade", _I, "maximum ICANS grade (ASTCT)"),
    Column("last_anc_day", _I, "day of the last ANC value"),
    Column("missing_data", _S, "the data whose absence left counts/durations empty (;-separated)"),
)

GRADE_SCHEMA: dict[str, type[pl.DataType]] = {c.name: c.dtype for c in GRADE_COLUMNS}

# which columns each kind of missing data empties (the keys are GradedChunk.seen's)
MISSING_TEXT = {
    "anc_early": "no ANC value day 0-30",
    "anc_duration": "no ANC value day 0-60",
    "platelets_duration": "no platelet value day 0-60",
    "events": "no event data",
}
EMPTIED_BY: dict[str, tuple[str, ...]] = {
    "anc_early": ("early_days_anc_le_500", "early_days_anc_le_100", "early_never_recovered"),
    "anc_duration": ("days_anc_le_500_d0_60",),
    "platelets_duration": ("days_platelets_lt_50_d0_60",),
    "events": (
        "rbc_transfusions_d0_30",
        "rbc_transfusions_d31_100",
        "platelet_transfusions_d0_30",
        "platelet_transfusions_d31_100",
        "crs_max_grade",
        "icans_max_grade",
    ),
}

RISK_TEXT = np.array([None, "low", "high"], dtype=object)


def empty_grade_table() -> pl.DataFrame:
    return pl.DataFrame(schema=GRADE_SCHEMA)


# the logical type of each column's polars type, as the schema document names it (Parquet:
# string = BYTE_ARRAY UTF8, int32 = INT32, double = DOUBLE, boolean = BOOLEAN; Spark: StringType,
# IntegerType, DoubleType, BooleanType)
LOGICAL_TYPES: dict[type[pl.DataType], str] = {
    pl.String: "string",
    pl.Int32: "int32",
    pl.Float64: "double",
    pl.Boolean: "boolean",
}


def schema_document() -> str:
    """docs/grade-table-schema.json: every column, its Arrow type and meaning, in order."""
    doc = {
        "title": "cart-cytopenia grade table",
        "schema_version": SCHEMA_VERSION,
        "description": (
            "One row per patient, written by `cart-cytopenia grade` (CSV or Parquet) and "
            "returned by cart_cytopenia.spark.grade. Every column is nullable: empty means "
            "'cannot grade' or 'no data' (missing_data and the *_reason columns say why); "
            "missing data are never written as 0."
        ),
        "columns": [
            {"name": c.name, "type": LOGICAL_TYPES[c.dtype], "meaning": c.meaning}
            for c in GRADE_COLUMNS
        ],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _nullable_int(a: NDArray[np.integer], missing: int = -1) -> pl.Series:
    s = pl.Series(a.astype(np.int32))
    return s.set(s == missing, None) if (a == missing).any() else s


def _when_graded(days: NDArray[np.integer], grade: NDArray[np.integer]) -> pl.Series:
    """A day count, empty where its grade could not be given (no count: no data, never 0)."""
    return _nullable_int(np.where(grade < 0, -1, days))


def _computed(a: NDArray[np.int32] | None) -> NDArray[np.int32]:
    if a is None:  # the engine computes every grade-table column whatever ``detail``
        raise RuntimeError("a grade-table column was not computed")
    return a


def _missing_data(c: GradedChunk) -> pl.Series:
    """Per patient, the missing data (``MISSING_TEXT``) joined by "; ", null when none."""
    n = len(c.patient_ids)
    texts = np.full(n, None, dtype=object)
    for key, text in MISSING_TEXT.items():
        lacking = ~c.seen[key]
        if lacking.any():
            texts[lacking] = [text if t is None else f"{t}; {text}" for t in texts[lacking]]
    return pl.Series(texts.tolist(), dtype=pl.String)


# float columns whose NaN (no value) is written as null
NAN_FREE = (
    "anc_nadir",
    "platelet_nadir",
    "hb_nadir",
    "late_anc_1",
    "late_anc_2",
    "late_plt_1",
    "late_plt_2",
    "easix_baseline",
    "m_easix_baseline",
    "easix_d0_3",
    "m_easix_d0_3",
)


def _tri_bool(x: NDArray[np.int8]) -> pl.Series:
    """1/0/-1 as True/False/null."""
    return pl.Series([None if v < 0 else v == 1 for v in x.tolist()], dtype=pl.Boolean)


def _iechs_columns(c: GradedChunk) -> dict[str, object]:
    ih = c.iechs
    return {
        "iechs_astct_status": [iec_hs.STATUS[k] for k in ih.status.tolist()],
        "iechs_astct_grade": pl.Series([None] * ih.status.size, dtype=pl.Int32),
        "iechs_onset_day": _nullable_int(ih.onset_day),
        "iechs_astct_missing": iec_hs.joined(ih.missing, iec_hs.ASTCT_MISSING).tolist(),
        "carhlh_met": _tri_bool(ih.carhlh),
        "hscore": ih.hscore,
        "hscore_items": ih.hscore_items.astype(np.int32),
        "hscore_at_cutoff": _tri_bool(ih.hscore_at_cutoff),
        "hscore_missing": iec_hs.joined(ih.hscore_missing, iec_hs.HSCORE_ITEMS).tolist(),
    }


def chunk_table(c: GradedChunk, settings: Settings) -> pl.DataFrame:
    """One row per patient in ``GRADE_SCHEMA`` (docs/grade-table-schema.json), its columns in
    the schema's order; counts and durations without the data behind them are emptied."""
    cols: dict[str, object] = {
        "patient_id": c.patient_ids,
        **_icaht_columns(c),
        **_ticaht_columns(c),
        **_ctcae_columns(c, settings),
        **_lineage_columns(c),
        **_score_columns(c),
        **_tatma_columns(c.tatma),
        **_iechs_columns(c),
        **_event_columns(c),
    }
    df = pl.DataFrame(cols, schema=GRADE_SCHEMA, strict=False)
    emptied = [
        pl.when(pl.Series(c.seen[key])).then(pl.col(name)).alias(name)
        for key, names in EMPTIED_BY.items()
        if not c.seen[key].all()
        for name in names
    ]
    nan_free = [pl.col(name).fill_nan(None) for name in NAN_FREE]
    return df.with_columns(*nan_free, *emptied)


def _icaht_columns(c: GradedChunk) -> dict[str, object]:
    """Early and late ICAHT (neutropenia)."""
    return {
        "early_icaht_grade": _nullable_int(c.early.grade),
        "early_icaht_provisional": c.early.provisional,
        "early_days_anc_le_500": c.early.days_le_500,
        "early_days_anc_le_100": c.early.days_le_100,
        "early_never_recovered": c.early.never_recovered,
        "early_icaht_reason": list(c.early.reason),
        "late_icaht_grade": _nullable_int(c.late.grade),
        "late_anc_1": c.late.anc_1,
        "late_anc_2": c.late.anc_2,
        "late_n_values": c.late.n_values,
        "late_window_end_day": c.late.window_end,
        "late_window_end_reason": list(c.late.window_end_reason),
        "late_icaht_reason": list(c.late.reason),
    }


def _ticaht_columns(c: GradedChunk) -> dict[str, object]:
    """Early and late T-ICAHT (thrombocytopenia) and platelet recovery."""
    return {
        "early_ticaht_grade": _nullable_int(c.ticaht.early.grade),
        "early_ticaht_provisional": c.ticaht.early.provisional,
        "early_days_plt_lt_50": _when_graded(c.ticaht.early.days_lt_50, c.ticaht.early.grade),
        "early_days_plt_lt_20": _when_graded(c.ticaht.early.days_lt_20, c.ticaht.early.grade),
        "early_ticaht_reason": list(c.ticaht.early.reason),
        "late_ticaht_grade": _nullable_int(c.ticaht.late.grade),
        "late_ticaht_provisional": c.ticaht.late.provisional,
        "late_plt_1": c.ticaht.late.plt_1,
        "late_plt_2": c.ticaht.late.plt_2,
        "late_days_plt_lt_20": _when_graded(c.ticaht.late.days_lt_20, c.ticaht.late.grade),
        "late_ticaht_reason": list(c.ticaht.late.reason),
        "platelet_recovery_day": _nullable_int(c.ticaht.recovery_day),
    }


def _ctcae_columns(c: GradedChunk, settings: Settings) -> dict[str, object]:
    """The worst CTCAE grade of each count since day 0."""
    return {
        "ctcae_version": [settings.ctcae_version] * len(c.patient_ids),
        "ctcae_worst_neutrophils": _nullable_int(c.ctcae_worst["anc"]),
        "ctcae_worst_platelets": _nullable_int(c.ctcae_worst["platelets"]),
        "ctcae_worst_anaemia": _nullable_int(c.ctcae_worst["hb"]),
        "ctcae_worst_wbc": _nullable_int(c.ctcae_worst["wbc"]),
        "ctcae_worst_lymphocytes": _nullable_int(c.ctcae_worst["alc"]),
    }


def _lineage_columns(c: GradedChunk) -> dict[str, object]:
    """Nadirs, days below the cut-points and the latest phase of each lineage."""
    return {
        "anc_nadir": c.lineages["neutrophils"].nadir,
        "anc_nadir_day": _nullable_int(c.lineages["neutrophils"].nadir_day),
        "platelet_nadir": c.lineages["platelets"].nadir,
        "platelet_nadir_day": _nullable_int(c.lineages["platelets"].nadir_day),
        "hb_nadir": c.lineages["red_cells"].nadir,
        "hb_nadir_day": _nullable_int(c.lineages["red_cells"].nadir_day),
        "days_anc_le_500_d0_60": _computed(c.lineages["neutrophils"].days_severe),
        "days_platelets_lt_50_d0_60": _computed(c.lineages["platelets"].days_significant),
        "neutropenia_latest_phase": list(c.lineages["neutrophils"].latest_phase),
        "thrombocytopenia_latest_phase": list(c.lineages["platelets"].latest_phase),
        "anaemia_latest_phase": list(c.lineages["red_cells"].latest_phase),
    }


def _score_columns(c: GradedChunk) -> dict[str, object]:
    """Recovery phenotype, CAR-HEMATOTOX and EASIX."""
    risk = RISK_TEXT[c.hematotox.high_risk + 1]  # (-1: cannot tell, 0 low, 1 high)
    return {
        "phenotype": list(c.phenotype.phenotype),
        "phenotype_reason": list(c.phenotype.reason),
        "first_recovery_day": _nullable_int(c.phenotype.first_recovery_day),
        "second_dip_day": _nullable_int(c.phenotype.second_dip_day),
        "sustained_recovery_day": _nullable_int(c.phenotype.sustained_recovery_day),
        "hematotox_score": _nullable_int(c.hematotox.score),
        "hematotox_points_counted": c.hematotox.points_counted,
        "hematotox_risk": risk.tolist(),
        "hematotox_missing": c.hematotox.missing_text.tolist(),
        "hematotox_warnings": c.hematotox.warnings_text.tolist(),
        "easix_baseline": c.easix.baseline["easix"],
        "m_easix_baseline": c.easix.baseline["m_easix"],
        "easix_baseline_above_cutoff": _nullable_int(c.easix.above_cutoff),
        "easix_baseline_missing": c.easix.baseline_missing["easix"].tolist(),
        "easix_d0_3": c.easix.early["easix"],
        "m_easix_d0_3": c.easix.early["m_easix"],
    }


def _tatma_columns(z: tatma.Tatma) -> dict[str, object]:
    """TA-TMA harmonised criteria at each patient's reference time point."""
    has = z.met >= 0
    meets = z.status == tatma.MEETS
    return {
        "tatma_status": z.status.tolist(),
        "tatma_criteria_met": _nullable_int(z.met),
        "tatma_assessable": _nullable_int(z.assessable),
        "tatma_reference_day": _nullable_int(z.reference_day),
        "tatma_first_met_day": _nullable_int(z.first_met_day),
        "tatma_criteria": tatma.joined(z.criterion_met, has).tolist(),
        "tatma_not_assessable": tatma.joined(
            {k: ~v for k, v in z.criterion_known.items()}, has
        ).tolist(),
        "tatma_high_risk": _nullable_int(tatma.high_risk_flag(z)),
        "tatma_high_risk_features": tatma.joined(z.high_risk, meets).tolist(),
    }


def _event_columns(c: GradedChunk) -> dict[str, object]:
    """Transfusions, G-CSF, CRS/ICANS, the last ANC and what data were missing."""
    return {
        "rbc_transfusions_d0_30": c.transfusions["rbc"].d0_30,
        "rbc_transfusions_d31_100": c.transfusions["rbc"].d31_100,
        "platelet_transfusions_d0_30": c.transfusions["platelets"].d0_30,
        "platelet_transfusions_d31_100": c.transfusions["platelets"].d31_100,
        "gcsf_first_day": _nullable_int(c.gcsf.first_day),
        "gcsf_response": list(c.gcsf.response),
        "crs_max_grade": c.crs_max_grade,
        "icans_max_grade": c.icans_max_grade,
        "last_anc_day": _nullable_int(c.last_anc_day, -10_000),
        "missing_data": _missing_data(c),
    }
