"""What is missing from the course, and what that prevents (missing is never normal).

General gaps are listed here; triggers add their own through ``Context.missing`` when a decision
hinges on something not recorded (stored stem cells, bleeding risk, CD4 ...).
"""

from __future__ import annotations

from cart_cytopenia.domain.course import CRS, ICANS
from cart_cytopenia.guidance.context import Context

_PREVENTS = {
    "neutrophils": "G-CSF timing, neutropenia prophylaxis and the neutrophil part of the differential",
    "platelets": "platelet transfusion, TPO-RA and the platelet part of the differential",
    "red_cells": "red cell transfusion and the anaemia part of the differential",
}
_LABEL = {"neutrophils": "ANC", "platelets": "platelet count", "red_cells": "haemoglobin"}


def general_gaps(ctx: Context) -> list[str]:
    out: list[str] = []
    a = ctx.a
    if not a.based_on.lab_days:
        out.append(
            "No blood counts after infusion: cytopenia cannot be assessed (no differential, "
            "transfusion, G-CSF or TPO-RA guidance); enter ANC, platelets and haemoglobin."
        )
    else:
        for lin in a.lineages:
            if lin.last_value is None:
                out.append(
                    f"No {_LABEL[lin.lineage]} up to day {ctx.day}: {_PREVENTS[lin.lineage]} cannot be decided."
                )
            elif lin.last_value_day is not None and ctx.stale(lin.last_value_day):
                out.append(
                    f"The last {_LABEL[lin.lineage]} is from day {lin.last_value_day} "
                    f"({ctx.day - lin.last_value_day} days old): guidance built on it may be out of date."
                )
    if not ctx.course.events:
        out.append(
            "No events recorded (CRS/ICANS, medications, transfusions, infections): CRS status, "
            "prophylaxis coverage, transfusion dependence and drug effects are read as none recorded."
        )
    ongoing_days = ctx.timing.crs_open_read_as_ongoing_days
    for kind, label in ((CRS, "CRS"), (ICANS, "ICANS")):
        for e in ctx.course.events_of(kind):
            if e.end_day is None and ctx.day - e.start > ongoing_days:
                out.append(
                    f"{label} from day {e.start} has no end day: after {ongoing_days} days its end "
                    f"is read as unknown, not ongoing, on day {ctx.day}"
                    + (
                        " (IEC-HS is evaluated; G-CSF is not withheld for it but carries the caveat)"
                        if label == "CRS"
                        else ""
                    )
                    + "; record when it resolved."
                )
    if ctx.age_years is None:
        out.append(
            "Age unknown: the paediatric branch (lineage switch, deferring growth factors, "
            "allo-HCT beyond day 90) cannot be decided."
        )
    if ctx.course.patient.disease_status.value == "unknown" and ctx.prolonged_or_late:
        out.append("Disease status unknown: the likelihood of marrow relapse cannot be weighed.")
    h = a.hematotox
    if h.risk is None and h.missing:
        out.append(
            "CAR-HEMATOTOX incomplete (baseline " + ", ".join(h.missing) + " missing): marrow "
            "reserve before CAR-T cannot be weighed."
        )
    return out
