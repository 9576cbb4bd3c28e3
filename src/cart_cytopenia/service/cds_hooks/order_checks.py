"""Order checks of order-select / order-sign: does a draft order conflict with the approach to
cytopenias after CAR-T (GM-CSF; G-CSF during active CRS without infection; a TPO-receptor agonist
where its criteria are not met; a myelosuppressive drug in a cytopenic patient)?

The checks rely on the guidance engine's own alerts (guidance/tables/recommendations.toml): the
draft drug is added to the course as started today and the alerts that appear because of it are
the conflicts. TPO-RA criteria are checked on the course without the draft.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cart_cytopenia.domain.catalogues import DrugClass, resolve_drug
from cart_cytopenia.domain.course import Course, Medication
from cart_cytopenia.grading.assessment import Assessment
from cart_cytopenia.io.fhir_cards import INDICATOR, md_text, override_reasons, short
from cart_cytopenia.io.fhir_codes import codes
from cart_cytopenia.io.fhir_draft_orders import MedicationOrder
from cart_cytopenia.rules.settings import Settings


def _delete_action(order: MedicationOrder, what: str) -> dict[str, Any]:
    return {
        "type": "delete",
        "description": f"Remove the draft {what} order",
        "resourceId": order.reference,
    }


def _draft_filgrastim(patient_id: str) -> dict[str, Any]:
    drug = resolve_drug("filgrastim")
    rx = codes().system("rxnorm")
    coding = [
        {"system": rx, "code": c, "display": "filgrastim"}
        for c in (drug.rxnorm[:1] if drug else ())
    ]
    res: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "proposal",
        "medicationCodeableConcept": {"coding": coding, "text": "filgrastim (G-CSF)"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "note": [
            {
                "text": "Proposed by cart-cytopenia instead of GM-CSF; dose and schedule per "
                "institutional protocol."
            }
        ],
    }
    return {
        "type": "create",
        "description": "Draft a filgrastim (G-CSF) order instead",
        "resource": res,
    }


@dataclass(frozen=True)
class OrderRule:
    """Which guidance alert makes a draft order of a drug class a conflict, and what to suggest."""

    drug_class: DrugClass
    alert: str
    summary: str  # {drug}
    remove_label: str  # {drug}
    offer_gcsf: bool = False


ORDER_RULES = (
    OrderRule(
        DrugClass.GMCSF,
        "alert.gmcsf-given",
        "Avoid GM-CSF ({drug}) after CAR-T: use G-CSF if a growth factor is needed",
        "Remove the {drug} order",
        offer_gcsf=True,
    ),
    OrderRule(
        DrugClass.GCSF,
        "alert.gcsf-during-crs",
        "G-CSF ({drug}) during ongoing CRS without severe infection: the review withholds it",
        "Remove the {drug} order; reconsider when CRS has resolved or if severe infection develops",
    ),
    OrderRule(
        DrugClass.TPO_RA,
        "alert.paediatric-tpo-ra",
        "TPO-receptor agonist ({drug}) in a child: usually deferred after CAR-T",
        "Remove the {drug} order",
    ),
    OrderRule(
        DrugClass.MYELOSUPPRESSIVE,
        "alert.myelosuppressive-drug",
        "{drug} is myelosuppressive and the patient is cytopenic: consider an alternative",
        "Remove the {drug} order and choose an alternative",
    ),
)
TPO_RA_START = "management.tpo-ra.start"
GCSF_START = "management.gcsf.start"
CHECKED_CLASSES = frozenset(r.drug_class for r in ORDER_RULES)


def checked(order: MedicationOrder) -> bool:
    """Is the draft order's drug of a class the order checks look at?"""
    return order.drug is not None and bool(order.drug.classes & CHECKED_CLASSES)


def with_draft(course: Course, order: MedicationOrder, day: int) -> Course:
    """``course`` with the draft order's drug added as started on ``day`` (ongoing)."""
    assert order.drug is not None
    hypothetical = course.model_copy(deep=True)
    hypothetical.events.append(Medication(drug=order.drug.id, start_day=day, purpose="treatment"))
    return hypothetical


def _conflict_card(
    order: MedicationOrder,
    summary: str,
    why: Sequence[str],
    topic: str,
    citation: str | None,
    suggestions: list[dict[str, Any]],
    links: list[dict[str, Any]],
    indicator: str,
) -> dict[str, Any]:
    name = order.name or (order.drug.id if order.drug else "this medication")
    lines = [
        f"**{md_text(summary)}**",
        "",
        *why,
        "",
        f"Draft order: {md_text(name)} ({order.reference}).",
    ]
    if citation:
        lines += ["", f"**Source:** {md_text(citation)}"]
    lines += [
        "",
        "_cart-cytopenia supports clinicians; it never orders anything. A suggestion changes only "
        "the draft orders, which you still review and sign._",
    ]
    card: dict[str, Any] = {
        "summary": short(summary),
        "indicator": indicator,
        "detail": "\n".join(lines),
        "source": {
            "label": short(f"cart-cytopenia · {citation or 'Jain, Olson, Locke, Blood 2023'}", 200),
            "topic": {"system": codes().guidance_system, "code": topic, "display": "order check"},
        },
        "overrideReasons": override_reasons(),
        "links": [dict(link) for link in links],
    }
    if suggestions:
        card["suggestions"] = suggestions
        card["selectionBehavior"] = "at-most-one"
    return card


def order_checks(
    order: MedicationOrder,
    course: Course,
    base: Any,
    evaluate: Callable[..., Any],
    day: int,
    clinical: Settings,
    links: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Warning cards for one draft order (empty when it agrees with the approach)."""
    assert order.drug is not None
    cards: list[dict[str, Any]] = []
    rules = [r for r in ORDER_RULES if r.drug_class in order.drug.classes]
    if rules:
        before = base.ids()
        after = evaluate(with_draft(course, order, day), day, clinical)
        for rule in rules:
            if rule.alert in before or after.item(rule.alert) is None:
                continue
            cards.append(_alert_card(order, rule, after.item(rule.alert), base, course, links))
    if DrugClass.TPO_RA in order.drug.classes and _tpo_ra_not_indicated(course, base, day):
        facts = _tpo_ra_facts(base.assessment, day, clinical)
        cards.append(_tpo_ra_criteria_card(order, facts, links))
    return cards


def _alert_card(
    order: MedicationOrder,
    rule: OrderRule,
    item: Any,
    base: Any,
    course: Course,
    links: list[dict[str, Any]],
) -> dict[str, Any]:
    """The card for an alert that signing the draft order would raise, with its suggestions:
    remove the order, or (GM-CSF, where G-CSF is indicated today) replace it with filgrastim."""
    assert order.drug is not None
    drug = order.drug
    gcsf = base.item(GCSF_START) if rule.offer_gcsf else None
    suggestions: list[dict[str, Any]] = []
    if gcsf is not None:
        suggestions.append(
            {
                "label": f"Replace {drug.id} with filgrastim (G-CSF)",
                "isRecommended": True,
                "actions": [_delete_action(order, drug.id), _draft_filgrastim(course.patient.id)],
            }
        )
    remove = rule.remove_label.format(drug=drug.id)
    if drug.alternative and rule.drug_class == DrugClass.MYELOSUPPRESSIVE:
        remove += f" (e.g. {drug.alternative})"
    suggestions.append({"label": remove, "actions": [_delete_action(order, drug.id)]})
    why = [f"If this order is signed: {md_text(item.summary)}.", "", md_text(item.rationale)]
    if gcsf is not None:
        why += ["", f"Today's guidance: {md_text(gcsf.summary)}."]
    return _conflict_card(
        order,
        rule.summary.format(drug=drug.id),
        why,
        item.id,
        item.citation,
        suggestions,
        links,
        INDICATOR.get(item.urgency, "warning"),
    )


def _tpo_ra_not_indicated(course: Course, base: Any, day: int) -> bool:
    """A new TPO-RA while today's guidance does not include starting one (and none is given)."""
    on_tpo = any(
        m.active_on(day) and DrugClass.TPO_RA in m.classes for m in course.events_of(Medication)
    )
    return not on_tpo and base.item(TPO_RA_START) is None


def _platelet_facts(a: Assessment) -> list[str]:
    """The last platelet count and the platelet transfusions, as the TPO-RA card shows them."""
    plt = next((x for x in a.lineages if x.lineage == "platelets"), None)
    if plt is None:
        return []
    last = (
        f"{plt.last_value:g} ×10⁹/L on day {plt.last_value_day}"
        if plt.last_value is not None
        else "no value"
    )
    facts = [f"- last platelet count: {last}"]
    if plt.transfusion is not None:
        dep = "transfusion-dependent" if plt.transfusion.dependent else "not transfusion-dependent"
        facts.append(
            f"- platelet transfusions: {plt.transfusion.in_window} in the last "
            f"{plt.transfusion.window_days} days ({dep})"
        )
    return facts


def _tpo_ra_facts(a: Assessment, day: int, clinical: Settings) -> list[str]:
    """What the TPO-RA card is based on: the day against the criteria's first day, platelets."""
    first = clinical.tpo_ra.consider_from_day
    return [
        f"- day {day} after CAR-T (criteria from day {first}, institutional setting)",
        *_platelet_facts(a),
    ]


def _tpo_ra_criteria_card(
    order: MedicationOrder, facts: list[str], links: list[dict[str, Any]]
) -> dict[str, Any]:
    """The card for a TPO-RA order when the review's criteria for one are not met today."""
    assert order.drug is not None
    drug = order.drug
    why = [
        "The review considers a thrombopoietin-receptor agonist for prolonged severe "
        "thrombocytopenia needing transfusion well beyond day 30, without another cause, in "
        "patients at high risk of bleeding; counts often recover without it, and it stops "
        "a TPO-RA without response after 4 to 6 weeks. Today's guidance for this patient "
        "does not include starting one.",
        "",
        "**Based on:**",
        *facts,
    ]
    return _conflict_card(
        order,
        f"TPO-receptor agonist ({drug.id}): the review's criteria are not met today",
        why,
        TPO_RA_START,
        "Jain 2023, prolonged cytopenias (TPO-RA); refs 45-47",
        [
            {
                "label": f"Remove the {drug.id} order; continue platelet transfusion support and reassess",
                "actions": [_delete_action(order, drug.id)],
            }
        ],
        links,
        "warning",
    )
