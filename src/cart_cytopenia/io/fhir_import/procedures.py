"""Procedure -> CAR-T infusion, lymphodepletion, transfusion, marrow evaluation, stem cell
boost, HCT and next therapy."""

from __future__ import annotations

import re
from typing import Any

from cart_cytopenia.io.fhir_codes import Concept
from cart_cytopenia.io.fhir_import.state import Dated, ImportState
from cart_cytopenia.io.fhir_import.values import (
    as_date,
    as_float,
    coded_therapy,
    codings_of,
    concept_by_code,
    extension_of,
    label_of,
    match_product_text,
    period_dates,
    texts_of,
)


class ProcedureMapping(ImportState):
    """Procedure -> CAR-T infusion, lymphodepletion, transfusion, marrow evaluation, stem cell
    boost, HCT and next therapy."""

    # ---- procedures

    _PROCEDURE_ORDER = (
        "car-t-infusion",
        "lymphodepletion",
        "stem-cell-boost",
        "hct",
        "bone-marrow-evaluation",
        "transfusion",
        "next-therapy",
    )

    def _procedure_concept(self, res: Any) -> Concept | None:
        hit = coded_therapy(res.code)
        if hit is not None:
            return self.cs.concepts["car-t-infusion" if hit.kind == "car_t" else "transfusion"]
        concept, _ = concept_by_code(res.code, ("procedure",))
        if concept is not None:
            return concept
        texts = texts_of(res.code)
        for code in self._PROCEDURE_ORDER:
            c = self.cs.concepts[code]
            if any(c.matches_text(t) for t in texts):
                return c
        return None

    def _Procedure(self, res: Any, ref: str, where: str) -> None:
        b = self.subject_of(res, ref, where)
        if b is None:
            return
        if res.status not in ("completed", "in-progress"):
            self.unmapped(
                ref,
                f"status '{res.status}': only completed or in-progress procedures are used",
                where,
            )
            return
        concept = self._procedure_concept(res)
        if concept is None:
            self.unmapped(
                ref, f"procedure not used by cart-cytopenia ({label_of(res.code)})", where
            )
            return
        when = as_date(res.performedDateTime) or (
            period_dates(res.performedPeriod)[0] if res.performedPeriod else None
        )
        used_texts = [t for u in res.usedCode or [] for t in texts_of(u)]
        texts = used_texts + texts_of(res.code)
        code = concept.code
        if code == "hct":
            hct = self._hct(res, ref, where, texts)
            if hct is not None:
                b.hcts.append(Dated(ref, when, hct))
            return
        if when is None:
            self.unmapped(ref, f"{concept.display} without a performed date", where)
            return
        if code == "car-t-infusion":
            b.infusions.append(Dated(ref, when, _infusion(res, used_texts, texts)))
        elif code == "lymphodepletion":
            b.ld.append(Dated(ref, when, {"regimen": used_texts[0] if used_texts else None}))
        elif code == "bone-marrow-evaluation":
            b.events.append(Dated(ref, when, {"type": "bone_marrow", "_ref": ref}))
        elif code == "next-therapy":
            b.events.append(Dated(ref, when, _next_therapy(res, concept)))
        else:
            event = (
                self._transfusion(res, ref, where, texts)
                if code == "transfusion"
                else self._stem_cell_boost(res, ref, where, texts)
                if code == "stem-cell-boost"
                else None
            )
            if event is not None:
                b.events.append(Dated(ref, when, event))

    def _hct(self, res: Any, ref: str, where: str, texts: list[str]) -> dict[str, Any] | None:
        """An HCT: its kind (autologous or allogeneic, required) and donor type."""
        kind = self._graft_source(res, texts)
        if kind is None:
            self.unmapped(ref, "HCT without its kind (autologous or allogeneic)", where)
            return None
        payload: dict[str, Any] = {"kind": kind}
        donor = extension_of(res, "donor-type")
        if donor is not None:
            payload["donor_type"] = donor.valueCode
        return payload

    def _transfusion(
        self, res: Any, ref: str, where: str, texts: list[str]
    ) -> dict[str, Any] | None:
        """A transfusion event: its blood product (required) and units (default 1)."""
        coded = coded_therapy(res.code)
        blood = self._transfusion_product(res, texts) or (
            coded.product if coded is not None and coded.kind == "transfusion" else None
        )
        if blood is None:
            self.unmapped(
                ref,
                "transfusion without a recognised product (red cells, platelets, plasma, granulocytes)",
                where,
            )
            return None
        units_ext = extension_of(res, "transfusion-units")
        units = (
            int(units_ext.valueInteger) if units_ext is not None and units_ext.valueInteger else 1
        )
        return {"type": "transfusion", "product": blood, "units": units}

    def _stem_cell_boost(
        self, res: Any, ref: str, where: str, texts: list[str]
    ) -> dict[str, Any] | None:
        """A stem cell boost event: its source (required), CD34+ dose and graft manipulation."""
        source = self._graft_source(res, texts)
        if source is None:
            self.unmapped(
                ref, "stem cell boost without its source (autologous or allogeneic)", where
            )
            return None
        payload: dict[str, Any] = {"type": "stem_cell_boost", "source": source}
        dose = extension_of(res, "cd34-dose")
        if dose is not None and dose.valueQuantity is not None:
            payload["cd34_dose_per_kg"] = as_float(dose.valueQuantity.value)
        manip = extension_of(res, "graft-manipulation")
        if manip is not None:
            payload["manipulation"] = manip.valueCode
        return payload

    def _graft_source(self, res: Any, texts: list[str]) -> str | None:
        ext = extension_of(res, "graft-source")
        if ext is not None and ext.valueCode in ("autologous", "allogeneic"):
            return str(ext.valueCode)
        for s, c in codings_of(res.code):
            if s == self.cs.system("cpt"):
                if c == "38240":
                    return "allogeneic"
                if c == "38241":
                    return "autologous"
        joined = " ".join(texts).lower()
        if re.search(r"\ballo", joined):
            return "allogeneic"
        if re.search(r"\bauto", joined):
            return "autologous"
        return None

    _TRANSFUSION_TEXT = (
        ("rbc", re.compile(r"red (blood )?cell|\brbcs?\b|\bprbcs?\b|packed|erythrocyte", re.I)),
        ("platelets", re.compile(r"platelet|\bplts?\b|thrombocyte", re.I)),
        ("granulocytes", re.compile(r"granulocyte", re.I)),
        ("plasma", re.compile(r"plasma|\bffp\b|cryoprecipitate", re.I)),
    )

    def _transfusion_product(self, res: Any, texts: list[str]) -> str | None:
        for u in res.usedCode or []:
            for s, c in codings_of(u):
                if s == self.cs.project_system and c and c.startswith("transfusion-"):
                    return c.removeprefix("transfusion-")
        for product, pat in self._TRANSFUSION_TEXT:
            if any(pat.search(t) for t in texts):
                return product
        return None


def _infusion(res: Any, used_texts: list[str], texts: list[str]) -> dict[str, Any]:
    """A CAR-T infusion: the product (named, else coded) and the construct's extensions."""
    product = match_product_text(texts)
    coded = coded_therapy(res.code)
    payload: dict[str, Any] = {
        "product": product.id if product else (coded.product if coded else None),
        "texts": used_texts,
    }
    t = extension_of(res, "product-target")
    c = extension_of(res, "product-costimulatory")
    if t is not None:
        payload["target"] = t.valueString
    if c is not None:
        payload["costimulatory"] = c.valueString
    dd = extension_of(res, "product-donor-derived")
    if dd is not None:
        payload["donor_derived"] = dd.valueBoolean
    return payload


def _next_therapy(res: Any, concept: Concept) -> dict[str, Any]:
    """A next-therapy event, described by the Procedure's own text when it says more."""
    desc = (
        res.code.text if res.code and res.code.text and res.code.text != concept.display else None
    )
    payload = {"type": "next_therapy"}
    if desc:
        payload["description"] = desc
    return payload
