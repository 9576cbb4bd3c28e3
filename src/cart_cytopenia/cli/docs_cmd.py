"""``cart-cytopenia docs rules``: generate the rule reference from the rule tables."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from cart_cytopenia.cli.paths import output_file, write_text_atomic
from cart_cytopenia.cli.rule_reference import rule_reference


def register(app: typer.Typer) -> None:
    docs_app = typer.Typer(
        help="Generate documentation from the rule tables.", no_args_is_help=True
    )

    @docs_app.command(name="rules")
    def rules(
        out: Path | None = typer.Option(None, "--out", help="Write here instead of stdout."),
    ) -> None:
        """The rule reference (docs/rule-reference.md), generated from the versioned tables."""
        text = rule_reference()
        if out is None:
            sys.stdout.write(text)
        else:
            write_text_atomic(output_file(out), text)
            typer.echo(f"wrote {out}", err=True)

    app.add_typer(docs_app, name="docs")
