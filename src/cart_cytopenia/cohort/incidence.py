"""The report's cumulative incidence of recovery, from aggregated counts.

The inputs are ``endpoint_counts``: for each recovery end point, grouping (all patients,
CAR-HEMATOTOX group, product, recovery phenotype), group, day and cause (recovery, relapse /
next therapy, death, censored), the number of patients. That is all the Aalen-Johansen
estimator needs (it works on the distinct times), it is a few thousand rows for any cohort, and
it can be counted where the data live (``cart_cytopenia.spark.report``): the local report and
the Spark report compute their curves and tables from the same counts with the same code.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from cart_cytopenia.cohort.analysis import CAUSES, DEATH, ENDPOINTS, RECOVERY, RELAPSE
from cart_cytopenia.cohort.survival import Curve, aalen_johansen

CIF_DAYS = (14, 30, 60, 100, 180)
MIN_GROUP = 20  # smaller groups are not drawn as separate curves (they stay in the tables)
CURVE_GROUPINGS = (None, "CAR-HEMATOTOX", "product", "recovery phenotype")
ALL = "all patients"
COUNT_KEYS = ["endpoint", "by", "group", "time", "cause"]
COUNT_SCHEMA = {
    "endpoint": pl.String,
    "by": pl.String,
    "group": pl.String,
    "time": pl.Float64,
    "cause": pl.Int8,
    "n": pl.Int64,
}
_ORDER = {"high risk": 0, "low risk": 1, "incomplete": 2}


def endpoint_counts(endpoints: pl.DataFrame, d: pl.DataFrame) -> pl.DataFrame:
    """Patients by end point, grouping, group, time and cause (``endpoints``: patient_id,
    endpoint, time, cause; ``d``: the patients with the report's categories)."""
    x = endpoints.join(d.select("patient_id", *CURVE_GROUPINGS[1:]), on="patient_id")
    parts = []
    for by in CURVE_GROUPINGS:
        group = pl.lit(ALL) if by is None else pl.col(by).cast(pl.String)
        parts.append(
            x.group_by("endpoint", group.alias("group"), "time", "cause")
            .len("n")
            .with_columns(pl.lit(by or "all").alias("by"))
        )
    return tidy_counts(pl.concat(parts, how="vertical_relaxed"))


def tidy_counts(counts: pl.DataFrame) -> pl.DataFrame:
    """The counts in their columns, types and order (however they were counted)."""
    return counts.select(list(COUNT_SCHEMA)).cast(COUNT_SCHEMA).sort(COUNT_KEYS)  # type: ignore[arg-type]


def _curve(rows: pl.DataFrame, cause: int) -> Curve:
    n = rows["n"].to_numpy()
    time = np.repeat(rows["time"].to_numpy(), n)
    return aalen_johansen(time, np.repeat(rows["cause"].to_numpy(), n), cause)


def curves(counts: pl.DataFrame, endpoint: str, by: str | None) -> dict[str, Curve]:
    """The recovery curve of each group of ``by`` (None: all patients) with at least
    ``MIN_GROUP`` patients (all patients: at least one)."""
    rows = counts.filter((pl.col("endpoint") == endpoint) & (pl.col("by") == (by or "all")))
    groups = sorted(rows["group"].unique().to_list(), key=lambda v: (_ORDER.get(v, 9), v))
    out: dict[str, Curve] = {}
    for g in groups:
        sub = rows.filter(pl.col("group") == g)
        if sub["n"].sum() >= (1 if by is None else MIN_GROUP):
            out[g] = _curve(sub, RECOVERY)
    return out


def _at_days(endpoint: str, by: str, group: str, c: Curve) -> list[tuple[object, ...]]:
    est, lo, hi = c.at(np.array(CIF_DAYS, float))
    return [(endpoint, by, group, day, c.n, est[k], lo[k], hi[k]) for k, day in enumerate(CIF_DAYS)]


def _curve_rows(endpoint: str, by: str, group: str, c: Curve) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "endpoint": endpoint,
            "by": by,
            "group": group,
            "day": c.time,
            "cumulative_incidence": c.estimate,
            "lower_95": c.lower,
            "upper_95": c.upper,
            "at_risk": c.at_risk,
            "events": c.events,
        }
    )


def cif_tables(counts: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The cumulative incidence at ``CIF_DAYS`` and the whole curves, by group; the competing
    causes (relapse / next therapy, death) for the whole cohort."""
    at_days: list[tuple[object, ...]] = []
    curve_rows = []
    for ep in ENDPOINTS:
        for by in CURVE_GROUPINGS:
            for g, c in curves(counts, ep.id, by).items():
                at_days += _at_days(ep.id, by or "all", g, c)
                curve_rows.append(_curve_rows(ep.id, by or "all", g, c))
        everyone = counts.filter((pl.col("endpoint") == ep.id) & (pl.col("by") == "all"))
        if everyone.height:
            for cause in (RELAPSE, DEATH):
                c = _curve(everyone, cause)
                at_days += _at_days(ep.id, "all", f"competing: {CAUSES[cause]}", c)
    table = pl.DataFrame(
        at_days,
        schema=[
            "endpoint",
            "by",
            "group",
            "day",
            "n",
            "cumulative_incidence",
            "lower_95",
            "upper_95",
        ],
        orient="row",
    ).with_columns(pl.col("cumulative_incidence", "lower_95", "upper_95").round(4))
    return table, pl.concat(curve_rows) if curve_rows else pl.DataFrame()
