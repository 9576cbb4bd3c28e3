"""Load and check the guidance tables (``guidance/tables/*.toml``).

``recommendations.toml`` holds one entry per recommendation of the review (quote, evidence,
citation, urgency, summary templates, trigger in words); ``thresholds.toml`` holds every number
the triggers compare with that is not an institutional setting, each with its unit and source.
Both open with a ``[meta]`` header (id, title, version, source, transcribed), like the grading
tables in ``rules/tables``. Problems are reported as ``RuleTableError`` when first loaded.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import ValidationError

from cart_cytopenia.errors import RuleTableError
from cart_cytopenia.guidance.model import RecommendationSpec
from cart_cytopenia.rules.tables import RuleMeta, parse_meta, read_table

PHASES = ("early", "prolonged", "late")


def _read(name: str) -> dict[str, Any]:
    return read_table("cart_cytopenia.guidance", name)


_meta = parse_meta


@dataclass(frozen=True)
class RecommendationTable:
    meta: RuleMeta
    specs: tuple[RecommendationSpec, ...]

    def spec(self, rec_id: str) -> RecommendationSpec:
        for s in self.specs:
            if s.id == rec_id:
                return s
        raise KeyError(rec_id)


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@cache
def recommendations() -> RecommendationTable:
    name = "recommendations.toml"
    raw = _read(name)
    meta = _meta(raw, name)
    vocabulary = tuple(meta.extra.get("evidence_vocabulary", ()))
    specs: list[RecommendationSpec] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw.get("recommendation", [])):
        where = f"{name} recommendation #{i + 1} ({entry.get('id', '?')})"
        try:
            spec = RecommendationSpec.model_validate(entry)
        except ValidationError as exc:
            lines = "; ".join(
                f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise RuleTableError(f"{where}: {lines}") from None
        if spec.id in seen:
            raise RuleTableError(f"{where}: duplicate id")
        seen.add(spec.id)
        if not spec.id.startswith(spec.kind + ".") and not (
            spec.kind == "alert" and spec.id.startswith("alert.")
        ):
            raise RuleTableError(f"{where}: id must start with its kind ('{spec.kind}.')")
        if "default" not in spec.summaries:
            raise RuleTableError(f"{where}: summaries needs a 'default' template")
        if vocabulary and not spec.evidence.startswith(vocabulary):
            raise RuleTableError(
                f"{where}: evidence {spec.evidence!r} must start with one of {', '.join(vocabulary)}"
            )
        if not spec.quote.strip() or not spec.citation.strip():
            raise RuleTableError(f"{where}: quote and citation are required")
        specs.append(spec)
    if not specs:
        raise RuleTableError(f"{name} holds no recommendations")
    return RecommendationTable(meta, tuple(specs))


@dataclass(frozen=True)
class Threshold:
    name: str
    value: float
    unit: str
    source: str


@dataclass(frozen=True)
class ThresholdTable:
    meta: RuleMeta
    thresholds: dict[str, Threshold]
    weights: dict[str, int]
    phase_priors: dict[str, dict[str, int]]
    myeloid_lesions: tuple[str, ...] = ()
    myeloid_lesions_source: str = ""

    def num(self, name: str) -> float:
        try:
            return self.thresholds[name].value
        except KeyError:
            raise RuleTableError(f"guidance threshold {name!r} is not in thresholds.toml") from None

    def whole(self, name: str) -> int:
        return int(self.num(name))

    def weight(self, name: str) -> int:
        try:
            return self.weights[name]
        except KeyError:
            raise RuleTableError(
                f"differential weight {name!r} is not in thresholds.toml"
            ) from None

    def prior(self, cause: str, phase: str | None) -> int:
        try:
            priors = self.phase_priors[cause]
        except KeyError:
            raise RuleTableError(f"no [phase_prior.{cause}] in thresholds.toml") from None
        return priors.get(phase or "early", 0)


@cache
def thresholds() -> ThresholdTable:
    name = "thresholds.toml"
    raw = _read(name)
    meta = _meta(raw, name)
    out: dict[str, Threshold] = {}
    for key, entry in raw.get("threshold", {}).items():
        try:
            out[key] = Threshold(
                key, float(entry["value"]), str(entry["unit"]), str(entry["source"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RuleTableError(
                f"{name} [threshold.{key}]: needs value, unit and source ({exc})"
            ) from None
    weights = {k: int(v) for k, v in raw.get("weight", {}).items()}
    priors: dict[str, dict[str, int]] = {}
    for cause, by_phase in raw.get("phase_prior", {}).items():
        unknown = set(by_phase) - set(PHASES)
        if unknown:
            raise RuleTableError(f"{name} [phase_prior.{cause}]: unknown phase {sorted(unknown)}")
        priors[cause] = {p: int(by_phase.get(p, 0)) for p in PHASES}
    lesions = raw.get("myeloid_lesions", {})
    patterns = tuple(str(p) for p in lesions.get("patterns", ()))
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise RuleTableError(
                f"{name} [myeloid_lesions]: bad pattern {pattern!r} ({exc})"
            ) from None
    return ThresholdTable(meta, out, weights, priors, patterns, str(lesions.get("source", "")))
