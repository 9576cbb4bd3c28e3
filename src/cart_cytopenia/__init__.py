"""cart-cytopenia: clinical decision support for cytopenias after CAR T-cell therapy.

Layers (each imports only those below it; enforced by import-linter, see pyproject.toml):

1. ``domain``   vocabulary: patient, product, course events, lab observations, units
2. ``rules``    versioned, cited rule tables and institutional settings
   ``grading``  clinical calculations (CTCAE, ICAHT, CAR-HEMATOTOX, phenotype, phase ...)
3. ``guidance`` the review's approach, recommendation by recommendation
4. ``cohort``   vectorised analytics, synthetic cohorts, survival, plots
5. adapters: ``io``, ``store``, ``service``, ``cli``

The software supports clinicians; it never orders anything itself.
"""

__version__ = "0.1.0"
