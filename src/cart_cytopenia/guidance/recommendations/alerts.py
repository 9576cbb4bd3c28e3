"""Alerts: things recorded in the course that go against the review's approach.

(The TPO-RA alerts live with the TPO-RA rules, the PJP alert with prophylaxis.)
"""

from __future__ import annotations

import re

from cart_cytopenia.domain.catalogues import DrugClass
from cart_cytopenia.guidance.context import Context, drug_alternative
from cart_cytopenia.guidance.registry import Triggered, trigger


@trigger("alert.gmcsf-given")
def gmcsf_given(ctx: Context) -> Triggered | None:
    meds = ctx.meds_recent(DrugClass.GMCSF, ctx.t.whole("alert_lookback_days"))
    meds = [m for m in meds if m.end_day is None or m.end_day >= 0]
    if not meds:
        return None
    m = meds[0]
    when = f"from day {m.start}" + (
        f" to day {m.end_day}" if m.end_day is not None else ", ongoing"
    )
    return Triggered(
        rationale=f"{m.drug_id} {when}.",
        inputs={"day": ctx.day, "drug": m.drug_id, "start_day": m.start, "end_day": m.end_day},
        values={"drug": m.drug_id, "start": m.start},
    )


@trigger("alert.gcsf-during-crs")
def gcsf_during_crs(ctx: Context) -> Triggered | None:
    if not (ctx.crs_active and ctx.gcsf_active) or ctx.severe_infection_active:
        return None
    meds = ctx.meds_active(DrugClass.GCSF)
    m = min(meds, key=lambda x: x.start)
    return Triggered(
        rationale=(
            f"{m.drug_id} from day {m.start} while CRS is active (since day {ctx.active_crs_start}); "
            "no severe infection recorded."
        ),
        inputs={
            "day": ctx.day,
            "drug": m.drug_id,
            "gcsf_start_day": m.start,
            "crs_start_day": ctx.active_crs_start,
            "severe_infection_active": False,
        },
        values={"drug": m.drug_id, "start": m.start},
    )


@trigger("alert.gcsf-during-iec-hs")
def gcsf_during_iechs(ctx: Context) -> Triggered | None:
    s = ctx.iechs
    if not (s.suspected and ctx.gcsf_active):
        return None
    m = min(ctx.meds_active(DrugClass.GCSF), key=lambda x: x.start)
    return Triggered(
        rationale=(
            f"{m.drug_id} from day {m.start}; IEC-HS {s.level_text()} ({', '.join(s.features())}). "
            "Haemophagocytosis has been reported to worsen with G-CSF (review ref 17): discuss "
            "whether to continue."
        ),
        inputs={"day": ctx.day, "drug": m.drug_id, "gcsf_start_day": m.start, **s.as_inputs()},
        values={"drug": m.drug_id, "start": m.start, "level": s.level_text()},
    )


@trigger("alert.myelosuppressive-drug")
def myelosuppressive_drug(ctx: Context) -> Triggered | None:
    if not ctx.any_cytopenia:
        return None
    flagged = [
        (m, alt) for m in ctx.myelosuppressive_active if (alt := drug_alternative(m)) is not None
    ]
    if not flagged:
        return None
    alt = flagged[0][1]
    ids = list(dict.fromkeys(m.drug_id for m, _ in flagged))  # one mention per drug
    listed = "; ".join(f"{m.drug_id} from day {m.start} (alternative: {a})" for m, a in flagged)
    return Triggered(
        rationale=f"{listed}. {ctx.describe_cytopenias()[0].upper()}{ctx.describe_cytopenias()[1:]}.",
        inputs={
            "day": ctx.day,
            "drugs": [m.drug_id for m, _ in flagged],
            "alternatives": [a for _, a in flagged],
            "cytopenic_lineages": ctx.cytopenic_lineages,
        },
        values={
            "drug": _drug_list(ids),
            "alternative": _short(alt) if len(ids) == 1 else "alternatives (see rationale)",
        },
    )


def _drug_list(ids: list[str], max_chars: int = 50) -> str:
    """The drugs for the one-line summary: all of them when short, else the first and a count."""
    text = ", ".join(ids)
    return text if len(text) <= max_chars else f"{ids[0]} and {len(ids) - 1} more"


def _short(alternative: str) -> str:
    """The alternative without parentheses and advice clauses, for the one-line summary."""
    return re.sub(r" \([^)]*\)", "", alternative).split(", per ")[0]
