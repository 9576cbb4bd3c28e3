"""The ``cart-cytopenia`` command line.

Each command group lives in its own module and is registered here. Errors of the project's own
types are printed as one clear message (no traceback) with exit code 2; patient data is never
written to logs.
"""

from __future__ import annotations

import sys

import typer

from cart_cytopenia import __version__
from cart_cytopenia.cli import clinical, cohort_cmd, docs_cmd, fhir_cmd, serve_cmd
from cart_cytopenia.errors import CartCytopeniaError

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


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cart-cytopenia {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version."
    ),
) -> None:
    """cart-cytopenia command line."""


clinical.register(app)
docs_cmd.register(app)

# command groups added by other modules register here, one line each
serve_cmd.register(app)
cohort_cmd.register(app)
fhir_cmd.register(app)


def main() -> None:
    try:
        app()
    except CartCytopeniaError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
