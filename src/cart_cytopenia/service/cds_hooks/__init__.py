"""CDS Hooks 2.0 service: discovery, patient-view, order-select, order-sign, feedback.

Follows https://cds-hooks.hl7.org/2.0/ (docs/interoperability.md has the details):

- ``GET /cds-services`` lists the services with their prefetch templates.
- ``POST /cds-services/{id}`` answers a hook with ``{"cards": [...]}``. Data come from
  ``prefetch``; keys the EHR left out are fetched from ``fhirServer`` with the bearer token of
  ``fhirAuthorization`` (async, timeouts, same server only). Without prefetch and without FHIR
  access the answer is ``412`` with an OperationOutcome (as the specification requires); when the
  FHIR server fails, a card says that the data could not be read and no guidance is shown.
- ``POST /cds-services/{id}/feedback`` records accepted / overridden cards in the audit log.
- Every call is authenticated with the EHR's signed JWT (``Authorization: Bearer``): asymmetric
  algorithms only, ``kid`` looked up in the issuer's JWK Set (``jku`` only when allow-listed),
  ``iss`` allow-listed, ``aud`` = the endpoint called, ``exp``/``iat`` checked, ``jti`` never
  accepted twice.
- CORS for browser-based CDS clients: allow-listed origins only, preflight without credentials.

The package, one module per part:

- ``settings``: the service's settings (trusted issuers, limits, caching, CORS origins);
- ``services``: the services offered (discovery) and their prefetch templates;
- ``protocol``: request bodies and errors answered as OperationOutcome;
- ``auth``: the EHR's signed JWT, keys from its JWK Set;
- ``prefetch``: the patient's data from the prefetch, completed from the FHIR server;
- ``memo``: answers memoised by what the cards depend on;
- ``engine``: the course from the FHIR resources, then the cards;
- ``cards``: the cards that say what could not be done; ``order_checks``: draft-order checks;
- ``feedback``: feedback on cards into the audit log;
- ``router``: the HTTP routes, CORS, request limits.

Results are memoised by what the cards depend on: the patient in context, the prefetch data (and
the draft orders and selections of order-select / order-sign), the day, the clinical settings,
the software version and the service's base URL, not who asked (``userId``, ``encounterId``) or
the ``hookInstance``: a chart opened again with the same data, by anyone, is answered from
memory, a change of any data point computes afresh. Calls that fetch from the FHIR server are not
memoised. When the data changed, only the resources not seen before are validated with the
fhir.resources models again (``resource_cache_entries``). Patient data never reach the
application log.
"""

from __future__ import annotations

from cart_cytopenia.io.fhir_cards import INDICATOR
from cart_cytopenia.service.cds_hooks.auth import Caller, JwtVerifier
from cart_cytopenia.service.cds_hooks.engine import CdsEngine, mentions_cart
from cart_cytopenia.service.cds_hooks.feedback import (
    FeedbackRecord,
    FeedbackSink,
    IssuedCard,
    IssuedCards,
    store_feedback_sink,
)
from cart_cytopenia.service.cds_hooks.memo import content_key, request_key
from cart_cytopenia.service.cds_hooks.order_checks import ORDER_RULES, OrderRule, order_checks
from cart_cytopenia.service.cds_hooks.prefetch import (
    FhirAccess,
    Gathered,
    PreconditionFailed,
    render_template,
)
from cart_cytopenia.service.cds_hooks.protocol import (
    CdsError,
    FeedbackRequest,
    HookRequest,
    operation_outcome,
)
from cart_cytopenia.service.cds_hooks.router import create_cds_router, router_from_context
from cart_cytopenia.service.cds_hooks.services import (
    ORDER_SELECT,
    ORDER_SIGN,
    PATIENT_VIEW,
    SERVICES,
    ServiceDef,
    prefetch_templates,
)
from cart_cytopenia.service.cds_hooks.settings import (
    CdsHooksSettings,
    TrustedIssuer,
    load_cds_settings,
)

__all__ = [
    "INDICATOR",
    "ORDER_RULES",
    "ORDER_SELECT",
    "ORDER_SIGN",
    "PATIENT_VIEW",
    "SERVICES",
    "Caller",
    "CdsEngine",
    "CdsError",
    "CdsHooksSettings",
    "FeedbackRecord",
    "FeedbackRequest",
    "FeedbackSink",
    "FhirAccess",
    "Gathered",
    "HookRequest",
    "IssuedCard",
    "IssuedCards",
    "JwtVerifier",
    "OrderRule",
    "PreconditionFailed",
    "ServiceDef",
    "TrustedIssuer",
    "content_key",
    "create_cds_router",
    "load_cds_settings",
    "mentions_cart",
    "operation_outcome",
    "order_checks",
    "prefetch_templates",
    "render_template",
    "request_key",
    "router_from_context",
    "store_feedback_sink",
]
