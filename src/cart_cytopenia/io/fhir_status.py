"""The ``status`` codes FHIR R4 allows for the resources cart-cytopenia reads.

``status`` of these resources is bound to a value set with strength *required*: a code outside it
makes the resource invalid FHIR. The ``fhir.resources`` models check only that a code is a code,
so the importer checks the value set here and reports e.g. a Procedure with ``status: done`` as
invalid FHIR, not as a valid procedure it chose to leave out.

Source: HL7 FHIR R4 (4.0.1) resource definitions, binding of each ``status`` element:
Observation (observation-status), Procedure (event-status), MedicationRequest
(medicationrequest-status), MedicationAdministration (medication-admin-status),
MedicationStatement (medication-statement-status).
"""

from __future__ import annotations

from typing import Any

REQUIRED_STATUS: dict[str, tuple[str, ...]] = {
    "Observation": (
        "registered",
        "preliminary",
        "final",
        "amended",
        "corrected",
        "cancelled",
        "entered-in-error",
        "unknown",
    ),
    "Procedure": (
        "preparation",
        "in-progress",
        "not-done",
        "on-hold",
        "stopped",
        "completed",
        "entered-in-error",
        "unknown",
    ),
    "MedicationRequest": (
        "active",
        "on-hold",
        "cancelled",
        "completed",
        "entered-in-error",
        "stopped",
        "draft",
        "unknown",
    ),
    "MedicationAdministration": (
        "in-progress",
        "not-done",
        "on-hold",
        "completed",
        "entered-in-error",
        "stopped",
        "unknown",
    ),
    "MedicationStatement": (
        "active",
        "completed",
        "entered-in-error",
        "intended",
        "stopped",
        "on-hold",
        "unknown",
        "not-taken",
    ),
}


def invalid_status(resource_type: str, status: Any) -> str | None:
    """Why ``status`` is not a valid code for ``resource_type`` (None when it is, or when the
    resource type has no required status binding read here)."""
    allowed = REQUIRED_STATUS.get(resource_type)
    if allowed is None or status is None or status in allowed:
        return None
    return (
        f"status {status!r} is not in the value set FHIR R4 requires for {resource_type}.status "
        f"({' | '.join(allowed)})"
    )


__all__ = ["REQUIRED_STATUS", "invalid_status"]
