"""Observation -> labs (LOINC, UCUM units, comparators), fevers, weight, project-coded facts
and marrow findings."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from cart_cytopenia.domain.analytes import Analyte, implausibility, resolve_analyte
from cart_cytopenia.domain.units import resolve_unit
from cart_cytopenia.errors import InputError
from cart_cytopenia.io.fhir_codes import presence_value
from cart_cytopenia.io.fhir_import.state import Dated, ImportState, PatientBuilder
from cart_cytopenia.io.fhir_import.values import (
    as_date,
    as_float,
    codings_of,
    is_partial_date,
    period_dates,
    texts_of,
)


class ObservationMapping(ImportState):
    """Observation -> labs (LOINC, UCUM units, comparators), fevers, weight, project-coded facts
    and marrow findings."""

    def _Observation(self, res: Any, ref: str, where: str) -> None:
        b = self.subject_of(res, ref, where)
        if b is None:
            return
        cs = self.cs
        status = res.status
        if status not in ("final", "amended", "corrected", "preliminary"):
            self.unmapped(
                ref,
                f"status '{status}': only final, amended, corrected or preliminary results are used",
                where,
            )
            return
        when = as_date(res.effectiveDateTime) or as_date(res.effectiveInstant)
        if when is None and res.effectivePeriod is not None:
            when = period_dates(res.effectivePeriod)[0]
        loincs = [c for s, c in codings_of(res.code) if s == cs.system("loinc") and c]
        project = [c for s, c in codings_of(res.code) if s == cs.project_system and c]
        if project:
            self._project_observation(b, res, ref, where, project[0], when)
            return
        if any(c in cs.body_temperature for c in loincs):
            self._temperature(b, res, ref, where, when)
            return
        if any(c in cs.body_weight for c in loincs):
            self._weight(b, res, ref, where, when)
            return
        if when is None:
            partial = res.effectiveDateTime if is_partial_date(res.effectiveDateTime) else None
            why = (
                f"effective date '{partial}' is not a full date"
                if partial
                else "no effective date/time"
            )
            self.unmapped(ref, f"{why}; a lab needs the day it was drawn", where)
            return
        a = self._analyte(res, loincs)
        if a is None:
            if res.component and not res.valueQuantity and not res.valueString:
                self._components(b, res, ref, where, when)
                return
            label = "; ".join(texts_of(res.code)[:1]) or "no text"
            codes_s = ", ".join(loincs) if loincs else "no LOINC code"
            self.unmapped(
                ref, f"not a laboratory test cart-cytopenia uses ({codes_s}: {label})", where
            )
            return
        self._lab_value(b, ref, where, when, a, res)

    def _analyte(self, res: Any, loincs: list[str]) -> Analyte | None:
        for code in loincs:
            try:
                return resolve_analyte(code)
            except InputError:
                continue
        if loincs:
            return None
        for t in texts_of(res.code):
            try:
                return resolve_analyte(t)
            except InputError:
                continue
        return None

    def _components(self, b: PatientBuilder, res: Any, ref: str, where: str, when: dt.date) -> None:
        used = 0
        for i, comp in enumerate(res.component or []):
            loincs = [c for s, c in codings_of(comp.code) if s == self.cs.system("loinc") and c]
            a = self._analyte(comp, loincs)
            cref = f"{ref} component[{i}]"
            if a is None:
                self.unmapped(cref, "component is not a laboratory test cart-cytopenia uses", where)
                continue
            self._lab_value(b, cref, where, when, a, comp)
            used += 1
        if not res.component:
            self.unmapped(ref, "observation without a value", where)

    _VALUE_STRING = re.compile(r"^\s*(<=|>=|<|>|≤|≥)?\s*([0-9]+(?:[.,][0-9]+)?)\s*(.*?)\s*$")

    def _lab_value(
        self, b: PatientBuilder, ref: str, where: str, when: dt.date, a: Analyte, res: Any
    ) -> None:
        q = res.valueQuantity
        absent = getattr(res, "dataAbsentReason", None)
        comparator: str | None = None
        if q is not None and q.value is not None:
            value = as_float(q.value)
            unit_text = (
                q.code
                if (q.code and q.system == self.cs.system("ucum"))
                else (q.unit or q.code or "")
            )
            comparator = q.comparator
        elif getattr(res, "valueString", None):
            m = self._VALUE_STRING.match(res.valueString)
            if not m:
                self.unmapped(ref, f"{a.label}: value '{res.valueString}' is not a number", where)
                return
            comparator = {"≤": "<=", "≥": ">="}.get(m.group(1) or "", m.group(1))
            value = float(m.group(2).replace(",", "."))
            unit_text = m.group(3)
            if not unit_text:
                self.unmapped(ref, f"{a.label}: value '{res.valueString}' has no unit", where)
                return
        elif a.canonical_unit.ucum == "{presence}" and getattr(res, "valueCodeableConcept", None):
            texts = texts_of(res.valueCodeableConcept)  # (present / absent, positive ...)
            read = presence_value(texts)
            if read is None:
                said = "; ".join(texts) or "no text"
                self.unmapped(
                    ref, f"{a.label}: result '{said}' is neither present nor absent", where
                )
                return
            value, unit_text = read, "{presence}"
        elif absent is not None:
            reason = "; ".join(texts_of(absent)) or ", ".join(
                c for _s, c in codings_of(absent) if c
            )
            self.unmapped(
                ref,
                f"{a.label}: no value (dataAbsentReason: {reason}); missing is not normal",
                where,
            )
            return
        else:
            self.unmapped(ref, f"{a.label}: no numeric value (valueQuantity or valueString)", where)
            return
        if comparator == "ad":
            self.unmapped(
                ref,
                f"{a.label}: comparator 'ad' (sufficient to achieve) is not a measured value",
                where,
            )
            return
        try:
            unit = resolve_unit(unit_text or "")
            a.factor_from(unit)
        except InputError as exc:
            self.unmapped(ref, f"{a.label}: {exc.message}", where)
            return
        why = implausibility(a, value, unit)
        if why is not None:
            self.unmapped(ref, f"implausible {a.label}: {why}", where, f"implausible {a.label}")
            return
        lab: dict[str, Any] = {"analyte": a.code, "value": value, "unit": unit.ucum}
        if comparator:
            lab["comparator"] = comparator
        b.labs.append(Dated(ref, when, lab))

    def _temperature(
        self, b: PatientBuilder, res: Any, ref: str, where: str, when: dt.date | None
    ) -> None:
        q = res.valueQuantity
        if when is None or q is None or q.value is None:
            self.unmapped(ref, "body temperature without a date or a value", where)
            return
        unit = (q.code or q.unit or "").strip()
        v = as_float(q.value)
        if unit in ("[degF]", "degF", "°F", "F"):
            v = (v - 32) * 5 / 9
        elif unit not in ("Cel", "°C", "C", "cel", "degC"):
            self.unmapped(
                ref, f"body temperature in unknown unit '{unit}' (use Cel or [degF])", where
            )
            return
        if not 30 <= v <= 45:
            self.unmapped(
                ref,
                f"implausible body temperature {v:.1f} °C",
                where,
                "implausible body temperature",
            )
            return
        if v < self.cs.fever_threshold_c:
            self.unmapped(
                ref,
                f"body temperature below {self.cs.fever_threshold_c:g} °C: a course records fevers only",
                where,
            )
            return
        b.temps.append(Dated(ref, when, {"max_temp_c": round(v, 2)}))

    def _weight(
        self, b: PatientBuilder, res: Any, ref: str, where: str, when: dt.date | None
    ) -> None:
        q = res.valueQuantity
        if q is None or q.value is None:
            self.unmapped(ref, "body weight without a value", where)
            return
        unit = (q.code or q.unit or "").strip()
        factor = {
            "kg": 1.0,
            "g": 0.001,
            "[lb_av]": 0.45359237,
            "lb": 0.45359237,
            "lbs": 0.45359237,
        }.get(unit)
        if factor is None:
            self.unmapped(
                ref, f"body weight in unknown unit '{unit}' (use kg, g or [lb_av])", where
            )
            return
        b.weights.append(Dated(ref, when, {"kg": round(as_float(q.value) * factor, 3)}))

    def _project_observation(
        self, b: PatientBuilder, res: Any, ref: str, where: str, code: str, when: dt.date | None
    ) -> None:
        f = b.facts
        if code == "disease-status":
            for s, c in codings_of(res.valueCodeableConcept):
                if s == self.cs.project_system and c and c.startswith("disease-status-"):
                    f["disease_status"] = c.removeprefix("disease-status-")
                    return
        elif code == "marrow-involvement" and res.valueQuantity is not None:
            f["marrow_involvement_pct"] = as_float(res.valueQuantity.value)
            return
        elif code == "clonal-haematopoiesis":
            if res.valueBoolean is not None:
                f["chip"] = res.valueBoolean
            genes = [c.valueString for c in res.component or [] if c.valueString]
            if genes:
                f["chip_genes"] = genes
            return
        elif (
            code in ("pre-existing-dysplasia", "pre-existing-fibrosis")
            and res.valueBoolean is not None
        ):
            f[code.replace("-", "_")] = res.valueBoolean
            return
        elif code == "stored-autologous-cells":
            stored = f.setdefault("stored_cells", {})
            if res.valueBoolean is not None:
                stored["autologous"] = res.valueBoolean
            if res.note:
                stored["notes"] = "\n".join(n.text for n in res.note if n.text)
            return
        elif code == "allogeneic-donor-available" and res.valueBoolean is not None:
            f.setdefault("stored_cells", {})["allogeneic_donor"] = res.valueBoolean
            return
        elif code == "disease-genetics" and res.valueString:
            f.setdefault("genetics", []).append(res.valueString)
            return
        elif code == "last-follow-up":
            d = as_date(res.valueDateTime)
            if d is not None:
                b.last_followup = max(d, b.last_followup) if b.last_followup else d
                return
        elif code == "bone-marrow-findings":
            findings = self._marrow_findings(res)
            item = Dated(ref, when, findings)
            linked = False
            for p in res.partOf or []:
                target = self.resolve(p.reference)
                if target:
                    b.marrow_findings[target] = item
                    linked = True
            if not linked:
                b.marrow_findings_unlinked.append(item)
            return
        self.unmapped(ref, f"project observation '{code}' has no usable value", where)

    def _marrow_findings(self, res: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        names = {
            "bm-cellularity-pct": "cellularity_pct",
            "bm-disease-pct": "disease_pct",
            "bm-blasts-pct": "blasts_pct",
            "bm-dysplasia": "dysplasia",
            "bm-fibrosis": "fibrosis",
            "bm-disease-present": "disease_present",
            "bm-haemophagocytosis": "haemophagocytosis",
            "bm-cytogenetics": "cytogenetics",
            "bm-fish": "fish",
            "bm-ngs": "ngs",
            "bm-mrd": "mrd",
        }
        for comp in res.component or []:
            code = next((c for s, c in codings_of(comp.code) if s == self.cs.project_system), None)
            if code == "bm-cellularity":
                for s, c in codings_of(comp.valueCodeableConcept):
                    if s == self.cs.project_system and c and c.startswith("cellularity-"):
                        out["cellularity"] = c.removeprefix("cellularity-")
            elif code in names:
                if comp.valueQuantity is not None:
                    out[names[code]] = as_float(comp.valueQuantity.value)
                elif comp.valueBoolean is not None:
                    out[names[code]] = comp.valueBoolean
                elif comp.valueString:
                    out[names[code]] = comp.valueString
        if res.note:
            out["notes"] = "\n".join(n.text for n in res.note if n.text)
        return out
