"""``cart-cytopenia docs rules`` / ``docs grade-schema``: documents generated from the rule tables
and from the grade table's declared schema."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from cart_cytopenia.cli.paths import output_file, write_text_atomic
from cart_cytopenia.cli.rule_reference import rule_reference


def _emit(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
    else:
        write_text_atomic(output_file(out), text)
        typer.echo(f"wrote {out}", err=True)


def register(app: typer.Typer) -> None:
    docs_app = typer.Typer(
        help="Generate documentation from the rule tables and the grade table schema.",
        no_args_is_help=True,
    )

    @docs_app.command(name="rules")
    def rules(
        out: Path | None = typer.Option(None, "--out", help="Write here instead of stdout."),
    ) -> None:
        """The rule reference (docs/rule-reference.md), generated from the versioned tables."""
        _emit(rule_reference(), out)

    @docs_app.command(name="grade-schema")
    def grade_schema(
        out: Path | None = typer.Option(None, "--out", help="Write here instead of stdout."),
    ) -> None:
        """The grade table's columns and types (docs/grade-table-schema.json)."""
        from cart_cytopenia.grading.grade_table import schema_document

        _emit(schema_document(), out)

    app.add_typer(docs_app, name="docs")
