"""TA-TMA and haemolysis facts of ``Context``: the haemolysis markers found on recent
laboratory values and findings, what was looked for and found absent, the TA-TMA harmonised
criteria as graded (``grading.tatma``, the one definition), the review's TA-TMA pattern
(transfusion-dependent anaemia and thrombocytopenia with neutrophil recovery) and the suspicion
after allogeneic transplant.
"""

from __future__ import annotations

from functools import cached_property

from cart_cytopenia.domain.course import ClinicalFinding, Finding
from cart_cytopenia.grading.tatma_result import TatmaResult
from cart_cytopenia.guidance.context_base import ContextBase, LabValue, fmt


class TmaFacts(ContextBase):
    """Haemolysis and TA-TMA facts: markers found, markers found absent, the review's pattern."""

    @cached_property
    def dat(self) -> LabValue | None:
        """The latest direct antiglobulin test in the finding window (1 positive, 0 negative)."""
        return self.latest("dat", int(self.t.num("recent_finding_days")))

    @cached_property
    def haemolysis_markers(self) -> list[str]:
        rs = self.settings.reference_ranges
        window = int(self.t.num("recent_finding_days"))
        out = []
        if self.dat is not None and self.dat.value >= 1:
            out.append(f"DAT positive (day {self.dat.day})")
        bili = self.latest("bilirubin", window)
        if bili is not None and bili.value > rs.bilirubin_uln_mg_dl:
            out.append(f"bilirubin {fmt(bili.value)} mg/dL")
        hp = self.latest("haptoglobin", window)
        if hp is not None and hp.value < rs.haptoglobin_lln_mg_dl:
            out.append(f"haptoglobin {fmt(hp.value)} mg/dL")
        ldh = self.latest("ldh", window)
        if ldh is not None and ldh.value > rs.ldh_uln_u_l:
            out.append(f"LDH {fmt(ldh.value)} U/L")
        if self.recent_finding(Finding.SCHISTOCYTES):
            out.append("schistocytes")
        rt = self.latest("retic_pct", window)
        if rt is not None and rt.value > rs.retic_pct_uln:
            out.append(f"reticulocytes {fmt(rt.value)}%")
        return out

    @property
    def tma(self) -> TatmaResult:
        """The TA-TMA harmonised criteria as graded on the day (``grading.tatma``: the one
        definition the guidance reads)."""
        return self.a.tatma

    @property
    def tma_criteria_met(self) -> list[str]:
        """The harmonised criteria met at the reference time point, each with its evidence."""
        out = []
        for c in self.tma.criteria:
            if c.met:
                at = f", day {c.day}: {fmt(c.value)} {c.unit}" if c.value is not None else ""
                out.append(f"{c.label} ({c.how}{at})")
        return out

    @property
    def tma_other_criteria_met(self) -> int:
        """Harmonised criteria met other than anaemia and thrombocytopenia (the TMA markers)."""
        counts = {"anaemia", "thrombocytopenia"}
        return sum(1 for c in self.tma.criteria if c.met and c.id not in counts)

    @property
    def haemolysis_negatives(self) -> list[str]:
        """What was looked for and found absent (used, never read as 'not looked for')."""
        out = []
        if self.dat is not None and self.dat.value < 1:
            out.append(f"DAT negative (day {self.dat.day})")
        absent = self.recently_absent(Finding.SCHISTOCYTES)
        if absent is not None:
            out.append(f"no schistocytes (day {absent.day})")
        return out

    @property
    def infection_excluded(self) -> ClinicalFinding | None:
        """A recent record that infection was looked for and excluded (and no infection since)."""
        found = self.findings(Finding.INFECTION_EXCLUDED, self.t.num("recent_finding_days"))
        if not found or self.infections_active:
            return None
        return found[-1]

    @property
    def tma_pattern(self) -> bool:
        """Transfusion-dependent anaemia and thrombocytopenia but neutrophil recovery."""
        thrombocytopenia = self.plt_td or (self.plt is not None and self.platelets.significant)
        return (
            self.rbc_td
            and thrombocytopenia
            and self.anc is not None
            and self.anc > self.t.num("tatma_anc_recovered_above")
        )

    @property
    def tma_suspected(self) -> bool:
        """Prior allo-HCT and cytopenia with the review's TA-TMA pattern, the harmonised criteria
        reached (>= 4 of 7 on a time point), or TMA markers (harmonised criteria other than the
        blood counts)."""
        t = self.tma
        return (
            self.prior_allo
            and self.any_cytopenia
            and (
                self.tma_pattern
                or (t.criteria_met or 0) >= t.required
                or self.tma_other_criteria_met >= self.t.whole("tatma_suspect_other_criteria")
            )
        )
