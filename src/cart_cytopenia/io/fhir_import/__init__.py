"""FHIR R4 -> courses: Bundles (transaction, batch, collection, searchset) or bulk NDJSON.

The import reads in steps, one module each:

- ``reading``: documents -> raw resources (Bundles flattened, NDJSON lines) and the cache of
  validated models by content;
- ``importer``: every resource parsed and validated, indexed, then mapped by its type:
  ``observations``, ``conditions``, ``procedures``, ``medications`` (the data types they read and
  the catalogues they name things with are in ``values``);
- ``course``: one patient's mapped items -> a course document (day 0, malignancy, patient,
  lymphodepletion, labs, events), validated as a ``Course``;
- ``report``: what did not map, with why (``FhirImport``).

The mapping and every code recognised are documented in docs/interoperability.md.
"""

from cart_cytopenia.io.fhir_import.importer import Importer, import_resources, import_text
from cart_cytopenia.io.fhir_import.reading import (
    ModelCache,
    RawResource,
    ref_key,
    resources_from_json,
    resources_from_text,
)
from cart_cytopenia.io.fhir_import.report import FailedPatient, FhirImport, ImportWarning, Unmapped
from cart_cytopenia.io.fhir_import.values import (
    match_drug_text,
    match_product_text,
    unidentified_medication,
)

__all__ = [
    "FailedPatient",
    "FhirImport",
    "ImportWarning",
    "Importer",
    "ModelCache",
    "RawResource",
    "Unmapped",
    "import_resources",
    "import_text",
    "match_drug_text",
    "match_product_text",
    "ref_key",
    "resources_from_json",
    "resources_from_text",
    "unidentified_medication",
]
