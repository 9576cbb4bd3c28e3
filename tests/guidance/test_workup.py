"""Work-up recommendations, each on both sides of its trigger (Jain, Olson, Locke 2023)."""

from __future__ import annotations

from tests.guidance.builders import (
    counts,
    course,
    fever,
    guidance,
    ids,
    infection,
    marrow,
    med,
    series,
    tx,
)


def test_medication_review_names_myelosuppressive_drugs() -> None:
    # "we start with a comprehensive review of medications and replace myelosuppressive agents"
    normal = counts(range(11))
    assert "workup.medication-review" not in ids(course(normal), 10)
    assert "workup.medication-review" in ids(course(counts(range(11), anc=300)), 10)
    item = guidance(course(normal, [med("valganciclovir", 5)]), 10).item("workup.medication-review")
    assert item is not None and "valganciclovir" in item.summary
    assert "workup.medication-review" in ids(course(normal), -6)  # before lymphodepletion


def test_medication_review_does_not_repeat_the_myelosuppressive_drug_alert() -> None:
    # one message per drug: TMP-SMX during neutropenia is the alert's (with its alternative);
    # the medication review stays, at info level, and points to the alert
    neutropenic = counts(range(11), anc=300)
    g = guidance(course(neutropenic, [med("trimethoprim-sulfamethoxazole", 5)]), 10)
    alert = g.item("alert.myelosuppressive-drug")
    assert alert is not None and "pentamidine" in alert.summary
    review = g.item("workup.medication-review")
    assert review is not None and review.urgency == "info"
    assert "trimethoprim-sulfamethoxazole" not in review.summary
    assert "see the alert" in review.rationale
    # two drugs: both are the alert's, the review names neither
    g = guidance(
        course(neutropenic, [med("trimethoprim-sulfamethoxazole", 5), med("linezolid", 6)]), 10
    )
    alert, review = g.item("alert.myelosuppressive-drug"), g.item("workup.medication-review")
    assert alert is not None and "linezolid" in alert.summary
    assert review is not None and review.urgency == "info" and "linezolid" not in review.summary
    # without a cytopenia there is no alert, so the review names the drug itself
    g = guidance(course(counts(range(11)), [med("trimethoprim-sulfamethoxazole", 5)]), 10)
    assert "alert.myelosuppressive-drug" not in g.ids()
    review = g.item("workup.medication-review")
    assert review is not None and "trimethoprim-sulfamethoxazole" in review.summary


def test_infection_workup_febrile_neutropenia_is_critical() -> None:
    # "Thorough evaluation and management of infections, including viral and fungal, are essential"
    neutropenic = counts(range(11), anc=300)
    assert "workup.infection" not in ids(course(neutropenic), 10)
    item = guidance(course(neutropenic, [fever(10, 38.7)]), 10).item("workup.infection")
    assert item is not None and item.urgency == "critical" and "Febrile neutropenia" in item.summary
    item = guidance(course(counts(range(11)), [fever(10, 38.7)]), 10).item("workup.infection")
    assert item is not None and item.urgency == "action"
    low_grade = guidance(course(neutropenic, [fever(10, 37.6)]), 10)
    assert "workup.infection" not in low_grade.ids()


def test_occult_infection_in_prolonged_cytopenia() -> None:
    c = course(counts(range(0, 41, 2), plt=30))
    assert "workup.infection" not in ids(c, 20)
    item = guidance(c, 40).item("workup.infection")
    assert item is not None and "occult" in item.summary


def test_bone_marrow_for_prolonged_cytopenia_unless_recently_done() -> None:
    # "Bone marrow biopsy in patients with prolonged or late cytopenias is important"
    labs = counts(range(0, 46, 3), plt=30)
    assert "workup.bone-marrow" not in ids(course(labs), 25)
    item = guidance(course(labs), 45).item("workup.bone-marrow")
    assert (
        item is not None
        and item.urgency == "consider"
        and "cytogenetics, FISH and NGS" in item.summary
    )
    assert "workup.bone-marrow" not in ids(course(labs, [marrow(40)]), 45)


def test_bone_marrow_when_gcsf_fails() -> None:
    # "A complete lack of responsiveness to G-CSF may prompt bone marrow biopsy."
    c = course(counts(range(0, 26), anc=100), [med("filgrastim", 8)])
    item = guidance(c, 25).item("workup.bone-marrow")
    assert item is not None and item.urgency == "action" and "G-CSF" in item.summary
    responding = course(
        counts(range(0, 26), anc=lambda d: 100 if d < 11 else 900), [med("filgrastim", 8)]
    )
    assert "workup.bone-marrow" not in ids(responding, 25)


def test_bone_marrow_new_trigger_after_a_marrow() -> None:
    labs = counts(range(0, 61, 3), plt=30)
    after = course(labs, [marrow(40), {"type": "relapse", "day": 55}])
    assert "workup.bone-marrow" in ids(after, 60)


def test_paediatric_all_marrow_mrd_and_lineage() -> None:
    # "broad cytogenetic, immunophenotype, and molecular screening ... for MRD tracking in ALL"
    labs = counts(range(0, 41, 2), plt=30)
    child = course(labs, age=4, disease="B-ALL", product="tisa-cel")
    assert "workup.mrd-lineage" in ids(child, 40)
    assert "workup.mrd-lineage" not in ids(child, 20)
    assert "workup.mrd-lineage" not in ids(course(labs, age=40, disease="B-ALL"), 40)
    with_mrd = course(labs, [marrow(35, mrd="negative (NGS)")], age=4, disease="B-ALL")
    assert "workup.mrd-lineage" not in ids(with_mrd, 40)


def test_chimerism_after_prior_allo() -> None:
    labs = counts(range(0, 41, 2), plt=30)
    allo = [{"kind": "allogeneic", "day": -200}]
    assert "workup.chimerism" in ids(course(labs, prior_hct=allo), 40)
    assert "workup.chimerism" not in ids(course(labs), 40)
    assert "workup.chimerism" not in ids(course(labs, prior_hct=allo), 20)


def test_ta_tma_assessment_needs_neutrophil_recovery() -> None:
    # "prolonged transfusion-dependent anemia and thrombocytopenia but neutrophil recovery"
    allo = [{"kind": "allogeneic", "day": -200}]
    events = [*tx("rbc", range(30, 61, 10)), *tx("platelets", range(30, 61, 7))]
    recovered = course(counts(range(0, 61, 3), anc=1500, plt=30, hb=8), events, prior_hct=allo)
    g = guidance(recovered, 60)
    assert {"workup.ta-tma", "differential.ta-tma"} <= g.ids()
    neutropenic = course(counts(range(0, 61, 3), anc=300, plt=30, hb=8), events, prior_hct=allo)
    assert "workup.ta-tma" not in ids(neutropenic, 60)
    no_allo = course(counts(range(0, 61, 3), anc=1500, plt=30, hb=8), events)
    assert "workup.ta-tma" not in ids(no_allo, 60)


def test_ta_tma_markers_alone_after_allo() -> None:
    # two harmonised criteria other than the blood counts (LDH > ULN, rUPCR >= 1 mg/mg)
    allo = [{"kind": "allogeneic", "day": -200}]
    labs = counts(range(0, 41, 2), anc=300, plt=30, hb=8)
    labs += series("ldh", [40], 600) + series("upcr", [40], 1.2)
    g = guidance(course(labs, prior_hct=allo), 40)
    assert "workup.ta-tma" in g.ids()
    item = g.item("workup.ta-tma")
    assert item is not None
    assert "TA-TMA harmonised criteria 3 of 7 met" in item.rationale
    assert "LDH > ULN (> 250 U/L (ULN), day 40: 600 U/L)" in item.rationale
    assert "sC5b-9" in item.rationale and "sC5b-9" in item.summary  # not assessable: named
    one_marker = counts(range(0, 41, 2), anc=300, plt=30, hb=8) + series("ldh", [40], 600)
    assert "workup.ta-tma" not in ids(course(one_marker, prior_hct=allo), 40)
    # haptoglobin is a haemolysis marker, not a harmonised criterion
    hapto = one_marker + series("haptoglobin", [40], 10)
    assert "workup.ta-tma" not in ids(course(hapto, prior_hct=allo), 40)


def test_viral_pcr_after_allo_or_recorded_reactivation() -> None:
    labs = counts(range(0, 21), anc=300)
    allo = [{"kind": "allogeneic", "day": -200}]
    assert "workup.viral-reactivation" in ids(course(labs, prior_hct=allo), 20)
    assert "workup.viral-reactivation" not in ids(course(labs), 20)
    cmv = infection(15, category="viral", organism="CMV", reactivation=True)
    assert "workup.viral-reactivation" in ids(course(labs, [cmv]), 20)


def test_cd4_count_from_pjp_start_until_above_200() -> None:
    labs = counts(range(0, 31, 2))
    assert "workup.cd4" not in ids(course(labs), 20)
    assert "workup.cd4" in ids(course(labs), 30)
    assert "workup.cd4" not in ids(course(labs + series("cd4", [29], 150)), 30)  # recent
    assert "workup.cd4" not in ids(course(labs + series("cd4", [25], 260)), 30)  # > 200


def test_igg_for_cd19_and_bcma_products_from_day_30() -> None:
    labs = counts(range(0, 41, 2))
    assert "workup.igg" in ids(course(labs), 40)
    assert "workup.igg" not in ids(course(labs), 20)
    assert "workup.igg" not in ids(course(labs + series("igg", [35], 450)), 40)
    assert "workup.igg" in ids(course(labs, product="cilta-cel", disease="MM"), 40)


def test_bone_marrow_triggers_named_by_the_review() -> None:
    # "for prolonged cytopenia we also consider a bone marrow aspirate when there is a high
    # likelihood of primary disease progression/relapse, evidence of marrow fibrosis or lineage
    # dysplasia before CAR-T, or evidence of IEC-HS"
    labs = counts(range(0, 41, 2), plt=30)
    myeloma = guidance(
        course(labs, disease="MM", product="ide-cel", marrow_involvement_pct=56), 40
    ).item("workup.bone-marrow")
    assert myeloma is not None and myeloma.urgency == "consider"
    assert "high likelihood of relapse" in myeloma.rationale
    dysplasia = guidance(course(labs, pre_existing_dysplasia=True), 40).item("workup.bone-marrow")
    assert dysplasia is not None and "dysplasia or fibrosis before CAR-T" in dysplasia.rationale
    plain = guidance(course(labs), 40).item("workup.bone-marrow")
    assert plain is not None and "relapse" not in plain.rationale
    assert "before CAR-T" not in plain.rationale


def test_bone_marrow_for_suspected_iec_hs_even_after_a_marrow() -> None:
    labs = counts(range(0, 41, 2), anc=lambda d: 3000 if d < 30 else 400)
    labs += series("ferritin", [20, 36, 38], lambda d: 1500 if d == 20 else 30000)
    events = [
        {"type": "crs", "start_day": 1, "end_day": 5, "max_grade": 2},
        fever(37),
        marrow(32),
    ]
    item = guidance(course(labs, events), 38).item("workup.bone-marrow")
    assert item is not None and item.urgency == "action" and "IEC-HS" in item.rationale
    no_iechs = course(counts(range(0, 41, 2), anc=lambda d: 3000 if d < 30 else 400), [marrow(32)])
    assert "workup.bone-marrow" not in ids(no_iechs, 38)
