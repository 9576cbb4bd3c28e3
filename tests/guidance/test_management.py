"""Management recommendations, each on both sides of its trigger (Jain, Olson, Locke 2023)."""

from __future__ import annotations

from cart_cytopenia.rules.settings import settings_from_dict
from tests.guidance.builders import (
    counts,
    course,
    crs,
    fever,
    finding,
    guidance,
    ids,
    infection,
    marrow,
    med,
    series,
    tx,
)

# ------------------------------------------------------------------ transfusion (institutional)


def test_rbc_transfusion_below_institutional_threshold_only() -> None:
    # review case 1: "goal of hemoglobin >7 g/dL" (settings default 7.0, '<' comparison)
    low = course(counts(range(0, 11), hb=6.8))
    at = course(counts(range(0, 11), hb=7.0))
    assert "management.transfusion.rbc" in ids(low, 10)
    assert "management.transfusion.rbc" not in ids(at, 10)
    item = guidance(low, 10).item("management.transfusion.rbc")
    assert item is not None and "6.8" in item.summary and item.inputs["threshold_g_dl"] == 7.0


def test_platelet_transfusion_threshold_and_bleeding_threshold() -> None:
    # review case 1: "platelets >10 x10^3/uL"; bleeding raises it (settings, institutional)
    assert "management.transfusion.platelets" in ids(course(counts(range(11), plt=9)), 10)
    assert "management.transfusion.platelets" not in ids(course(counts(range(11), plt=10)), 10)
    quiet = course(counts(range(11), plt=30))
    bleeding = course(counts(range(11), plt=30), [finding("bleeding", 9)])
    assert "management.transfusion.platelets" not in ids(quiet, 10)
    item = guidance(bleeding, 10).item("management.transfusion.platelets")
    assert item is not None and item.urgency == "critical"


def test_transfusion_threshold_comes_from_settings() -> None:
    c = course(counts(range(11), hb=7.5))
    strict = settings_from_dict({"transfusion": {"rbc_hb_below_g_dl": 8.0}})
    assert "management.transfusion.rbc" not in ids(c, 10)
    assert "management.transfusion.rbc" in ids(c, 10, strict)


# ------------------------------------------------------------------ G-CSF and GM-CSF


def test_gcsf_considered_from_day_7_when_anc_not_above_500() -> None:
    # Figure 1: "If the ANC has not recovered to >500/mm3 by day 7 to 10, consider ... G-CSF"
    c = course(counts(range(0, 11), anc=300))
    assert "management.gcsf.start" not in ids(c, 6)
    assert "management.gcsf.start" in ids(c, 10)
    recovered = course(counts(range(0, 11), anc=600))
    assert "management.gcsf.start" not in ids(recovered, 10)


def test_gcsf_day_follows_settings() -> None:
    c = course(counts(range(0, 11), anc=300))
    later = settings_from_dict({"gcsf": {"consider_from_day": 9, "consider_by_day": 12}})
    assert "management.gcsf.start" in ids(c, 8)
    assert "management.gcsf.start" not in ids(c, 8, later)


def test_gcsf_withheld_during_ongoing_crs_unless_severe_infection() -> None:
    # "We commonly avoid the use of G-CSF in patients with ongoing CRS, unless there is
    # concomitant severe infection in a setting of neutropenia."
    labs = counts(range(0, 11), anc=300)
    ongoing = course(labs, [crs(1, None)])
    resolved = course(labs, [crs(1, 5)])
    assert {"management.gcsf.withhold-during-crs"} <= ids(ongoing, 10)
    assert "management.gcsf.start" not in ids(ongoing, 10)
    assert "management.gcsf.withhold-during-crs" not in ids(resolved, 10)
    assert "management.gcsf.start" in ids(resolved, 10)
    infected = course(labs, [crs(1, None), infection(8, category="bacterial", severity="severe")])
    g = guidance(infected, 10)
    assert "management.gcsf.withhold-during-crs" not in g.ids()
    item = g.item("management.gcsf.start")
    assert item is not None and item.urgency == "action" and "severe infection" in item.summary


def test_biphasic_drop_below_750_gets_daily_gcsf_until_1500() -> None:
    # "initial count recovery, and then later biphasic drop in neutrophils to <750/mm3, we often
    # use daily G-CSF until ANC is >1500/mm3"
    def anc(d: int) -> float:
        return 200 if d < 10 else (2000 if d < 26 else 600)

    c = course(counts(range(0, 31), anc=anc))
    assert "management.gcsf.biphasic" not in ids(c, 24)
    g = guidance(c, 30)
    assert "management.gcsf.biphasic" in g.ids()
    assert "management.gcsf.start" not in g.ids()
    assert "1500" in (g.item("management.gcsf.biphasic") or g.items()[0]).summary
    at_750 = course(
        counts(range(0, 31), anc=lambda d: 200 if d < 10 else (2000 if d < 26 else 750))
    )
    assert "management.gcsf.biphasic" not in ids(at_750, 30)


def test_children_get_no_prolonged_biphasic_gcsf() -> None:
    # "prolonged use of growth factors are often deferred in pediatric patients"
    def anc(d: int) -> float:
        return 200 if d < 10 else (2000 if d < 30 else 600)

    child = course(counts(range(0, 41), anc=anc), age=8, disease="B-ALL", product="tisa-cel")
    g = guidance(child, 40)
    assert "management.gcsf.biphasic" not in g.ids()
    assert "management.growth-factors.paediatric-defer" in g.ids()


def test_gcsf_stop_once_anc_above_1500() -> None:
    on = [med("filgrastim", 20)]
    assert "management.gcsf.stop" in ids(course(counts(range(26), anc=1600), on), 25)
    assert "management.gcsf.stop" not in ids(course(counts(range(26), anc=1400), on), 25)
    assert "management.gcsf.stop" not in ids(course(counts(range(26), anc=1600)), 25)


def test_gmcsf_avoided_whenever_a_growth_factor_is_in_question() -> None:
    assert "management.gmcsf.avoid" in ids(course(counts(range(11), anc=600)), 10)
    assert "management.gmcsf.avoid" not in ids(course(counts(range(11), anc=3000)), 10)
    assert "management.gmcsf.avoid" in ids(
        course(counts(range(11), anc=3000), [med("filgrastim", 8)]), 10
    )


# ------------------------------------------------------------------ TPO-receptor agonists


def _thrombocytopenia(step: int, until: int = 90, **kw: object) -> object:
    labs = counts(range(0, until + 1, 2), anc=2000, plt=15, hb=9.5)
    return course(labs, tx("platelets", range(28, until + 1, step)), **kw)  # type: ignore[arg-type]


def test_tpo_ra_start_well_beyond_day_30_with_weekly_platelets() -> None:
    # "requiring transfusion support well beyond day 30 ... we consider ... eltrombopag 75 mg daily
    # ... or romiplostim 10 ug/kg per week"
    # "without clear etiology other than CAR-T ... for patients at high risk of bleeding"
    # (issue #11): a marrow must exclude relapse/MDS first, and bleeding risk must be recorded
    labs = counts(range(0, 61, 2), anc=2000, plt=15, hb=9.5)
    weekly = tx("platelets", range(28, 61, 7))
    clean = marrow(50)
    c = course(labs, [*weekly, clean, finding("high-bleeding-risk", 45)])
    assert "management.tpo-ra.start" not in ids(c, 40)
    item = guidance(c, 60).item("management.tpo-ra.start")
    assert (
        item is not None
        and item.summary.startswith("Consider TPO-RA: eltrombopag 75 mg")
        and "romiplostim 10" in item.summary
    )
    no_risk = guidance(course(labs, [*weekly, clean]), 60)
    item = no_risk.item("management.tpo-ra.start")
    assert item is not None and "if bleeding risk is high" in item.summary
    assert any("Bleeding risk not recorded" in m for m in no_risk.missing_data)
    no_marrow = guidance(course(labs, [*weekly, finding("high-bleeding-risk", 45)]), 60)
    item = no_marrow.item("management.tpo-ra.start")
    assert item is not None and "marrow must first exclude" in item.summary
    assert item.urgency == "info" and "eltrombopag" not in item.summary


def test_tpo_ra_reserved_when_needs_are_modest() -> None:
    # "if transfusion requirements are not severe, we often elect to reserve ... for late cytopenia"
    modest = _thrombocytopenia(14)
    g = guidance(modest, 60)  # type: ignore[arg-type]
    assert "management.tpo-ra.start" not in g.ids()
    assert "management.tpo-ra.reserve" in g.ids()
    assert "management.tpo-ra.reserve" not in ids(_thrombocytopenia(7), 60)  # type: ignore[arg-type]
    late = _thrombocytopenia(14, until=100)
    assert "management.tpo-ra.start" in ids(late, 100)  # type: ignore[arg-type]


def test_tpo_ra_not_when_another_cause_or_a_child() -> None:
    relapse = course(
        counts(range(0, 61, 2), anc=2000, plt=15, hb=9.5),
        [*tx("platelets", range(28, 61, 7)), {"type": "relapse", "day": 50}],
    )
    assert "management.tpo-ra.start" not in ids(relapse, 60)
    child = _thrombocytopenia(7, age=9, disease="B-ALL", product="tisa-cel")
    assert "management.tpo-ra.start" not in ids(child, 60)  # type: ignore[arg-type]


def _on_eltrombopag(plt: float, tx_after: bool = True) -> object:
    labs = counts(range(0, 91, 2), anc=2000, plt=lambda d: 10 if d <= 42 else plt, hb=9.5)
    events = [med("eltrombopag", 42, dose=75, dose_unit="mg"), *tx("platelets", range(14, 43, 4))]
    if tx_after:
        events += tx("platelets", range(44, 91, 4))
    return course(labs, events)


def test_tpo_ra_stop_after_4_weeks_without_response_or_on_recovery() -> None:
    # "We favor stopping thrombopoietin-receptor agonists once platelets recover or if no response
    # is observed in 4 to 6 weeks after initiation."
    none = _on_eltrombopag(12)
    assert "management.tpo-ra.stop" not in ids(none, 62)  # type: ignore[arg-type]
    item = guidance(none, 70).item("management.tpo-ra.stop")  # type: ignore[arg-type]
    assert item is not None and "without response" in item.summary
    responding = _on_eltrombopag(30)
    assert "management.tpo-ra.stop" not in ids(responding, 70)  # type: ignore[arg-type]
    recovered = _on_eltrombopag(80, tx_after=False)
    item = guidance(recovered, 80).item("management.tpo-ra.stop")  # type: ignore[arg-type]
    assert item is not None and "recovered" in item.summary


def test_tpo_ra_no_response_alert_after_6_weeks() -> None:
    none = _on_eltrombopag(12)
    assert "alert.tpo-ra-no-response" not in ids(none, 80)  # type: ignore[arg-type]  # 5 weeks
    assert "alert.tpo-ra-no-response" in ids(none, 84)  # type: ignore[arg-type]  # 6 weeks
    # one message: once the alert says it, the "consider stopping" item no longer repeats it
    assert "management.tpo-ra.stop" in ids(none, 80)  # type: ignore[arg-type]
    assert "management.tpo-ra.stop" not in ids(none, 84)  # type: ignore[arg-type]


def test_paediatric_tpo_ra_alert() -> None:
    events = [med("eltrombopag", 42)]
    labs = counts(range(0, 51, 2), plt=20)
    assert "alert.paediatric-tpo-ra" in ids(course(labs, events, age=9, disease="B-ALL"), 50)
    assert "alert.paediatric-tpo-ra" not in ids(course(labs, events, age=30), 50)


# ------------------------------------------------------------------ IEC-HS


def _iechs(ferritin_peak: float, crs_end: int | None = 5, with_fever: bool = True) -> object:
    labs = counts(range(0, 13), anc=lambda d: 3000 if d < 10 else 400)
    labs += series("ferritin", [3, 9, 10, 12], lambda d: {3: 2000, 9: 3000}.get(d, ferritin_peak))
    labs += series("triglycerides", [11], 320) + series("fibrinogen", [11], 120)
    events = [crs(1, crs_end, 2)] + (
        [{"type": "fever", "day": 11, "max_temp_c": 39.0}] if with_fever else []
    )
    return course(labs, events)


def test_iec_hs_recognised_after_crs_and_treated() -> None:
    # "previously resolved CRS is followed by a rapid increase in ferritin (often >10 000 ng/mL),
    # recurrence of fever, and new onset of severe cytopenia ... anakinra and high-dose steroids"
    g = guidance(_iechs(25000), 12)  # type: ignore[arg-type]
    assert {"differential.iec-hs", "workup.iec-hs", "management.iec-hs.treat"} <= g.ids()
    item = g.item("management.iec-hs.treat")
    assert item is not None and "anakinra" in item.summary
    assert item.inputs["ferritin_ng_ml"] == 25000 and item.inputs["recurrent_fever"]
    low = guidance(_iechs(3500), 12)  # type: ignore[arg-type]
    assert not {"differential.iec-hs", "management.iec-hs.treat"} & low.ids()


def test_iec_hs_only_possible_while_crs_is_known_ongoing() -> None:
    # CRS from day 5 with its end still to come on day 12: its own fever and ferritin are
    # expected; high ferritin with two supportive features asks only for the work-up
    labs = counts(range(0, 13), anc=lambda d: 3000 if d < 10 else 400)
    labs += series("ferritin", [3, 9, 10, 12], lambda d: {3: 2000, 9: 3000}.get(d, 25000))
    labs += series("triglycerides", [11], 320) + series("fibrinogen", [11], 120)
    g = guidance(course(labs, [crs(5, 14, 2), fever(11, 39.0)]), 12)
    assert not {"differential.iec-hs", "management.iec-hs.treat"} & g.ids()
    item = g.item("workup.iec-hs")
    assert item is not None and item.inputs["iec_hs_level"] == "possible"


def test_iec_hs_evaluated_when_the_open_crs_record_is_old() -> None:
    # Issue #11: an open CRS record (no end day) older than 10 days is "end unknown", not
    # "ongoing": the IEC-HS picture on day 12 after CRS from day 1 is recognised
    g = guidance(_iechs(25000, crs_end=None), 12)  # type: ignore[arg-type]
    assert {"differential.iec-hs", "workup.iec-hs", "management.iec-hs.treat"} <= g.ids()


def test_iec_hs_refractory_after_3_days_of_treatment() -> None:
    labs = counts(range(0, 16), anc=400)
    events = [
        crs(1, 4),
        {"type": "iec_hs", "start_day": 10},
        med("anakinra", 10),
        med("dexamethasone", 10),
    ]
    c = course(labs, events)
    assert "management.iec-hs.refractory" not in ids(c, 11)
    g = guidance(c, 14)
    assert "management.iec-hs.refractory" in g.ids()
    assert "management.iec-hs.treat" not in g.ids()  # already on anakinra


# ------------------------------------------------------------------ persistent and late cytopenia


def _late(**kw: object) -> object:
    events = kw.pop("events", None) or []
    labs = counts(range(0, 101, 5), anc=300, plt=15, hb=7.5)
    base = [
        *tx("platelets", range(60, 101, 5)),
        *tx("rbc", range(60, 101, 7)),
        med("filgrastim", 20),
        marrow(95),
    ]
    return course(labs, base + list(events), **kw)  # type: ignore[arg-type]


def test_autologous_boost_needs_stored_cells_and_a_clean_marrow() -> None:
    # "preferred over allogeneic BMT as treatment for severe transfusion-dependent late cytopenia in
    # the absence of secondary malignancy or recurrent primary disease ... only feasible if stem cells
    # ... are available"
    auto = [{"kind": "autologous", "day": -400}]
    stored = _late(prior_hct=auto, stored_cells={"autologous": True})
    g = guidance(stored, 100)  # type: ignore[arg-type]
    item = g.item("management.stem-cell-boost")
    assert item is not None and "tumour" in item.summary
    assert "management.stem-cell-boost" not in ids(stored, 85)  # type: ignore[arg-type]
    none = _late(prior_hct=auto, stored_cells={"autologous": False})
    assert "management.stem-cell-boost" not in ids(none, 100)  # type: ignore[arg-type]
    unknown = _late(prior_hct=auto)
    g = guidance(unknown, 100)  # type: ignore[arg-type]
    assert "management.stem-cell-boost" not in g.ids()
    assert any("Stored autologous stem cells not recorded" in m for m in g.missing_data)
    dysplastic = _late(
        prior_hct=auto, stored_cells={"autologous": True}, events=[marrow(98, dysplasia=True)]
    )
    assert "management.stem-cell-boost" not in ids(dysplastic, 100)  # type: ignore[arg-type]


def test_allogeneic_boost_and_second_hct_after_prior_allo() -> None:
    # "post-BMT with late cytopenias persisting beyond 90 days ... stem cell boost if the original
    # donor is available"; "second allogeneic BMT in lieu of a stem cell boost"
    allo = [{"kind": "allogeneic", "day": -300}]
    c = _late(prior_hct=allo, stored_cells={"allogeneic_donor": True})
    g = guidance(c, 100)  # type: ignore[arg-type]
    assert {"management.stem-cell-boost.allogeneic", "management.allo-hct.second"} <= g.ids()
    assert "management.stem-cell-boost" not in g.ids()
    early = guidance(c, 85)  # type: ignore[arg-type]
    assert not {"management.stem-cell-boost.allogeneic", "management.allo-hct.second"} & early.ids()
    no_donor = guidance(_late(prior_hct=allo, stored_cells={"allogeneic_donor": False}), 100)  # type: ignore[arg-type]
    assert "management.stem-cell-boost.allogeneic" not in no_donor.ids()
    second = no_donor.item("management.allo-hct.second")
    assert second is not None and "unavailable" in second.summary


def test_allo_hct_for_complete_aplasia() -> None:
    # "allogeneic BMT should be made in rare cases in which complete aplastic anemia occurs"
    aplastic = _late(events=[marrow(98, cellularity="aplastic", cellularity_pct=5)])
    assert "management.allo-hct" in ids(aplastic, 100)  # type: ignore[arg-type]
    cellular = _late(events=[marrow(98, cellularity="normocellular", cellularity_pct=40)])
    assert "management.allo-hct" not in ids(cellular, 100)  # type: ignore[arg-type]


def test_allo_hct_for_transplant_naive_child_dependent_beyond_day_90() -> None:
    # "for BMT-naive pediatric patients with transfusion dependence or severe neutropenia requiring
    # G-CSF therapy late after CAR-T infusion (beyond 90 days), allogeneic BMT ... should be considered"
    labs = counts(range(0, 101, 5), anc=900, plt=30, hb=8.0)
    events = [*tx("platelets", range(40, 101, 10)), *tx("rbc", range(40, 101, 12))]
    child = course(labs, events, age=6, disease="B-ALL", product="tisa-cel")
    assert "management.allo-hct" not in ids(child, 90)
    item = guidance(child, 95).item("management.allo-hct")
    assert item is not None and "child" in item.rationale
    adult = course(labs, events, age=40, disease="B-ALL", product="tisa-cel")
    assert "management.allo-hct" not in ids(adult, 95)


def test_paediatric_growth_factor_deferral() -> None:
    labs = counts(range(0, 41, 2), anc=400, plt=30)
    assert "management.growth-factors.paediatric-defer" in ids(
        course(labs, age=5, disease="B-ALL"), 40
    )
    assert "management.growth-factors.paediatric-defer" not in ids(course(labs, age=45), 40)
    assert "management.growth-factors.paediatric-defer" not in ids(
        course(labs, age=5, disease="B-ALL"), 20
    )


def test_immunosuppression_for_lgl() -> None:
    # "large granular lymphocytosis ... we have used immunosuppressive treatment"
    labs = counts(range(0, 101, 5), anc=800)
    assert "management.immunosuppression.lgl" in ids(
        course(labs, [finding("large-granular-lymphocytosis", 90)]), 100
    )
    assert "management.immunosuppression.lgl" not in ids(course(labs), 100)


def test_immunosuppression_when_immune_aplasia_suspected_is_speculative() -> None:
    g = guidance(_late(), 100)  # type: ignore[arg-type]
    item = g.item("management.immunosuppression.immune-aplasia")
    assert item is not None and item.speculative
    dysplastic = _late(events=[marrow(98, dysplasia=True)])
    assert "management.immunosuppression.immune-aplasia" not in ids(dysplastic, 100)  # type: ignore[arg-type]


def test_expectant_when_marrow_shows_no_other_process() -> None:
    # "in the absence additional pathological process, gradual recovery is the likely trajectory"
    labs = counts(range(0, 61, 3), anc=800, plt=40)
    assert "management.expectant" in ids(course(labs, [marrow(55)]), 60)
    assert "management.expectant" not in ids(course(labs, [marrow(55, disease_present=True)]), 60)
    assert "management.expectant" not in ids(course(labs), 60)


def test_follow_up_at_the_centre_in_the_late_phase() -> None:
    labs = counts(range(0, 801, 50))
    c = course(labs)
    assert "management.follow-up" not in ids(c, 60)
    item = guidance(c, 100).item("management.follow-up")
    assert item is not None and "730" in item.summary
    assert "management.follow-up" not in ids(c, 800)
