"""Errors of the store: a record that does not exist, and an edit that lost a race."""

from __future__ import annotations

from cart_cytopenia.errors import CartCytopeniaError


class NotFoundError(CartCytopeniaError):
    """The patient, course, observation, event, user or token does not exist."""


class ConflictError(CartCytopeniaError):
    """The record changed since it was read (optimistic locking), or already exists."""

    def __init__(self, message: str, current_version: int | None = None) -> None:
        self.current_version = current_version
        super().__init__(message)


class AuthError(CartCytopeniaError):
    """Bad credentials, an unknown or revoked token, or an inactive account."""


class RateLimitedError(CartCytopeniaError):
    """Too many failed logins; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(message)
