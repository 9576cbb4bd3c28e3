"""One patient's mapped items -> a course document: day 0, the malignancy, the patient,
lymphodepletion, labs and events."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from cart_cytopenia.domain.course import parse_course
from cart_cytopenia.errors import InputError
from cart_cytopenia.io.fhir_import.report import FailedPatient
from cart_cytopenia.io.fhir_import.state import Dated, ImportState, PatientBuilder
from cart_cytopenia.io.fhir_import.values import (
    as_date,
    as_float,
    extension_of,
    is_partial_date,
)


class CourseAssembly(ImportState):
    """One patient's mapped items -> a course document: day 0, the malignancy, the patient,
    lymphodepletion, labs and events."""

    def _finish(self, b: PatientBuilder) -> None:
        """One patient's items -> a validated course, or the patient listed as failed."""
        pref = b.patient_ref or f"Patient/{b.pid}"
        if b.patient is None:
            self.warn(pref, "no Patient resource: sex and birth date unknown")
        chosen = self._day0_infusion(b)
        if chosen is None or chosen.when is None:
            return
        infusion = chosen.when
        product_ref = self._product_ref(chosen)
        disease, status, relapses = self._malignancy(b, infusion, pref)
        patient, deaths = self._patient(b, pref, infusion, disease, status)
        prior, events = self._hcts(b, infusion)
        if prior:
            patient["prior_hct"] = prior
        ld = self._lymphodepletion(b, infusion)
        baseline, labs = self._labs(b, infusion)
        events += self._fevers(b)
        events += self._dated_events(b)
        events += self._relapses_after_day0(relapses, infusion)
        events += self._merged_meds(b.meds)
        events += deaths
        doc: dict[str, Any] = {
            "description": "Imported from FHIR R4 by cart-cytopenia.",
            "patient": patient,
            "product": product_ref,
            "infusion_date": infusion.isoformat(),
            "baseline_labs": baseline,
            "labs": labs,
            "events": events,
        }
        if ld is not None:
            doc["lymphodepletion"] = {k: v for k, v in ld.items() if v is not None}
        if b.last_followup is not None:
            doc["last_followup_date"] = b.last_followup.isoformat()
        try:
            course = parse_course(doc, source=pref)
        except InputError as exc:
            self.result.failed.append(FailedPatient(b.pid, exc.message, tuple(exc.problems)))
            return
        self.result.courses.append(course)

    def _day0_infusion(self, b: PatientBuilder) -> Dated | None:
        """The CAR-T infusion that is day 0: the first Procedure (else the first administration
        of the product); a product named only by another record of the same day is taken over,
        infusions on other days are reported. None (the patient failed) without one."""
        infusions = sorted(b.infusions, key=lambda x: x.when or dt.date.max)
        procs = [i for i in infusions if not i.payload.get("medication")]
        candidates = procs or infusions
        chosen = candidates[0] if candidates else None
        if chosen is None or chosen.when is None:
            self.result.failed.append(
                FailedPatient(
                    b.pid,
                    "no CAR-T infusion found (a Procedure or MedicationAdministration naming the CAR-T product): "
                    "day 0 is unknown, so no course was made",
                )
            )
            return None
        infusion = chosen.when
        for other in infusions:
            if other is chosen:
                continue
            if other.when == infusion:
                if other.payload.get("product") and not chosen.payload.get("product"):
                    chosen.payload["product"] = other.payload["product"]
                continue
            self.unmapped(
                other.ref,
                f"another CAR-T infusion ({other.when}) than day 0 ({infusion}): a course covers one infusion",
            )
        return chosen

    def _product_ref(self, chosen: Dated) -> dict[str, Any]:
        """The course's product: catalogue name, else a custom construct (target, costimulatory
        domain) or 'unknown', with a warning that product-specific rules cannot apply."""
        product = chosen.payload.get("product")
        product_ref: dict[str, Any] = {"name": product or "unknown"}
        if product is None:
            if chosen.payload.get("target") or chosen.payload.get("costimulatory"):
                product_ref = {
                    "name": "custom",
                    "target": chosen.payload.get("target"),
                    "costimulatory": chosen.payload.get("costimulatory"),
                }
            self.warn(
                chosen.ref, "CAR-T product not recognised: product-specific rules cannot apply"
            )
        if chosen.payload.get("donor_derived") is not None:
            product_ref["donor_derived"] = chosen.payload["donor_derived"]
        return product_ref

    def _malignancy(
        self, b: PatientBuilder, infusion: dt.date, pref: str
    ) -> tuple[str, str | None, list[Dated]]:
        """(disease, disease status, relapse candidates): the last malignancy recorded by day 0
        is the disease; one recorded after day 0 counts only as a relapse or progression."""
        disease = None
        status = b.facts.get("disease_status")
        before = [d for d in b.diseases if d.when is None or d.when <= infusion]
        after = [d for d in b.diseases if d.when is not None and d.when > infusion]
        pick = sorted(before or b.diseases, key=lambda x: x.when or dt.date.min)
        if pick:
            disease = pick[-1].payload["disease"]
            others = {d.payload["disease"] for d in b.diseases} - {disease}
            if others:
                self.warn(
                    pick[-1].ref,
                    f"several malignancies ({', '.join(sorted(others | {disease}))}): {disease} used",
                )
            if status is None:
                status = _status_from_condition(pick[-1].payload)
        relapses = list(b.relapse_candidates)
        for d in after:
            if d.payload["relapse"] or d.payload["clinical"] in ("relapse", "recurrence"):
                relapses.append(Dated(d.ref, d.when, {"type": "relapse"}))
            else:
                self.unmapped(
                    d.ref, "malignancy recorded after day 0 without relapse/progression: not used"
                )
        if disease is None:
            disease = "other"
            self.warn(
                pref,
                "no malignancy Condition found: disease recorded as 'other' (disease-specific guidance cannot apply)",
            )
        return disease, status, relapses

    def _patient(
        self, b: PatientBuilder, pref: str, infusion: dt.date, disease: str, status: str | None
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(the course's patient, death events): demographics from the Patient resource, the
        weight at infusion, the disease status and the project-coded facts."""
        patient: dict[str, Any] = {"id": b.pid, "disease": disease}
        deaths = (
            self._demographics(b.patient, pref, infusion, patient) if b.patient is not None else []
        )
        if "weight_kg" not in patient and b.weights:
            patient["weight_kg"] = self._weight_at_infusion(b.weights, infusion)
        if status:
            patient["disease_status"] = status
        for k in (
            "marrow_involvement_pct",
            "chip",
            "chip_genes",
            "pre_existing_dysplasia",
            "pre_existing_fibrosis",
            "genetics",
            "stored_cells",
        ):
            if k in b.facts:
                patient[k] = b.facts[k]
        return patient, deaths

    def _demographics(
        self, p: Any, pref: str, infusion: dt.date, patient: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Sex, birth date, age and weight at infusion into ``patient``; the death events."""
        deaths: list[dict[str, Any]] = []
        if p.gender in ("male", "female", "other", "unknown"):
            patient["sex"] = p.gender
        birth = as_date(p.birthDate)
        if birth is not None:
            patient["birth_date"] = birth.isoformat()
            age = (infusion - birth).days / 365.25
            patient["age_years"] = round(age, 1)
        elif is_partial_date(p.birthDate):
            self.warn(pref, f"birth date '{p.birthDate}' is partial: age not derived from it")
        age_ext = extension_of(p, "age-at-infusion")
        if (
            age_ext is not None
            and age_ext.valueAge is not None
            and age_ext.valueAge.value is not None
        ):
            patient["age_years"] = as_float(age_ext.valueAge.value)
        w_ext = extension_of(p, "weight-at-infusion")
        if w_ext is not None and w_ext.valueQuantity is not None:
            patient["weight_kg"] = as_float(w_ext.valueQuantity.value)
        death = as_date(p.deceasedDateTime)
        cause = extension_of(p, "cause-of-death")
        if death is not None:
            dd: dict[str, Any] = {"type": "death", "date": death.isoformat()}
            if cause is not None and cause.valueString:
                dd["cause"] = cause.valueString
            deaths.append(dd)
        elif p.deceasedBoolean:
            self.warn(pref, "deceased without a date: no death event (its date is needed)")
        return deaths

    def _weight_at_infusion(self, weights: list[Dated], infusion: dt.date) -> Any:
        """The body weight nearest before day 0 (else the first); the others are reported."""
        dated = [w for w in weights if w.when is not None]
        before_w = [w for w in dated if w.when is not None and w.when <= infusion]
        chosen_w = (
            max(before_w, key=lambda x: x.when or dt.date.min)
            if before_w
            else (dated or weights)[0]
        )
        for w in weights:
            if w is not chosen_w:
                self.unmapped(w.ref, "body weight: only the one nearest before day 0 is used")
        return chosen_w.payload["kg"]

    @staticmethod
    def _hcts(
        b: PatientBuilder, infusion: dt.date
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(prior HCTs, HCT events): a transplant before day 0 (or undated) is a prior HCT."""
        prior = []
        events: list[dict[str, Any]] = []
        for h in b.hcts:
            if h.when is None or h.when < infusion:
                ph = {"kind": h.payload["kind"]}
                if h.when is not None:
                    ph["date"] = h.when.isoformat()
                if "donor_type" in h.payload:
                    ph["donor_type"] = h.payload["donor_type"]
                prior.append(ph)
            else:
                ev = {"type": "hct", "kind": h.payload["kind"], "date": h.when.isoformat()}
                if "donor_type" in h.payload:
                    ev["donor_type"] = h.payload["donor_type"]
                events.append(ev)
        return prior, events

    def _lymphodepletion(self, b: PatientBuilder, infusion: dt.date) -> dict[str, Any] | None:
        """Lymphodepletion from its Procedure, else from the lymphodepleting agents given in the
        window before day 0 (named as their regimen); agents outside it stay medications."""
        ld: dict[str, Any] | None = None
        if b.ld:
            first = min(b.ld, key=lambda x: x.when or dt.date.max)
            ld = {
                "regimen": first.payload["regimen"] or "unknown",
                "start_date": first.when.isoformat() if first.when else None,
            }
        window = [
            a
            for a in b.ld_agents
            if a.when is not None and -self.cs.ld_window_days <= (a.when - infusion).days < 0
        ]
        for a in b.ld_agents:
            if a not in window:
                a.payload = {k: v for k, v in a.payload.items() if k != "_ld_agent"}
                b.meds.append(a)
        if window:
            agents = frozenset(a.payload["_ld_agent"] for a in window)
            named = {frozenset(k.split("+")): v for k, v in self.cs.ld_regimens.items()}
            regimen = named.get(agents, "+".join(sorted(agents)))
            start = min(a.when for a in window if a.when is not None)
            if ld is None:
                ld = {"regimen": regimen, "start_date": start.isoformat()}
            for a in window:
                self.unmapped(
                    a.ref,
                    "lymphodepleting agent before day 0: read as lymphodepletion, not as a medication event",
                )
        return ld

    @staticmethod
    def _labs(
        b: PatientBuilder, infusion: dt.date
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(baseline labs, labs): values drawn before day 0 are the baseline."""
        baseline: list[dict[str, Any]] = []
        labs: list[dict[str, Any]] = []
        for lab in b.labs:
            entry = {**lab.payload, "date": lab.when.isoformat() if lab.when else None}
            before_day0 = lab.when is not None and lab.when < infusion
            (baseline if before_day0 else labs).append(entry)
        return baseline, labs

    @staticmethod
    def _fevers(b: PatientBuilder) -> list[dict[str, Any]]:
        """Fever events, one per day (the highest temperature)."""
        fevers: dict[dt.date, float] = {}
        for t in b.temps:
            if t.when is not None:
                fevers[t.when] = max(fevers.get(t.when, 0.0), t.payload["max_temp_c"])
        return [
            {"type": "fever", "date": fever_day.isoformat(), "max_temp_c": v}
            for fever_day, v in sorted(fevers.items())
        ]

    def _dated_events(self, b: PatientBuilder) -> list[dict[str, Any]]:
        """The other events with their dates (spans for CRS, ICANS, IEC-HS, GVHD, infection); a
        marrow evaluation gets its findings (linked by partOf, else of the same day), and
        findings without their marrow Procedure are reported."""
        events = []
        for e in b.events:
            payload = dict(e.payload)
            if payload.get("type") == "bone_marrow":
                findings = b.marrow_findings.pop(payload.pop("_ref"), None)
                if findings is None:
                    same_day = [f for f in b.marrow_findings_unlinked if f.when == e.when]
                    if same_day:
                        findings = same_day[0]
                        b.marrow_findings_unlinked.remove(findings)
                if findings is not None:
                    payload.update(findings.payload)
            start_s = e.when.isoformat() if e.when else None
            if payload["type"] in ("crs", "icans", "iec_hs", "gvhd", "infection"):
                payload["start_date"] = start_s
                if e.end is not None:
                    payload["end_date"] = e.end.isoformat()
            else:
                payload["date"] = start_s
            events.append(payload)
        for f in [*b.marrow_findings.values(), *b.marrow_findings_unlinked]:
            self.unmapped(f.ref, "bone marrow findings without their marrow Procedure")
        return events

    def _relapses_after_day0(
        self, relapses: list[Dated], infusion: dt.date
    ) -> list[dict[str, Any]]:
        """Relapse events after day 0; one on or before day 0 is reported, not a relapse."""
        events = []
        for r in relapses:
            if r.when is None or r.when <= infusion:
                self.unmapped(
                    r.ref, "relapse/progression on or before day 0: not a relapse after CAR-T"
                )
                continue
            events.append({**r.payload, "date": r.when.isoformat()})
        return events

    @staticmethod
    def _med_event(
        payload: dict[str, Any], start: dt.date | None, end: dt.date | None, open_end: bool
    ) -> dict[str, Any]:
        ev = dict(payload)
        ev["start_date"] = start.isoformat() if start else None
        if end is not None and not open_end:
            ev["end_date"] = end.isoformat()
        return ev

    def _merged_meds(self, meds: list[Dated]) -> list[dict[str, Any]]:
        """Administrations of the same drug and dose on consecutive days become one span."""
        keyed: dict[tuple[Any, ...], list[Dated]] = defaultdict(list)
        for m in meds:
            p = m.payload
            key = (
                p["drug"],
                p.get("dose"),
                p.get("dose_unit"),
                p.get("route"),
                p.get("frequency"),
                p.get("purpose"),
            )
            keyed[key].append(m)
        out: list[dict[str, Any]] = []
        for items in keyed.values():
            items.sort(key=lambda x: x.when or dt.date.min)
            spans: list[Dated] = []
            for m in items:
                last = spans[-1] if spans else None
                if (
                    last is not None
                    and last.merge
                    and m.merge
                    and not last.open_end
                    and not m.open_end
                    and last.end is not None
                    and m.when is not None
                    and m.end is not None
                    and (m.when - last.end).days <= 1
                    and m.payload == last.payload
                ):
                    last.end = max(last.end, m.end)
                    continue
                spans.append(
                    Dated(
                        m.ref,
                        m.when,
                        dict(m.payload),
                        end=m.end,
                        open_end=m.open_end,
                        merge=m.merge,
                    )
                )
            for s in spans:
                out.append(self._med_event(s.payload, s.when, s.end, s.open_end))
        return out


def _status_from_condition(p: dict[str, Any]) -> str | None:
    """'relapsed' or 'refractory' when the malignancy Condition says so (clinical status,
    ICD-10 'in relapse' codes C90.x2 / C91.x2, or its text); else None."""
    joined = " ".join(p["texts"]).lower()
    if (
        p["clinical"] in ("relapse", "recurrence")
        or any(c.upper().endswith("2") and c.upper()[:3] in ("C90", "C91") for c in p["codes"])
        or "relapsed" in joined
    ):
        return "relapsed"
    if "refractory" in joined:
        return "refractory"
    return None
