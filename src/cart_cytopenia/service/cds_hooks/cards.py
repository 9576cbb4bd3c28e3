"""The cards that say what cart-cytopenia could not do: data unavailable, conflicting or
inconsistent, an order not checked, an infusion still to come. Guidance cards themselves are
made by ``io.fhir_cards.patient_view_cards``; order-check cards by ``order_checks``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cart_cytopenia.grading.assessment import Assessment
from cart_cytopenia.io.fhir_cards import md_text, message_card
from cart_cytopenia.io.fhir_draft_orders import MedicationOrder, medication_key
from cart_cytopenia.io.fhir_import import FhirImport

Links = list[dict[str, Any]]


def conflicting_versions_card(problems: Sequence[object], links: Links) -> dict[str, Any]:
    """The record sends one resource in versions that differ: nothing is assessed."""
    detail = "\n".join(
        [
            "The record sends one resource in versions that differ, and nothing says "
            "which is current, so **no cytopenia guidance is shown**:",
            "",
            *[f"- {md_text(str(p))}" for p in problems[:15]],
        ]
    )
    title = "cart-cytopenia cannot assess this record: conflicting versions of a resource"
    return message_card(title, detail, "warning", "data-quality", links)


def inconsistent_course_card(
    message: str, problems: Sequence[object], links: Links
) -> dict[str, Any]:
    """A CAR-T infusion is in the record, but its data do not make a course to assess."""
    detail = "\n".join(
        [
            "The record has a CAR T-cell infusion, but its data do not make a course "
            "cart-cytopenia can assess, so **no cytopenia guidance is shown**:",
            "",
            f"- {message}",
            *[f"- {p}" for p in problems[:15]],
        ]
    )
    return message_card(
        "cart-cytopenia cannot assess this CAR-T course: the record's data are inconsistent",
        detail,
        "warning",
        "data-quality",
        links,
    )


def planned_infusion_card(
    infusion_date: object, days_ahead: int, a: Assessment, links: Links
) -> dict[str, Any]:
    """Before the infusion: the baseline CAR-HEMATOTOX risk, or why it cannot be told yet."""
    h = a.hematotox
    if h.risk and h.score is not None:
        risk = f"CAR-HEMATOTOX {h.risk} risk ({h.score}/{h.max_score})"
    elif h.risk:
        risk = f"CAR-HEMATOTOX {h.risk} risk ({h.points_counted} points from the labs given)"
    else:
        risk = "CAR-HEMATOTOX cannot be told yet (baseline labs missing)"
    return message_card(
        f"CAR-T infusion planned on {infusion_date} (in {days_ahead} days): {risk}",
        "\n".join(
            [
                f"Baseline risk of haematotoxicity from the labs before lymphodepletion: {risk}.",
                *(f"- missing: {m}" for m in h.missing),
                "",
                f"_{a.based_on.software}; rules {'; '.join(a.based_on.rule_tables)}._",
            ]
        ),
        "info",
        "car-hematotox-score",
        links,
    )


def unavailable_card(unavailable: Sequence[str], links: Links) -> dict[str, Any]:
    """The FHIR server could not give the data needed: nothing is assessed."""
    return message_card(
        "cart-cytopenia could not read this patient's record: no cytopenia guidance shown",
        "\n".join(
            [
                "The data needed could not be retrieved from the EHR's FHIR server, so "
                "**nothing was assessed**. Missing data are never taken as normal.",
                "",
                *[f"- {u}" for u in unavailable],
            ]
        ),
        "warning",
        "data-unavailable",
        links,
    )


def unchecked_order_card(
    order: MedicationOrder, links: Links, unreadable: Mapping[str, str]
) -> dict[str, Any]:
    """The info card for a draft order that could not be checked, saying why."""
    what = (
        "could not read a draft order"
        if not order.readable
        else "could not identify the medication of a draft order"
    )
    name = f" ({md_text(order.name)})" if order.name else ""
    key = medication_key(order.resource)
    why = unreadable.get(key) if key else None
    server = f" The FHIR server could not give {key}: {why}." if why else ""
    return message_card(
        f"cart-cytopenia {what}, so it was not checked",
        f"{order.reference}{name}: {md_text(order.problem or '')}.{server}\n\nThe order checks for "
        "GM-CSF, G-CSF, TPO-receptor agonists and myelosuppressive drugs did not run for this "
        "order; check it against the patient's cytopenia guidance yourself.",
        "info",
        "data-quality",
        links,
    )


def import_notes(result: FhirImport | None) -> list[str]:
    """What the import left out or warned about, as notes under the guidance cards."""
    if result is None:
        return []
    notes = []
    if result.unmapped:
        top = list(result.unmapped_by_reason().items())[:4]
        notes.append(
            f"{len(result.unmapped)} EHR resource(s) were not used: "
            + "; ".join(f"{n} × {r}" for r, n in top)
            + "."
        )
    for w in result.warnings[:5]:
        notes.append(f"Import: {w.message}.")
    return notes
