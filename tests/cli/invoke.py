"""The command line run in this process (``main()`` as the installed script runs it), for tests
that run it many times. An unexpected exception is not caught: it fails the test with its
traceback, as a user would see one."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from dataclasses import dataclass
from unittest import mock

from cart_cytopenia.cli.main import main


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def one_clear_error(self) -> bool:
        """Exit 2, one ``error:`` message on stderr, no traceback, nothing on stdout."""
        return (
            self.code == 2
            and self.stderr.startswith("error: ")
            and self.stderr.count("error: ") == 1
            and "Traceback" not in self.stderr
            and self.stdout == ""
        )


def invoke(*args: str) -> Result:
    out, err = io.StringIO(), io.StringIO()
    # (no allocator settings in the test process: they are process-wide)
    env = {"CART_CYTOPENIA_BATCH_TUNING": "off", "COLUMNS": "200", "NO_COLOR": "1"}
    code = 0
    with (
        mock.patch.object(sys, "argv", ["cart-cytopenia", *args]),
        mock.patch.dict(os.environ, env),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            main()
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    return Result(code, out.getvalue(), err.getvalue())
