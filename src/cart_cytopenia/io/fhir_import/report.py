"""What an import reports: the courses, and every resource that did not map, with why."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from cart_cytopenia.domain.course import Course
from cart_cytopenia.errors import Problem


@dataclass(frozen=True)
class Unmapped:
    """A resource (or part of one) that did not become part of a course, and why."""

    resource: str  # "Observation/abc" (or the entry location when it has no id)
    reason: str
    source: str = ""  # file / Bundle entry it came from
    group: str = ""  # the reason without the resource's own values, when it holds any

    def __str__(self) -> str:
        where = f" ({self.source})" if self.source else ""
        return f"{self.resource}{where}: {self.reason}"


@dataclass(frozen=True)
class ImportWarning:
    """A choice the importer made on incomplete or conflicting data."""

    resource: str
    message: str

    def __str__(self) -> str:
        return f"{self.resource}: {self.message}"


@dataclass(frozen=True)
class FailedPatient:
    """A patient whose resources do not make a valid course."""

    patient: str
    message: str
    problems: tuple[Problem, ...] = ()

    def __str__(self) -> str:
        lines = [f"Patient/{self.patient}: {self.message}"]
        lines += [f"  - {p}" for p in self.problems[:20]]
        return "\n".join(lines)


@dataclass
class FhirImport:
    """The outcome of an import: courses, and everything that did not map."""

    courses: list[Course] = field(default_factory=list)
    unmapped: list[Unmapped] = field(default_factory=list)
    warnings: list[ImportWarning] = field(default_factory=list)
    failed: list[FailedPatient] = field(default_factory=list)
    resources_read: dict[str, int] = field(default_factory=dict)

    def unmapped_by_reason(self) -> dict[str, int]:
        """Counts of unmapped resources per reason (reasons without resource-specific text)."""
        out: dict[str, int] = defaultdict(int)
        for u in self.unmapped:
            out[u.group or _generic_reason(u.reason)] += 1
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def report(self) -> dict[str, Any]:
        """A JSON-ready report (for the CLI and the API)."""
        return {
            "courses": [c.patient.id for c in self.courses],
            "resources_read": dict(sorted(self.resources_read.items())),
            "unmapped": [
                {"resource": u.resource, "source": u.source, "reason": u.reason}
                for u in self.unmapped
            ],
            "unmapped_by_reason": self.unmapped_by_reason(),
            "warnings": [{"resource": w.resource, "message": w.message} for w in self.warnings],
            "failed": [
                {
                    "patient": f.patient,
                    "message": f.message,
                    "problems": [str(p) for p in f.problems],
                }
                for f in self.failed
            ],
        }


def _generic_reason(reason: str) -> str:
    """A reason as counted in the summary: quoted text (the resource's own: references to a
    patient, values, statuses) masked; the figures of the reason itself (thresholds, grades,
    codes) kept."""
    return re.sub(r"'[^']*'|\"[^\"]*\"", "…", reason)
