"""cli.batch: the allocator settings of batch commands, only where they apply."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from cart_cytopenia.cli import batch
from tests.conftest import EXAMPLES


def test_allocator_settings_take_effect_on_glibc() -> None:
    """In a fresh interpreter (the settings are process-wide), as the command line applies them."""
    code = "from cart_cytopenia.cli.batch import tune_allocator; print(tune_allocator())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert out.stdout.strip() == str(glibc)


def test_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CART_CYTOPENIA_BATCH_TUNING", "off")
    assert batch.tune_allocator() is False


def test_only_batch_commands_are_tuned(monkeypatch: pytest.MonkeyPatch) -> None:
    from cart_cytopenia.cli import main as cli_main

    calls: list[str] = []
    monkeypatch.setattr(batch, "tune_allocator", lambda: calls.append("tuned") or True)

    def app() -> None:
        raise SystemExit(0)

    monkeypatch.setattr(cli_main, "build_app", lambda modules: app)
    for argv, expected in (
        (["cart-cytopenia", "grade", "--labs", "x"], ["tuned"]),
        (["cart-cytopenia", "cohort", "report", "d"], ["tuned"]),
        (["cart-cytopenia", "serve"], []),
        (["cart-cytopenia", "assess", "c.json"], []),
    ):
        calls.clear()
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit):
            cli_main.main()
        assert calls == expected, argv


def test_a_graded_file_is_complete_when_the_process_ends(tmp_path: Path) -> None:
    """The real command, in its own process with the allocator set: exit code 0, the message on
    standard error, and the output file whole (written and renamed)."""
    d = EXAMPLES / "cohort"
    out = tmp_path / "grades.csv"
    cmd = [
        sys.executable,
        "-m",
        "cart_cytopenia.cli.main",
        "grade",
        "--labs",
        str(d / "labs.csv"),
        "--patients",
        str(d / "patients.csv"),
        "--events",
        str(d / "events.csv"),
        "--out",
        str(out),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "graded 3 patients" in done.stderr
    assert out.read_text().count("\n") == 4 and not list(tmp_path.glob(".*partial"))
    bad = subprocess.run(
        [*cmd[:-2], "--out", str(tmp_path / "x.txt")], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "must end in .csv or .parquet" in bad.stderr


def test_version_loads_no_command_group() -> None:
    code = (
        "import sys; sys.argv = ['cart-cytopenia', '--version']\n"
        "from cart_cytopenia.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('cart_cytopenia.cli.clinical' in sys.modules, 'polars' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[0].startswith("cart-cytopenia ")
    assert out.stdout.strip().endswith("False False")
