"""The patient store: SQLAlchemy 2 models, Alembic migrations and repository functions.

An embedded SQLite file by default, PostgreSQL by URL. See docs/deployment.md.

- ``db``: ``Database(url)`` with ``transaction()`` (all or nothing)
- ``migrate``: ``upgrade(db)``, ``check_current(db)`` (migrations ship in ``migrations/``)
- ``courses``: patients, courses, observations, events, guidance acknowledgements
- ``accounts``: users, argon2 passwords, web sessions, API tokens, login rate limit
- ``audit``: who read or wrote which patient record, when
"""
