"""The ``cart-cytopenia`` command line.

Each command group lives in its own module and is registered here. Errors of the project's own
types are printed as one clear message (no traceback) with exit code 2; patient data is never
written to logs.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

import typer

from cart_cytopenia import __version__
from cart_cytopenia.cli import batch
from cart_cytopenia.errors import CartCytopeniaError

# Top-level command -> the module that registers it. Only the module a command needs is
# imported when it runs (the web and database layers are not loaded to grade a file); help and
# unknown commands load them all.
COMMAND_MODULES: dict[str, str] = {
    "assess": "clinical",
    "grade": "grade_cmd",
    "schema": "clinical",
    "docs": "docs_cmd",
    "serve": "serve_cmd",
    "db": "serve_cmd",
    "users": "serve_cmd",
    "demo": "serve_cmd",
    "cohort": "cohort_cmd",
    "import": "fhir_cmd",
    "export": "fhir_cmd",
}
ORDER = ("clinical", "grade_cmd", "docs_cmd", "serve_cmd", "cohort_cmd", "fhir_cmd")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cart-cytopenia {__version__}")
        raise typer.Exit()


def build_app(modules: tuple[str, ...] = ORDER) -> typer.Typer:
    """The command line with the command groups of ``modules`` registered."""
    app = typer.Typer(
        name="cart-cytopenia",
        help=(
            "Clinical decision support for cytopenias after CAR T-cell therapy. It supports "
            "clinicians; it never orders anything. Day 0 is the CAR-T infusion."
        ),
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def _root(
        version: bool = typer.Option(
            False, "--version", callback=_version, is_eager=True, help="Show the version."
        ),
    ) -> None:
        """cart-cytopenia command line."""

    for name in modules:
        mod: ModuleType = importlib.import_module(f"cart_cytopenia.cli.{name}")
        mod.register(app)
    return app


def __getattr__(name: str) -> Any:  # ``from cart_cytopenia.cli.main import app``: every command
    if name == "app":
        return build_app()
    raise AttributeError(name)


# Commands that grade or build whole cohorts run as one large batch job (cli/batch.py): the C
# allocator is set before anything else runs.
BATCH_COMMANDS = frozenset({"grade", "cohort"})


def main() -> None:
    first = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    if first in BATCH_COMMANDS:
        batch.tune_allocator()
    module = COMMAND_MODULES.get(first or "")
    if sys.argv[1:] == ["--version"]:  # (no command group needs to be loaded for it)
        app = build_app(())
    else:
        app = build_app((module,) if module and "--help" not in sys.argv[1:2] else ORDER)
    try:
        app()
    except CartCytopeniaError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except Exception as exc:
        reason = _database_unusable(exc)
        if reason is None:
            raise
        typer.secho(f"error: {reason}", fg=typer.colors.RED, err=True)
        sys.exit(2)


def _database_unusable(exc: Exception) -> str | None:
    """One message for a database that cannot be reached or used (a server not running, a
    wrong host, port or password): it was a traceback from `db upgrade`, `users`, `demo load`."""
    if "sqlalchemy" not in sys.modules:
        return None
    from sqlalchemy.exc import InterfaceError, OperationalError

    if not isinstance(exc, (OperationalError, InterfaceError)):
        return None
    first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return (
        f"cannot use the database ({first}); check CART_CYTOPENIA_DATABASE_URL or the "
        "settings file, and that the database server is running"
    )


if __name__ == "__main__":
    main()
