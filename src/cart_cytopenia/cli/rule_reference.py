"""Generate docs/rule-reference.md from the rule tables, catalogues and guidance recommendations.

The reference is never edited by hand: ``make docs`` regenerates it and a test fails when the
committed file differs from what the tables produce.
"""

from __future__ import annotations

import math
from typing import Any

from cart_cytopenia.domain.analytes import catalogue as analyte_catalogue
from cart_cytopenia.domain.catalogues import drugs, products
from cart_cytopenia.rules import tables
from cart_cytopenia.rules.bands import Band, BandTable
from cart_cytopenia.rules.settings import Settings


def _meta(m: tables.RuleMeta) -> list[str]:
    out = [
        f"- **Table**: `{m.id}`, version {m.version} (transcribed {m.transcribed})",
        f"- **Source**: {m.source}",
    ]
    for k, v in m.extra.items():
        out.append(
            f"- **{k.replace('_', ' ')}**: {v if not isinstance(v, list) else ', '.join(map(str, v))}"
        )
    return out


def _band_row(b: Band, unit: str, value_name: str) -> str:
    return f"| {b.value} | {b.describe(unit)} | {b.text} |"


def _bands(t: BandTable, unit: str, value_name: str) -> list[str]:
    rows = [f"| {value_name} | range ({unit}) | source wording |", "|---|---|---|"]
    rows += [_band_row(b, unit, value_name) for b in sorted(t.bands, key=lambda b: -b.value)]
    return rows


def _fmt(x: float) -> str:
    return "∞" if math.isinf(x) else f"{x:g}"


def _grade_1_start(crit: tables.CtcaeCriterion, version: str, lln: float, unit: str) -> str:
    """Where grade 1 starts, as the criterion's bands define it (the LLN, or a fixed cut-point
    for a criterion whose grade 1 does not refer to the LLN, such as CTCAE v6 neutrophils)."""
    if crit.lln_key is None:
        top = crit.table(lln).bands[-1].min
        return (
            f"Grade 1 does not refer to the laboratory LLN in CTCAE v{version}: it starts below "
            f"{top:g} {unit}, and values from {top:g} {unit} up are grade 0."
        )
    return (
        f"Grade 1 starts below the laboratory LLN (institutional setting; default {lln:g} {unit}"
        + (" for women, the lower LLN when sex is unknown" if crit.analyte == "hb" else "")
        + ")."
    )


def _grade_rows(grades: tuple[tables.EarlyGrade, ...]) -> list[str]:
    rows = ["| grade | definition | conditions (any) |", "|---|---|---|"]
    for g in grades:
        conds = "; ".join(f"{c.measure} {_fmt(c.min)}–{_fmt(c.max)}" for c in g.any)
        rows.append(f"| {g.grade} | {g.text} | {conds} |")
    return rows


def _easix_section() -> list[str]:
    t = tables.easix()
    return [
        "## EASIX and m-EASIX",
        "",
        *_meta(t.meta),
        "",
        "EASIX = LDH (U/L) × creatinine (mg/dL) / platelets (×10⁹/L); m-EASIX = LDH × CRP (mg/dL) "
        "/ platelets. Shown beside CAR-HEMATOTOX.",
        "",
        f"- Before lymphodepletion: each value the last on or before the day lymphodepletion "
        f"starts, within {t.baseline_window_days} days before it (as CAR-HEMATOTOX); a score with a "
        "value missing is not computed and the missing analytes are named.",
        f"- Day {t.early_days[0]}–{t.early_days[1]}: the highest score of a day that has all its "
        "values (the day's highest LDH, creatinine and CRP, lowest platelet count).",
        f"- Cut-off: EASIX before lymphodepletion > {t.baseline_cutoff:g} — {t.cutoff_outcome} "
        f"({t.cutoff_source}). No cut-off is applied to m-EASIX or to day 0–3.",
        "",
    ]


def _tatma_section() -> list[str]:
    t = tables.tatma()
    c = t.cut
    rr = Settings().reference_ranges
    return [
        "## TA-TMA harmonised criteria",
        "",
        *_meta(t.meta),
        "",
        f"Meets the criteria: >= {t.required} of {len(t.criteria)} criteria at two consecutive "
        f"time points within {t.window_days} days (the second at most {t.window_days - 1} days "
        "after the first). A criterion without a value is not assessable, never 'not met'; the "
        "count is shown as 'k of 7 met (m of 7 assessable)'.",
        "",
        "| criterion | the paper | as computed |",
        "|---|---|---|",
        f"| {t.criterion('anaemia').label} | {t.criterion('anaemia').text} | Hb <= baseline − "
        f"{c['hb_decline_g_dl']:g} g/dL, or a red-cell transfusion in the "
        f"{t.transfusion_lookback_days} days before |",
        f"| {t.criterion('thrombocytopenia').label} | {t.criterion('thrombocytopenia').text} | "
        f"platelets < {c['platelets_below']:g} ×10⁹/L or <= "
        f"{c['platelets_fraction_of_baseline']:.0%} of baseline, or a platelet transfusion in the "
        f"{t.transfusion_lookback_days} days before |",
        f"| {t.criterion('ldh').label} | {t.criterion('ldh').text} | LDH > "
        f"{c['ldh_above_uln']:g} × ULN (setting reference_ranges.ldh_uln_u_l, default "
        f"{rr.ldh_uln_u_l:g} U/L) |",
        f"| {t.criterion('schistocytes').label} | {t.criterion('schistocytes').text} | "
        "schistocytes result 1 (present), or the finding 'schistocytes' recorded present |",
        f"| {t.criterion('hypertension').label} | {t.criterion('hypertension').text} | age >= "
        f"{c['adult_age_years']:g}: SBP >= {c['sbp_mm_hg']:g} or DBP >= {c['dbp_mm_hg']:g} "
        "mmHg; any age: an antihypertensive drug active that day, or the finding 'hypertension' "
        "/ 'antihypertensive-needed' |",
        f"| {t.criterion('sc5b9').label} | {t.criterion('sc5b9').text} | sC5b-9 >= "
        f"{c['sc5b9_at_least_uln']:g} × ULN (setting reference_ranges.sc5b9_uln_ng_ml, default "
        f"{rr.sc5b9_uln_ng_ml:g} ng/mL) |",
        f"| {t.criterion('proteinuria').label} | {t.criterion('proteinuria').text} | UPCR >= "
        f"{c['upcr_mg_mg']:g} mg/mg |",
        "",
        f"Time points: days from day 0 with a value a criterion reads; each criterion reads its "
        f"latest value within {t.carry_forward_days} days (the day's worst value). Baselines: the "
        f"last Hb and platelet count on or before the start of lymphodepletion, within "
        f"{t.baseline_window_days} days.",
        "",
        "Status: meets (two consecutive time points within the window each reach the count); not "
        "met (no time point could reach it even with every criterion not assessable counted as "
        "met); otherwise work-up incomplete (k of 7 met, m of 7 not assessable) when one of the "
        f"TA-TMA-specific criteria ({', '.join(t.workup_criteria)}) was assessable on a time "
        "point after infusion, else not evaluated (no TA-TMA work-up; this project's convention, "
        "docs/conventions.md). Neither is ever 'not met'.",
        "",
        f"High-risk TA-TMA (any one, at the time point the criteria are met): sC5b-9 >= ULN; "
        f"rUPCR >= 1 mg/mg; LDH >= {t.high_risk_ldh_uln:g} × ULN; concurrent acute GVHD grade "
        f">= {t.high_risk_gvhd_grade}; concurrent "
        f"{' or '.join(t.high_risk_infections)} infection; organ dysfunction (finding).",
        "",
    ]


def _iechs_section() -> list[str]:
    t, r = tables.iec_hs(), Settings().reference_ranges
    h = t.hscore_ferritin, t.hscore_triglycerides, t.hscore_temperature
    cyt = t.cytopenia_below
    hc = t.hscore_cytopenia_at_or_below
    return [
        "## IEC-HS (ASTCT criteria), carHLH and HScore",
        "",
        *_meta(t.meta),
        "",
        "Every criterion is present, recorded absent or unknown; a missing input is listed, never "
        "scored as normal. No IEC-HS grade is computed (the grading table was not read).",
        "",
        f"- **Ferritin**: above {t.ferritin_multiple:g}× the ULN ({r.ferritin_uln_ng_ml:g} ng/mL, "
        "settings `reference_ranges.ferritin_uln_ng_ml`), or the baseline (last value on or "
        f"before day 0 within {t.ferritin_baseline_window_days} days) when that is above the "
        "ULN, AND rising.",
        f"- **Rising** (one convention with the guidance's 'rapid increase in ferritin'): at "
        f"least {t.ferritin_rise_fold:g}^max(1, gap / {t.ferritin_rise_window_days} days) × some "
        f"earlier value of the {t.ferritin_rise_lookback_days} days before: "
        f"{t.ferritin_rise_fold:g}× against a value of the {t.ferritin_rise_window_days} days "
        f"before, a doubling per {t.ferritin_rise_window_days} days against an older one "
        f"({t.ferritin_rise_fold**2:g}× over {2 * t.ferritin_rise_window_days} days). Not "
        f"rising only with an earlier value in the {t.ferritin_rise_window_days} days before; "
        "otherwise trend unknown, never 'not rising'. After a recorded CRS end only values from "
        f"that day on count as earlier. Source: {t.ferritin_rise_source}",
        "- **Onset relative to CRS**: on or after the CRS end day: met; during CRS, without a "
        "CRS end day or without a CRS record: unknown (at most suspected); before CRS: not met.",
        f"- **Principal manifestations** (from {t.window_before_days} days before onset): marrow "
        f"haemophagocytosis; AST or ALT > {t.transaminase_uln_multiple:g}× ULN; fibrinogen "
        f"< {t.fibrinogen_below:g} mg/dL; new or worsening cytopenia from the onset day (ANC "
        f"< {cyt['anc']:g}/µL, platelets < {cyt['platelets']:g} ×10⁹/L or Hb < {cyt['hb']:g} g/dL "
        "and below the week before). Further features listed: LDH > ULN, triglycerides "
        f"> {t.triglycerides_above:g} mg/dL, bilirubin > ULN, coagulopathy, splenomegaly, organ "
        "dysfunction.",
        "- **Status**: met (ferritin, onset and a principal manifestation); not met (one of them "
        "absent); suspected (undecided, with a rising ferritin or haemophagocytosis, "
        "transaminases or fibrinogen present); not assessable (no ferritin after infusion, or an "
        "elevated ferritin alone). Guidance level raised to: "
        + ", ".join(f"{k} → {v}" for k, v in t.guidance_level.items())
        + " (never lowered).",
        f"- **carHLH**: peak ferritin during CRS > {t.carhlh_ferritin_above:g} ng/mL and "
        f"≥ {t.carhlh_min_organ} of: liver (bilirubin > {t.carhlh_bilirubin_uln_multiple:g}× ULN "
        f"or AST/ALT > {t.carhlh_transaminase_uln_multiple:g}× ULN), kidney (creatinine "
        f"> {t.carhlh_creatinine_uln_multiple:g}× ULN), lung (grade ≥ 3 pulmonary oedema: not in "
        "the course model, always missing), marrow haemophagocytosis.",
        f"- **HScore** (cut-off ≥ {t.hscore_cutoff}; window ± {t.hscore_window_days} days around "
        "the onset day, else before the last value): known immunosuppression "
        f"{t.hscore_immunosuppression}; temperature < {h[2].below:g} / {h[2].below:g}–"
        f"{h[2].upto:g} / > {h[2].upto:g} °C: {', '.join(map(str, h[2].points))}; organomegaly "
        f"none / liver or spleen / both: {', '.join(map(str, t.hscore_organomegaly))}; cytopenias "
        f"(Hb ≤ {hc['hb']:g} g/dL, WBC ≤ {hc['wbc']:g} ×10⁹/L, platelets ≤ {hc['platelets']:g} "
        f"×10⁹/L) 0–1 / 2 / 3 lineages: 0, {t.hscore_cytopenia[2]}, {t.hscore_cytopenia[3]}; "
        f"ferritin < {h[0].below:g} / {h[0].below:g}–{h[0].upto:g} / > {h[0].upto:g} ng/mL: "
        f"{', '.join(map(str, h[0].points))}; triglycerides < {h[1].below:g} / {h[1].below:g}–"
        f"{h[1].upto:g} / > {h[1].upto:g} mg/dL: {', '.join(map(str, h[1].points))}; fibrinogen "
        f"≤ {t.hscore_fibrinogen[0]:g} mg/dL: {t.hscore_fibrinogen[1]}; AST ≥ {t.hscore_ast[0]:g} "
        f"U/L: {t.hscore_ast[1]}; marrow haemophagocytosis: {t.hscore_haemophagocytosis}. "
        "Reported as the points of the items present, the items scored of 9 and the most the "
        "missing items could add; '≥ cut-off' only when reached, '< cut-off' only when it "
        "cannot be reached.",
        "",
    ]


def _ticaht_section() -> list[str]:
    t = tables.ticaht()
    c = t.conventions
    return [
        "## T-ICAHT (thrombocytopenia)",
        "",
        *_meta(t.meta),
        "",
        f"### Early T-ICAHT (day {t.early_window[0]}–{t.early_window[1]})",
        "",
        f"Cumulative days with platelets < {t.moderate_threshold:g} and < {t.severe_threshold:g} "
        "×10⁹/L (strict comparisons; a count equal to a cut-point is not below it).",
        "",
        *_grade_rows(t.early_grades),
        "",
        "Conventions (docs/conventions.md):",
        "",
        "- several counts on one day: the lowest",
        f"- missing days interpolated linearly across gaps of up to {c.max_interpolation_gap_days} days",
        f"- runs are joined unless the count stays at or above the cut-point on ≥ {c.join_min_recovered_days} consecutive days (those days count to the total)",
        f"- a count on the day of a platelet transfusion or the {c.post_transfusion_days} days after it is post-transfusion: at or above a cut-point it is not used",
        f"- a day with a platelet transfusion on it or in the {c.recovery_no_transfusion_days} days before keeps an open < {t.severe_threshold:g} run open",
        "- the window ends at relapse/progression, next therapy or death (as late ICAHT)",
        "",
        f"### Late T-ICAHT (day {t.late_window_start} to the earliest of day {t.late_window_end}, relapse/progression, next therapy, last follow-up, death)",
        "",
        t.late_text
        + f"; the lowest count sets the depth grade and the second-lowest must also be < {t.confirm_threshold:g} ×10⁹/L (a single count grades alone); post-transfusion counts ≥ {t.confirm_threshold:g} are not used.",
        "",
        *_bands(t.late_bands, "×10⁹/L", "grade"),
        "",
        f"Duration grades (cumulative days < {t.late_severe_threshold:g} ×10⁹/L in the window; the higher grade is reported):",
        "",
        *_grade_rows(t.late_grades),
        "",
    ]


def rule_reference() -> str:
    """The rule reference (docs/rule-reference.md) as Markdown, section by section."""
    settings = Settings()
    lines = [
        *_header(),
        *_ctcae_section(settings),
        *_icaht_section(),
        *_ticaht_section(),
        *_easix_section(),
        *_tatma_section(),
        *_iechs_section(),
        *_hematotox_section(),
        *_phenotype_section(),
        *_timing_section(),
        *_guidance_section(),
        *_settings_section(settings),
        *_catalogues_section(),
    ]
    return "\n".join(lines)


def _header() -> list[str]:
    """Title, generation notice and the units and comparators used throughout."""
    return [
        "# Rule reference",
        "",
        "<!-- Generated by `cart-cytopenia docs rules` (make docs) from the rule tables. Do not edit. -->",
        "",
        "Every threshold cart-cytopenia applies, with its source. Values are shown in the analyte's",
        "canonical unit (ANC and lymphocytes in cells/µL; platelets and WBC in 10³/µL = 10⁹/L;",
        "haemoglobin in g/dL). Comparators are explicit: CTCAE uses `<`, ICAHT uses `≤`.",
        "",
    ]


def _ctcae_section(settings: Settings) -> list[str]:
    """CTCAE v5.0 and v6.0 haematology: per criterion, where grade 1 starts and its bands."""
    lines: list[str] = []
    for version in ("5.0", "6.0"):
        ct = tables.ctcae(version)
        lines += [f"## CTCAE v{version} haematology", "", *_meta(ct.meta), ""]
        missing = [a for a in ("anc", "platelets", "hb", "wbc", "alc") if a not in ct.criteria]
        if missing:
            lines += [f"Not graded under v{version} (no such term): {', '.join(missing)}.", ""]
        for a, crit in ct.criteria.items():
            lln = settings.reference_ranges.lln_canonical(a)
            unit = "cells/µL" if a in ("anc", "alc") else ("g/dL" if a == "hb" else "10⁹/L")
            lines += [f"### {crit.term} (`{crit.id}`)", ""]
            if crit.comment:
                lines += [crit.comment, ""]
            lines += [_grade_1_start(crit, version, lln, unit), ""]
            lines += _bands(crit.table(lln), unit, "grade")
            lines.append("")
    return lines


def _icaht_section() -> list[str]:
    """EHA/EBMT ICAHT: early grades and conventions, late bands."""
    it = tables.icaht()
    lines: list[str] = ["## EHA/EBMT ICAHT", "", *_meta(it.meta), ""]
    lines += [
        f"### Early ICAHT (day {it.early_window[0]}–{it.early_window[1]})",
        "",
        f"Severe neutropenia: ANC ≤ {it.severe_threshold:g} cells/µL; profound: ANC ≤ {it.profound_threshold:g} cells/µL.",
        "",
        *_grade_rows(it.early_grades),
    ]
    c = it.conventions
    lines += [
        "",
        "Operational conventions (configurable in settings `[icaht]`):",
        "",
        "- several ANC values on one day: the lowest",
        f"- missing days interpolated linearly across gaps of up to {c.max_interpolation_gap_days} days",
        f"- two runs are one run unless ANC stays above the threshold on ≥ {c.join_min_recovered_days} consecutive days",
        f"- neutropenia starting by day {c.never_recovered_onset_by_day} that never recovers before the last value (or death): grade 4",
        "",
        f"### Late ICAHT (day {it.late_window_start} to the earliest of day {it.late_window_end}, relapse/progression, next therapy, last follow-up, death)",
        "",
        it.late_text
        + f"; the second-lowest value must also be ≤ {it.confirm_threshold:g} cells/µL (a single value grades alone).",
        "",
        *_bands(it.late_bands, "cells/µL", "grade"),
        "",
    ]
    return lines


def _hematotox_section() -> list[str]:
    """CAR-HEMATOTOX: score, high-risk cut-off and the points of each marker."""
    ht = tables.hematotox()
    lines: list[str] = [
        "## CAR-HEMATOTOX",
        "",
        *_meta(ht.meta),
        "",
        f"Score 0–{ht.max_score}; high risk ≥ {ht.high_min_score}.",
        "",
    ]
    for m in ht.markers:
        unit = {
            "platelets": "10³/µL",
            "anc": "cells/µL",
            "hb": "g/dL",
            "crp": "mg/dL",
            "ferritin": "ng/mL",
        }[m.analyte]
        lines += [f"### {m.analyte}", "", *_bands(m.bands, unit, "points"), ""]
    return lines


def _phenotype_section() -> list[str]:
    """The neutrophil recovery phenotypes and when one is never called quick."""
    pt = tables.recovery_phenotype()
    lines: list[str] = [
        "## Neutrophil recovery phenotype",
        "",
        *_meta(pt.meta),
        "",
        f"- recovery: ANC > {pt.recovery_threshold:g} cells/µL on {pt.recovery_min_days} consecutive days",
        f"- intermittent: after recovery, a second dip to ANC ≤ {pt.second_dip_threshold:g} cells/µL after day {pt.second_dip_after_day}",
        f"- aplastic: a joined run of ANC ≤ {pt.aplastic_threshold:g} cells/µL lasting ≥ {pt.aplastic_min_days} days",
        f"- quick: recovery (or no ANC ≤ {pt.aplastic_threshold:g} cells/µL at all) without a second dip, with ANC known beyond day {pt.min_followup_day}",
        f"- never quick: ANC ≤ {pt.not_quick_anc_le:g} cells/µL on a day after day {pt.not_quick_after_day}"
        + (", or a refractory G-CSF response" if pt.not_quick_if_gcsf_refractory else "")
        + f" (the phenotype is then not called, with the reason). {pt.not_quick_source}",
        "",
    ]
    return lines


def _timing_section() -> list[str]:
    """Phases, lineage cut-points, transfusion dependence and G-CSF response."""
    tt = tables.timing()
    lines: list[str] = [
        "## Timing of cytopenia",
        "",
        *_meta(tt.meta),
        "",
        "| phase | days | wording |",
        "|---|---|---|",
    ]
    for p in tt.phases:
        lines.append(f"| {p.id} | {p.first_day}–{_fmt(p.last_day)} | {p.text} |")
    lines += [
        "",
        "| lineage | significant cytopenia below | severe at or below | source |",
        "|---|---|---|---|",
    ]
    for lin in tt.lineages:
        lines.append(f"| {lin.id} | {lin.significant_below:g} | {lin.severe_le:g} | {lin.source} |")
    lines += [
        "",
        f"Transfusion dependence: ≥ {tt.td_min_transfusions} transfusion episodes of the product in the trailing {tt.td_window_days} days. {tt.td_source}",
        "",
        f"Also transfusion-dependent ({', '.join(tt.regular.products)}; {tt.regular.label}): ≥ {tt.regular.min_units} units in ≥ {tt.regular.min_episodes} transfusion episodes in the trailing {tt.regular.window_days} days, the last less than {tt.regular.independent_after_days} days before (a transfusion without a unit count: 1 unit). {tt.regular.source}",
        "",
        f"G-CSF response: ANC > {tt.gcsf_response_anc:g} cells/µL (or > {tt.gcsf_biphasic_target_anc:g} when started above that level) within {tt.gcsf_window_days} days. {tt.gcsf_source}",
        "",
    ]
    return lines


def _settings_section(settings: Settings) -> list[str]:
    """Every institutional setting with its default."""
    lines: list[str] = [
        "## Institutional settings and their defaults",
        "",
        "| setting | default |",
        "|---|---|",
    ]
    for k, v in settings.in_force().items():
        lines.append(f"| `{k}` | {v} |")
    lines.append("")
    return lines


def _catalogues_section() -> list[str]:
    """The analyte, product and drug catalogues."""
    lines = [
        "## Catalogues",
        "",
        f"### Analytes ({analyte_catalogue().source}, version {analyte_catalogue().version})",
        "",
    ]
    lines += [
        "| code | analyte | LOINC | canonical unit | accepted units | plausible range |",
        "|---|---|---|---|---|---|",
    ]
    for entry in analyte_catalogue().analytes:
        lines.append(
            f"| {entry.code} | {entry.label} | {', '.join(entry.loinc)} | {entry.canonical_unit.ucum} | "
            f"{', '.join(u.ucum for u in entry.units)} | {entry.describe_range()} |"
        )
    lines += [
        "",
        "### Products",
        "",
        "| id | generic | brand | target | costimulation |",
        "|---|---|---|---|---|",
    ]
    for p_ in products().values():
        lines.append(f"| {p_.id} | {p_.generic} | {p_.brand} | {p_.target} | {p_.costimulatory} |")
    lines += [
        "",
        "### Drugs",
        "",
        "| drug | classes | alternative when myelosuppressive |",
        "|---|---|---|",
    ]
    for d in drugs().values():
        lines.append(
            f"| {d.id} | {', '.join(sorted(c.value for c in d.classes))} | {d.alternative or ''} |"
        )
    lines.append("")
    return lines


def _guidance_section() -> list[str]:
    import importlib

    guidance = importlib.import_module("cart_cytopenia.guidance")
    guidance_catalogue = getattr(guidance, "catalogue", None)
    if guidance_catalogue is None:
        return []
    specs: list[Any] = list(guidance_catalogue())
    out = [
        "## Guidance recommendations",
        "",
        "| id | kind | recommendation | evidence | citation |",
        "|---|---|---|---|---|",
    ]
    for s in specs:
        flag = " *(speculative)*" if getattr(s, "speculative", False) else ""
        out.append(f"| `{s.id}` | {s.kind} | {s.title}{flag} | {s.evidence} | {s.citation} |")
    out.append("")
    for s in specs:
        quote = getattr(s, "quote", "")
        if quote:
            out += [f"- `{s.id}`: “{quote}”"]
    out.append("")
    return out
