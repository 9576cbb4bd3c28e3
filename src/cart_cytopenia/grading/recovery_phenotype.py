"""Neutrophil recovery phenotype after CAR-T: quick, intermittent (biphasic) or aplastic.

Definitions (``rules/tables/recovery_phenotype.toml``, Rejeski 2021 / the review's Figure 2):
- aplastic: a joined run of ANC <= 500 lasting >= 14 days;
- intermittent: recovery (ANC > 500 on 3 consecutive days), then a second dip to ANC <= 1000
  after day 21;
- quick: recovery without such a second dip, with ANC known beyond the follow-up day (28);
  never falling to <= 500 also counts as quick — but never when ANC is <= 1000 on a day after
  day 21 or G-CSF was refractory (``[not_quick]``: persisting neutropenia is not a quick
  recovery, whatever its depth).
Otherwise the phenotype cannot be called (yet), and the reason says why. The same joined-run scan
as ICAHT is used (after interpolation over gaps up to the ICAHT gap), so the two never disagree
on what a run is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from cart_cytopenia.grading.daily import DailyGrid, scan_runs
from cart_cytopenia.rules.tables import PhenotypeTable

I32 = NDArray[np.int32]
Obj = NDArray[np.object_]

QUICK, INTERMITTENT, APLASTIC = "quick", "intermittent", "aplastic"


@dataclass(frozen=True)
class Phenotype:
    phenotype: Obj  # "quick" | "intermittent" | "aplastic" | None
    reason: Obj  # why it cannot be called (None when called)
    first_recovery_day: I32  # -1: none
    second_dip_day: I32
    sustained_recovery_day: I32
    longest_severe_run: I32


def classify(
    interp: DailyGrid,
    as_of: I32,
    last_anc_day: I32,
    table: PhenotypeTable,
    gcsf_refractory: NDArray[np.bool_] | None = None,
) -> Phenotype:
    """Phenotype of each patient's interpolated ANC up to ``as_of``; ``gcsf_refractory``: the
    patient's G-CSF response is refractory (None: nobody's is)."""
    n = interp.values.shape[0]
    scan = scan_runs(
        interp, table.aplastic_threshold, table.recovery_min_days, (0, 10_000), 0, as_of
    )
    # second dip: <= threshold after day X and after the first recovery streak
    days = interp.days()[None, :]
    after = (
        (days > table.second_dip_after_day)
        & (days >= (scan.first_recovery + table.recovery_min_days)[:, None])
        & (days <= as_of[:, None])
        & (scan.first_recovery >= 0)[:, None]
    )
    with np.errstate(invalid="ignore"):
        dip = after & (interp.values <= table.second_dip_threshold)
    has_dip = dip.any(axis=1)
    dip_day = np.where(has_dip, np.argmax(dip, axis=1) + interp.first_day, -1).astype(np.int32)
    with np.errstate(invalid="ignore"):
        low_late = (
            (days > table.not_quick_after_day)
            & (days <= as_of[:, None])
            & (interp.values <= table.not_quick_anc_le)
        )
    persisting = np.asarray(low_late.any(axis=1), dtype=bool)
    low_late_day = np.argmax(low_late, axis=1) + interp.first_day
    refractory = np.zeros(n, bool) if gcsf_refractory is None else gcsf_refractory.copy()
    refractory &= table.not_quick_if_gcsf_refractory

    never_severe = scan.first_start < 0
    aplastic = scan.longest_overall >= table.aplastic_min_days
    recovered = scan.first_recovery >= 0
    enough = last_anc_day > table.min_followup_day
    phen = np.full(n, None, dtype=object)
    reason = np.full(n, None, dtype=object)
    phen[aplastic] = APLASTIC
    inter = ~aplastic & recovered & has_dip
    phen[inter] = INTERMITTENT
    quick_pattern = ~aplastic & ~has_dip & (recovered | never_severe)
    not_quick = persisting | refractory
    phen[quick_pattern & enough & ~not_quick] = QUICK
    no_data = last_anc_day < 0
    reason[no_data] = "no ANC values after infusion"
    _not_quick_reasons(reason, quick_pattern & not_quick, persisting, low_late_day, table)
    short = (phen == None) & (reason == None) & ~no_data & (recovered | never_severe)  # noqa: E711
    reason[short] = (
        f"no ANC value after day {table.min_followup_day} yet: a second dip cannot be excluded"
    )
    ongoing = (phen == None) & ~no_data & ~recovered & ~never_severe  # noqa: E711
    reason[ongoing] = (
        f"neutropenia (ANC <= {table.aplastic_threshold:g}/uL) has not recovered and has lasted "
        f"< {table.aplastic_min_days} days so far"
    )
    sustained = np.where(
        ~scan.open_at_end & (scan.last_recovery >= 0), scan.last_recovery, -1
    ).astype(np.int32)
    return Phenotype(phen, reason, scan.first_recovery, dip_day, sustained, scan.longest_overall)


def _not_quick_reasons(
    reason: Obj,
    which: NDArray[np.bool_],
    persisting: NDArray[np.bool_],
    low_day: NDArray[np.integer],
    table: PhenotypeTable,
) -> None:
    """The reason for patients (``which``) whose course has no second dip and no aplastic run but
    is not a quick recovery: ANC <= 1000 after day 21 (first such day ``low_day``), or G-CSF
    refractory."""
    neither = (
        "not a quick recovery; neither the intermittent (recovery, then a second dip) nor the "
        f"aplastic pattern (ANC <= {table.aplastic_threshold:g}/uL for >= "
        f"{table.aplastic_min_days} days) is met"
    )
    for i in np.flatnonzero(which).tolist():
        if persisting[i]:
            reason[i] = (
                f"ANC <= {table.not_quick_anc_le:g}/uL on day {int(low_day[i])}, after day "
                f"{table.not_quick_after_day} (persisting neutropenia): {neither}"
            )
        else:
            reason[i] = f"no response to G-CSF: {neither}"
