"""Exception and warning types of cart-cytopenia, in one place.

Errors (something cannot be done; nothing is half-loaded)::

    CartCytopeniaError
    ├── InputError                  bad input of any kind, with where and how to fix
    │   ├── ParseError              a file or document cannot be parsed at all
    │   ├── ConflictError           one record (same id) given twice with different content
    │   ├── SchemaError             a field is missing, of the wrong type or out of its domain
    │   ├── UnitError               unknown unit, or a unit that does not fit the analyte
    │   ├── ImplausibleValueError   a value outside the physiological range (names the likely mix-up)
    │   ├── UnknownAnalyteError     an analyte name or LOINC code that is not in the catalogue
    │   └── TimelineError           dates that contradict each other (e.g. before birth)
    ├── RuleTableError              a rule table is malformed (bands overlap, gap, unknown unit)
    ├── SettingsError               institutional settings are invalid
    └── EhrAccessError              the EHR refused or failed (SMART launch, its FHIR server)
        └── TokenRefusedError       the EHR's FHIR server refused the access token (HTTP 401)

Warnings (valid but questionable; carried inside results, also emitted as Python warnings
only where a library user asked for them)::

    CartCytopeniaWarning
    ├── ValidatedSettingWarning     a score used outside the setting it was validated in
    └── DataQualityWarning          gaps, duplicates or other limits of the data

Errors are translated to RFC 9457 problem details or a FHIR OperationOutcome only at the
boundary (service / io), never here.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Location:
    """Where an input problem is: patient, file row, field. All optional."""

    patient_id: str | None = None
    row: int | None = None
    field: str | None = None
    source: str | None = None

    def describe(self) -> str:
        parts = []
        if self.source:
            parts.append(self.source)
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.patient_id is not None:
            parts.append(f"patient {self.patient_id}")
        if self.field:
            parts.append(f"field '{self.field}'")
        return ", ".join(parts)


class CartCytopeniaError(Exception):
    """Base class of every error raised by cart-cytopenia."""


@dataclass
class Problem:
    """One problem found in an input: message plus where it is."""

    message: str
    location: Location = field(default_factory=Location)
    kind: str = "SchemaError"  # name of the InputError subclass this problem belongs to

    def __str__(self) -> str:
        where = self.location.describe()
        return f"{where}: {self.message}" if where else self.message


class InputError(CartCytopeniaError):
    """Bad input. Carries every problem found (not just the first) and where each one is."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        self.problems: list[Problem] = problems or [Problem(message)]
        self.message = message
        super().__init__(self._render())

    def _render(self) -> str:
        if len(self.problems) == 1 and str(self.problems[0]).endswith(self.message):
            return str(self.problems[0])
        # the first 20 problems, then the counts in all ("... 410 rows with ... in all"), which
        # are never among the problems left out
        details = [p for p in self.problems if not p.message.startswith("... ")]
        totals = [p for p in self.problems if p.message.startswith("... ")]
        lines = [self.message, *(f"  - {p}" for p in details[:20])]
        if len(details) > 20:
            lines.append(f"  ... and {len(details) - 20} more")
        lines += [f"  {p}" for p in totals]
        return "\n".join(lines)


class ParseError(InputError):
    """A file or document cannot be parsed at all."""


class ConflictError(InputError):
    """The same record (e.g. a FHIR resource with the same type and id) given more than once
    with different content, and nothing says which version is right."""


class SchemaError(InputError):
    """A field is missing, has the wrong type, or is outside its domain."""


class UnitError(InputError):
    """Unknown unit, or a unit that does not fit the analyte."""


class ImplausibleValueError(InputError):
    """A value outside the physiological range; the message names the likely unit mix-up."""


class UnknownAnalyteError(InputError):
    """An analyte name or LOINC code that is not in the catalogue."""


class TimelineError(InputError):
    """Dates that contradict each other (event before birth, end before start ...)."""


class RuleTableError(CartCytopeniaError):
    """A rule table is malformed: bands overlap or leave a gap, a unit is unknown, a field missing."""


class SettingsError(CartCytopeniaError):
    """Institutional settings are invalid."""


class EhrAccessError(CartCytopeniaError):
    """The EHR refused or failed: a SMART launch that cannot be completed, or its FHIR server
    not answering. The message says what failed and never holds patient data."""


class TokenRefusedError(EhrAccessError):
    """The EHR's FHIR server refused the access token (expired or revoked): refresh, retry."""


class CartCytopeniaWarning(UserWarning):
    """Base class of warnings: valid but questionable."""


class ValidatedSettingWarning(CartCytopeniaWarning):
    """A score or rule is applied outside the population or timing it was validated in."""


class DataQualityWarning(CartCytopeniaWarning):
    """Gaps, duplicates or other limits of the data that qualify a result."""
