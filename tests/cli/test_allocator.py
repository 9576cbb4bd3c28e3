"""cli.allocator: the C allocator settings for batch commands, applied only where they exist."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cart_cytopenia.cli import allocator


def test_settings_take_effect_on_glibc() -> None:
    """In a fresh interpreter (the settings are process-wide), as the command line applies them."""
    code = "from cart_cytopenia.cli.allocator import tune_for_batch; print(tune_for_batch())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    expected = "True" if sys.platform.startswith("linux") and _glibc() else "False"
    assert out.stdout.strip() == expected


def test_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CART_CYTOPENIA_MALLOC", "default")
    assert allocator.tune_for_batch() is False


def test_only_batch_commands_tune_the_allocator(monkeypatch: pytest.MonkeyPatch) -> None:
    from cart_cytopenia.cli import main as cli_main

    calls: list[str] = []
    monkeypatch.setattr(allocator, "tune_for_batch", lambda: calls.append("tuned") or True)
    monkeypatch.setattr(cli_main, "build_app", lambda modules: lambda: None)
    for argv, expected in (
        (["cart-cytopenia", "grade", "--labs", "x"], ["tuned"]),
        (["cart-cytopenia", "cohort", "report", "d"], ["tuned"]),
        (["cart-cytopenia", "serve"], []),
        (["cart-cytopenia", "assess", "c.json"], []),
    ):
        calls.clear()
        monkeypatch.setattr(sys, "argv", argv)
        cli_main.main()
        assert calls == expected, argv


def _glibc() -> bool:
    import platform

    return platform.libc_ver()[0] == "glibc"
