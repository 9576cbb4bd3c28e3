"""Alembic migrations of the patient store (run with ``cart-cytopenia db upgrade``)."""
