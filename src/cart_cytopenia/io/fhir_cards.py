"""CDS Hooks 2.0 cards from an assessment and its guidance (docs/interoperability.md).

Card rules (CDS Hooks 2.0, "Card attributes"): ``summary`` one sentence under 140 characters;
``indicator`` ``info`` | ``warning`` | ``critical`` from the guidance urgency; ``detail`` in
GitHub-flavoured Markdown with the rationale, what it was based on and the source; ``source``
with a label (the citation) and a topic (the guidance item id); ``links`` to the patient page;
``overrideReasons`` (each with a display) on cards that ask for action. Optional attributes
without a value are omitted, never null or empty.

This module builds card *templates*: the CDS Hooks service adds a fresh ``uuid`` to every card
and suggestion of every response (``with_uuids``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from cart_cytopenia import __version__
from cart_cytopenia.domain.course import Course
from cart_cytopenia.grading.assessment import Assessment, GradeResult, GradeStatus
from cart_cytopenia.io.fhir_codes import codes, project_coding

SUMMARY_MAX = 139  # "<140 characters"
INDICATOR = {
    "info": "info",
    "consider": "info",
    "action": "warning",
    "warning": "warning",
    "critical": "critical",
}
URGENCY_ORDER = {"critical": 0, "warning": 1, "action": 2, "consider": 3, "info": 4}
PRODUCT_LABEL = "cart-cytopenia"
REVIEW_LABEL = "Jain, Olson, Locke. How I treat cytopenias after CAR T-cell therapy. Blood 2023"

OVERRIDE_REASONS = (
    ("override-already-addressed", "Already addressed"),
    ("override-clinical-judgement", "Clinical judgement: not appropriate for this patient"),
    ("override-data-incorrect", "The data shown are incorrect or incomplete"),
    ("override-patient-preference", "Patient preference"),
)


def short(text: str, limit: int = SUMMARY_MAX) -> str:
    """``text`` on one line, cut at a word boundary to at most ``limit`` characters."""
    one = " ".join(text.split())
    if len(one) <= limit:
        return one
    cut = one[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:-") + "…"


_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
_QUOTE_START = re.compile(r"(?m)^(\s*)>")


def md_text(text: str) -> str:
    """Plain text made safe inside a card's Markdown: no raw HTML, and no HTML entities.

    A card's ``detail`` is GitHub-flavoured Markdown, which EHRs render with raw HTML turned off
    or escaped. HTML entities (``&gt;``) would be escaped again by such a renderer and show as
    "&gt;", so none are written: a ``<`` that could open a tag, comment or autolink gets a
    Markdown backslash escape (``\\<``), as does a ``>`` at a line start (a block quote); every
    other ``<`` and ``>`` ("CD4 > 200/uL", "ANC < 500") is left as written."""
    return _QUOTE_START.sub(r"\1\\>", _TAG_START.sub(r"\\<", text))


def override_reasons() -> list[dict[str, str]]:
    system = codes().project_system
    return [{"system": system, "code": c, "display": d} for c, d in OVERRIDE_REASONS]


def _citation(item: Any) -> tuple[str | None, str | None]:
    """(label, url) of an item's citation, whatever shape the citation has."""
    c = getattr(item, "citation", None)
    if c is None:
        return None, None
    if isinstance(c, str):
        return c, None
    label = None
    for attr in ("short", "label", "text", "reference", "source"):
        v = getattr(c, attr, None)
        if isinstance(v, str) and v:
            label = v
            break
    url = None
    for attr in ("url", "link"):
        v = getattr(c, attr, None)
        if isinstance(v, str) and v.startswith(("https://", "http://")):
            url = v
            break
    doi = getattr(c, "doi", None)
    if url is None and isinstance(doi, str) and doi:
        url = "https://doi.org/" + doi.removeprefix("https://doi.org/")
    return label or str(c), url


def _lines(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, dict):
        return [f"{k}: {v}" for k, v in value.items()]
    if isinstance(value, Iterable):
        return [str(v) for v in value]
    return [str(value)]


def _source(
    label: str | None, url: str | None, topic_code: str, topic_display: str
) -> dict[str, Any]:
    src: dict[str, Any] = {"label": short(f"{PRODUCT_LABEL} · {label or REVIEW_LABEL}", 200)}
    if url:
        src["url"] = url
    src["topic"] = {"system": codes().guidance_system, "code": topic_code, "display": topic_display}
    return src


def item_card(item: Any, links: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One guidance item as a card template."""
    urgency = str(getattr(item, "urgency", "info"))
    kind = str(getattr(item, "kind", "guidance"))
    label, url = _citation(item)
    parts = [f"**{md_text(item.summary)}**", "", md_text(str(getattr(item, "rationale", "") or ""))]
    if getattr(item, "speculative", False):
        parts += ["", "_The review marks this as speculative._"]
    inputs = _lines(getattr(item, "inputs", None))
    if inputs:
        parts += ["", "**Based on:**", *[f"- {md_text(x)}" for x in inputs]]
    evidence = _lines(getattr(item, "evidence", None))
    if evidence:
        parts += ["", "**Evidence:**", *[f"- {md_text(x)}" for x in evidence]]
    if label:
        parts += ["", f"**Source:** {md_text(label)}" + (f" ({url})" if url else "")]
    parts += ["", f"_{PRODUCT_LABEL} {__version__} supports clinicians; it never orders anything._"]
    card: dict[str, Any] = {
        "summary": short(item.summary),
        "indicator": INDICATOR.get(urgency, "info"),
        "detail": "\n".join(parts).strip(),
        "source": _source(label, url, str(item.id), kind),
    }
    if urgency in ("action", "warning", "critical"):
        card["overrideReasons"] = override_reasons()
    if links:
        card["links"] = [dict(link) for link in links]
    return card


def _grade_text(r: GradeResult) -> str:
    if r.status == GradeStatus.CANNOT_GRADE:
        return "cannot grade" + (f" ({r.reason})" if r.reason else "")
    text = "none" if r.status == GradeStatus.NORMAL else f"grade {r.grade}"
    return text + (" (provisional)" if r.provisional else "")


_UNIT_DISPLAY = {
    "/uL": "/µL",
    "10*3/uL": " ×10³/µL",
    "10*9/L": " ×10⁹/L",
    "10*6/uL": " ×10⁶/µL",
    "10*12/L": " ×10¹²/L",
}


def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "no value"
    text = f"{v:,.0f}" if abs(v) >= 100 else f"{v:g}"
    return text + _UNIT_DISPLAY.get(
        unit, " " + unit.replace("u", "µ") if unit.startswith("u") else " " + unit
    )


def summary_card(
    course: Course,
    assessment: Assessment,
    links: Sequence[dict[str, Any]],
    missing_data: Sequence[str] = (),
    extra_items: Sequence[Any] = (),
) -> dict[str, Any]:
    """The assessment as one card: grades, phase and what they were based on."""
    a = assessment
    product = course.product.catalogue_entry()
    pname = product.id if product else course.product.name
    lines = _grades_md(a, pname)
    notes = [*a.notes, *missing_data]
    if notes:
        lines += ["", "**What the data could not support:**", *[f"- {md_text(n)}" for n in notes]]
    lines += _items_md(extra_items)
    b = a.based_on
    days = f"days {b.lab_days[0]}–{b.lab_days[1]}" if b.lab_days else "no labs"
    lines += [
        "",
        f"_Based on {b.n_labs} lab values ({days}) and {b.n_events} events from the EHR; rules: "
        f"{md_text('; '.join(b.rule_tables))}; {b.software}. It supports clinicians; it never orders anything._",
    ]
    card: dict[str, Any] = {
        "summary": _summary(a, pname),
        "indicator": "info",
        "detail": "\n".join(lines),
        "source": _source(None, None, "assessment", "assessment"),
    }
    if links:
        card["links"] = [dict(link) for link in links]
    return card


def _summary(a: Assessment, pname: str) -> str:
    """The card's summary line (< 140 characters): day, product, ANC and the grades called."""
    anc = next((c for c in a.ctcae if c.analyte == "anc"), None)
    bits = [f"Day {a.day} after CAR-T ({pname})"]
    if anc is not None and anc.last_value is not None:
        bits.append(f"ANC {_fmt(anc.last_value, anc.unit)}")
    early = a.early_icaht.result
    if early.status != GradeStatus.CANNOT_GRADE:
        bits.append(f"early ICAHT {early.grade or 0}" + (" so far" if early.provisional else ""))
    late = a.late_icaht.result
    if a.day > 30 and late.status != GradeStatus.CANNOT_GRADE:
        bits.append(f"late ICAHT {late.grade or 0}" + (" so far" if late.provisional else ""))
    if a.hematotox.risk:
        bits.append(f"CAR-HEMATOTOX {a.hematotox.risk}")
    if a.phenotype.phenotype:
        bits.append(f"{a.phenotype.phenotype} recovery")
    return short(bits[0] + ": " + ", ".join(bits[1:])) if len(bits) > 1 else short(bits[0])


def _grades_md(a: Assessment, pname: str) -> list[str]:
    """Day and phase, the CTCAE table, ICAHT, CAR-HEMATOTOX, phenotype and active CRS/ICANS."""
    rows = ["| | Last value (day) | Current | Worst since day 0 |", "|---|---|---|---|"]
    for c in a.ctcae:
        when = f" (day {c.last_value_day})" if c.last_value_day is not None else ""
        rows.append(
            f"| {c.term} | {_fmt(c.last_value, c.unit)}{when} | {_grade_text(c.current)} | {_grade_text(c.worst)} |"
        )
    early = a.early_icaht.result
    late = a.late_icaht.result
    h = a.hematotox
    hx = (
        f"{h.score}/{h.max_score}"
        if h.score is not None
        else f"incomplete ({h.points_counted} points counted)"
    )
    lines = [
        f"**Day {a.day} after CAR-T infusion** ({a.phase or 'before infusion'} phase); product {pname}.",
        "",
        f"CTCAE v{a.ctcae_version}:",
        "",
        *rows,
        "",
        f"- Early ICAHT (day {a.early_icaht.window[0]}–{a.early_icaht.window[1]}): {_grade_text(early)}; "
        f"ANC ≤500/µL for {a.early_icaht.days_anc_le_500} d, ≤100/µL for {a.early_icaht.days_anc_le_100} d.",
        f"- Late ICAHT (day {a.late_icaht.window_start}–{a.late_icaht.window_end}): {_grade_text(late)}.",
        f"- CAR-HEMATOTOX (baseline): {hx}, risk {h.risk or 'cannot be told'}"
        + (f"; missing: {', '.join(h.missing)}" if h.missing else "")
        + ".",
        f"- Neutrophil recovery phenotype: {a.phenotype.phenotype or 'not yet called'}"
        + (
            f" ({md_text(a.phenotype.reason)})"
            if not a.phenotype.phenotype and a.phenotype.reason
            else ""
        )
        + ".",
    ]
    active = [
        n
        for n, on in (("CRS", a.inflammation.crs_active), ("ICANS", a.inflammation.icans_active))
        if on
    ]
    if active:
        lines.append(f"- Active today: {', '.join(active)}.")
    return lines


def _items_md(extra_items: Sequence[Any]) -> list[str]:
    """Guidance items shown on the card: the differential diagnosis, then the others."""
    lines: list[str] = []
    differential = [it for it in extra_items if str(getattr(it, "kind", "")) == "differential"]
    others = [it for it in extra_items if str(getattr(it, "kind", "")) != "differential"]
    for title, group in (("Differential diagnosis", differential), ("Also", others)):
        if not group:
            continue
        lines += ["", f"**{title}:**"]
        for it in group:
            label, _url = _citation(it)
            lines.append(f"- {md_text(it.summary)}" + (f" _({md_text(label)})_" if label else ""))
    return lines


KIND_ORDER = {"alert": 0, "management": 1, "workup": 2, "prophylaxis": 3, "differential": 4}


def patient_view_cards(
    course: Course,
    assessment: Assessment,
    items: Sequence[Any],
    links: Sequence[dict[str, Any]],
    missing_data: Sequence[str] = (),
    max_cards: int = 6,
) -> list[dict[str, Any]]:
    """Cards for patient-view: the assessment, then the items to act on or consider.

    Items of urgency critical / warning / action, and management, work-up and prophylaxis items
    to consider, get a card each (most urgent first, then alerts, management, work-up,
    prophylaxis; at most ``max_cards - 1``). The differential diagnosis and the remaining items
    are listed in the assessment card's detail, so the clinician is not flooded with cards.
    """

    def order(it: Any) -> tuple[int, int, int]:
        rank = getattr(it, "rank", None)
        return (
            URGENCY_ORDER.get(str(getattr(it, "urgency", "info")), 9),
            KIND_ORDER.get(str(getattr(it, "kind", "")), 9),
            rank if isinstance(rank, int) else 99,
        )

    def card_worthy(it: Any) -> bool:
        urgency = str(getattr(it, "urgency", "info"))
        kind = str(getattr(it, "kind", ""))
        return urgency in ("action", "warning", "critical") or (
            urgency == "consider" and kind in ("alert", "management", "workup", "prophylaxis")
        )

    ranked = sorted(items, key=order)
    shown = [it for it in ranked if card_worthy(it)][: max(0, max_cards - 1)]
    rest = [it for it in ranked if not any(it is s for s in shown)]
    cards = [summary_card(course, assessment, links, missing_data, rest)]
    cards += [item_card(it, links) for it in shown]
    return cards


def message_card(
    summary: str,
    detail: str,
    indicator: str = "info",
    topic: str = "data",
    links: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """A card that is not guidance: data unavailable, course cannot be assessed ..."""
    card: dict[str, Any] = {
        "summary": short(summary),
        "indicator": indicator,
        "detail": detail,
        "source": _source(None, None, topic, topic),
    }
    if links:
        card["links"] = [dict(link) for link in links]
    return card


def with_uuids(cards: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of ``cards`` with a fresh uuid on every card and suggestion (templates unchanged)."""
    out = []
    for c in cards:
        card = {"uuid": str(uuid.uuid4()), **{k: v for k, v in c.items() if k != "uuid"}}
        if "suggestions" in c:
            card["suggestions"] = [{**sg, "uuid": str(uuid.uuid4())} for sg in c["suggestions"]]
        out.append(card)
    return out


def project_topic(code: str) -> dict[str, str]:
    """A source.topic Coding from the project code system."""
    c = project_coding(code)
    return {"system": c["system"], "code": c["code"], "display": c["display"]}
