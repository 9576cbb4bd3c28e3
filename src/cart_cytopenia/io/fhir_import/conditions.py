"""Condition -> the malignancy, CRS / ICANS / IEC-HS / GVHD with their grade, infections,
relapse and clinical findings."""

from __future__ import annotations

import re
from typing import Any

from cart_cytopenia.io.fhir_codes import Concept
from cart_cytopenia.io.fhir_import.state import Dated, ImportState, PatientBuilder
from cart_cytopenia.io.fhir_import.values import (
    as_date,
    codings_of,
    concept_by_code,
    extension_of,
    grade_from_stage,
    period_dates,
    texts_of,
)


class ConditionMapping(ImportState):
    """Condition -> the malignancy, CRS / ICANS / IEC-HS / GVHD with their grade, infections,
    relapse and clinical findings."""

    # ---- conditions

    def _Condition(self, res: Any, ref: str, where: str) -> None:
        b = self.subject_of(res, ref, where)
        if b is None or not self._confirmed(res, ref, where):
            return
        clinical = next((c for _s, c in codings_of(res.clinicalStatus) if c), None)
        onset = as_date(res.onsetDateTime) or (
            period_dates(res.onsetPeriod)[0] if res.onsetPeriod else None
        )
        end = as_date(res.abatementDateTime) or (
            period_dates(res.abatementPeriod)[1] or period_dates(res.abatementPeriod)[0]
            if res.abatementPeriod
            else None
        )
        texts = texts_of(res.code)
        concept, code_grade, finding, disease = self._condition_meaning(res.code, texts)
        if onset is None and res.recordedDate is not None and (concept or finding):
            onset = as_date(res.recordedDate)
            if onset is not None:
                self.warn(ref, "no onset date: the recorded date is taken as the onset")
        item = Dated(ref, onset, {}, end=end)
        if disease is not None and (concept is None or concept.code == "relapse"):
            relapse_text = self.cs.concepts["relapse"].matches_text(" ".join(texts))
            item.payload = {
                "disease": disease,
                "relapse": (concept is not None and concept.code == "relapse") or relapse_text,
                "clinical": clinical,
                "texts": texts,
                "codes": [c for _s, c in codings_of(res.code) if c],
            }
            b.diseases.append(item)
            return
        if concept is None and finding is None:
            label = (
                "; ".join(texts[:1])
                or ", ".join(c for _s, c in codings_of(res.code) if c)
                or "no code or text"
            )
            self.unmapped(ref, f"condition not used by cart-cytopenia ({label})", where)
            return
        if onset is None:
            self.unmapped(ref, "no onset date: cannot place it on the course timeline", where)
            return
        if finding is not None:
            b.events.append(Dated(ref, onset, _finding_payload(res, finding)))
            return
        assert concept is not None
        if end is None and clinical in ("resolved", "inactive", "remission"):
            end = onset
            self.warn(
                ref,
                f"{concept.display} is '{clinical}' without an abatement date: taken as ending on its onset day",
            )
        item.end = end
        self._concept_event(b, res, ref, where, item, concept, code_grade, texts)

    def _confirmed(self, res: Any, ref: str, where: str) -> bool:
        """Whether the Condition is a diagnosis (not refuted, in error, or a differential)."""
        ver = next((c for _s, c in codings_of(res.verificationStatus) if c), None)
        if ver in ("refuted", "entered-in-error"):
            self.unmapped(ref, f"verification status '{ver}'", where)
            return False
        if ver == "differential":
            self.unmapped(ref, "a differential diagnosis, not a diagnosis", where)
            return False
        return True

    def _condition_meaning(
        self, cc: Any, texts: list[str]
    ) -> tuple[Concept | None, int | None, str | None, str | None]:
        """(project concept, grade its code carries, clinical finding, malignancy) a Condition's
        code names; by code first, by text only when no code is recognised."""
        concept, code_grade = concept_by_code(cc, ("condition",))
        finding = self._finding(cc, texts)
        disease = self._disease(cc, texts)
        if concept is None and finding is None and disease is None:
            concept = next(
                (
                    c
                    for c in self.cs.concepts.values()
                    if c.kind == "condition" and any(c.matches_text(t) for t in texts)
                ),
                None,
            )
        if concept is None and finding is None and disease is None:
            finding = self._finding(None, texts, text_only=True)
        return concept, code_grade, finding, disease

    def _concept_event(
        self,
        b: PatientBuilder,
        res: Any,
        ref: str,
        where: str,
        item: Dated,
        concept: Concept,
        code_grade: int | None,
        texts: list[str],
    ) -> None:
        """A graded syndrome (CRS, ICANS, IEC-HS, GVHD), an infection or a relapse as the
        patient's event (relapses are kept as candidates: only one after day 0 counts)."""
        code = concept.code
        if code in ("crs", "icans", "iec-hs", "gvhd"):
            grade = grade_from_stage(res)
            if grade is None and code_grade:
                grade = code_grade
            payload = self._graded_payload(res, ref, where, concept, grade)
            if payload is None:
                return
            item.payload = payload
            b.events.append(item)
        elif code == "infection":
            item.payload = self._infection(res, texts)
            b.events.append(item)
        elif code == "relapse":
            item.payload = _relapse_payload(res)
            b.relapse_candidates.append(item)

    def _graded_payload(
        self, res: Any, ref: str, where: str, concept: Concept, grade: int | None
    ) -> dict[str, Any] | None:
        """CRS / ICANS (an ASTCT grade 1-4 is required), IEC-HS or GVHD (grade optional)."""
        code = concept.code
        if code in ("crs", "icans"):
            if grade is None:
                self.unmapped(
                    ref,
                    f"{concept.display} without an ASTCT grade (give it in Condition.stage.summary)",
                    where,
                )
                return None
            if grade == 5:
                self.unmapped(
                    ref,
                    f"{concept.display} grade 5 (fatal): the course grades 1-4; record the death (Patient.deceasedDateTime)",
                    where,
                )
                return None
            return {"type": code, "max_grade": grade}
        if code == "iec-hs":
            return {"type": "iec_hs", "grade": grade} if grade else {"type": "iec_hs"}
        payload: dict[str, Any] = {"type": "gvhd"}
        if grade:
            if grade > 4:
                self.warn(ref, f"GVHD grade {grade} is outside 1-4: grade not imported")
            else:
                payload["grade"] = grade
        organs = [bs.text for bs in res.bodySite or [] if bs.text]
        if organs:
            payload["organ"] = organs[0]
        return payload

    def _finding(self, cc: Any, texts: list[str], text_only: bool = False) -> str | None:
        cs = self.cs
        if not text_only:
            for s, c in codings_of(cc):
                if s == cs.project_system and c and c.startswith("finding-"):
                    return c.removeprefix("finding-")
                for f in cs.findings:
                    if c and (
                        (
                            s in (cs.system("icd10cm"), cs.system("icd10"))
                            and any(c.upper().startswith(p) for p in f.icd10_prefixes)
                        )
                        or (s == cs.system("snomed") and c in f.snomed)
                    ):
                        return f.finding
            return None
        for f in cs.findings:
            if any(p.search(t) for t in texts for p in f.text):
                return f.finding
        return None

    def _disease(self, cc: Any, texts: list[str]) -> str | None:
        cs = self.cs
        for s, c in codings_of(cc):
            if not c:
                continue
            if (
                s == cs.project_system
                and c.startswith("disease-")
                and not c.startswith("disease-status")
            ):
                return c.removeprefix("disease-")
            for d in cs.diseases:
                if s in (cs.system("icd10cm"), cs.system("icd10")) and any(
                    c.upper().startswith(p) for p in d.icd10_prefixes
                ):
                    return d.disease
                if s == cs.system("snomed") and c in d.snomed:
                    return d.disease
        for d in cs.diseases:
            if any(p.search(t) for t in texts for p in d.text):
                return d.disease
        return None

    def _infection(self, res: Any, texts: list[str]) -> dict[str, Any]:
        cs = self.cs
        out: dict[str, Any] = {"type": "infection"}
        category = None
        snomed_cat = {v: k for k, v in cs.infection_snomed.items()}
        for s, c in codings_of(res.code):
            if not c:
                continue
            if s == cs.system("snomed") and c in snomed_cat:
                category = snomed_cat[c]
            elif s in (cs.system("icd10cm"), cs.system("icd10")):
                category = category or cs.infection_category_of_icd(c)
            if s == cs.project_system and c == "viral-reactivation":
                out["reactivation"] = True
        organism_ext = extension_of(res, "infection-organism")
        organism = organism_ext.valueString if organism_ext is not None else None
        if category in (None, "unknown"):
            for cat, pats in cs.infection_text:
                if any(p.search(t) for t in texts + ([organism] if organism else []) for p in pats):
                    category = cat
                    break
        out["category"] = category or "unknown"
        if organism:
            out["organism"] = organism
        if any(re.search(r"reactivat", t, re.I) for t in texts):
            out["reactivation"] = True
        sites = [bs.text for bs in res.bodySite or [] if bs.text]
        if sites:
            out["site"] = sites[0]
        sev = {v: k for k, v in cs.severity_snomed.items()}
        for s, c in codings_of(res.severity):
            if s == cs.system("snomed") and c in sev:
                out["severity"] = sev[c]
        return out


def _finding_payload(res: Any, finding: str) -> dict[str, Any]:
    """A clinical finding event, with the Condition's notes as its detail."""
    detail = "\n".join(n.text for n in res.note or [] if n.text) or None
    payload: dict[str, Any] = {"type": "finding", "finding": finding}
    if detail:
        payload["detail"] = detail
    return payload


def _relapse_payload(res: Any) -> dict[str, Any]:
    """A relapse event with its site (body site) and notes."""
    payload = {"type": "relapse"}
    sites = [bs.text for bs in res.bodySite or [] if bs.text]
    if sites:
        payload["site"] = sites[0]
    notes = "\n".join(n.text for n in res.note or [] if n.text)
    if notes:
        payload["notes"] = notes
    return payload
