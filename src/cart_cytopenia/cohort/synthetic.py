"""Synthetic CAR-T cohorts: realistic, calibrated, deterministic, vectorised.

There is no open patient-level data after CAR-T, so the project makes its own. This module
simulates patients treated with the seven catalogue products for their approved diseases and
writes them in the project's long format (``patients``, ``labs``, ``events``; see
docs/data-formats.md), which ``cart-cytopenia grade`` and ``io.tables.read_cohort`` read.

How a patient is made (every step is vectorised over a block of patients; docs/cohort.md gives
the numbers):

1. product and disease from a real-world mix (``STRATA``): adults with LBCL, FL, MCL, CLL and
   MM, adults with B-ALL, and children / young adults with B-ALL treated with tisa-cel; age, sex,
   prior autologous / allogeneic HCT, stored stem cells, laboratory "centre" (which decides the
   units and analyte names used in the lab file);
2. two latent factors, marrow reserve and inflammation, drive the baseline (pre-lymphodepletion)
   platelets, ANC, haemoglobin, CRP and ferritin; the CAR-HEMATOTOX score is computed from those
   values with the project's own rule table, and the risk of each neutrophil recovery phenotype
   (quick, intermittent, aplastic) and of long, deep neutropenia rises with the score and with
   product / disease modifiers;
3. daily trajectories (piecewise linear in log scale) for ANC, platelets, haemoglobin and
   lymphocytes, with the lymphodepletion nadir, recovery, the second dip after day 21
   (intermittent), prolonged aplasia, G-CSF with response, TPO-receptor agonists, stem cell
   boosts and the count drop of a next therapy; CRS and ICANS grades per product, correlated with
   inflammation and severity, with CRP and ferritin courses;
4. a lab schedule as in practice (daily to about day 14, 2-3 times a week to day 30, weekly to
   day 100, monthly after, more often while cytopenic), with missed draws and repeat draws;
   platelet and red-cell transfusions triggered by the day's count, raising the following counts;
5. competing events: relapse / progression, next therapy, death (non-relapse deaths mostly in
   aplastic patients), loss to follow-up (return to the referring centre) and the data cut.

Everything is drawn from ``numpy.random.Generator`` streams seeded by ``(seed, block)``: the same
seed and size always give the same cohort. Patients are made in blocks of ``BLOCK`` so memory is
bounded whatever the size; ``iter_cohort`` yields the blocks, ``write_cohort`` streams them to
Parquet or CSV (atomically: a failed run leaves nothing behind) and ``generate_courses`` turns a
few patients into full ``Course`` documents for the app and FHIR demos.

The numbers the cohort is calibrated against (and the tolerances) are in
``cart_cytopenia.cohort.calibration``.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from cart_cytopenia.domain.analytes import resolve_analyte
from cart_cytopenia.domain.course import Course, parse_course
from cart_cytopenia.domain.frames import (
    EVENT_SCHEMA,
    PATIENT_SCHEMA,
    CohortFrames,
    conform,
    normalise_labs,
)
from cart_cytopenia.grading.engine import grade_cohort
from cart_cytopenia.rules import tables
from cart_cytopenia.rules.settings import Settings

F = NDArray[np.float64]
IA = NDArray[np.int64]
B = NDArray[np.bool_]

BLOCK = 5000  # patients per random stream / per generated block
FIRST_DAY = -10  # earliest day simulated (baseline draws are on days -8 .. -4)
MAX_DAY = 730  # follow-up is simulated to two years after infusion
DAYS = np.arange(FIRST_DAY, MAX_DAY + 1)
N_DAYS = DAYS.size
INFUSION_FIRST = dt.date(2018, 1, 1)
INFUSION_LAST = dt.date(2026, 3, 31)
DATA_CUT = dt.date(2026, 6, 30)
GENERATOR_VERSION = "1"

QUICK, INTERMITTENT, APLASTIC = "quick", "intermittent", "aplastic"
PHENOTYPES = (QUICK, INTERMITTENT, APLASTIC)

# --------------------------------------------------------------------------- patient mix


@dataclass(frozen=True)
class Stratum:
    """One product / disease / age group of the mix, with its clinical characteristics."""

    product: str
    disease: str
    weight: float  # share of infusions (normalised over all strata)
    age_mean: float
    age_sd: float
    age_min: float
    age_max: float
    male: float  # share of men
    prior_auto: float  # share with a prior autologous HCT
    prior_allo: float  # share with a prior allogeneic HCT
    severity: float  # shift of the haematotoxicity propensity (LBCL axi-cel/tisa-cel = 0)
    marrow: float  # shift of the marrow-reserve factor (marrow disease, prior therapy)
    crs_any: float  # probability of any CRS (ASTCT)
    crs_severe: float  # probability of CRS grade >= 3
    icans_any: float
    icans_severe: float
    crs_onset: float  # median CRS onset day
    relapse_1y: float  # cumulative relapse/progression by one year (without death first)
    paediatric: bool = False


# Shares: approximate real-world use 2018-2025 (registry reports; docs/cohort.md). CRS / ICANS
# rates: pivotal trials and real-world series of each product (ASTCT grading where reported).
# Relapse by one year: real-world progression-free survival of each setting. These are the
# generator's assumptions, documented, not calibrated targets (only the LBCL axi-cel / tisa-cel
# stratum is calibrated, against the CAR-HEMATOTOX cohort: see calibration.py).
# fmt: off
STRATA: tuple[Stratum, ...] = (
    #       product      disease  share age: mean sd  min max  male  auto  allo  sev  marrow CRS any ≥3   ICANS any ≥3 onset relapse1y
    Stratum("axi-cel",   "LBCL",  0.27, 60, 12, 19, 86, 0.62, 0.22, 0.03, 0.0,  0.0, 0.90, 0.08, 0.62, 0.22, 2, 0.55),
    Stratum("tisa-cel",  "LBCL",  0.13, 64, 11, 19, 88, 0.60, 0.22, 0.03, 0.0,  0.0, 0.58, 0.06, 0.20, 0.05, 3, 0.62),
    Stratum("liso-cel",  "LBCL",  0.13, 63, 12, 19, 88, 0.60, 0.20, 0.03, -0.35, 0.0, 0.45, 0.03, 0.30, 0.09, 5, 0.50),
    Stratum("axi-cel",   "FL",    0.02, 60, 10, 30, 82, 0.55, 0.15, 0.02, -0.2, 0.0, 0.80, 0.06, 0.55, 0.15, 3, 0.20),
    Stratum("tisa-cel",  "FL",    0.01, 59, 10, 30, 82, 0.55, 0.15, 0.02, -0.3, 0.0, 0.49, 0.01, 0.04, 0.01, 4, 0.20),
    Stratum("liso-cel",  "FL",    0.01, 61, 10, 30, 82, 0.55, 0.15, 0.02, -0.3, 0.0, 0.58, 0.01, 0.15, 0.02, 5, 0.20),
    Stratum("brexu-cel", "MCL",   0.05, 66, 8, 38, 86, 0.75, 0.40, 0.08, 0.45, 0.2, 0.91, 0.15, 0.63, 0.31, 2, 0.35),
    Stratum("liso-cel",  "MCL",   0.01, 67, 8, 38, 86, 0.75, 0.35, 0.05, 0.2,  0.2, 0.61, 0.01, 0.31, 0.09, 4, 0.35),
    Stratum("liso-cel",  "CLL",   0.02, 65, 9, 35, 85, 0.65, 0.02, 0.05, 0.2,  0.3, 0.85, 0.09, 0.45, 0.18, 4, 0.50),
    Stratum("tisa-cel",  "B-ALL", 0.05, 11, 6, 1, 25, 0.57, 0.0, 0.35, 0.35,  0.5, 0.77, 0.22, 0.40, 0.13, 3, 0.40, True),
    Stratum("brexu-cel", "B-ALL", 0.03, 44, 15, 18, 80, 0.55, 0.0, 0.40, 0.45, 0.5, 0.89, 0.24, 0.60, 0.25, 2, 0.45),
    Stratum("obe-cel",   "B-ALL", 0.02, 47, 16, 18, 80, 0.55, 0.0, 0.40, 0.2,  0.5, 0.70, 0.03, 0.23, 0.07, 8, 0.40),
    Stratum("ide-cel",   "MM",    0.10, 63, 9, 35, 84, 0.58, 0.88, 0.02, 0.35, 0.4, 0.85, 0.06, 0.18, 0.03, 1, 0.45),
    Stratum("cilta-cel", "MM",    0.15, 62, 9, 35, 84, 0.58, 0.88, 0.02, 0.45, 0.4, 0.95, 0.05, 0.21, 0.09, 7, 0.25),
)
# fmt: on


# --------------------------------------------------------------------------- lab "centres"


@dataclass(frozen=True)
class LabProfile:
    """How one laboratory names analytes and which units (and decimals) it reports."""

    name: str
    weight: float
    names: dict[str, str]  # analyte code -> name written in the file
    units: dict[str, str]  # analyte code -> unit written in the file
    factor: dict[str, float]  # canonical value x factor = value in the file's unit
    decimals: dict[str, int]
    rbc_threshold: float  # Hb (g/dL) below which this centre transfuses red cells
    visits_mwf: bool  # Mon/Wed/Fri after day 14 (else Mon/Thu)


# share of patients given each product as outpatients (labs three times a week in the first two
# weeks instead of daily; admitted for CRS / ICANS grade >= 2)
OUTPATIENT_SHARE = {
    "liso-cel": 0.4,
    "tisa-cel": 0.3,
    "ide-cel": 0.15,
    "cilta-cel": 0.15,
    "axi-cel": 0.1,
}

_ANALYTES = ("anc", "wbc", "alc", "platelets", "hb", "crp", "ferritin", "ldh", "creatinine")
_A = {a: i for i, a in enumerate(_ANALYTES)}
# drawn from their own random stream and never repeated on a day, so that adding them left every
# other value of a seed as it was
_EXTRA = ("ldh", "creatinine")

# fmt: off
PROFILES: tuple[LabProfile, ...] = (
    LabProfile(
        "canonical", 0.20,
        {a: a for a in _ANALYTES},
        {"anc": "/uL", "wbc": "10*3/uL", "alc": "/uL", "platelets": "10*3/uL", "hb": "g/dL", "crp": "mg/dL", "ferritin": "ng/mL", "ldh": "U/L", "creatinine": "mg/dL"},
        {"anc": 1, "wbc": 1, "alc": 1, "platelets": 1, "hb": 1, "crp": 1, "ferritin": 1, "ldh": 1, "creatinine": 1},
        {"anc": 0, "wbc": 2, "alc": 0, "platelets": 0, "hb": 1, "crp": 2, "ferritin": 0, "ldh": 0, "creatinine": 2},
        7.0, True,
    ),
    LabProfile(
        "us-kul", 0.25,
        {"anc": "ANC", "wbc": "WBC", "alc": "Lymph#", "platelets": "PLT", "hb": "Hgb", "crp": "CRP", "ferritin": "Ferritin", "ldh": "LDH", "creatinine": "Creat"},
        {"anc": "K/uL", "wbc": "K/uL", "alc": "K/uL", "platelets": "K/uL", "hb": "g/dL", "crp": "mg/L", "ferritin": "ng/mL", "ldh": "U/L", "creatinine": "mg/dL"},
        {"anc": 1e-3, "wbc": 1, "alc": 1e-3, "platelets": 1, "hb": 1, "crp": 10, "ferritin": 1, "ldh": 1, "creatinine": 1},
        {"anc": 2, "wbc": 2, "alc": 2, "platelets": 0, "hb": 1, "crp": 1, "ferritin": 0, "ldh": 0, "creatinine": 2},
        7.0, True,
    ),
    LabProfile(
        "us-loinc", 0.15,
        {"anc": "751-8", "wbc": "6690-2", "alc": "731-0", "platelets": "777-3", "hb": "718-7", "crp": "1988-5", "ferritin": "2276-4", "ldh": "2532-0", "creatinine": "2160-0"},
        {"anc": "cells/uL", "wbc": "10^3/uL", "alc": "cells/uL", "platelets": "10^3/uL", "hb": "g/dL", "crp": "mg/dL", "ferritin": "ng/mL", "ldh": "U/L", "creatinine": "mg/dL"},
        {"anc": 1, "wbc": 1, "alc": 1, "platelets": 1, "hb": 1, "crp": 1, "ferritin": 1, "ldh": 1, "creatinine": 1},
        {"anc": 0, "wbc": 1, "alc": 0, "platelets": 0, "hb": 1, "crp": 2, "ferritin": 0, "ldh": 0, "creatinine": 2},
        8.0, False,
    ),
    LabProfile(
        "eu-giga", 0.15,
        {"anc": "neutrophils", "wbc": "leukocytes", "alc": "lymphocytes", "platelets": "platelets", "hb": "haemoglobin", "crp": "crp", "ferritin": "ferritin", "ldh": "ldh", "creatinine": "creatinine"},
        {"anc": "G/L", "wbc": "G/L", "alc": "G/L", "platelets": "G/L", "hb": "g/dL", "crp": "mg/dL", "ferritin": "ug/L", "ldh": "U/L", "creatinine": "umol/L"},
        {"anc": 1e-3, "wbc": 1, "alc": 1e-3, "platelets": 1, "hb": 1, "crp": 1, "ferritin": 1, "ldh": 1, "creatinine": 88.42},
        {"anc": 2, "wbc": 2, "alc": 2, "platelets": 0, "hb": 1, "crp": 2, "ferritin": 0, "ldh": 0, "creatinine": 0},
        8.0, True,
    ),
    LabProfile(
        "eu-si", 0.17,
        {"anc": "Neutrophil count", "wbc": "White cell count", "alc": "Lymphocyte count", "platelets": "Platelet count", "hb": "Haemoglobin", "crp": "C-reactive protein", "ferritin": "Ferritin", "ldh": "Lactate dehydrogenase", "creatinine": "Creatinine"},
        {"anc": "10^9/L", "wbc": "10^9/L", "alc": "10^9/L", "platelets": "10^9/L", "hb": "g/L", "crp": "mg/L", "ferritin": "ug/L", "ldh": "U/L", "creatinine": "umol/L"},
        {"anc": 1e-3, "wbc": 1, "alc": 1e-3, "platelets": 1, "hb": 10, "crp": 10, "ferritin": 1, "ldh": 1, "creatinine": 88.42},
        {"anc": 2, "wbc": 1, "alc": 2, "platelets": 0, "hb": 0, "crp": 0, "ferritin": 0, "ldh": 0, "creatinine": 0},
        7.0, False,
    ),
    LabProfile(
        "nl-mmol", 0.08,
        {"anc": "neut#", "wbc": "leucocytes", "alc": "lymph#", "platelets": "thrombocytes", "hb": "hb", "crp": "crp", "ferritin": "ferritin", "ldh": "ld", "creatinine": "creat"},
        {"anc": "x10^9/L", "wbc": "x10^9/L", "alc": "x10^9/L", "platelets": "x10^9/L", "hb": "mmol/L", "crp": "mg/L", "ferritin": "ug/L", "ldh": "U/L", "creatinine": "umol/L"},
        {"anc": 1e-3, "wbc": 1, "alc": 1e-3, "platelets": 1, "hb": 0.6206, "crp": 10, "ferritin": 1, "ldh": 1, "creatinine": 88.42},
        {"anc": 2, "wbc": 1, "alc": 2, "platelets": 0, "hb": 1, "crp": 0, "ferritin": 0, "ldh": 0, "creatinine": 0},
        7.0, True,
    ),
)
# fmt: on


# --------------------------------------------------------------------------- helpers


def _choice(rng: np.random.Generator, weights: list[float] | F, n: int) -> IA:
    w = np.asarray(weights, dtype=float)
    return rng.choice(w.size, size=n, p=w / w.sum())


def _trunc_normal(rng: np.random.Generator, mean: F, sd: F, lo: F, hi: F) -> F:
    x = rng.normal(mean, sd)
    for _ in range(8):  # redraw the few outside the bounds, then clip the rest
        bad = (x < lo) | (x > hi)
        if not bad.any():
            break
        x[bad] = rng.normal(mean[bad], sd[bad])
    return np.clip(x, lo, hi)


def _logistic(x: F) -> F:
    out: F = 1.0 / (1.0 + np.exp(-x))
    return out


def _interp_rows(day: F, who: IA, kx: F, ky: F) -> F:
    """Piecewise-linear curves, one per patient, evaluated at (patient ``who``, ``day``) pairs.

    ``kx``/``ky``: (n, K) knot days and values. Knots are clipped to the simulated days, made
    non-decreasing, and padded at both ends, so one ``np.interp`` call serves every patient.
    ``day`` and ``who`` may be any broadcastable shapes; the result has their broadcast shape.
    """
    n, k = kx.shape
    lo, hi = FIRST_DAY - 2.0, MAX_DAY + 2.0
    span = hi - lo + 4.0
    x = np.clip(kx, lo + 1, hi - 1)
    x = np.maximum.accumulate(x, axis=1) + np.arange(k)[None, :] * 1e-6
    xs = np.concatenate([np.full((n, 1), lo), x, np.full((n, 1), hi)], axis=1)
    ys = np.concatenate([ky[:, :1], ky, ky[:, -1:]], axis=1)
    off = (np.arange(n) * span)[:, None]
    xp = (xs - lo + off).ravel()
    out: F = np.interp((day - lo) + who * span, xp, ys.ravel())
    return out


def _dense(kx: F, ky: F) -> F:
    """Curves on the full daily grid (n, N_DAYS)."""
    n = kx.shape[0]
    return _interp_rows(DAYS[None, :].astype(float), np.arange(n)[:, None], kx, ky)


def _col(day: IA | int) -> Any:
    return np.asarray(day) - FIRST_DAY


# --------------------------------------------------------------------------- one block


@dataclass(frozen=True)
class Block:
    """One block of synthetic patients in the long format, plus what the generator intended."""

    patients: pl.DataFrame
    labs: pl.DataFrame
    events: pl.DataFrame
    truth: pl.DataFrame  # per patient: intended phenotype, latent factors (for tests and demos)


def _rng(seed: int, block: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(block), 0x5EED]))


def generate_block(
    seed: int, block: int, n: int, first_number: int, width: int, prefix: str = "SYN"
) -> Block:
    """Simulate ``n`` patients (numbered from ``first_number``) with the stream ``(seed, block)``."""
    rng = _rng(seed, block)
    ids = np.array([f"{prefix}{first_number + i:0{width}d}" for i in range(n)], dtype=object)

    # ---- 1. who: product, disease, demographics, prior therapy, centre
    st_idx = _choice(rng, [s.weight for s in STRATA], n)

    def sv(attr: str) -> F:
        return np.array([getattr(s, attr) for s in STRATA], dtype=float)[st_idx]

    product = np.array([s.product for s in STRATA], dtype=object)[st_idx]
    disease = np.array([s.disease for s in STRATA], dtype=object)[st_idx]
    paediatric = np.array([s.paediatric for s in STRATA])[st_idx]
    age = _trunc_normal(rng, sv("age_mean"), sv("age_sd"), sv("age_min"), sv("age_max"))
    age = np.round(age, 1)
    male = rng.random(n) < sv("male")
    prior_auto = rng.random(n) < sv("prior_auto")
    prior_allo = rng.random(n) < sv("prior_allo")
    stored_auto = prior_auto & (rng.random(n) < np.where(disease == "MM", 0.7, 0.45))
    profile = _choice(rng, [p.weight for p in PROFILES], n)
    span_days = (INFUSION_LAST - INFUSION_FIRST).days
    infusion_off = rng.integers(0, span_days + 1, n)
    infusion = np.datetime64(INFUSION_FIRST.isoformat()) + infusion_off.astype("timedelta64[D]")
    weekday = (infusion.astype("datetime64[D]").astype(np.int64) + 3) % 7  # 0 = Monday
    ld_start = rng.choice(np.array([-6, -5, -5, -5, -5, -4]), n)
    status = np.array(["refractory", "relapsed", "PR", "SD", "PD", "CR"], dtype=object)[
        _choice(rng, [0.35, 0.30, 0.12, 0.08, 0.12, 0.03], n)
    ]

    # ---- 2. latent factors -> baseline labs -> CAR-HEMATOTOX (with the project's rule table)
    z_r = rng.normal(0, 1, n) + sv("marrow") + 0.25 * prior_auto + 0.3 * prior_allo
    z_r += np.where(age > 70, 0.15, 0.0)
    z_i = 0.3 * z_r + np.sqrt(1 - 0.09) * rng.normal(0, 1, n)
    z_i += np.where(np.isin(status, ["refractory", "PD"]), 0.25, 0.0)
    base_plt = np.exp(np.log(185) - 0.42 * z_r - 0.08 * z_i + rng.normal(0, 0.33, n))
    base_anc = np.exp(np.log(3300) - 0.35 * z_r + rng.normal(0, 0.45, n))
    base_hb = 11.4 - 0.85 * z_r - 0.3 * z_i + rng.normal(0, 1.0, n)
    base_hb = np.where(paediatric, base_hb + 0.3, base_hb)
    base_crp = np.exp(np.log(1.15) + 0.95 * z_i + rng.normal(0, 0.75, n))
    base_ferr = np.exp(np.log(600) + 0.65 * z_i + 0.2 * z_r + rng.normal(0, 0.6, n))
    base_alc = np.exp(np.log(750) - 0.2 * z_r + rng.normal(0, 0.6, n))
    base_plt = np.clip(base_plt, 8, 900)
    base_anc = np.clip(base_anc, 150, 30000)
    base_hb = np.clip(base_hb, 6.5, 17.5)
    base_crp = np.clip(base_crp, 0.02, 40)
    base_ferr = np.clip(base_ferr, 8, 60000)
    base_alc = np.clip(base_alc, 60, 8000)
    ht = tables.hematotox()
    baseline = {
        "platelets": base_plt,
        "anc": base_anc,
        "hb": base_hb,
        "crp": base_crp,
        "ferritin": base_ferr,
    }
    score = np.zeros(n)
    for marker in ht.markers:
        score += np.maximum(marker.bands.evaluate(baseline[marker.analyte].astype(float)), 0)
    # a few baseline markers are never drawn (the score then cannot be completed)
    miss_crp = rng.random(n) < 0.02
    miss_ferr = rng.random(n) < 0.03

    # ---- 3. haematotoxicity: phenotype, depth and duration of neutropenia
    sev = sv("severity") + 0.25 * rng.normal(0, 1, n) + 0.15 * z_r
    p_aplastic = _logistic(-4.7 + 1.4 * score + 1.0 * sev)
    u = rng.random(n)
    aplastic = u < p_aplastic
    p_inter = np.clip(0.78 + 0.04 * score + 0.1 * sev, 0.2, 0.95)
    intermittent = ~aplastic & (rng.random(n) < p_inter)
    phen = np.where(aplastic, APLASTIC, np.where(intermittent, INTERMITTENT, QUICK)).astype(object)
    # never severe (ANC always > 500): mostly low scores
    p_never = _logistic(-1.5 - 0.9 * score - 0.8 * sev)
    never = ~aplastic & (rng.random(n) < p_never)
    onset = rng.choice(np.array([0, 1, 1, 2, 2, 2, 3, 3, 4]), n).astype(float)
    d_short = np.round(
        np.exp(np.log(5.6 + 1.6 * score + 1.5 * np.maximum(sev, -1)) + rng.normal(0, 0.42, n))
    )
    d_short = np.clip(np.where(d_short > 13, 26 - d_short, d_short), 1, 13)  # no pile-up at 13
    d_long = 14 + np.round(np.exp(np.log(13) + 0.12 * score + 0.3 * sev + rng.normal(0, 1.0, n)))
    dur = np.where(aplastic, d_long, np.where(never, 0, d_short))
    nadir = np.where(
        aplastic,
        np.exp(rng.uniform(np.log(4), np.log(110), n)),
        np.minimum(
            np.exp(rng.uniform(np.log(3), np.log(260), n) - 0.25 * (score - 2) - 0.05 * (dur - 7)),
            450,
        ),
    )
    nadir = np.where(never, rng.uniform(560, 1500, n), nadir)
    plateau = np.exp(rng.uniform(np.log(1500), np.log(4200), n))
    plateau = np.where(aplastic, np.exp(rng.uniform(np.log(650), np.log(1600), n)), plateau)

    # ---- 4. competing events and follow-up
    followup_cut = np.minimum(
        (np.datetime64(DATA_CUT.isoformat()) - infusion).astype(np.int64), MAX_DAY
    )
    r1y = sv("relapse_1y")
    relapses = rng.random(n) < np.clip(r1y * 1.15 + 0.05 * (status == "PD"), 0, 0.95)
    relapse_day = np.round(np.exp(rng.normal(np.log(95), 0.75, n))).astype(np.int64)
    relapse_day = np.where(relapses, np.clip(relapse_day, 14, 10_000), 10_000)
    next_tx_day = np.where(
        relapse_day < 10_000, relapse_day + rng.integers(3, 35, n), 10_000
    ).astype(np.int64)
    next_tx_day = np.where(rng.random(n) < 0.88, next_tx_day, 10_000)
    # consolidative allogeneic HCT after remission in B-ALL (a next therapy without relapse)
    consolid = (disease == "B-ALL") & (relapse_day >= 10_000) & (rng.random(n) < 0.25)
    next_tx_day = np.where(consolid, rng.integers(55, 130, n), next_tx_day)
    nrm = rng.random(n) < np.where(aplastic, 0.16, 0.03) + 0.02 * (age > 70)
    nrm_day = np.where(
        aplastic,
        np.clip(np.round(np.exp(rng.normal(np.log(55), 0.6, n))), 12, 700),
        np.clip(np.round(np.exp(rng.normal(np.log(120), 0.9, n))), 8, 700),
    ).astype(np.int64)
    relapse_death = np.where(
        relapse_day < 10_000,
        relapse_day + np.round(np.exp(rng.normal(np.log(170), 0.8, n))).astype(np.int64),
        10_000,
    )
    relapse_death = np.where(rng.random(n) < 0.8, relapse_death, 10_000)
    death_day = np.minimum(np.where(nrm, nrm_day, 10_000), relapse_death)
    # return to the referring centre once counts allow (about day 28-45, or after day 90): the
    # centre's labs stop there; registry follow-up of outcomes continues for most patients,
    # the others are lost to follow-up on the day they leave
    transfer = np.where(
        ~aplastic & (rng.random(n) < 0.5),
        rng.integers(28, 46, n),
        np.where(rng.random(n) < 0.4, rng.integers(90, 200, n), 10_000),
    )
    registry = rng.random(n) < 0.75
    labs_end = np.minimum.reduce([followup_cut, transfer, death_day]).astype(np.int64)
    last_fu = np.where(registry, np.minimum(followup_cut, death_day), labs_end).astype(np.int64)
    last_fu = np.maximum(last_fu, 0)
    death_day = np.where(death_day <= last_fu, death_day, 10_000)
    relapse_day = np.where(relapse_day <= last_fu, relapse_day, 10_000)
    next_tx_day = np.where(next_tx_day <= last_fu, next_tx_day, 10_000)
    end = np.maximum(labs_end, 0)  # last day with labs and treatment records

    # aplastic patients with stored cells (or an allo donor) may get a stem cell boost
    boost_ok = aplastic & (stored_auto | prior_allo) & (dur > 28) & (rng.random(n) < 0.45)
    boost_day = np.where(boost_ok, onset + rng.integers(25, 55, n), 10_000).astype(np.int64)
    boost_day = np.where(boost_day <= end, boost_day, 10_000)
    recover_day = onset + dur  # first day with ANC > 500 (if ever)
    boosted = boost_day < 10_000
    recover_day = np.where(
        boosted, np.minimum(recover_day, boost_day + rng.integers(9, 17, n)), recover_day
    )
    dur = recover_day - onset

    # ---- 5. CRS / ICANS and their treatment
    crs_any = rng.random(n) < np.clip(sv("crs_any") + 0.05 * z_i, 0, 0.99)
    p_sev = np.clip(sv("crs_severe") * np.exp(0.45 * z_i + 0.3 * sev), 0, 0.9)
    crs_grade = np.where(
        crs_any,
        np.where(
            rng.random(n) < p_sev / np.maximum(sv("crs_any"), 1e-9),
            3 + (rng.random(n) < 0.2),
            1 + (rng.random(n) < 0.45),
        ),
        0,
    ).astype(np.int64)
    crs_start = np.clip(np.round(sv("crs_onset") + rng.normal(0, 1.5, n)), 0, 14).astype(np.int64)
    crs_len = np.clip(np.round(2 + 1.6 * crs_grade + rng.exponential(1.5, n)), 1, 20).astype(
        np.int64
    )
    crs_end = crs_start + crs_len - 1
    icans_any = rng.random(n) < np.clip(sv("icans_any") * np.exp(0.3 * (crs_grade - 1.5)), 0, 0.98)
    p_isev = np.clip(
        sv("icans_severe") / np.maximum(sv("icans_any"), 1e-9) * np.exp(0.3 * (crs_grade - 1.5)),
        0,
        0.95,
    )
    icans_grade = np.where(
        icans_any,
        np.where(rng.random(n) < p_isev, 3 + (rng.random(n) < 0.15), 1 + (rng.random(n) < 0.5)),
        0,
    ).astype(np.int64)
    icans_start = crs_start + rng.integers(1, 5, n)
    icans_end = (
        icans_start
        + np.clip(np.round(1 + 1.8 * icans_grade + rng.exponential(2, n)), 1, 25).astype(np.int64)
        - 1
    )
    iechs = (rng.random(n) < 0.015 + 0.04 * aplastic) & (crs_grade > 0)
    iechs_day = crs_end + rng.integers(1, 8, n)

    # G-CSF: started on day 7-12 (or later) while ANC <= 500, not during CRS >= 2
    g_start = np.maximum(onset + rng.integers(4, 8, n), rng.integers(7, 13, n))
    crs_block = (crs_grade >= 2) & (g_start <= crs_end)
    g_start = np.where(crs_block, crs_end + 1, g_start)
    gets_gcsf = (recover_day > g_start + 1) & (rng.random(n) < 0.85) & ~never
    # responders recover within the 7-day response window; aplastic patients mostly do not
    responds = gets_gcsf & ~aplastic & (rng.random(n) < 0.8)
    recover_day = np.where(
        responds & (recover_day > g_start + 7), g_start + rng.integers(3, 8, n), recover_day
    )
    dur = np.where(never, 0, recover_day - onset)
    g_end = np.where(
        aplastic,
        np.minimum(recover_day + 2, g_start + rng.integers(14, 35, n)),
        recover_day + rng.integers(0, 3, n),
    )
    g_end = np.minimum(g_end, end)
    gets_gcsf &= g_start <= end

    # ---- 6. trajectories (daily curves on the whole grid)
    log10 = np.log10
    ldf = ld_start.astype(float)
    b = np.maximum(base_anc, 700.0)
    s_half = np.minimum(4.0, np.maximum(dur, 1) / 2.5)
    rise = rng.uniform(3, 8, n)
    r = recover_day.astype(float)
    # knots: baseline, LD, crossing below 500, floor start, floor end, crossing above 500, plateau
    k_x = [ldf - 1, ldf + 2, onset - 0.5, onset - 0.5 + s_half, r - 0.5 - s_half, r - 0.5, r + rise]
    floor_end = nadir * np.exp(rng.uniform(0, 0.8, n))
    k_y = [
        log10(base_anc),
        log10(b * rng.uniform(0.8, 1.2, n)),
        np.full(n, log10(500.0)),
        log10(nadir),
        log10(np.where(aplastic, np.minimum(floor_end, 300), np.minimum(floor_end, 450))),
        np.full(n, log10(500.0)),
        log10(plateau),
    ]
    # never severe: a shallow nadir above 500 around day 5-8
    nd = rng.uniform(4, 9, n)
    never_x = [ldf - 1, ldf + 2, nd - 1, nd, nd + 1, nd + 3, nd + 7]
    never_y = [
        log10(base_anc),
        log10(b),
        log10(nadir * 1.25),
        log10(nadir),
        log10(nadir * 1.15),
        log10((nadir + plateau) / 2),
        log10(plateau),
    ]
    k_x = [np.where(never, a, c) for a, c in zip(never_x, k_x, strict=True)]
    k_y = [np.where(never, a, c) for a, c in zip(never_y, k_y, strict=True)]
    # after recovery: intermittent second dip after day 21; aplastic partial recovery with dips
    dip_start = np.maximum(r + rise + 2, rng.uniform(20, 42, n))
    dip_down = rng.uniform(3, 7, n)
    dip_hold = rng.uniform(2, 9, n)
    dip_up = rng.uniform(3, 10, n)
    dip_min = np.exp(rng.uniform(np.log(250), np.log(950), n) - 0.2 * (score - 2))
    dip_min = np.minimum(dip_min, 980)
    dip_min = np.where(aplastic, dip_min * 0.6, dip_min)
    has_dip = intermittent | (aplastic & (rng.random(n) < 0.4))
    gdip = has_dip & (dip_min < 750) & (rng.random(n) < 0.5)  # G-CSF for the biphasic drop
    dip_up = np.where(gdip, rng.uniform(2, 4, n), dip_up)
    plateau2 = np.exp(rng.uniform(np.log(1500), np.log(4000), n))
    plateau2 = np.where(aplastic, np.exp(rng.uniform(np.log(800), np.log(2200), n)), plateau2)
    late = np.exp(rng.uniform(np.log(1800), np.log(4500), n))
    no_dip_y = np.where(has_dip, 0.0, 1.0)
    k_x += [
        dip_start,
        dip_start + dip_down,
        dip_start + dip_down + dip_hold,
        dip_start + dip_down + dip_hold + dip_up,
        np.full(n, 180.0),
        np.full(n, 400.0),
    ]
    k_y += [
        log10(plateau),
        np.where(no_dip_y > 0, log10(plateau), log10(dip_min)),
        np.where(no_dip_y > 0, log10(plateau), log10(dip_min * rng.uniform(1.0, 1.4, n))),
        log10(plateau2),
        log10((plateau2 + late) / 2),
        log10(late),
    ]
    kx = np.stack(k_x, axis=1)
    ky = np.stack(k_y, axis=1)
    anc_log = _dense(kx, ky)
    # a next therapy (salvage, bispecific, HCT conditioning) brings counts down again
    days = DAYS[None, :].astype(float)
    nt = next_tx_day.astype(float)[:, None]
    depth = rng.uniform(0.5, 1.6, n)[:, None]
    tri = np.clip(1 - np.abs(days - (nt + 9)) / 10, 0, 1)
    anc_log -= depth * tri
    anc = 10**anc_log

    # platelets: nadir day 7-16, depth by score and phenotype; slow recovery when aplastic
    mu = (
        -1.0
        - 0.14 * score
        - 0.35 * np.maximum(sev, 0)
        - np.where(aplastic, 0.85, np.where(intermittent, 0.25, 0.0))
    )
    p_nadir = np.clip(base_plt * np.exp(rng.normal(mu, 0.5, n)), 2, base_plt)
    p_nadir_day = rng.uniform(7, 15, n) + 4 * aplastic
    p_final = np.clip(base_plt * rng.uniform(0.6, 1.1, n), 60, 450)
    p_rec = np.where(
        aplastic,
        np.exp(rng.normal(np.log(75), 0.6, n)),
        np.where(intermittent, rng.uniform(12, 40, n), rng.uniform(6, 25, n)),
    )
    # TPO-receptor agonist for persistent thrombocytopenia beyond day 30
    tpo = (p_nadir < 40) & (p_nadir_day + p_rec > 45) & (rng.random(n) < 0.5)
    tpo_start = np.where(tpo, rng.integers(30, 61, n), 10_000).astype(np.int64)
    tpo_start = np.where(tpo_start <= end, tpo_start, 10_000)
    tpo = tpo_start < 10_000
    tpo_resp = tpo & (rng.random(n) < 0.6)
    p_rec = np.where(
        tpo_resp, np.minimum(p_rec, tpo_start - p_nadir_day + rng.uniform(14, 42, n)), p_rec
    )
    p_rec = np.where(
        boosted, np.minimum(p_rec, boost_day - p_nadir_day + rng.uniform(14, 30, n)), p_rec
    )
    p_rec = np.maximum(p_rec, 4)
    p_low_end = p_nadir * np.where(aplastic, rng.uniform(1.0, 2.2, n), rng.uniform(1.0, 1.5, n))
    pk_x = np.stack(
        [
            ldf - 1,
            ldf + 3,
            p_nadir_day - 3,
            p_nadir_day,
            p_nadir_day + 0.6 * p_rec,
            p_nadir_day + p_rec,
            p_nadir_day + p_rec + 30,
        ],
        axis=1,
    )
    pk_y = np.log(
        np.stack(
            [
                base_plt,
                base_plt * 0.95,
                (base_plt * p_nadir) ** 0.5,
                p_nadir,
                p_low_end,
                np.maximum(p_final * 0.7, p_low_end),
                p_final,
            ],
            axis=1,
        )
    )
    plt_int = np.exp(_dense(pk_x, pk_y) - 0.7 * depth * tri)

    # haemoglobin: falls 1-4.5 g/dL to a nadir on day 8-25; recovers over weeks to months
    drop = np.clip(
        rng.normal(3.8 + 0.2 * score + 0.9 * aplastic + 0.3 * np.maximum(sev, 0), 0.9, n), 0.3, 6
    )
    h_nadir_day = rng.uniform(8, 25, n)
    h_rec = np.where(aplastic, rng.uniform(90, 250, n), rng.uniform(30, 120, n))
    hk_x = np.stack(
        [ldf - 1, ldf + 2, h_nadir_day, h_nadir_day + h_rec, h_nadir_day + h_rec + 60], axis=1
    )
    h_final = np.clip(base_hb + rng.uniform(-0.5, 1.5, n), 9.5, 16)
    hk_y = np.stack(
        [base_hb, base_hb - 0.2, np.maximum(base_hb - drop, 4.2), h_final - 0.5, h_final], axis=1
    )
    hb_int = _dense(hk_x, hk_y) - 0.6 * depth * tri

    # ---- 7. lab schedule
    sched = np.zeros((n, N_DAYS), bool)
    base_day = ld_start - rng.choice(np.array([0, 0, 0, 0, 0, 1, 2, 3]), n)
    sched[np.arange(n), _col(base_day)] = True
    dgrid = DAYS[None, :]
    wd = (weekday[:, None] + dgrid) % 7  # weekday of each day (0 = Monday)
    mwf = np.array([p.visits_mwf for p in PROFILES])[profile][:, None]
    visit_wd = (wd == 0) | np.where(mwf, (wd == 2) | (wd == 4), wd == 3)
    clinic_wd = rng.integers(0, 5, n)[:, None]
    # inpatient care to about day 14 (daily labs); some centres give the lower-risk products as
    # outpatients (labs three times a week) and admit for CRS / ICANS >= 2
    p_out = np.vectorize(OUTPATIENT_SHARE.get)(product, 0.0).astype(float)
    outpatient = (rng.random(n) < p_out) & ~paediatric
    admitted = (crs_grade >= 2) | (icans_grade >= 2)
    adm_start = np.where(outpatient, np.where(admitted, crs_start, 10_000), 0)
    adm_end = np.where(admitted, np.maximum(crs_end, icans_end) + 2, 0)
    adm_end = np.maximum(adm_end, np.where(outpatient, -1, 14))
    cytopenic = (anc <= 500) | (plt_int < 20)
    inpatient = (dgrid >= adm_start[:, None]) & (dgrid <= adm_end[:, None])
    daily = (dgrid >= 0) & inpatient & (rng.random((n, N_DAYS)) > 0.05)
    early = (dgrid >= 0) & ~inpatient & (dgrid <= 30) & visit_wd
    twice = (wd == 0) | (wd == 3)
    mid = (dgrid > 30) & (dgrid <= 100) & ((wd == clinic_wd) | (cytopenic & twice))
    month_phase = rng.integers(0, 30, n)[:, None]
    late_v = (dgrid > 100) & (((dgrid + month_phase) % 30 == 0) | (cytopenic & (wd == clinic_wd)))
    sched |= daily | early | mid | late_v
    sched[:, _col(-1)] |= rng.random(n) < 0.3  # a pre-infusion CBC on day -1 for some
    sched &= dgrid <= end[:, None]
    # ---- 8. transfusions (triggered by the day's count), counts raised afterwards
    rbc_thr = np.array([p.rbc_threshold for p in PROFILES])[profile]
    plt_obs = np.empty_like(plt_int)
    hb_obs = np.empty_like(hb_int)
    res_p = np.zeros(n)
    res_h = np.zeros(n)
    last_p = np.full(n, -99)
    last_h = np.full(n, -99)
    p_units = np.zeros((n, N_DAYS), np.int8)
    h_units = np.zeros((n, N_DAYS), np.int8)
    inc_p = rng.uniform(15, 35, n)
    decay_p = np.exp(-np.log(2) / 2.5)
    decay_h = np.exp(-np.log(2) / 25)
    start_c = int(_col(0))
    # the measured counts (analyser variation): transfusions are decided on what was measured
    noise_p = np.exp(rng.normal(0, 0.07, (n, N_DAYS)))
    noise_h = rng.normal(0, 0.25, (n, N_DAYS))
    plt_obs[:, :start_c] = np.maximum(plt_int[:, :start_c] * noise_p[:, :start_c], 1)
    hb_obs[:, :start_c] = np.clip(hb_int[:, :start_c] + noise_h[:, :start_c], 3.5, 20)
    for c in range(start_c, N_DAYS):
        res_p *= decay_p
        res_h *= decay_h
        plt_obs[:, c] = np.maximum((plt_int[:, c] + res_p) * noise_p[:, c], 1)
        hb_obs[:, c] = np.clip(hb_int[:, c] + res_h + noise_h[:, c], 3.5, 20)
        lab = sched[:, c]
        d = DAYS[c]
        need_p = lab & (np.round(plt_obs[:, c]) < 10) & (d - last_p >= 1)
        need_h = lab & (hb_obs[:, c] < rbc_thr) & (d - last_h >= 4)
        if need_p.any():
            res_p[need_p] += inc_p[need_p]
            last_p[need_p] = d
            p_units[need_p, c] = 1
        if need_h.any():
            u_h = np.where(hb_obs[:, c] < rbc_thr - 1, 2, 1)
            res_h[need_h] += 1.0 * u_h[need_h]
            last_h[need_h] = d
            h_units[need_h, c] = u_h[need_h]

    # ---- 9. lab rows
    pi, ci = np.nonzero(sched)
    dd = DAYS[ci]
    m = pi.size
    vals: dict[str, F] = {}
    noise = rng.normal(0, 1, (5, m))
    vals["anc"] = anc[pi, ci] * np.exp(0.13 * noise[0])
    vals["platelets"] = plt_obs[pi, ci]
    vals["hb"] = hb_obs[pi, ci]
    # lymphocytes: lymphodepleted to ~30-150/uL, CAR-T expansion around day 7-14, slow recovery
    alc_n = np.exp(rng.uniform(np.log(30), np.log(160), n))
    alc_pk = np.where(
        rng.random(n) < 0.5, np.exp(rng.uniform(np.log(300), np.log(2500), n)), alc_n * 2
    )
    pk_day = rng.uniform(7, 14, n)
    ak_x = np.stack(
        [ldf - 1, np.full(n, 1.0), pk_day, pk_day + 10, np.full(n, 100.0), np.full(n, 365.0)],
        axis=1,
    )
    ak_y = np.log(
        np.stack(
            [base_alc, alc_n, alc_pk, np.maximum(alc_n * 3, 250), base_alc * 0.7, base_alc], axis=1
        )
    )
    vals["alc"] = np.exp(_interp_rows(dd.astype(float), pi, ak_x, ak_y) + 0.2 * noise[3])
    mono = 0.12 * vals["anc"] + 60 * np.exp(0.3 * noise[4])
    vals["wbc"] = (vals["anc"] + vals["alc"] + mono) / 1000.0
    # CRP (mg/dL) and ferritin (ng/mL): baseline, CRS peak, IEC-HS, next-therapy bumps
    t = dd.astype(float)
    cs = crs_start[pi].astype(float)
    amp = np.array([1.5, 7, 14, 20, 24], float)[crs_grade[pi]] * np.exp(0.3 * rng.normal(0, 1, m))
    since = t - (cs + 1)
    crs_curve = np.where(
        since < -1,
        0,
        np.where(since < 0, amp * (since + 1), amp * np.exp(-np.maximum(since, 0) / 3.0)),
    )
    vals["crp"] = np.clip(base_crp[pi] * np.where(t < 0, 1, 0.6) + crs_curve, 0.02, 60) * np.exp(
        0.15 * rng.normal(0, 1, m)
    )
    f_amp = base_ferr[pi] * np.array([0.6, 2, 5, 9, 14], float)[crs_grade[pi]]
    f_amp += np.where(iechs[pi], rng.uniform(8000, 40000, m), 0)
    fs = t - (cs + 4)
    f_curve = np.where(
        fs < -4, 0, np.where(fs < 0, f_amp * (fs + 4) / 4, f_amp * np.exp(-np.maximum(fs, 0) / 14))
    )
    vals["ferritin"] = np.clip(base_ferr[pi] + f_curve, 5, 1_500_000) * np.exp(
        0.1 * rng.normal(0, 1, m)
    )
    # the baseline draw carries the baseline values (the ones the score was computed from)
    is_base = dd == base_day[pi]
    for a in ("anc", "platelets", "hb", "crp", "ferritin", "alc"):
        key = {
            "anc": base_anc,
            "platelets": base_plt,
            "hb": base_hb,
            "crp": base_crp,
            "ferritin": base_ferr,
            "alc": base_alc,
        }[a]
        vals[a] = np.where(is_base, key[pi], vals[a])
    vals["wbc"] = np.where(is_base, (base_anc[pi] + base_alc[pi]) / 1000 + 0.45, vals["wbc"])
    _easix_analytes(vals, seed, block, pi, t, cs, crs_grade[pi], n)

    # which analytes each draw reports
    want = {
        "anc": np.ones(m, bool),
        "wbc": np.ones(m, bool),
        "platelets": np.ones(m, bool),
        "hb": np.ones(m, bool),
        # the differential's lymphocyte count: weekly to day 28, then at a third of the visits
        "alc": is_base | np.isin(dd, (0, 7, 14, 21, 28)) | ((dd > 30) & (rng.random(m) < 0.3)),
        # CRP daily in the first week, then twice weekly to day 30; ferritin twice weekly
        "crp": is_base
        | ((dd >= 0) & (dd <= 7))
        | ((dd > 7) & (dd <= 30) & (dd % 3 == 0))
        | (rng.random(m) < 0.04),
        "ferritin": is_base | np.isin(dd, (0, 3, 7, 10, 14, 21, 28)),
        # LDH and creatinine (EASIX): at baseline, daily to day 3, then weekly to day 28
        "ldh": is_base | np.isin(dd, (0, 1, 2, 3, 7, 14, 21, 28)),
        "creatinine": is_base | np.isin(dd, (0, 1, 2, 3, 7, 14, 21, 28)),
    }
    want["crp"] &= ~(is_base & miss_crp[pi])
    want["ferritin"] &= ~(is_base & miss_ferr[pi])
    # a repeat draw on the same day for a few draws (the grading takes the day's lowest)
    repeat = (rng.random(m) < 0.015) & (dd >= 0)

    labs = _lab_rows(pi, dd, vals, want, repeat, profile, ids, rng)

    # ---- 10. patient and event tables
    def date_of(day: IA) -> NDArray[Any]:
        out = infusion + day.astype("timedelta64[D]")
        return np.where(day >= 10_000, np.datetime64("NaT"), out)

    prog = np.where(relapse_day < 10_000, relapse_day, 10_000)
    patients = pl.DataFrame(
        {
            "patient_id": ids.tolist(),
            "infusion_date": infusion.astype("datetime64[D]"),
            "ld_start_date": date_of(ld_start.astype(np.int64)).astype("datetime64[D]"),
            "progression_date": date_of(prog).astype("datetime64[D]"),
            "next_therapy_date": date_of(next_tx_day).astype("datetime64[D]"),
            "last_followup_date": date_of(last_fu).astype("datetime64[D]"),
            "death_date": date_of(death_day).astype("datetime64[D]"),
            "age_years": age,
            "sex": np.where(male, "male", "female").tolist(),
            "disease": disease.tolist(),
            "disease_status": status.tolist(),
            "product": product.tolist(),
            "lymphodepletion": np.where(rng.random(n) < 0.95, "flu-cy", "bendamustine").tolist(),
            "prior_auto_hct": prior_auto,
            "prior_allo_hct": prior_allo,
            "stored_autologous_cells": stored_auto,
            "lab_profile": np.array([p.name for p in PROFILES], dtype=object)[profile].tolist(),
        }
    )
    events = _event_rows(
        rng,
        ids,
        n,
        end=end,
        crs=(crs_grade, crs_start, crs_end),
        icans=(icans_grade, icans_start, icans_end),
        iechs=(iechs, iechs_day),
        gcsf=(
            gets_gcsf,
            g_start,
            g_end,
            gdip,
            dip_start + dip_down - 2,
            dip_start + dip_down + dip_hold + dip_up,
        ),
        tpo=(
            tpo,
            tpo_start,
            np.where(
                tpo_resp, tpo_start + rng.integers(42, 120, n), tpo_start + rng.integers(28, 50, n)
            ),
        ),
        boost=(boosted, boost_day, np.where(prior_allo & ~stored_auto, "allogeneic", "autologous")),
        transfusions=(p_units, h_units),
        outcomes=(relapse_day, next_tx_day, death_day),
        infections=(aplastic, never, onset, recover_day),
        consolid=consolid,
    )
    truth = pl.DataFrame(
        {
            "patient_id": ids.tolist(),
            "phenotype": phen.tolist(),
            "hematotox_score": score.astype(np.int32),
            "severe_days_intended": dur.astype(np.int32),
            "marrow_factor": z_r,
            "inflammation_factor": z_i,
            "boosted": boosted,
            "tpo_ra": tpo,
            "paediatric": paediatric,
        }
    )
    return Block(patients, labs, events, truth)


def _easix_analytes(
    vals: dict[str, F], seed: int, block: int, pi: IA, t: F, cs: F, grade: IA, n: int
) -> None:
    """LDH (U/L) and creatinine (mg/dL) for each draw, from their own random stream: a patient's
    baseline (LDH log-normal around 230 U/L, creatinine around 0.9 mg/dL) rising with CRS."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(block), 0xEA51]))
    base_ldh = np.exp(rng.normal(np.log(230), 0.45, n))
    base_cr = np.clip(rng.normal(0.9, 0.25, n), 0.35, 3.5)
    m = pi.size
    since = np.clip(t - cs, 0, None)
    crs = np.where(t >= cs, (1 + 0.35 * grade) * np.exp(-since / 5), 1.0)
    vals["ldh"] = base_ldh[pi] * np.maximum(crs, 1.0) * np.exp(0.12 * rng.normal(0, 1, m))
    vals["creatinine"] = np.clip(
        base_cr[pi]
        * (1 + 0.1 * np.maximum(grade - 1, 0) * (crs > 1))
        * np.exp(0.06 * rng.normal(0, 1, m)),
        0.3,
        8.0,
    )


PLAUSIBLE_MARGIN = 0.05  # kept inside the bounds by this share, so that rounding stays inside


def _plausible(code: str, canonical: F) -> F:
    """Values (canonical unit) kept within the catalogue's plausible range, the one ``grade``
    checks: the generator never writes a value its own validator rejects (the 1M seed-11 cohort
    had a CRP of 1070 mg/L, past the 1000 mg/L the catalogue allows)."""
    a = resolve_analyte(code)
    low, high = a.plausible_low * (1 + PLAUSIBLE_MARGIN), a.plausible_high * (1 - PLAUSIBLE_MARGIN)
    return np.clip(canonical, low, high)


def _lab_rows(
    pi: IA,
    dd: IA,
    vals: dict[str, F],
    want: dict[str, B],
    repeat: B,
    profile: IA,
    ids: NDArray[np.object_],
    rng: np.random.Generator,
) -> pl.DataFrame:
    """Long lab rows in each patient's centre's names, units and decimals (vectorised)."""
    pids: list[IA] = []
    days: list[IA] = []
    names: list[IA] = []
    values: list[F] = []
    prof_of_row = profile[pi]
    for a in _ANALYTES:
        sel = want[a]
        for rep in (False, True):
            if rep and a in _EXTRA:
                continue
            s = sel & repeat if rep else sel
            if not s.any():
                continue
            v = vals[a][s]
            if rep:  # the repeat draw: a second value, within the analyser's variation
                v = v * np.exp(rng.normal(0, 0.08, v.size))
            v = _plausible(a, v)
            prof = prof_of_row[s]
            fac = np.array([p.factor[a] for p in PROFILES])[prof]
            dec = np.array([p.decimals[a] for p in PROFILES])[prof]
            out = v * fac
            scale = 10.0**dec
            out = np.round(out * scale) / scale
            pids.append(pi[s])
            days.append(dd[s])
            names.append(prof * len(_ANALYTES) + _A[a])  # index into the name / unit tables
            values.append(out)
    name_table = [p.names[a] for p in PROFILES for a in _ANALYTES]
    unit_table = [p.units[a] for p in PROFILES for a in _ANALYTES]
    p_all = np.concatenate(pids)
    d_all = np.concatenate(days)
    order = np.lexsort((d_all, p_all))
    df = pl.DataFrame(
        {
            "patient_id": pl.Series(ids.tolist(), dtype=pl.String).gather(p_all[order]),
            "day": pl.Series(d_all[order], dtype=pl.Int32),
            "analyte": pl.Series(name_table, dtype=pl.String).gather(np.concatenate(names)[order]),
            "value": pl.Series(np.concatenate(values)[order], dtype=pl.Float64),
            "unit": pl.Series(unit_table, dtype=pl.String).gather(np.concatenate(names)[order]),
        }
    )
    return df


class _Events:
    """Accumulates event rows as column arrays."""

    def __init__(self, ids: NDArray[np.object_]) -> None:
        self.ids = ids
        self.cols: dict[str, list[Any]] = {
            k: [] for k in ("idx", "type", "start_day", "end_day", "grade", "drug", "product")
        }

    def add(
        self,
        mask: B,
        kind: str,
        start: IA | F,
        end: IA | F | None = None,
        grade: IA | F | None = None,
        drug: str | NDArray[np.object_] | None = None,
        product: str | NDArray[np.object_] | None = None,
    ) -> None:
        idx = np.nonzero(mask)[0]
        if not idx.size:
            return

        def pick(x: Any, dtype: Any) -> NDArray[Any] | str | None:
            if x is None or isinstance(x, str):
                return x
            return np.asarray(x)[idx].astype(dtype)

        self.add_rows(
            idx,
            kind,
            np.asarray(start)[idx].astype(np.int64),
            pick(end, np.int64),  # type: ignore[arg-type]
            pick(grade, np.int64),  # type: ignore[arg-type]
            pick(drug, object),
            pick(product, object),
        )

    def add_rows(
        self,
        idx: IA,
        kind: str,
        start: IA | F,
        end: IA | None = None,
        grade: IA | None = None,
        drug: str | NDArray[Any] | None = None,
        product: str | NDArray[Any] | None = None,
    ) -> None:
        """Rows already aligned with ``idx`` (patient index of each row)."""
        k = idx.size

        def text(x: str | NDArray[Any] | None) -> NDArray[Any]:
            if x is None or isinstance(x, str):
                return np.full(k, x, dtype=object)
            return np.asarray(x, dtype=object)

        self.cols["idx"].append(idx)
        self.cols["type"].append(np.full(k, kind, dtype=object))
        self.cols["start_day"].append(np.asarray(start).astype(np.int64))
        self.cols["end_day"].append(
            np.full(k, -(10**9)) if end is None else np.asarray(end).astype(np.int64)
        )
        self.cols["grade"].append(
            np.full(k, -1) if grade is None else np.asarray(grade).astype(np.int64)
        )
        self.cols["drug"].append(text(drug))
        self.cols["product"].append(text(product))

    def frame(self) -> pl.DataFrame:
        if not self.cols["idx"]:
            return pl.DataFrame(
                schema={
                    "patient_id": pl.String,
                    "type": pl.String,
                    "start_day": pl.Int32,
                    "end_day": pl.Int32,
                    "grade": pl.Int8,
                    "drug": pl.String,
                    "product": pl.String,
                }
            )
        idx = np.concatenate(self.cols["idx"])
        start = np.concatenate(self.cols["start_day"])
        order = np.lexsort((start, idx))
        end = np.concatenate(self.cols["end_day"])[order]
        grade = np.concatenate(self.cols["grade"])[order]
        df = pl.DataFrame(
            {
                "patient_id": pl.Series(self.ids.tolist(), dtype=pl.String).gather(idx[order]),
                "type": np.concatenate(self.cols["type"])[order].tolist(),
                "start_day": pl.Series(start[order], dtype=pl.Int32),
                "end_day": pl.Series(end, dtype=pl.Int32),
                "grade": pl.Series(grade, dtype=pl.Int8),
                "drug": pl.Series(
                    np.concatenate(self.cols["drug"])[order].tolist(), dtype=pl.String
                ),
                "product": pl.Series(
                    np.concatenate(self.cols["product"])[order].tolist(), dtype=pl.String
                ),
            }
        )
        return df.with_columns(
            pl.when(pl.col("end_day") > -(10**8)).then(pl.col("end_day")).alias("end_day"),
            pl.when(pl.col("grade") >= 0).then(pl.col("grade")).alias("grade"),
        )


def _event_rows(
    rng: np.random.Generator,
    ids: NDArray[np.object_],
    n: int,
    *,
    end: IA,
    crs: tuple[IA, IA, IA],
    icans: tuple[IA, IA, IA],
    iechs: tuple[B, IA],
    gcsf: tuple[B, IA, IA, B, F, F],
    tpo: tuple[B, IA, IA],
    boost: tuple[B, IA, NDArray[Any]],
    transfusions: tuple[NDArray[np.int8], NDArray[np.int8]],
    outcomes: tuple[IA, IA, IA],
    infections: tuple[B, B, F, IA],
    consolid: B,
) -> pl.DataFrame:
    ev = _Events(ids)
    alive_on = end  # events are only recorded up to the last day with data

    def upto(mask: B, day: IA | F) -> B:
        return mask & (np.asarray(day) <= alive_on) & (np.asarray(day) >= -10)

    def clip_end(day: IA | F) -> IA:
        return np.minimum(np.asarray(day).astype(np.int64), alive_on)

    crs_g, crs_s, crs_e = crs
    ev.add(upto(crs_g > 0, crs_s), "crs", crs_s, clip_end(crs_e), crs_g)
    ic_g, ic_s, ic_e = icans
    ev.add(upto(ic_g > 0, ic_s), "icans", ic_s, clip_end(ic_e), ic_g)
    ie, ie_day = iechs
    ev.add(
        upto(ie, ie_day),
        "iec_hs",
        ie_day,
        clip_end(ie_day + rng.integers(4, 15, n)),
        rng.integers(1, 4, n),
    )
    # CRS / ICANS treatment
    toci = (crs_g >= 2) | ((crs_g == 1) & (rng.random(n) < 0.25))
    toci_day = crs_s + rng.integers(0, 2, n)
    ev.add(
        upto(toci, toci_day),
        "medication",
        toci_day,
        clip_end(toci_day + rng.integers(0, 2, n)),
        drug="tocilizumab",
    )
    dex = (ic_g >= 2) | (crs_g >= 3)
    dex_day = np.where(ic_g >= 2, ic_s, crs_s + 1)
    ev.add(
        upto(dex, dex_day),
        "medication",
        dex_day,
        clip_end(dex_day + rng.integers(2, 8, n)),
        drug="dexamethasone",
    )
    ana = (ic_g >= 3) & (rng.random(n) < 0.35)
    ana_day = ic_s + rng.integers(1, 3, n)
    ev.add(
        upto(ana, ana_day),
        "medication",
        ana_day,
        clip_end(ana_day + rng.integers(3, 10, n)),
        drug="anakinra",
    )
    # growth factors, TPO-RA, boost
    g, g_s, g_e, gdip, gd_s, gd_e = gcsf
    ev.add(upto(g, g_s), "medication", g_s, clip_end(np.maximum(g_e, g_s)), drug="filgrastim")
    gd_s = np.round(gd_s).astype(np.int64)
    gd_e = np.round(gd_e).astype(np.int64)
    ev.add(
        upto(gdip & (gd_s > np.where(g, g_e, -1) + 1), gd_s),
        "medication",
        gd_s,
        clip_end(gd_e),
        drug="filgrastim",
    )
    t, t_s, t_e = tpo
    t_drug = np.where(rng.random(n) < 0.7, "eltrombopag", "romiplostim").astype(object)
    ev.add(upto(t, t_s), "medication", t_s, clip_end(t_e), drug=t_drug)
    bo, bo_day, bo_src = boost
    ev.add(upto(bo, bo_day), "stem_cell_boost", bo_day, bo_day, product=bo_src.astype(object))
    # prophylaxis
    zeros = np.zeros(n, np.int64)
    ev.add(
        upto(np.ones(n, bool), zeros),
        "medication",
        zeros,
        None,
        drug=np.where(rng.random(n) < 0.6, "acyclovir", "valacyclovir").astype(object),
    )
    pjp_day = rng.integers(21, 35, n)
    # the review uses TMP-SMX and "pentamidine or atovaquone as acceptable alternatives if there
    # are concerns for persistent cytopenias": persistent (aplastic) courses mostly get those
    u = rng.random(n)
    pjp_drug = np.where(
        infections[0],
        np.where(u < 0.7, "pentamidine", "atovaquone"),
        np.where(u < 0.85, "trimethoprim-sulfamethoxazole", "atovaquone"),
    ).astype(object)
    ev.add(upto(rng.random(n) < 0.9, pjp_day), "medication", pjp_day, None, drug=pjp_drug)
    aplastic, never, onset, recover = infections
    lev = ~never & (rng.random(n) < 0.6)
    ev.add(upto(lev, onset), "medication", onset, clip_end(recover), drug="levofloxacin")
    af_drug = np.where(aplastic & (rng.random(n) < 0.7), "posaconazole", "fluconazole").astype(
        object
    )
    ev.add(
        upto(~never & (rng.random(n) < 0.5), onset),
        "medication",
        onset,
        clip_end(recover + 3),
        drug=af_drug,
    )
    # infections: bacterial / viral / fungal, more often during long neutropenia
    inf = rng.random(n) < np.where(aplastic, 0.6, 0.25)
    inf_day = np.where(
        rng.random(n) < 0.6, onset + rng.integers(0, 20, n), rng.integers(15, 200, n)
    )
    cat = np.array(["bacterial", "viral", "fungal"], dtype=object)[
        _choice(rng, [0.55, 0.35, 0.10], n)
    ]
    sev_code = 1 + _choice(rng, [0.3, 0.4, 0.22, 0.08], n)
    ev.add(
        upto(inf, inf_day),
        "infection",
        inf_day,
        clip_end(inf_day + rng.integers(3, 21, n)),
        sev_code,
        product=cat,
    )
    # transfusions
    p_units, h_units = transfusions
    for units, prod in ((p_units, "platelets"), (h_units, "rbc")):
        pi, ci = np.nonzero(units)
        if pi.size:
            ev.add_rows(
                pi, "transfusion", DAYS[ci], DAYS[ci], units[pi, ci].astype(np.int64), product=prod
            )
    # outcomes
    rel, nxt, death = outcomes
    ev.add(rel < 10_000, "relapse", rel)
    ev.add((nxt < 10_000) & ~consolid, "next_therapy", nxt)
    ev.add((nxt < 10_000) & consolid, "next_therapy", nxt)
    ev.add((nxt < 10_000) & consolid, "hct", nxt, product="allogeneic")
    ev.add(death < 10_000, "death", death)
    return ev.frame()


# --------------------------------------------------------------------------- cohorts


def _width(n: int) -> int:
    return max(6, len(str(n)))


def iter_cohort(n: int, seed: int, block: int = BLOCK) -> Iterator[Block]:
    """The cohort of ``n`` patients for ``seed``, block by block (bounded memory)."""
    if n < 1:
        raise ValueError("a cohort needs at least one patient")
    width = _width(n)
    for b, lo in enumerate(range(0, n, block)):
        yield generate_block(seed, b, min(block, n - lo), lo + 1, width)


def generate_cohort(n: int, seed: int) -> Block:
    """A whole cohort in memory (for tests and small demos; use ``write_cohort`` for large ones)."""
    blocks = list(iter_cohort(n, seed))
    return Block(
        pl.concat([b.patients for b in blocks]),
        pl.concat([b.labs for b in blocks]),
        pl.concat([b.events for b in blocks]),
        pl.concat([b.truth for b in blocks]),
    )


@dataclass(frozen=True)
class CohortFiles:
    directory: Path
    patients: Path
    labs: Path
    events: Path
    n_patients: int
    n_labs: int
    n_events: int


def _with_dates(block: Block, lab_dates: bool) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Labs and events with calendar dates instead of days (as an EHR extract has them)."""
    if not lab_dates:
        return block.labs, block.events
    inf = block.patients.select("patient_id", "infusion_date")
    labs = (
        block.labs.join(inf, on="patient_id", how="left", maintain_order="left")
        .with_columns((pl.col("infusion_date") + pl.duration(days=pl.col("day"))).alias("date"))
        .select("patient_id", "date", "analyte", "value", "unit")
    )
    events = (
        block.events.join(inf, on="patient_id", how="left", maintain_order="left")
        .with_columns(
            (pl.col("infusion_date") + pl.duration(days=pl.col("start_day"))).alias("start_date"),
            (pl.col("infusion_date") + pl.duration(days=pl.col("end_day"))).alias("end_date"),
        )
        .select("patient_id", "type", "start_date", "end_date", "grade", "drug", "product")
    )
    return labs, events


def write_cohort(
    out_dir: str | Path,
    n: int,
    seed: int,
    fmt: str = "parquet",
    lab_dates: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> CohortFiles:
    """Generate and write ``patients``, ``labs`` and ``events`` (.parquet or .csv) to ``out_dir``.

    Blocks are streamed to files in a temporary directory beside ``out_dir`` and moved into
    place only when all three are complete: an interrupted or failed run writes nothing.
    ``progress(done, total)`` is called after each block.
    """
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"unknown format '{fmt}' (use parquet or csv)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".cohort-", dir=out))
    try:
        paths = {k: tmp / f"{k}.{fmt}" for k in ("patients", "labs", "events")}
        writers: dict[str, Any] = {}
        counts = dict.fromkeys(paths, 0)
        done = 0
        for block in iter_cohort(n, seed):
            labs, events = _with_dates(block, lab_dates)
            for key, df in (("patients", block.patients), ("labs", labs), ("events", events)):
                counts[key] += df.height
                if fmt == "parquet":
                    import pyarrow.parquet as pq

                    table = df.to_arrow()
                    if key not in writers:
                        writers[key] = pq.ParquetWriter(
                            paths[key], table.schema, compression="zstd"
                        )
                    writers[key].write_table(table)
                else:
                    with paths[key].open("a", encoding="utf-8", newline="") as fh:
                        df.write_csv(fh, include_header=key not in writers, float_precision=None)
                    writers[key] = True
            done += block.patients.height
            if progress is not None:
                progress(done, n)
        for w in writers.values():
            if w is not True:
                w.close()
        final = {k: out / p.name for k, p in paths.items()}
        for k, p in paths.items():
            p.replace(final[k])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return CohortFiles(
        out,
        final["patients"],
        final["labs"],
        final["events"],
        counts["patients"],
        counts["labs"],
        counts["events"],
    )


def block_frames(block: Block) -> CohortFrames:
    """Canonical frames of a block in memory (what ``io.tables.read_cohort`` reads from files)."""
    p = block.patients
    day_cols = {
        f"{f}_day": (pl.col(f"{f}_date") - pl.col("infusion_date")).dt.total_days().cast(pl.Int32)
        for f in ("progression", "next_therapy", "last_followup", "death", "ld_start")
    }
    patients = conform(p.with_columns(**day_cols), PATIENT_SCHEMA)
    labs = normalise_labs(block.labs, source="synthetic labs")
    events = conform(block.events, EVENT_SCHEMA).select(list(EVENT_SCHEMA))
    return CohortFrames(patients, labs, events)


# --------------------------------------------------------------------------- courses

_SEVERITY = {1: "mild", 2: "moderate", 3: "severe", 4: "life-threatening"}
_COURSE_BLOCK = 10_000  # stream index of the course pool (distinct from cohort blocks)


def _course_dict(
    p: dict[str, Any], labs: pl.DataFrame, events: pl.DataFrame, rng: np.random.Generator
) -> dict[str, Any]:
    infusion: dt.date = p["infusion_date"]

    def day_of(d: dt.date | None) -> int | None:
        return None if d is None else (d - infusion).days

    prior = []
    if p["prior_auto_hct"]:
        prior.append({"kind": "autologous", "day": -int(rng.integers(200, 1500))})
    if p["prior_allo_hct"]:
        prior.append(
            {
                "kind": "allogeneic",
                "day": -int(rng.integers(250, 1200)),
                "donor_type": "matched-unrelated",
            }
        )
    lab_rows = [
        {"day": r["day"], "analyte": r["analyte"], "value": r["value"], "unit": r["unit"]}
        for r in labs.iter_rows(named=True)
    ]
    out_events: list[dict[str, Any]] = []
    for r in events.iter_rows(named=True):
        t, s0, e0 = r["type"], r["start_day"], r["end_day"]
        span = {"start_day": s0} | ({"end_day": e0} if e0 is not None else {})
        if t in ("crs", "icans"):
            out_events.append({"type": t, "max_grade": r["grade"]} | span)
        elif t == "iec_hs":
            out_events.append({"type": t, "grade": r["grade"]} | span)
        elif t == "medication":
            out_events.append({"type": t, "drug": r["drug"]} | span)
        elif t == "infection":
            out_events.append(
                {"type": t, "category": r["product"], "severity": _SEVERITY.get(r["grade"])} | span
            )
        elif t == "transfusion":
            out_events.append({"type": t, "day": s0, "product": r["product"], "units": r["grade"]})
        elif t == "stem_cell_boost":
            out_events.append({"type": t, "day": s0, "source": r["product"]})
        elif t == "hct":
            out_events.append({"type": t, "day": s0, "kind": r["product"]})
        elif t in ("relapse", "next_therapy", "death"):
            out_events.append({"type": t, "day": s0})
    return {
        "patient": {
            "id": p["patient_id"],
            "age_years": p["age_years"],
            "sex": p["sex"],
            "disease": p["disease"],
            "disease_status": p["disease_status"],
            "prior_hct": prior,
            "stored_cells": {"autologous": bool(p["stored_autologous_cells"])},
        },
        "product": {"name": p["product"]},
        "lymphodepletion": {
            "regimen": p["lymphodepletion"],
            "start_day": day_of(p["ld_start_date"]),
        },
        "infusion_date": infusion.isoformat(),
        "baseline_labs": [r for r in lab_rows if r["day"] < 0],
        "labs": [r for r in lab_rows if r["day"] >= 0],
        "events": out_events,
        "last_followup_day": day_of(p["last_followup_date"]),
    }


def _pool_size(n: int) -> int:
    """Synthetic patients to choose ``n`` courses from: 40 per course for a small demo (every
    phenotype and special case shows), then 2.5 more per course (about half the pool has labs
    beyond day 100), so that 10,000 courses take seconds, not hours."""
    return max(400, 40 * n) if n <= 100 else 4000 + (5 * (n - 100)) // 2


def _pick_courses(cand: pl.DataFrame, wishes: list[pl.Expr], n: int) -> list[str]:
    """``n`` patient ids: the first candidate of each wish, then the three recovery phenotypes
    in turn, then the rest in order (linear in the pool: each phenotype's candidates are walked
    once, skipping those already picked)."""
    picks: list[str] = []
    picked: set[str] = set()

    def take(pid: str) -> None:
        picks.append(pid)
        picked.add(pid)

    for wish in wishes:
        if len(picks) >= n:
            return picks
        rows = cand.filter(wish & ~pl.col("patient_id").is_in(picks))
        if rows.height:
            take(rows["patient_id"][0])
    queues = [list(cand.filter(w)["patient_id"]) for w in wishes[:3]]
    heads = [0, 0, 0]
    for k in range(len(wishes), len(wishes) + 3 * n):
        if len(picks) >= n:
            break
        q = k % 3
        while heads[q] < len(queues[q]) and queues[q][heads[q]] in picked:
            heads[q] += 1
        if heads[q] < len(queues[q]):
            take(queues[q][heads[q]])
    for pid in cand["patient_id"]:  # a pool without enough of each kind: fill in order
        if len(picks) >= n:
            break
        if pid not in picked:
            take(pid)
    return picks[:n]


def generate_courses(n: int, seed: int) -> list[Course]:
    """``n`` full synthetic courses (``Course`` documents) from the same generator.

    Chosen from a pool of synthetic patients with labs beyond day 100 so that every grade can be
    shown: the recovery phenotypes in turn (quick, intermittent, aplastic: at least one of each
    when ``n >= 3``), then a child with B-ALL, a patient with myeloma, a stem cell boost and a
    TPO-receptor agonist where the pool has them. Deterministic for ``seed``.
    """
    if n < 1:
        raise ValueError("ask for at least one course")
    pool = generate_block(seed, _COURSE_BLOCK, _pool_size(n), 1, 4, prefix="SYNC")
    graded = grade_cohort(block_frames(pool), Settings())
    last_lab = pool.labs.group_by("patient_id").agg(pl.col("day").max().alias("last_lab"))
    cand = (
        pool.truth.drop("phenotype")
        .join(graded.select("patient_id", "phenotype"), on="patient_id")
        .join(last_lab, on="patient_id")
        .join(pool.patients.select("patient_id", "disease", "age_years"), on="patient_id")
        .filter(pl.col("last_lab") >= 100)
    )
    wishes = [
        pl.col("phenotype") == QUICK,
        pl.col("phenotype") == INTERMITTENT,
        pl.col("phenotype") == APLASTIC,
        pl.col("paediatric") & (pl.col("age_years") < 18),
        pl.col("disease") == "MM",
        pl.col("boosted"),
        pl.col("tpo_ra"),
    ]
    picks = _pick_courses(cand, wishes, n)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _COURSE_BLOCK, 1]))
    chosen = pl.col("patient_id").is_in(picks)
    patients = {k[0]: f for k, f in pool.patients.filter(chosen).partition_by(
        "patient_id", as_dict=True).items()}  # fmt: skip
    labs = {k[0]: f for k, f in pool.labs.filter(chosen).partition_by(
        "patient_id", as_dict=True).items()}  # fmt: skip
    events = {k[0]: f for k, f in pool.events.filter(chosen).partition_by(
        "patient_id", as_dict=True).items()}  # fmt: skip
    courses = []
    for pid in picks:
        p = patients[pid].row(0, named=True)
        doc = _course_dict(
            p, labs.get(pid, pool.labs.clear()), events.get(pid, pool.events.clear()), rng
        )
        courses.append(parse_course(doc, source=f"synthetic course {pid}"))
    return courses
