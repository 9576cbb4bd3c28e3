"""MedicationRequest / MedicationAdministration -> medications, the CAR-T product (as
infusion) and lymphodepleting agents."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from cart_cytopenia.domain.catalogues import (
    Drug,
    Product,
    drug_by_rxnorm,
    products,
    resolve_drug,
)
from cart_cytopenia.domain.units import dose_ucum
from cart_cytopenia.io.fhir_import.state import Dated, ImportState, PatientBuilder
from cart_cytopenia.io.fhir_import.values import (
    as_date,
    as_float,
    codings_of,
    match_drug_text,
    match_product_text,
    period_dates,
    texts_of,
    therapy_code_of,
    unidentified_medication,
)
from cart_cytopenia.io.therapy_codes import therapy_codes


class MedicationMapping(ImportState):
    """MedicationRequest / MedicationAdministration -> medications, the CAR-T product (as
    infusion) and lymphodepleting agents."""

    # ---- medications

    def _medication_concept(
        self, res: Any, ref: str
    ) -> tuple[Drug | None, Product | None, str | None, list[str]]:
        """(catalogue drug, CAR-T product, name as written, texts) of a request/administration."""
        cc = res.medicationCodeableConcept
        texts: list[str] = []
        codings: list[tuple[str | None, str | None]] = []
        if cc is not None:
            texts += texts_of(cc)
            codings += codings_of(cc)
        elif res.medicationReference is not None:
            target = res.medicationReference.reference or ""
            med = None
            if target.startswith("#"):
                for c in res.contained or []:
                    if getattr(c, "id", None) == target[1:]:
                        med = c
            else:
                key = self.resolve(target)
                med = self.by_ref.get(key or "")
            if res.medicationReference.display:
                texts.append(res.medicationReference.display)
            if med is not None:
                texts += texts_of(med.code)
                codings += codings_of(med.code)
                for ing in med.ingredient or []:
                    texts += texts_of(ing.itemCodeableConcept)
                    codings += codings_of(ing.itemCodeableConcept)
        by_code = None
        named_by_code: list[str] = []
        for s, c in codings:
            if s == self.cs.system("rxnorm") and c:
                by_code = drug_by_rxnorm(c)
                if by_code:
                    break
                clinical = therapy_codes().clinical_drug(c)
                if clinical is not None:  # a clinical-drug code: read as its ingredient
                    named_by_code.append(clinical.name)
                    by_code = resolve_drug(clinical.ingredient)
                    if by_code:
                        break
        texts += named_by_code
        by_text = match_drug_text(texts)
        drug = by_text or by_code
        if by_code and by_text and by_code.id != by_text.id:
            self.warn(
                ref,
                f"RxNorm code names {by_code.id} but the text names {by_text.id}: the text was used",
            )
        product = match_product_text(texts)
        coded = next(
            (h for h in (therapy_code_of(sy, c) for sy, c in codings) if h and h.product), None
        )
        if product is None and coded is not None and coded.kind == "car_t":
            product = products().get(coded.product or "")
        name = cc.text if cc is not None and cc.text else (texts[0] if texts else None)
        return drug, product, name, texts

    def _MedicationRequest(self, res: Any, ref: str, where: str) -> None:
        b = self.subject_of(res, ref, where)
        if b is None:
            return
        if ref in self.superseded:
            self.unmapped(ref, "superseded by the MedicationAdministrations that fulfil it", where)
            return
        if res.status not in ("active", "completed", "stopped", "on-hold"):
            self.unmapped(ref, f"status '{res.status}': not given", where)
            return
        if res.intent in ("proposal", "plan", "option"):
            self.unmapped(ref, f"intent '{res.intent}': a proposal or plan, not an order", where)
            return
        start = end = None
        dosage = (res.dosageInstruction or [None])[0]
        timing = dosage.timing if dosage is not None else None
        repeat = timing.repeat if timing is not None else None
        if repeat is not None and repeat.boundsPeriod is not None:
            start, end = period_dates(repeat.boundsPeriod)
        if (
            start is None
            and res.dispenseRequest is not None
            and res.dispenseRequest.validityPeriod is not None
        ):
            start, end = period_dates(res.dispenseRequest.validityPeriod)
        if start is None:
            start = as_date(res.authoredOn)
        if start is None:
            self.unmapped(
                ref, "no start date (dosage bounds, validity period or authoredOn)", where
            )
            return
        if end is None and repeat is not None and repeat.count == 1:
            end = start
        if end is None and res.status in ("completed", "stopped"):
            end = start
            self.warn(ref, f"'{res.status}' without an end date: taken as ending on its start day")
        self._medication_item(b, res, ref, where, start, end, dosage, kind="request")

    def _MedicationAdministration(self, res: Any, ref: str, where: str) -> None:
        b = self.subject_of(res, ref, where)
        if b is None:
            return
        if res.status not in ("completed", "in-progress", "stopped"):
            self.unmapped(ref, f"status '{res.status}': not given", where)
            return
        start = as_date(res.effectiveDateTime)
        end = start
        if start is None and res.effectivePeriod is not None:
            start, end = period_dates(res.effectivePeriod)
            end = end or (None if res.status == "in-progress" else start)
        if start is None:
            self.unmapped(ref, "no effective date/time", where)
            return
        self._medication_item(b, res, ref, where, start, end, res.dosage, kind="administration")

    def _medication_item(
        self,
        b: PatientBuilder,
        res: Any,
        ref: str,
        where: str,
        start: dt.date,
        end: dt.date | None,
        dosage: Any,
        kind: str,
    ) -> None:
        drug, product, name, texts = self._medication_concept(res, ref)
        if product is not None and drug is None:
            b.infusions.append(
                Dated(ref, start, {"product": product.id, "texts": texts, "medication": True})
            )
            return
        lower = " ".join(texts).lower()
        ld_agent = next(
            (
                short
                for agent, short in self.cs.ld_agents.items()
                if re.search(rf"\b{agent}\b", lower)
            ),
            None,
        )
        if drug is None and not name:
            self.unmapped(ref, unidentified_medication(res, self.by_ref, self.resolve), where)
            return
        payload: dict[str, Any] = {"type": "medication", "drug": drug.id if drug else str(name)}
        if dosage is not None:
            dq = None
            if kind == "administration":
                dq = dosage.dose
                route = dosage.route
            else:
                dar = (dosage.doseAndRate or [None])[0]
                dq = dar.doseQuantity if dar is not None else None
                route = dosage.route
            if dq is not None and dq.value is not None:
                payload["dose"] = as_float(dq.value)
                # the UCUM code ("ug"), not its display ("mcg"); a display alone is read as the
                # UCUM code it stands for when it is a known dose unit
                ucum = dq.code if dq.code and dq.system == self.cs.system("ucum") else None
                written = dq.unit or dq.code
                if ucum or written:
                    payload["dose_unit"] = ucum or dose_ucum(written) or written
            rtexts = texts_of(route)
            if rtexts:
                payload["route"] = rtexts[0]
            freq = self._frequency(dosage) if kind == "request" else None
            if freq:
                payload["frequency"] = freq
        reasons = [t for rc in getattr(res, "reasonCode", None) or [] for t in texts_of(rc)]
        for rc in getattr(res, "reasonCode", None) or []:
            for s, c in codings_of(rc):
                if s == self.cs.project_system and c in ("prophylaxis", "treatment"):
                    payload["purpose"] = c
        if "purpose" not in payload:
            dtexts = [dosage.text] if dosage is not None and getattr(dosage, "text", None) else []
            if any(self.cs.concepts["prophylaxis"].matches_text(t) for t in reasons + dtexts):
                payload["purpose"] = "prophylaxis"
        item = Dated(
            ref, start, payload, end=end, open_end=end is None, merge=kind == "administration"
        )
        if ld_agent is not None:
            item.payload = {**payload, "_ld_agent": ld_agent}
            b.ld_agents.append(item)
            return
        b.meds.append(item)

    @staticmethod
    def _frequency(dosage: Any) -> str | None:
        t = dosage.timing
        if t is None:
            return None
        if t.code is not None and t.code.text:
            return str(t.code.text)
        r = t.repeat
        if r is None:
            return None
        if r.count == 1:
            return "once"
        key: tuple[Any, ...] = (
            r.frequency,
            as_float(r.period) if r.period is not None else None,
            r.periodUnit,
        )
        names: dict[tuple[Any, ...], str] = {
            (1, 1.0, "d"): "daily",
            (2, 1.0, "d"): "twice daily",
            (1, 1.0, "wk"): "weekly",
            (1, 2.0, "d"): "every other day",
        }
        return names.get(key)
