"""CTCAE haematology grades (v5.0 default, v6.0 selectable), vectorised.

Bands come from ``rules/tables/ctcae_v5.toml`` / ``ctcae_v6.toml`` (``<`` comparisons); grade 1
starts below the laboratory's lower limit of normal, an institutional setting. Anaemia grades
from values stop at 3: grade 4 ("life-threatening; urgent intervention") is a clinical judgement.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from cart_cytopenia.rules.settings import ReferenceRanges
from cart_cytopenia.rules.tables import CtcaeTable

I8 = NDArray[np.int8]
F = NDArray[np.float64]
Obj = NDArray[np.object_]

CTCAE_ANALYTES = ("anc", "platelets", "hb", "wbc", "alc")


def grade_values(
    values: F, analyte: str, table: CtcaeTable, ranges: ReferenceRanges, sex: Obj | None = None
) -> I8:
    """CTCAE grade of each value (canonical unit); -1 where the value is missing.

    ``sex`` (per value row) selects the haemoglobin LLN; unknown sex uses the lower LLN.
    """
    crit = table.criteria.get(analyte)
    if crit is None:  # the term is not part of this CTCAE version (e.g. lymphocytes in v6.0)
        return np.full(values.shape, -1, np.int8)
    if analyte != "hb" or sex is None:
        return crit.table(ranges.lln_canonical(analyte)).evaluate(values)
    out = np.full(values.shape, -1, np.int8)
    for s in ("female", "male", None):
        mask = (sex == s) if s is not None else ~np.isin(sex, ["female", "male"])
        if mask.any():
            out[mask] = crit.table(ranges.lln_canonical("hb", s)).evaluate(values[mask])
    return out
