"""SMART on FHIR App Launch 2.0: cart-cytopenia opened from the EHR on the EHR's patient.

- ``settings``: the client registration and the issuer allow-list (``[smart]`` settings);
- ``oauth``: discovery (``.well-known/smart-configuration``), the authorization request with
  PKCE S256, the code exchange and the refresh, with Authlib's OAuth 2.0 client;
- ``launches``: launches waiting for their authorization and the EHR patients opened, per
  process and bound to the signed-in user;
- ``routes``: ``/smart/launch`` (EHR launch), ``/smart/standalone``, ``/smart/callback`` and the
  EHR patient's page, which can be saved to the store.

The course is read from the EHR's FHIR server with the FHIR importer
(``io/fhir_server_source.py``). See docs/interoperability.md, "SMART on FHIR app launch".
"""
