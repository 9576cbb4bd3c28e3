"""What the triggers may ask about a patient on a day: named predicates over the course and assessment.

A ``Context`` is built once per evaluation from the course as known on the day
(``Course.as_of(day)``), the grading ``Assessment`` of that day and the settings. Rules read
facts through its properties (``ctx.anc``, ``ctx.crs_active``, ``ctx.paediatric`` ...) instead of
digging in the course, so that each rule reads like its recommendation and every fact is defined
once. Nothing here grades: grades, phases, transfusion dependence and G-CSF response come from
``cart_cytopenia.grading``. Facts that cannot be told are ``None`` (missing is never normal) and
triggers say so through ``ctx.missing(...)``.
"""

from cart_cytopenia.guidance.context_base import ContextBase, LabValue, fmt
from cart_cytopenia.guidance.context_differential import (
    VIRAL_REACTIVATION_NAMES,
    DifferentialFacts,
    describe_marrow,
)
from cart_cytopenia.guidance.context_iechs import (
    IECHS_LEVELS,
    IechsFacts,
    IechsSignals,
    iechs_level,
    raised_level,
)
from cart_cytopenia.guidance.context_medications import MedicationFacts, TpoCourse, drug_alternative
from cart_cytopenia.guidance.context_prophylaxis import ProphylaxisFacts
from cart_cytopenia.guidance.context_tma import TmaFacts

__all__ = [
    "IECHS_LEVELS",
    "VIRAL_REACTIVATION_NAMES",
    "Context",
    "ContextBase",
    "IechsSignals",
    "LabValue",
    "TpoCourse",
    "describe_marrow",
    "drug_alternative",
    "fmt",
    "iechs_level",
    "raised_level",
]


class Context(IechsFacts, TmaFacts, DifferentialFacts, MedicationFacts, ProphylaxisFacts):
    """Named facts about one patient on one day (see the module docstring).

    One topic per module: the facts every topic reads (``context_base``), medications,
    the differential diagnosis, IEC-HS, TA-TMA and haemolysis, prophylaxis."""
