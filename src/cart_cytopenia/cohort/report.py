"""The cohort report: one self-contained HTML file (figures embedded, no external resources)
and the tables behind it as CSV files in ``<report name>_tables/`` beside it.

Contents: cohort characteristics; distributions of early and late ICAHT and T-ICAHT grades, CTCAE worst
grades, recovery phenotypes and durations by product and by CAR-HEMATOTOX group; cumulative
incidence of neutrophil and platelet recovery with relapse / next therapy and death as competing
risks (Aalen-Johansen, 95% confidence bands) by group; swimmer plot, heat map and trajectories
of counts; the comparison with the published CAR-HEMATOTOX aggregates; the definitions, rule
tables and settings used. Every number comes from the grading engine (``analysis.analyse``).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from jinja2 import Environment, select_autoescape

from cart_cytopenia import __version__
from cart_cytopenia.cohort import calibration, plots
from cart_cytopenia.cohort.analysis import (
    CAUSES,
    COMPETING_WITHIN_DAYS,
    ENDPOINTS,
    SUPPORT_DAYS,
    CohortAnalysis,
    analyse,
)
from cart_cytopenia.cohort.csv_safety import spreadsheet_safe
from cart_cytopenia.cohort.incidence import cif_tables, curves, endpoint_counts
from cart_cytopenia.domain.catalogues import DrugClass
from cart_cytopenia.domain.frames import CohortFrames, drug_class_expr
from cart_cytopenia.errors import InputError
from cart_cytopenia.grading.iec_hs import STATUS
from cart_cytopenia.rules import tables
from cart_cytopenia.rules.settings import Settings

HORIZON = {"neutrophil": 90, "platelet20": 180, "platelet50": 180}


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    tables: Path
    n_patients: int


# the patient columns the report reads beside the grade table, the measures whose distributions
# it tabulates and the groupings (shared with the Spark aggregation, cart_cytopenia.spark.report)
PATIENT_COLUMNS = (
    "product",
    "disease",
    "age_years",
    "sex",
    "prior_auto_hct",
    "prior_allo_hct",
    "progression_day",
    "death_day",
    "last_followup_day",
)
MEASURES = [
    "early ICAHT",
    "late ICAHT",
    "early T-ICAHT",
    "late T-ICAHT",
    "CTCAE neutrophils",
    "CTCAE platelets",
    "CTCAE anaemia",
    "recovery phenotype",
]
DISTRIBUTION_BY = ("product", "CAR-HEMATOTOX", "disease")
DURATION_BY = ("product", "CAR-HEMATOTOX", "recovery phenotype")


def _pct(k: int, n: int) -> str:
    return f"{k:,} ({100 * k / n:.1f}%)" if n else "0"


def _med_iqr(x: pl.Series) -> str:
    x = x.drop_nulls()
    if not x.len():
        return "—"
    q = np.quantile(x.to_numpy().astype(float), [0.25, 0.5, 0.75])
    return f"{q[1]:.1f} ({q[0]:.1f}–{q[2]:.1f})"


def categories(d: pl.DataFrame) -> pl.DataFrame:
    """The report's categories of each patient (grades as text, "cannot grade" ...)."""

    def grade(col: str) -> pl.Expr:
        return pl.col(col).cast(pl.String).fill_null("cannot grade")

    return d.with_columns(
        grade("early_icaht_grade").alias("early ICAHT"),
        grade("late_icaht_grade").alias("late ICAHT"),
        grade("early_ticaht_grade").alias("early T-ICAHT"),
        grade("late_ticaht_grade").alias("late T-ICAHT"),
        grade("ctcae_worst_neutrophils").alias("CTCAE neutrophils"),
        grade("ctcae_worst_platelets").alias("CTCAE platelets"),
        grade("ctcae_worst_anaemia").alias("CTCAE anaemia"),
        pl.col("phenotype").fill_null("not called").alias("recovery phenotype"),
        pl.col("hematotox_risk")
        .replace_strict({"high": "high risk", "low": "low risk"}, default="incomplete")
        .alias("CAR-HEMATOTOX"),
        pl.col("product").fill_null("unknown"),
        pl.col("disease").fill_null("unknown"),
    )


def characteristics(d: pl.DataFrame) -> pl.DataFrame:
    n = d.height
    rows: list[tuple[str, str]] = [("Patients", f"{n:,}")]
    rows.append(("Age, years: median (IQR)", _med_iqr(d["age_years"])))
    rows.append(("Children (< 18 years)", _pct(int((d["age_years"] < 18).sum()), n)))
    rows.append(("Male", _pct(int((d["sex"] == "male").sum()), n)))
    for col, label in (("disease", "Disease"), ("product", "Product")):
        for v, k in d.group_by(col).len().sort("len", descending=True).iter_rows():
            rows.append((f"{label}: {v}", _pct(k, n)))
    for col, label in (
        ("prior_auto_hct", "Prior autologous HCT"),
        ("prior_allo_hct", "Prior allogeneic HCT"),
    ):
        if col in d.columns:
            rows.append((label, _pct(int(d[col].fill_null(False).sum()), n)))
    for v in ("high risk", "low risk", "incomplete"):
        rows.append((f"CAR-HEMATOTOX {v}", _pct(int((d["CAR-HEMATOTOX"] == v).sum()), n)))
    rows.append(("CRS grade >= 3", _pct(int((d["crs_max_grade"] >= 3).sum()), n)))
    rows.append(("ICANS grade >= 3", _pct(int((d["icans_max_grade"] >= 3).sum()), n)))
    rows.append(
        ("Relapse / progression recorded", _pct(int(d["progression_day"].is_not_null().sum()), n))
    )
    rows.append(("Death recorded", _pct(int(d["death_day"].is_not_null().sum()), n)))
    rows.append(("Follow-up, days: median (IQR)", _med_iqr(d["last_followup_day"])))
    return pl.DataFrame(rows, schema=["characteristic", "value"], orient="row")


def distribution(d: pl.DataFrame, by: str, measures: list[str]) -> pl.DataFrame:
    parts = []
    totals = d.group_by(by).len().rename({"len": "n_group"})
    for m in measures:
        parts.append(
            d.group_by(by, m)
            .len()
            .join(totals, on=by)
            .select(
                pl.lit(m).alias("measure"),
                pl.col(by).alias("group"),
                pl.col(m).alias("category"),
                pl.col("len").alias("n"),
                (pl.col("len") / pl.col("n_group")).round(4).alias("share"),
                "n_group",
            )
        )
    return (
        pl.concat(parts).sort("measure", "group", "category").with_columns(pl.lit(by).alias("by"))
    )


EASIX_SCORES = {
    "easix_baseline": "EASIX before LD",
    "m_easix_baseline": "m-EASIX before LD",
    "easix_d0_3": "EASIX day 0-3 (highest)",
    "m_easix_d0_3": "m-EASIX day 0-3 (highest)",
}


LATEST_PHASE_COLUMNS = (
    "neutropenia_latest_phase",
    "thrombocytopenia_latest_phase",
    "anaemia_latest_phase",
)


def prolonged_cytopenia_outcomes() -> dict[str, pl.Expr]:
    """The prolonged-cytopenia outcomes EASIX is reported against; null where it cannot be told.

    "prolonged cytopenia": significant cytopenia (any lineage, timing table) on or after day 30
    (the review's prolonged or late phase); "no" only when follow-up reached day 30, so a patient
    followed for 20 days is left out, not counted as recovered. "severe neutropenia >= 14 days":
    ANC <= 500/uL on >= 14 days of day 0-60, the CAR-HEMATOTOX outcome (Rejeski 2021)."""
    prolonged = pl.any_horizontal(
        [pl.col(c).is_in(["prolonged", "late"]).fill_null(False) for c in LATEST_PHASE_COLUMNS]
    )
    followed = pl.col("last_followup_day") >= 30
    return {
        "prolonged cytopenia (day >= 30)": pl.when(prolonged | followed).then(prolonged),
        "severe neutropenia >= 14 days (day 0-60)": pl.col("days_anc_le_500_d0_60") >= 14,
    }


def easix_by_outcome(d: pl.DataFrame) -> pl.DataFrame:
    """Median (IQR) of each EASIX score in patients with and without each outcome (patients whose
    outcome cannot be graded are left out), and the share above the published cut-off of EASIX
    before lymphodepletion (Korell 2022)."""
    cut = tables.easix().baseline_cutoff
    outcomes = {
        "CRS grade >= 3": pl.col("crs_max_grade") >= 3,
        "ICANS grade >= 3": pl.col("icans_max_grade") >= 3,
        "early ICAHT grade >= 3": pl.col("early_icaht_grade") >= 3,
        "early T-ICAHT grade >= 3": pl.col("early_ticaht_grade") >= 3,
        **prolonged_cytopenia_outcomes(),
    }
    rows = []
    for outcome, cond in outcomes.items():
        flag = d.select(cond.alias("f"))["f"]
        for value, label in ((True, "yes"), (False, "no")):
            sub = d.filter(flag == value)
            above = sub["easix_baseline"].drop_nulls()
            for col, name in EASIX_SCORES.items():
                x = sub[col].drop_nulls()
                rows.append(
                    (
                        outcome,
                        label,
                        name,
                        sub.height,
                        x.len(),
                        _med_iqr(x),
                        _pct(int((above > cut).sum()), above.len())
                        if col == "easix_baseline"
                        else "",
                    )
                )
    return pl.DataFrame(
        rows,
        schema=[
            "outcome",
            "with_outcome",
            "score",
            "n",
            "n_with_score",
            "median_iqr",
            "above_cutoff",
        ],
        orient="row",
    )


def tatma_counts(d: pl.DataFrame) -> pl.DataFrame:
    """TA-TMA harmonised criteria per group (all, prior allo-HCT, product): patients who meet the
    criteria (with a high-risk feature), not met, work-up incomplete (neither decided, a
    TA-TMA-specific criterion assessed), not evaluated (no TA-TMA-specific work-up after
    infusion), and the criteria assessable at the reference time point (median). Neither of the
    last two is 'not met': not measured is not normal."""
    groups = {
        "all": pl.lit("all"),
        "prior allo-HCT": pl.col("prior_allo_hct")
        .replace_strict({True: "yes", False: "no"}, default="unknown", return_dtype=pl.String)
        .fill_null("unknown"),
        "product": pl.col("product").fill_null("unknown"),
    }
    status = pl.col("tatma_status")
    parts = []
    for by, key in groups.items():
        parts.append(
            d.with_columns(key.alias("group"))
            .group_by("group")
            .agg(
                pl.len().alias("n"),
                (status == "meets").sum().alias("meets"),
                ((status == "meets") & (pl.col("tatma_high_risk") == 1)).sum().alias("high_risk"),
                (status == "not met").sum().alias("not_met"),
                (status == "work-up incomplete").sum().alias("workup_incomplete"),
                (status == "not evaluated").sum().alias("not_evaluated"),
                pl.col("tatma_assessable").median().alias("median_assessable"),
            )
            .with_columns(pl.lit(by).alias("by"))
        )
    return (
        pl.concat(parts)
        .with_columns((pl.col("meets") / pl.col("n")).alias("share_meets"))
        .select(
            "by",
            "group",
            "n",
            "meets",
            "share_meets",
            "high_risk",
            "not_met",
            "workup_incomplete",
            "not_evaluated",
            "median_assessable",
        )
        .sort("by", "group")
    )


def iechs_by_product(d: pl.DataFrame) -> pl.DataFrame:
    """IEC-HS by the ASTCT criteria (each status), carHLH and HScore >= 169 counted per product
    and for all patients. In a cohort table marrow morphology, temperatures and organomegaly are
    not recorded: "met" needs a laboratory manifestation, and the HScore is a lower bound."""

    def counts(x: pl.DataFrame, group: str) -> dict[str, object]:
        status = x["iechs_astct_status"]
        return {
            "product": group,
            "n": x.height,
            **{f"astct_{k.replace(' ', '_')}": int((status == k).sum()) for k in STATUS},
            "carhlh_met": int(x["carhlh_met"].fill_null(False).sum()),
            "carhlh_incomplete": int(x["carhlh_met"].is_null().sum()),
            "hscore_ge_cutoff": int(x["hscore_at_cutoff"].fill_null(False).sum()),
            "hscore_undecided": int(x["hscore_at_cutoff"].is_null().sum()),
        }

    rows = [counts(x, str(g[0])) for g, x in d.group_by("product", maintain_order=True)]
    rows.sort(key=lambda r: str(r["product"]))
    return pl.DataFrame([*rows, counts(d, "all")])


def duration_summary(d: pl.DataFrame, by: str) -> pl.DataFrame:
    return (
        d.group_by(by)
        .agg(
            pl.len().alias("n"),
            pl.col("days_anc_le_500_d0_60").median().alias("severe_neutropenia_days_median"),
            pl.col("days_anc_le_500_d0_60").quantile(0.25).alias("severe_neutropenia_days_q1"),
            pl.col("days_anc_le_500_d0_60").quantile(0.75).alias("severe_neutropenia_days_q3"),
            (pl.col("days_anc_le_500_d0_60") >= 14)
            .mean()
            .round(4)
            .alias("share_severe_ge_14_days"),
            pl.col("days_platelets_lt_50_d0_60").median().alias("platelets_lt_50_days_median"),
            pl.col("anc_nadir").median().alias("anc_nadir_median"),
            pl.col("platelet_nadir").median().alias("platelet_nadir_median"),
        )
        .rename({by: "group"})
        .sort("group")
        .with_columns(pl.lit(by).alias("by"))
    )


def _img(data: bytes, alt: str) -> dict[str, str]:
    return {"src": "data:image/png;base64," + base64.b64encode(data).decode("ascii"), "alt": alt}


def _html_table(df: pl.DataFrame, pct_cols: tuple[str, ...] = (), max_rows: int = 200) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for r in df.head(max_rows).iter_rows():
        cells = []
        for c, v in zip(df.columns, r, strict=True):
            if v is None or (isinstance(v, float) and np.isnan(v)):
                text = "—"
            elif c in pct_cols and isinstance(v, float):
                text = f"{100 * v:.1f}%"
            elif isinstance(v, float):
                text = f"{v:,.2f}" if abs(v) < 1000 else f"{v:,.0f}"
            elif isinstance(v, int) and not isinstance(v, bool):
                text = f"{v:,}"
            else:
                text = str(v)
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = (
        f"<p class='note'>First {max_rows} of {df.height:,} rows; all in the CSV.</p>"
        if df.height > max_rows
        else ""
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


def _swimmer_events(frames: CohortFrames, ids: list[str]) -> pl.DataFrame:
    ev = frames.events.filter(pl.col("patient_id").is_in(ids))
    gcsf = ev.filter(drug_class_expr(DrugClass.GCSF)).select(
        "patient_id", "start_day", pl.lit("gcsf").alias("kind")
    )
    tx = ev.filter(pl.col("type") == "transfusion").select(
        "patient_id", "start_day", pl.col("product").alias("kind")
    )
    boost = ev.filter(pl.col("type") == "stem_cell_boost").select(
        "patient_id", "start_day", pl.lit("stem_cell_boost").alias("kind")
    )
    p = frames.patients.filter(pl.col("patient_id").is_in(ids))
    rel = p.filter(pl.col("progression_day").is_not_null()).select(
        "patient_id", pl.col("progression_day").alias("start_day"), pl.lit("relapse").alias("kind")
    )
    death = p.filter(pl.col("death_day").is_not_null()).select(
        "patient_id", pl.col("death_day").alias("start_day"), pl.lit("death").alias("kind")
    )
    return pl.concat(
        [x.with_columns(pl.col("start_day").cast(pl.Int32)) for x in (gcsf, tx, boost, rel, death)]
    )


class _Figures:
    """The report's figures in order, each with its section, title, caption and image."""

    def __init__(self) -> None:
        self.figs: list[dict[str, Any]] = []

    def add(self, section: str, title: str, data: bytes, caption: str) -> None:
        self.figs.append(
            {"section": section, "title": title, "caption": caption, **_img(data, title)}
        )


def _figures(
    a: CohortAnalysis, d: pl.DataFrame, frames: CohortFrames, counts: pl.DataFrame
) -> list[dict[str, Any]]:
    """Grades and durations by product and CAR-HEMATOTOX group, recovery curves, then the counts
    of sampled patients (swimmer plot, heat map, trajectories)."""
    f = _Figures()
    for by, label in (("product", "product"), ("CAR-HEMATOTOX", "CAR-HEMATOTOX group")):
        _grade_figures(f, d, by, label)
        _duration_figure(f, d, by, label)
    _recovery_figures(f, counts)
    _sample_figures(f, a, d, frames)
    return f.figs


def _grade_figures(f: _Figures, d: pl.DataFrame, by: str, label: str) -> None:
    """ICAHT, T-ICAHT, CTCAE worst grades and recovery phenotypes, as shares of each group."""
    add = f.add
    grade_cols = dict(plots.GRADE_COLOURS)
    add(
        "grades",
        f"ICAHT grades by {label}",
        plots.stacked_shares(
            d,
            by,
            [
                ("early ICAHT", "Early ICAHT (day 0–30)"),
                ("late ICAHT", "Late ICAHT (day 31–100)"),
            ],
            grade_cols,
            f"EHA/EBMT ICAHT grade by {label} (% of patients)",
        ),
        "Early ICAHT from the longest run of ANC ≤500 and ≤100/µL in days 0–30; late ICAHT from the non-transient ANC nadir after day 30 (window ends at day 100, relapse/progression, next therapy, last follow-up or death). 'Cannot grade': no ANC in the window.",
    )
    add(
        "grades",
        f"T-ICAHT grades by {label}",
        plots.stacked_shares(
            d,
            by,
            [
                ("early T-ICAHT", "Early T-ICAHT (day 0–30)"),
                ("late T-ICAHT", "Late T-ICAHT (day 31–100)"),
            ],
            grade_cols,
            f"T-ICAHT (thrombocytopenia) grade by {label} (% of patients)",
        ),
        "T-ICAHT (Rejeski 2025): early from the cumulative days of platelets < 50 and < 20 ×10⁹/L in days 0–30; late from the non-transient platelet nadir (< 100, < 50) and the days < 20 after day 30 (window as late ICAHT). Counts within 2 days of a platelet transfusion are not taken as recovery. 'Cannot grade': no platelet count in the window.",
    )
    add(
        "grades",
        f"CTCAE worst grades by {label}",
        plots.stacked_shares(
            d,
            by,
            [
                ("CTCAE neutrophils", "Neutrophil count decreased"),
                ("CTCAE platelets", "Platelet count decreased"),
                ("CTCAE anaemia", "Anaemia"),
            ],
            grade_cols,
            f"CTCAE worst grade since day 0 by {label} (% of patients)",
        ),
        "Worst CTCAE grade of any value from day 0 (anaemia from values only: at most grade 3).",
    )
    add(
        "grades",
        f"Recovery phenotypes by {label}",
        plots.stacked_shares(
            d,
            by,
            [("recovery phenotype", "Neutrophil recovery phenotype")],
            plots.PHENOTYPE_COLOURS,
            f"Neutrophil recovery phenotype by {label} (% of patients)",
        ),
        "Quick: recovery without a second dip; intermittent: recovery then ANC ≤1000/µL after day 21; aplastic: ANC ≤500/µL for ≥14 days. 'Not called': too little follow-up or no ANC.",
    )


def _duration_figure(f: _Figures, d: pl.DataFrame, by: str, label: str) -> None:
    """Days of severe neutropenia and thrombocytopenia, day 0-60, by group."""
    add = f.add
    add(
        "durations",
        f"Durations by {label}",
        plots.durations(
            d,
            by,
            [
                ("days_anc_le_500_d0_60", "Days with ANC ≤500/µL, day 0–60"),
                ("days_platelets_lt_50_d0_60", "Days with platelets <50 ×10⁹/L, day 0–60"),
            ],
            f"Duration of severe neutropenia and thrombocytopenia by {label}",
        ),
        "Days counted on the daily series with gaps of up to 7 days interpolated (as for ICAHT). Boxes: interquartile range; line: median; whiskers: 1.5 × IQR.",
    )


def _recovery_figures(f: _Figures, counts: pl.DataFrame) -> None:
    """Cumulative incidence of each recovery endpoint by CAR-HEMATOTOX group and product."""
    for ep in ENDPOINTS:
        for by, label in (("CAR-HEMATOTOX", "CAR-HEMATOTOX group"), ("product", "product")):
            by_group = curves(counts, ep.id, by)
            if by_group:
                f.add(
                    "recovery",
                    f"{ep.label} by {label}",
                    plots.cumulative_incidence(by_group, f"{ep.label} by {label}", HORIZON[ep.id]),
                    f"Aalen–Johansen cumulative incidence with 95% pointwise confidence bands; relapse/progression or next therapy and death are competing events. Recovery: {ep.definition}.",
                )


def _sample_figures(f: _Figures, a: CohortAnalysis, d: pl.DataFrame, frames: CohortFrames) -> None:
    """Swimmer plot, heat map and trajectories of a random sample of patients."""
    add = f.add
    # samples: swimmer, heat map, trajectories
    s_ids = a.samples["patient_id"].unique().to_list()
    ds = d.filter(pl.col("patient_id").is_in(s_ids)).sort(
        "recovery phenotype", "days_anc_le_500_d0_60", "patient_id", descending=[False, True, False]
    )
    phen_of = dict(zip(ds["patient_id"], ds["recovery phenotype"], strict=True))
    if ds.height:
        lanes: list[str] = []
        for ph in plots.PHENOTYPE_COLOURS:
            lanes += ds.filter(pl.col("recovery phenotype") == ph)["patient_id"].head(10).to_list()
        labels = {
            p: f"{p} {prod} ({phen_of[p]})"
            for p, prod in ds.select("patient_id", "product").iter_rows()
        }
        add(
            "counts",
            "Swimmer plot",
            plots.swimmer(
                a.samples,
                lanes,
                labels,
                _swimmer_events(frames, lanes),
                100,
                "Daily ANC of sampled patients, with treatments and events",
            ),
            "Each lane one patient (up to 10 per phenotype, random sample): colour = ANC band of the day (lowest value of the day; gaps of up to 7 days interpolated, as the grading does); white = unknown.",
        )
        add(
            "counts",
            "Heat map",
            plots.heatmap(
                a.samples,
                ds["patient_id"].to_list(),
                phen_of,
                100,
                "ANC by day for a random sample of patients, grouped by recovery phenotype",
            ),
            "Rows: patients sorted by phenotype and days of severe neutropenia; colour: ANC of the day on a log scale (gaps of up to 7 days interpolated); white: unknown. Dotted lines: day 30 and day 90.",
        )
        add(
            "counts",
            "Trajectories",
            plots.trajectories(
                a.samples, phen_of, 100, "ANC and platelets by recovery phenotype (random sample)"
            ),
            "Median and interquartile range across patients of each day's value (gaps of up to 7 days interpolated; days with at least 5 patients). Dashed: ANC 100/500/1000/µL; platelets 20/50 ×10⁹/L.",
        )


def _definitions() -> list[tuple[str, str]]:
    ic = tables.icaht()
    return [
        ("Day 0", "CAR-T infusion."),
        (
            "Early ICAHT",
            f"Days {ic.early_window[0]}–{ic.early_window[1]}, EHA/EBMT (Rejeski 2023), with the conventions in docs/conventions.md (lowest value per day, interpolation over gaps ≤{ic.conventions.max_interpolation_gap_days} days, runs joined unless ANC > threshold for ≥{ic.conventions.join_min_recovered_days} consecutive days).",
        ),
        (
            "Late ICAHT",
            f"Day {ic.late_window_start} to the earliest of day {ic.late_window_end}, relapse/progression, next therapy, last follow-up and death; lowest ANC confirmed by a second value ≤{ic.confirm_threshold:g}/µL.",
        ),
        (
            "Neutrophil recovery",
            ENDPOINTS[0].definition
            + "; patients never ≤500/µL from day 0 are not at risk and left out.",
        ),
        (
            "Platelet recovery",
            f"{ENDPOINTS[1].definition}; and likewise for ≥ 50 ×10⁹/L. A count within {SUPPORT_DAYS} days after a platelet transfusion is not a recovery.",
        ),
        (
            "Competing risks",
            f"Relapse/progression or next therapy (whichever first) and death before recovery; counted when within {COMPETING_WITHIN_DAYS} days of the last count, otherwise censored at the last count. Aalen–Johansen estimator; 95% pointwise intervals by the delta method on the log(−log) scale.",
        ),
        (
            "CAR-HEMATOTOX",
            "Score from the last pre-lymphodepletion platelets, ANC, haemoglobin, CRP and ferritin (Rejeski 2021); high risk ≥ 2; 'incomplete' when a marker is missing and the points counted stay below 2.",
        ),
    ]


TEMPLATE = "report.html"
AGGREGATE_TEMPLATE = "aggregate_report.html"


def _template(name: str = TEMPLATE) -> str:
    """The page: the shared head (style, title) and tail (definitions, tables), ``name``'s
    sections between them."""
    parts = ("report_head.html", name, "report_tail.html")
    return "".join(_template_part(p) for p in parts)


def _template_part(name: str) -> str:
    folder = resources.files("cart_cytopenia.cohort").joinpath("templates")
    return folder.joinpath(name).read_text(encoding="utf-8")


def build_report(
    frames: CohortFrames,
    settings: Settings,
    out: str | Path,
    title: str = "Cohort report: cytopenias after CAR T-cell therapy",
    source: str = "",
    as_of: int | None = None,
) -> ReportFiles:
    """Grade the cohort and write the HTML report and its CSV tables (atomically)."""
    out = _report_path(out)
    a = analyse(frames, settings, as_of=as_of, sample_size=600)
    d = categories(
        a.graded.join(
            frames.patients.select(
                "patient_id", *[c for c in PATIENT_COLUMNS if c in frames.patients.columns]
            ),
            on="patient_id",
            how="left",
        )
    )
    csvs = _report_tables(a, d, frames)
    page = _render(a, d, frames, csvs, settings, title, source, out.stem + "_tables")
    tables_dir = _write(out, csvs, page)
    return ReportFiles(out, tables_dir, d.height)


def _report_tables(
    a: CohortAnalysis, d: pl.DataFrame, frames: CohortFrames
) -> dict[str, pl.DataFrame]:
    """The report's tables, written beside it as CSV: characteristics, grade distributions,
    durations, EASIX by outcome, TA-TMA counts, IEC-HS by product, cumulative incidence, published
    comparison, the grades."""
    counts = endpoint_counts(a.endpoints, d)
    cif_at, cif_curves = cif_tables(counts)
    return {
        "characteristics": characteristics(d),
        "grade_distributions": pl.concat([distribution(d, by, MEASURES) for by in DISTRIBUTION_BY]),
        "durations": pl.concat([duration_summary(d, by) for by in DURATION_BY]),
        "easix_by_outcome": easix_by_outcome(d),
        "tatma_counts": tatma_counts(d),
        "iechs_by_product": iechs_by_product(d),
        "cumulative_incidence_inputs": counts,
        "cumulative_incidence_at_days": cif_at,
        "cumulative_incidence_curves": cif_curves,
        "recovery_endpoints": a.endpoints.with_columns(
            pl.col("cause").replace_strict(CAUSES, return_dtype=pl.String).alias("cause_label")
        ),
        "published_comparison": calibration.measure(a.graded, frames),
        "grades": a.graded,
    }


def _render(
    a: CohortAnalysis,
    d: pl.DataFrame,
    frames: CohortFrames,
    csvs: dict[str, pl.DataFrame],
    settings: Settings,
    title: str,
    source: str,
    tables_dir: str,
) -> str:
    """The HTML page: figures embedded, the main tables shown, definitions and rule tables."""
    dist, durs, cif_at = (
        csvs["grade_distributions"],
        csvs["durations"],
        csvs["cumulative_incidence_at_days"],
    )
    figs = _figures(a, d, frames, csvs["cumulative_incidence_inputs"])
    env = Environment(autoescape=select_autoescape(["html"]))
    return env.from_string(_template()).render(
        title=title,
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        source=source,
        software=f"cart-cytopenia {__version__}",
        n=d.height,
        figures=figs,
        characteristics=_html_table(csvs["characteristics"]),
        icaht_table=_icaht_table(dist),
        durations=_html_table(durs.drop("by"), pct_cols=("share_severe_ge_14_days",)),
        easix_table=_html_table(csvs["easix_by_outcome"], max_rows=60),
        easix_cutoff=f"{tables.easix().baseline_cutoff:g}",
        tatma_table=_html_table(csvs["tatma_counts"], pct_cols=("share_meets",), max_rows=40),
        iechs_table=_html_table(csvs["iechs_by_product"]),
        hscore_cutoff=tables.iec_hs().hscore_cutoff,
        recovery_section=_recovery_section(figs, cif_at),
        calibration=_html_table(
            csvs["published_comparison"].select(
                "metric",
                "group",
                "published",
                "tolerance",
                "synthetic",
                "n_synthetic",
                "within_tolerance",
            ),
        ),
        calibration_n=calibration.calibration_subset(a.graded, frames.patients).height,
        definitions=_definitions(),
        rules=[m.label + " — " + m.source for m in tables.all_tables()],
        settings_changed=settings.changed_from_defaults(),
        csv_names=sorted(csvs),
        tables_dir=tables_dir,
    )


def _write(out: Path, csvs: dict[str, pl.DataFrame], page: str) -> Path:
    """Write the page and its tables folder atomically (a temporary folder moved into place);
    the tables folder, ``<report>_tables``, is returned."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tables_dir = out.with_name(out.stem + "_tables")
    tmp = Path(tempfile.mkdtemp(prefix=".report-", dir=out.parent))
    try:
        tdir = tmp / "tables"
        tdir.mkdir()
        for name, df in csvs.items():
            spreadsheet_safe(df).write_csv(tdir / f"{name}.csv")
        (tmp / "report.html").write_text(page, encoding="utf-8")
        if tables_dir.exists():
            shutil.rmtree(tables_dir)
        tdir.replace(tables_dir)
        (tmp / "report.html").replace(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tables_dir


def _icaht_table(dist: pl.DataFrame) -> str:
    """The ICAHT and T-ICAHT grade shares by product and CAR-HEMATOTOX group, as HTML."""
    icaht = dist.filter(
        pl.col("measure").is_in(["early ICAHT", "late ICAHT", "early T-ICAHT", "late T-ICAHT"])
        & (pl.col("by") != "disease")
    )
    return _html_table(
        icaht.pivot(
            on="category",
            index=["measure", "by", "group", "n_group"],
            values="share",
            aggregate_function="first",
        ).sort("measure", "by", "group"),
        pct_cols=("0", "1", "2", "3", "4", "cannot grade"),
    )


def _recovery_section(figs: list[dict[str, Any]], cif_at: pl.DataFrame) -> str:
    """The cumulative incidence section: its figures and the table at days 30, 60 and 100."""
    return (
        Environment(autoescape=select_autoescape(["html"]))
        .from_string(_template_part("report_recovery.html"))
        .render(
            figures=figs,
            cif_at=_html_table(
                cif_at.filter(pl.col("day").is_in([30, 60, 100])),
                pct_cols=("cumulative_incidence", "lower_95", "upper_95"),
                max_rows=120,
            ),
        )
    )


def _report_path(out: str | Path) -> Path:
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"{out}: the report is an HTML file (name it .html)")
    return out


def write_aggregate_report(
    n_patients: int,
    aggregates: dict[str, pl.DataFrame],
    settings: Settings,
    out: str | Path,
    title: str = "Cohort report: cytopenias after CAR T-cell therapy",
    source: str = "",
) -> ReportFiles:
    """The report written from its aggregate tables alone (``grade_distributions``,
    ``durations``, ``cumulative_incidence_inputs``: counted on Spark by
    ``cart_cytopenia.spark.report``); the sections that need each patient's values are left
    out and named."""
    out = _report_path(out)
    counts = aggregates["cumulative_incidence_inputs"]
    cif_at, cif_curves = cif_tables(counts)
    f = _Figures()
    _recovery_figures(f, counts)
    csvs = dict(aggregates) | {
        "cumulative_incidence_at_days": cif_at,
        "cumulative_incidence_curves": cif_curves,
    }
    page = (
        Environment(autoescape=select_autoescape(["html"]))
        .from_string(_template(AGGREGATE_TEMPLATE))
        .render(
            title=title,
            generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            source=source,
            software=f"cart-cytopenia {__version__}",
            n=n_patients,
            icaht_table=_icaht_table(aggregates["grade_distributions"]),
            durations=_html_table(
                aggregates["durations"].drop("by"), pct_cols=("share_severe_ge_14_days",)
            ),
            recovery_section=_recovery_section(f.figs, cif_at),
            definitions=_definitions(),
            rules=[m.label + " — " + m.source for m in tables.all_tables()],
            settings_changed=settings.changed_from_defaults(),
            csv_names=sorted(csvs),
            tables_dir=out.stem + "_tables",
        )
    )
    return ReportFiles(out, _write(out, csvs, page), n_patients)
