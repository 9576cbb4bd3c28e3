"""Write examples/review-case-{1,2,3}.json from the three cases of the review.

Jain T, Olson TS, Locke FL. How I treat cytopenias after CAR T-cell therapy. Blood 2023;141(20):2460.
Each element below quotes the sentence it comes from. Where the text gives no number (e.g. daily
counts between the days it names), values are illustrative and chosen to match the text; the
"description" field of each file says so. Infection prophylaxis is not described in the cases:
it follows the review's general approach ("We begin bacterial and fungal prophylaxis on day 0 ...").

Run: .venv/bin/python scripts/review_cases.py   (rewrites the three files; a test checks they load)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "examples"


def lab(day: int, analyte: str, value: float, unit: str) -> dict[str, Any]:
    return {"day": day, "analyte": analyte, "value": value, "unit": unit}


def series(analyte: str, unit: str, points: dict[int, float]) -> list[dict[str, Any]]:
    return [lab(d, analyte, v, unit) for d, v in sorted(points.items())]


def med(drug: str, start: int, end: int | None, **kw: Any) -> dict[str, Any]:
    e: dict[str, Any] = {"type": "medication", "drug": drug, "start_day": start}
    if end is not None:
        e["end_day"] = end
    e.update(kw)
    return e


def tx(product: str, days: list[int]) -> list[dict[str, Any]]:
    return [{"type": "transfusion", "product": product, "day": d} for d in days]


def every(start: int, stop: int, step: int) -> list[int]:
    return list(range(start, stop + 1, step))


def standard_prophylaxis(
    anc_recovery_day: int, pjp_drug: str = "pentamidine"
) -> list[dict[str, Any]]:
    return [
        med(
            "levofloxacin",
            0,
            anc_recovery_day,
            purpose="prophylaxis",
            dose=500,
            dose_unit="mg",
            frequency="daily",
        ),
        med(
            "fluconazole",
            0,
            anc_recovery_day,
            purpose="prophylaxis",
            dose=400,
            dose_unit="mg",
            frequency="daily",
        ),
        med(
            "valacyclovir",
            0,
            None,
            purpose="prophylaxis",
            dose=500,
            dose_unit="mg",
            frequency="twice daily",
        ),
        med(
            pjp_drug,
            30,
            None,
            purpose="prophylaxis",
            frequency="every 4 weeks" if pjp_drug == "pentamidine" else "daily",
        ),
    ]


def case1() -> dict[str, Any]:
    # "ANC nadir was 20/mm3 on day +2, followed by a recovery to >500/mm3 on day 15. Over the course
    # of the next 3 weeks, ANC remained under 1000/mm3"
    anc = {
        0: 1100,
        1: 650,
        2: 20,
        3: 30,
        4: 40,
        5: 50,
        6: 60,
        7: 80,
        8: 90,
        9: 150,
        10: 200,
        11: 250,
        12: 320,
        13: 400,
        14: 480,
        15: 620,
        16: 700,
        17: 760,
        19: 820,
        22: 780,
        26: 850,
        29: 900,
        33: 870,
        36: 800,
        # "Neutropenia was responsive to intermittent G-CSF": biphasic drops below 750 -> G-CSF
        40: 680,
        43: 1650,
        47: 1200,
        54: 700,
        57: 1700,
        61: 1300,
        68: 1100,
        75: 1250,
        82: 1400,
        89: 1500,
        96: 1650,
        110: 1800,
        124: 2000,
        152: 2300,
        180: 2600,
        210: 2900,
        240: 3100,
    }
    # "he required PRBC and platelet transfusions every 3 to 4 days to maintain a goal of
    # hemoglobin >7 g/dL and platelets >10 x 10^3/uL"; "At 2 months, the patient required PRBCs
    # every 2 weeks and weekly platelet transfusions"; "Over the next 4 months, there was a
    # gradual reduction in transfusion requirements"; "maintained normal blood counts thereafter"
    plt = {
        0: 95,
        1: 80,
        2: 62,
        3: 45,
        4: 30,
        5: 18,
        6: 12,
        7: 9,
        8: 14,
        9: 11,
        10: 9,
        11: 13,
        12: 10,
        13: 12,
        14: 9,
        15: 13,
        16: 11,
        17: 9,
        19: 12,
        22: 10,
        26: 9,
        29: 12,
        33: 10,
        36: 11,
        40: 12,
        43: 14,
        47: 11,
        54: 13,
        57: 10,
        61: 12,
        68: 15,
        75: 18,
        82: 22,
        89: 25,
        96: 30,
        110: 38,
        124: 52,
        152: 85,
        180: 130,
        210: 165,
        240: 190,
    }
    hb = {
        0: 9.2,
        2: 8.8,
        4: 8.1,
        6: 7.6,
        8: 7.3,
        10: 7.1,
        12: 7.6,
        14: 7.2,
        16: 7.5,
        19: 7.2,
        22: 7.4,
        26: 7.1,
        29: 7.5,
        33: 7.2,
        36: 7.4,
        40: 7.6,
        47: 7.3,
        54: 7.5,
        61: 7.4,
        68: 7.8,
        75: 7.6,
        82: 8.0,
        89: 7.9,
        96: 8.3,
        110: 8.8,
        124: 9.6,
        152: 11.0,
        180: 12.1,
        210: 13.0,
        240: 13.6,
    }
    labs = (
        series("anc", "/uL", anc) + series("platelets", "10*3/uL", plt) + series("hb", "g/dL", hb)
    )
    events: list[dict[str, Any]] = [
        # "complicated by cytokine release syndrome (CRS) from day +2 to +3 (maximum grade 2)"
        {"type": "crs", "start_day": 2, "end_day": 3, "max_grade": 2},
        # "immune effector cell-associated neurotoxicity syndrome (ICANS) from day +5 to +10 (maximum grade 3)"
        {"type": "icans", "start_day": 5, "end_day": 10, "max_grade": 3},
        # "treated with 2 doses of tocilizumab on day +3 and dexamethasone until day +10"
        med("tocilizumab", 3, 3, dose=8, dose_unit="mg/kg", frequency="2 doses"),
        med("dexamethasone", 5, 10, dose=10, dose_unit="mg", frequency="every 6 hours"),
        # "Neutropenia was responsive to intermittent G-CSF"
        med("filgrastim", 40, 43, dose=5, dose_unit="ug/kg", frequency="daily"),
        med("filgrastim", 54, 57, dose=5, dose_unit="ug/kg", frequency="daily"),
        # "Bone marrow biopsy at 2 months was hypocellular without fibrosis or dysplasia and
        # demonstrated normal cytogenetics without evidence of MDS translocations using FISH
        # analysis, or clonal mutations by next generation sequencing."
        {
            "type": "bone_marrow",
            "day": 60,
            "cellularity": "hypocellular",
            "dysplasia": False,
            "fibrosis": False,
            "disease_present": False,
            "cytogenetics": "normal karyotype",
            "fish": "no MDS-associated abnormalities",
            "ngs": "no clonal mutations",
        },
        # "At 2 months, ... he was started on eltrombopag 75 mg daily." "Eltrombopag was
        # discontinued 6 months after therapy"
        med("eltrombopag", 61, 180, dose=75, dose_unit="mg", frequency="daily"),
    ]
    events += tx("rbc", every(6, 36, 4) + every(40, 96, 14) + [124])
    events += tx("platelets", every(5, 36, 3) + every(40, 96, 7) + every(103, 124, 10))
    events += standard_prophylaxis(15)
    return {
        "description": (
            "Review case 1 (Jain, Olson, Locke, Blood 2023): 65-year-old man, relapsed high-grade "
            "B-cell lymphoma after autologous transplant, axi-cel. Days and values named in the text "
            "are as written; counts between them are illustrative; prophylaxis follows the review's "
            "general approach. Synthetic: no real patient."
        ),
        "patient": {
            "id": "review-case-1",
            "age_years": 65,
            "sex": "male",
            "disease": "LBCL",
            "disease_status": "relapsed",
            "marrow_involvement_pct": 0,
            # "consolidative autologous transplant 4 months prior"
            "prior_hct": [{"kind": "autologous", "day": -120}],
            "stored_cells": {"autologous": None},
            "chip": None,
            "pre_existing_dysplasia": False,
            "pre_existing_fibrosis": False,
        },
        "product": {"name": "axi-cel"},
        # "He was treated with fludarabine and cyclophosphamide LD"
        "lymphodepletion": {"regimen": "flu-cy", "start_day": -5},
        "infusion_date": "2022-03-07",
        # "Before LD ... absolute neutrophil count (ANC) of 990/mm3, hemoglobin 9.5 g/dL, and platelets 125 x 10^3/uL"
        "baseline_labs": [
            lab(-6, "anc", 990, "/uL"),
            lab(-6, "hb", 9.5, "g/dL"),
            lab(-6, "platelets", 125, "10*3/uL"),
        ],
        "labs": labs,
        "events": events,
        "last_followup_day": 240,
    }


def case2() -> dict[str, Any]:
    # "ANC did not recover to >500/mm3 despite G-CSF"; boost at 4 months: "Within 2 weeks she was
    # no longer transfusion or growth factor dependent"
    anc: dict[int, float] = {
        0: 350,
        1: 200,
        2: 90,
        3: 60,
        4: 40,
        5: 30,
        6: 20,
        7: 20,
        8: 10,
        9: 10,
        10: 20,
        11: 30,
        12: 20,
        13: 30,
        14: 40,
    }
    for d in every(17, 119, 3):
        anc[d] = 40 + (d % 7) * 15 + (80 if 60 <= d <= 100 else 0)  # 40-250/uL, never > 500
    anc.update(
        {
            122: 300,
            125: 480,
            128: 700,
            131: 1200,
            134: 1600,
            141: 2100,
            155: 2600,
            185: 3000,
            365: 3400,
        }
    )
    plt: dict[int, float] = {0: 28, 2: 18, 4: 12, 6: 8}
    for d in every(8, 119, 3):
        plt[d] = 6 + (d % 5) * 2
    plt.update(
        {122: 15, 125: 25, 128: 42, 131: 60, 134: 85, 141: 120, 155: 160, 185: 190, 365: 210}
    )
    hb: dict[int, float] = {0: 8.1}
    for d in every(2, 119, 3):
        hb[d] = 7.1 + (d % 4) * 0.2
    hb.update(
        {
            122: 7.9,
            125: 8.4,
            128: 8.9,
            131: 9.4,
            134: 9.9,
            141: 10.6,
            155: 11.4,
            185: 12.2,
            365: 12.9,
        }
    )
    labs = (
        series("anc", "/uL", anc) + series("platelets", "10*3/uL", plt) + series("hb", "g/dL", hb)
    )
    events: list[dict[str, Any]] = [
        # "she experienced maximum Grade 1 CRS and Grade 2 ICANS treated with tocilizumab and dexamethasone"
        {"type": "crs", "start_day": 1, "end_day": 3, "max_grade": 1},
        {"type": "icans", "start_day": 3, "end_day": 6, "max_grade": 2},
        med("tocilizumab", 2, 2, dose=8, dose_unit="mg/kg", frequency="once"),
        med("dexamethasone", 3, 6, dose=10, dose_unit="mg", frequency="every 6 hours"),
        # "ANC did not recover to >500/mm3 despite G-CSF" (started per the day 7-10 approach)
        med("filgrastim", 10, 121, dose=5, dose_unit="ug/kg", frequency="daily"),
        # "Eltrombopag was initiated at 6 weeks after therapy, however transfusion dependence continued."
        med("eltrombopag", 42, 120, dose=75, dose_unit="mg", frequency="daily"),
        # "Bone marrow biopsy at month 3 was profoundly hypocellular with a marked decrease in
        # myeloid and erythroid precursors without increase in plasma cells or blasts."
        {
            "type": "bone_marrow",
            "day": 90,
            "cellularity": "hypocellular",
            "cellularity_pct": 5,
            "dysplasia": False,
            "fibrosis": False,
            "disease_present": False,
            "blasts_pct": 1,
            "notes": "marked decrease in myeloid and erythroid precursors; no increase in plasma cells",
        },
        # "At 4 months after CAR-T, the patient was treated with a stem cell boost, consisting of
        # ~10 x 10^6 cryopreserved mobilized HSC, previously collected for autologous transplant."
        {
            "type": "stem_cell_boost",
            "day": 120,
            "source": "autologous",
            "manipulation": "unmanipulated",
        },
    ]
    # "the patient was entirely dependent on PRBC (2-3 times weekly) and platelet (2 times weekly) transfusions"
    events += tx("rbc", [*every(3, 119, 3), 123])
    events += tx("platelets", [*every(4, 119, 4), 124])
    events += standard_prophylaxis(131)
    return {
        "description": (
            "Review case 2 (Jain, Olson, Locke, Blood 2023): 63-year-old woman, refractory IgA-kappa "
            "myeloma, sixth line including autologous transplant, ide-cel; G-CSF-refractory aplasia, "
            "autologous stem cell boost at 4 months. Baseline and daily values are illustrative where "
            "the text gives none; prophylaxis follows the review's general approach. Synthetic."
        ),
        "patient": {
            "id": "review-case-2",
            "age_years": 63,
            "sex": "female",
            "disease": "MM",
            "disease_status": "refractory",
            # "having 56% plasma cell involvement of the marrow at the time of leukapheresis"
            "marrow_involvement_pct": 56,
            "prior_hct": [{"kind": "autologous", "day": -700}],
            # "cryopreserved mobilized HSC, previously collected for autologous transplant"
            "stored_cells": {
                "autologous": True,
                "notes": "cryopreserved mobilized HSC from the autologous transplant collection",
            },
        },
        "product": {"name": "ide-cel"},
        "lymphodepletion": {"regimen": "flu-cy", "start_day": -5},
        "infusion_date": "2021-09-13",
        # "DCEP-bridging chemotherapy with subsequent hematologic toxicity requiring transfusions of
        # both red blood cells and platelets immediately before the initiation of LD" (values illustrative)
        "baseline_labs": [
            lab(-6, "anc", 800, "/uL"),
            lab(-6, "hb", 8.1, "g/dL"),
            lab(-6, "platelets", 32, "10*3/uL"),
            lab(-6, "crp", 1.2, "mg/dL"),
            lab(-6, "ferritin", 1450, "ng/mL"),
        ],
        "labs": labs,
        "events": events + tx("rbc", [-8]) + tx("platelets", [-8]),
        "last_followup_day": 365,
    }


def case3() -> dict[str, Any]:
    # "her ANC remained persistently below 100/mm3 for 6 weeks after CAR-T, prompting the
    # initiation of G-CSF support, which continued beyond 90 days after CAR-T."
    anc: dict[int, float] = {0: 150, 1: 90, 2: 40}
    for d in range(3, 15):
        anc[d] = 10 + (d % 3) * 10
    for d in every(16, 42, 2):
        anc[d] = 20 + (d % 4) * 15
    anc.update(
        {
            44: 180,
            46: 420,
            48: 650,
            51: 520,
            55: 780,
            58: 600,
            62: 850,
            69: 700,
            76: 900,
            83: 760,
            90: 820,
            97: 880,
            104: 950,
            118: 1050,
            132: 900,
            146: 1250,
            160: 1500,
            180: 1800,
            210: 2200,
            240: 2500,
        }
    )
    plt: dict[int, float] = {0: 60, 2: 35, 4: 20}
    for d in every(6, 28, 2):
        plt[d] = 9 + (d % 3) * 3
    for d in every(31, 90, 4):
        plt[d] = 18 + (d % 5) * 3
    plt.update({97: 24, 104: 28, 118: 26, 132: 34, 146: 45, 160: 58, 180: 80, 210: 110, 240: 140})
    hb: dict[int, float] = {0: 9.0, 2: 8.4, 4: 7.9}
    for d in every(6, 28, 2):
        hb[d] = 7.2 + (d % 3) * 0.2
    for d in every(31, 90, 4):
        hb[d] = 7.6 + (d % 4) * 0.2
    hb.update(
        {97: 7.8, 104: 8.0, 118: 7.9, 132: 8.4, 146: 9.1, 160: 9.8, 180: 10.6, 210: 11.2, 240: 11.8}
    )
    labs = (
        series("anc", "/uL", anc) + series("platelets", "10*3/uL", plt) + series("hb", "g/dL", hb)
    )
    events: list[dict[str, Any]] = [
        # "She developed grade 3 CRS and ICANS, which were successfully treated with tocilizumab and
        # dexamethasone, and both resolved within 4 weeks."
        {"type": "crs", "start_day": 1, "end_day": 24, "max_grade": 3},
        {"type": "icans", "start_day": 4, "end_day": 26, "max_grade": 3},
        med("tocilizumab", 2, 3, dose=12, dose_unit="mg/kg", frequency="2 doses"),
        med(
            "dexamethasone", 4, 20, dose=0.5, dose_unit="mg/kg", frequency="every 6 hours, tapered"
        ),
        # "prompting the initiation of G-CSF support, which continued beyond 90 days after CAR-T"
        med("filgrastim", 43, 130, dose=5, dose_unit="ug/kg", frequency="daily"),
        # "Molecular disease evaluations for recurrent B-ALL remained negative."
        {
            "type": "bone_marrow",
            "day": 28,
            "cellularity": "hypocellular",
            "disease_present": False,
            "mrd": "negative (NGS)",
            "dysplasia": False,
            "fibrosis": False,
        },
        {
            "type": "bone_marrow",
            "day": 90,
            "cellularity": "hypocellular",
            "disease_present": False,
            "mrd": "negative (NGS)",
            "dysplasia": False,
            "fibrosis": False,
        },
    ]
    # "Although transfusion requirements improved after resolution of CRS symptoms, she continued to
    # require PRBC and platelets every 2 weeks beyond 90 days." ... "neither platelet nor red blood
    # cell transfusions were required after 6 months."
    events += tx("rbc", every(4, 26, 4) + every(32, 172, 14))
    events += tx("platelets", every(3, 27, 3) + every(32, 172, 14))
    events += [
        med(
            "acyclovir",
            0,
            None,
            purpose="prophylaxis",
            dose=20,
            dose_unit="mg/kg",
            frequency="twice daily",
        ),
        med(
            "levofloxacin",
            0,
            160,
            purpose="prophylaxis",
            dose=10,
            dose_unit="mg/kg",
            frequency="daily",
        ),
        med(
            "fluconazole",
            0,
            160,
            purpose="prophylaxis",
            dose=6,
            dose_unit="mg/kg",
            frequency="daily",
        ),
        med("pentamidine", 30, None, purpose="prophylaxis", frequency="every 4 weeks"),
    ]
    return {
        "description": (
            "Review case 3 (Jain, Olson, Locke, Blood 2023): 31-month-old girl, relapsed KMT2A-rearranged "
            "B-ALL 8 months after haploidentical allogeneic BMT, tisagenlecleucel. Counts between the "
            "days the text names are illustrative; prophylaxis follows the review's general approach. Synthetic."
        ),
        "patient": {
            "id": "review-case-3",
            "age_years": 2.6,
            "sex": "female",
            "disease": "B-ALL",
            "disease_status": "CR",
            # "8 months after haploidentical allogeneic BMT in CR2"
            "prior_hct": [{"kind": "allogeneic", "day": -240, "donor_type": "haploidentical"}],
            # "Stem cell boost was considered": the original donor is taken to be available
            "stored_cells": {
                "allogeneic_donor": True,
                "notes": "original haploidentical donor available",
            },
            "genetics": ["KMT2A-rearranged"],
        },
        # "Adequate donor T-cell reconstitution enabled collection and manufacture of
        # tisagenlecleucel (100% donor T-cells at the time of collection)"
        "product": {"name": "tisa-cel", "donor_derived": True},
        "lymphodepletion": {"regimen": "flu-cy", "start_day": -6},
        "infusion_date": "2020-05-18",
        "baseline_labs": [
            lab(-7, "anc", 1100, "/uL"),
            lab(-7, "hb", 9.4, "g/dL"),
            lab(-7, "platelets", 85, "10*3/uL"),
        ],
        "labs": labs,
        "events": events,
        "last_followup_day": 730,
    }


def main() -> None:
    for i, build in enumerate((case1, case2, case3), start=1):
        data = {"schema_version": "1.0", **build()}
        path = OUT / f"review-case-{i}.json"
        path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
