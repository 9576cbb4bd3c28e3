"""Full ``Course`` documents from synthetic patients, for the web app and the FHIR demos: a pool
of patients is generated and graded, and courses are picked so that each recovery phenotype is
shown (``generate_courses``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl

from cart_cytopenia.cohort.synthetic import block_frames, generate_block
from cart_cytopenia.cohort.synthetic_mix import APLASTIC, INTERMITTENT, QUICK
from cart_cytopenia.domain.course import Course, parse_course
from cart_cytopenia.grading.engine import grade_cohort
from cart_cytopenia.rules.settings import Settings

_SEVERITY = {1: "mild", 2: "moderate", 3: "severe", 4: "life-threatening"}
_COURSE_BLOCK = 10_000  # stream index of the course pool (distinct from cohort blocks)


def _course_dict(
    p: dict[str, Any], labs: pl.DataFrame, events: pl.DataFrame, rng: np.random.Generator
) -> dict[str, Any]:
    infusion: dt.date = p["infusion_date"]

    def day_of(d: dt.date | None) -> int | None:
        return None if d is None else (d - infusion).days

    prior = []
    if p["prior_auto_hct"]:
        prior.append({"kind": "autologous", "day": -int(rng.integers(200, 1500))})
    if p["prior_allo_hct"]:
        prior.append(
            {
                "kind": "allogeneic",
                "day": -int(rng.integers(250, 1200)),
                "donor_type": "matched-unrelated",
            }
        )
    lab_rows = labs.select("day", "analyte", "value", "unit").to_dicts()
    out_events: list[dict[str, Any]] = []
    for r in events.iter_rows(named=True):
        t, s0, e0 = r["type"], r["start_day"], r["end_day"]
        span = {"start_day": s0} | ({"end_day": e0} if e0 is not None else {})
        if t in ("crs", "icans"):
            out_events.append({"type": t, "max_grade": r["grade"]} | span)
        elif t == "iec_hs":
            out_events.append({"type": t, "grade": r["grade"]} | span)
        elif t == "medication":
            out_events.append({"type": t, "drug": r["drug"]} | span)
        elif t == "infection":
            out_events.append(
                {"type": t, "category": r["product"], "severity": _SEVERITY.get(r["grade"])} | span
            )
        elif t == "transfusion":
            out_events.append({"type": t, "day": s0, "product": r["product"], "units": r["grade"]})
        elif t == "stem_cell_boost":
            out_events.append({"type": t, "day": s0, "source": r["product"]})
        elif t == "hct":
            out_events.append({"type": t, "day": s0, "kind": r["product"]})
        elif t in ("relapse", "next_therapy", "death"):
            out_events.append({"type": t, "day": s0})
    return {
        "patient": {
            "id": p["patient_id"],
            "age_years": p["age_years"],
            "sex": p["sex"],
            "disease": p["disease"],
            "disease_status": p["disease_status"],
            "prior_hct": prior,
            "stored_cells": {"autologous": bool(p["stored_autologous_cells"])},
        },
        "product": {"name": p["product"]},
        "lymphodepletion": {
            "regimen": p["lymphodepletion"],
            "start_day": day_of(p["ld_start_date"]),
        },
        "infusion_date": infusion.isoformat(),
        "baseline_labs": [r for r in lab_rows if r["day"] < 0],
        "labs": [r for r in lab_rows if r["day"] >= 0],
        "events": out_events,
        "last_followup_day": day_of(p["last_followup_date"]),
    }


def _pool_size(n: int) -> int:
    """Synthetic patients to choose ``n`` courses from: 40 per course for a small demo (every
    phenotype and special case shows), then 2.5 more per course (about half the pool has labs
    beyond day 100), so that 10,000 courses take seconds, not hours."""
    return max(400, 40 * n) if n <= 100 else 4000 + (5 * (n - 100)) // 2


def _pick_courses(cand: pl.DataFrame, wishes: list[pl.Expr], n: int) -> list[str]:
    """``n`` patient ids: the first candidate of each wish, then the three recovery phenotypes
    in turn, then the rest in order (linear in the pool: each phenotype's candidates are walked
    once, skipping those already picked)."""
    picks: list[str] = []
    picked: set[str] = set()

    def take(pid: str) -> None:
        picks.append(pid)
        picked.add(pid)

    for wish in wishes:
        if len(picks) >= n:
            return picks
        rows = cand.filter(wish & ~pl.col("patient_id").is_in(picks))
        if rows.height:
            take(rows["patient_id"][0])
    queues = [list(cand.filter(w)["patient_id"]) for w in wishes[:3]]
    heads = [0, 0, 0]
    for k in range(len(wishes), len(wishes) + 3 * n):
        if len(picks) >= n:
            break
        q = k % 3
        while heads[q] < len(queues[q]) and queues[q][heads[q]] in picked:
            heads[q] += 1
        if heads[q] < len(queues[q]):
            take(queues[q][heads[q]])
    for pid in cand["patient_id"]:  # a pool without enough of each kind: fill in order
        if len(picks) >= n:
            break
        if pid not in picked:
            take(pid)
    return picks[:n]


def generate_courses(n: int, seed: int) -> list[Course]:
    """``n`` full synthetic courses (validated ``Course`` models; see
    ``generate_course_documents``)."""
    return [
        parse_course(doc, source=f"synthetic course {doc['patient']['id']}")
        for doc in generate_course_documents(n, seed)
    ]


def _block_pool(n: int, block: int) -> tuple[int, int, int]:
    """(random stream, pool size, first patient number) of block ``block`` of courses. Block 0
    is the demo's one pool; a large load draws blocks 1, 2, ... of at most 1,000 courses each,
    one per task of its worker processes (pool: 3 per course, numbers 100,000 apart)."""
    if block == 0:
        return _COURSE_BLOCK, _pool_size(n), 1
    return _COURSE_BLOCK + block, max(400, 3 * n), block * 100_000 + 1


def generate_course_documents(n: int, seed: int, block: int = 0) -> list[dict[str, Any]]:
    """``n`` full synthetic courses as course JSON documents (not yet validated: a bulk load
    validates each once, in its worker) from the same generator; ``block`` > 0 draws the
    ``block``-th of the independent pools a large load is cut into (``_block_pool``).

    Chosen from a pool of synthetic patients with labs beyond day 100 so that every grade can be
    shown: the recovery phenotypes in turn (quick, intermittent, aplastic: at least one of each
    when ``n >= 3``), then a child with B-ALL, a patient with myeloma, a stem cell boost and a
    TPO-receptor agonist and an IEC-HS course where the pool has them (an IEC-HS patient's marrow,
    which cohort tables cannot carry, is a ``bone_marrow`` event here). Deterministic for ``seed``.
    """
    if n < 1:
        raise ValueError("ask for at least one course")
    stream, size, first = _block_pool(n, block)
    pool = generate_block(seed, stream, size, first, 4, prefix="SYNC")
    graded = grade_cohort(block_frames(pool), Settings())
    last_lab = pool.labs.group_by("patient_id").agg(pl.col("day").max().alias("last_lab"))
    cand = (
        pool.truth.drop("phenotype")
        .join(graded.select("patient_id", "phenotype"), on="patient_id")
        .join(last_lab, on="patient_id")
        .join(pool.patients.select("patient_id", "disease", "age_years"), on="patient_id")
        .filter(pl.col("last_lab") >= 100)
    )
    wishes = [
        pl.col("phenotype") == QUICK,
        pl.col("phenotype") == INTERMITTENT,
        pl.col("phenotype") == APLASTIC,
        pl.col("paediatric") & (pl.col("age_years") < 18),
        pl.col("disease") == "MM",
        pl.col("boosted"),
        pl.col("tpo_ra"),
        pl.col("iec_hs"),
    ]
    picks = _pick_courses(cand, wishes, n)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), stream, 1]))
    chosen = pl.col("patient_id").is_in(picks)
    patients = {k[0]: f for k, f in pool.patients.filter(chosen).partition_by(
        "patient_id", as_dict=True).items()}  # fmt: skip
    labs = {k[0]: f for k, f in pool.labs.filter(chosen).partition_by(
        "patient_id", as_dict=True).items()}  # fmt: skip
    events = {k[0]: f for k, f in pool.events.filter(chosen).partition_by(
        "patient_id", as_dict=True).items()}  # fmt: skip
    marrows = dict(
        pool.truth.filter(chosen & pl.col("iec_hs_marrow_day").is_not_null())
        .select("patient_id", pl.struct("iec_hs_marrow_day", "iec_hs_haemophagocytosis"))
        .iter_rows()
    )
    docs = []
    for pid in picks:
        p = patients[pid].row(0, named=True)
        docs.append(
            _course_dict(
                p, labs.get(pid, pool.labs.clear()), events.get(pid, pool.events.clear()), rng
            )
        )
        if pid in marrows:
            m = marrows[pid]
            docs[-1]["events"].append(
                {
                    "type": "bone_marrow",
                    "day": m["iec_hs_marrow_day"],
                    "haemophagocytosis": m["iec_hs_haemophagocytosis"],
                }
            )
    return docs
