"""The CDS services offered (discovery) and the FHIR queries they ask the EHR to prefetch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cart_cytopenia.io.fhir_codes import codes

PATIENT_VIEW = "cart-cytopenia-patient-view"
ORDER_SELECT = "cart-cytopenia-order-select"
ORDER_SIGN = "cart-cytopenia-order-sign"


def prefetch_templates() -> dict[str, str]:
    """The FHIR queries the services ask the EHR to prefetch (restricted to 2.0 prefetch rules)."""
    loinc = codes().system("loinc")
    from cart_cytopenia.domain.analytes import catalogue

    analyte_codes = [c for a in catalogue().analytes for c in a.loinc]
    # panels too: a blood count may be one Observation whose components are the analytes
    lab_codes = ",".join(f"{loinc}|{c}" for c in [*analyte_codes, *codes().lab_panels])
    vitals = ",".join(
        f"{loinc}|{c}" for c in sorted(codes().body_temperature | codes().body_weight)
    )
    p = "{{context.patientId}}"
    return {
        "patient": f"Patient/{p}",
        "conditions": f"Condition?patient={p}",
        "labs": f"Observation?patient={p}&code={lab_codes}",
        "vitals": f"Observation?patient={p}&code={vitals}",
        "medicationRequests": f"MedicationRequest?patient={p}",
        "medicationAdministrations": f"MedicationAdministration?patient={p}",
        "procedures": f"Procedure?patient={p}",
    }


USAGE = (
    "For patients after a CAR T-cell infusion: the infusion must be in the record as a Procedure "
    "(or a MedicationAdministration of the CAR-T product). Without it the service returns no "
    "cards. Labs LOINC-coded with UCUM units. The service supports clinicians; it never orders "
    "anything."
)


@dataclass(frozen=True)
class ServiceDef:
    id: str
    hook: str
    title: str
    description: str

    def discovery(self) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "title": self.title,
            "description": self.description,
            "id": self.id,
            "prefetch": prefetch_templates(),
            "usageRequirements": USAGE,
        }


SERVICES = {
    s.id: s
    for s in (
        ServiceDef(
            PATIENT_VIEW,
            "patient-view",
            "Cytopenias after CAR-T",
            "Grades cytopenias after CAR T-cell therapy (CTCAE, EHA/EBMT ICAHT, CAR-HEMATOTOX, "
            "recovery phenotype) and shows the work-up and management to consider following "
            "Jain, Olson & Locke (Blood 2023), each with its rationale and source.",
        ),
        ServiceDef(
            ORDER_SELECT,
            "order-select",
            "Growth factor and TPO-RA orders after CAR-T",
            "Warns when a selected order conflicts with the approach to cytopenias after CAR-T "
            "(GM-CSF; G-CSF during active CRS without infection; a TPO-receptor agonist where "
            "its criteria are not met) and suggests the alternative.",
        ),
        ServiceDef(
            ORDER_SIGN,
            "order-sign",
            "Growth factor and TPO-RA orders after CAR-T (signing)",
            "The order-select checks again when orders are signed.",
        ),
    )
}
