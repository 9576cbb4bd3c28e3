"""Differential-diagnosis facts of ``Context``: what the marrow after infusion shows (cellularity,
aplasia, disease, dysplasia, a secondary myeloid neoplasm in its cytogenetics/FISH/NGS text),
other causes recorded, late-phase lineages that recovered and dropped again, GVHD and viral
reactivations.
"""

from __future__ import annotations

import re
from functools import cached_property

import numpy as np

from cart_cytopenia.domain.course import GVHD, BoneMarrow, Cellularity, Infection, InfectionCategory
from cart_cytopenia.grading.ctcae import grade_values
from cart_cytopenia.guidance.context_base import ContextBase, fmt
from cart_cytopenia.rules import tables

_NEGATION = re.compile(
    r"\b(no|not|without|negative|neg|wild[- ]?type|wt|absent|normal)\b", re.IGNORECASE
)

VIRAL_REACTIVATION_NAMES = (
    "hhv-6",
    "hhv6",
    "human herpesvirus 6",
    "human herpes virus 6",
    "cmv",
    "cytomegalovirus",
    "ebv",
    "epstein-barr",
    "epstein barr",
)


class DifferentialFacts(ContextBase):
    """Causes other than CAR-T to weigh: the marrow after infusion, relapse, a secondary myeloid
    neoplasm, late new drops, GVHD and viral reactivation."""

    @property
    def marrow_after_infusion(self) -> BoneMarrow | None:
        after = [m for m in self.marrows if (m.day or 0) >= 0]
        return after[-1] if after else None

    def marrow_excludes_relapse_and_neoplasm(self, m: BoneMarrow) -> bool:
        """No disease and no dysplasia reported (both must be stated: missing is not normal), and
        no MDS/AML or high-risk myeloid lesion recorded on it."""
        return m.disease_present is False and m.dysplasia is False and not self.myeloid_findings(m)

    @staticmethod
    def marrow_hypocellular(m: BoneMarrow) -> bool:
        return m.cellularity in (Cellularity.HYPOCELLULAR, Cellularity.APLASTIC) or (
            m.cellularity_pct is not None and m.cellularity_pct < 30
        )

    def marrow_aplastic(self, m: BoneMarrow) -> bool:
        return m.cellularity == Cellularity.APLASTIC or (
            m.cellularity_pct is not None
            and m.cellularity_pct <= self.t.num("aplasia_cellularity_pct_max")
        )

    def myeloid_findings(self, m: BoneMarrow) -> list[str]:
        """What in a marrow points to a secondary myeloid neoplasm: MDS/AML diagnosed, or a
        high-risk lesion (thresholds.toml [myeloid_lesions]) named in its cytogenetics, FISH or
        NGS text; a segment that negates it ('TP53 wild-type', 'no -7') does not count."""
        out = ["MDS/AML diagnosed"] if m.myeloid_neoplasm else []
        for label, text in (("cytogenetics", m.cytogenetics), ("FISH", m.fish), ("NGS", m.ngs)):
            for segment in re.split(r"[;,\n]", text or ""):
                if _NEGATION.search(segment):
                    continue
                if any(re.search(p, segment, re.IGNORECASE) for p in self.t.myeloid_lesions):
                    out.append(f"{label}: {segment.strip()}")
        return out

    @cached_property
    def myeloid_neoplasm_marrow(self) -> tuple[BoneMarrow, list[str]] | None:
        """The latest marrow after infusion with a secondary myeloid neoplasm finding."""
        for m in reversed(self.marrows):
            if (m.day or 0) >= 0 and (found := self.myeloid_findings(m)):
                return m, found
        return None

    @property
    def other_cause_recorded(self) -> list[str]:
        """Causes other than CAR-T recorded in the course (relapse, marrow disease, dysplasia,
        a secondary myeloid neoplasm)."""
        out = []
        if self.relapse_day is not None:
            out.append(f"relapse recorded on day {self.relapse_day}")
        for m in self.marrows:
            if m.disease_present:
                out.append(f"disease in the marrow on day {m.day}")
            if m.dysplasia and (m.day or 0) >= 0:
                out.append(f"dysplasia in the marrow on day {m.day}")
        if self.myeloid_neoplasm_marrow is not None:
            m, found = self.myeloid_neoplasm_marrow
            out.append(f"secondary myeloid neoplasm finding on day {m.day} ({'; '.join(found)})")
        return out

    @cached_property
    def late_new_drops(self) -> list[tuple[str, int]]:
        """(text, day of the drop) for late-phase lineages that recovered (CTCAE grade < 2 after infusion) and have dropped
        again to grade >= 2 on the last value ('worsening cytopenia', thresholds.toml)."""
        if not self.late:
            return []
        min_grade = self.t.whole("late_worsening_min_ctcae_grade")
        table = tables.ctcae(self.settings.ctcae_version)
        sex = self.course.patient.sex.value
        prolonged_from = next(p.first_day for p in self.timing.phases if p.id == "prolonged")
        out = []
        for code, label in (("anc", "ANC"), ("platelets", "platelets"), ("hb", "Hb")):
            s = [v for v in self.series(code) if v.day >= 0]
            if len(s) < 2:
                continue
            values = np.array([v.value for v in s], dtype=np.float64)
            sexes = np.array([sex] * len(s), dtype=object) if code == "hb" else None
            grades = grade_values(values, code, table, self.settings.reference_ranges, sexes)
            below = np.flatnonzero(grades < min_grade)
            if grades[-1] < min_grade or below.size == 0:
                continue
            drop = s[int(below[-1]) + 1]  # first value of the current run at grade >= min_grade
            if drop.day >= prolonged_from:  # not the early cytopenia continuing
                text = (
                    f"{label} {fmt(s[-1].value)} on day {s[-1].day} (CTCAE grade {grades[-1]}; "
                    f"recovered, then dropped again from day {drop.day})"
                )
                out.append((text, drop.day))
        return out

    @property
    def gvhd_active(self) -> list[GVHD]:
        return [g for g in self.course.events_of(GVHD) if g.active_on(self.day)]

    @cached_property
    def viral_reactivations(self) -> list[Infection]:
        out = []
        for i in self.course.events_of(Infection):
            name = (i.organism or "").lower()
            named = any(v in name for v in VIRAL_REACTIVATION_NAMES)
            viral = i.category in (InfectionCategory.VIRAL, InfectionCategory.UNKNOWN)
            current = i.active_on(self.day) or (
                i.end_day is not None and self.day - i.end_day <= 30
            )
            if (i.reactivation or named) and viral and current:
                out.append(i)
        return out


def describe_marrow(m: BoneMarrow) -> str:
    """A marrow result in a few words (what was reported; unreported items are left out)."""
    parts = []
    if m.cellularity:
        parts.append(m.cellularity.value)
    if m.cellularity_pct is not None:
        parts.append(f"{fmt(m.cellularity_pct)}% cellular")
    for flag, label in (
        (m.disease_present, "disease"),
        (m.dysplasia, "dysplasia"),
        (m.fibrosis, "fibrosis"),
    ):
        if flag is True:
            parts.append(label)
        elif flag is False:
            parts.append(f"no {label}")
    if m.mrd:
        parts.append(f"MRD {m.mrd}")
    return ", ".join(parts) if parts else "no result recorded"
