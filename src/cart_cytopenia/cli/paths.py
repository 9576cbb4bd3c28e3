"""Checks on the files a command reads and writes, made before any work is done.

An output goes into a folder that exists and can be written (the folder is never created on
the way: a mistyped path is an error, not a new folder tree), is never one of the command's
input files, and a failed write leaves nothing behind. A directory given as ``--out DIR`` may
itself be created, inside a folder that exists. Every problem is an ``InputError``: the command
line prints it as one message and exits with code 2.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cart_cytopenia.errors import InputError, ParseError
from cart_cytopenia.io.files import atomic_path


def _identity(path: Path) -> set[object]:
    """What makes two paths one file: the resolved path, and device and inode when it exists
    (hard links, other spellings)."""
    ids: set[object] = {str(path.resolve())}
    try:
        st = path.stat()
        ids.add((st.st_dev, st.st_ino))
    except OSError:
        pass
    return ids


def _writable_folder(folder: Path, out: Path) -> None:
    if not folder.exists():
        raise InputError(
            f"{out}: the folder {folder} does not exist (create it first or choose another path)"
        )
    if not folder.is_dir():
        raise InputError(f"{out}: {folder} is not a folder")
    try:  # the real test (permissions, read-only file systems, quotas ...)
        fd, probe = tempfile.mkstemp(prefix=".cart-cytopenia-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"{out}: cannot write in {folder} ({exc.strerror or exc})") from None


def not_an_input(out: Path | Iterable[Path], inputs: Iterable[Path | None]) -> None:
    """Refuse an output (or any of several) that is one of the inputs (it would be overwritten)."""
    taken: set[object] = set()
    for given in inputs:
        if given is not None:
            taken |= _identity(given)
    for path in [out] if isinstance(out, Path) else out:
        if _identity(path) & taken:
            raise InputError(
                f"{path} is also an input of this command; write the output to another file"
            )


def parquet_parts(*inputs: Path | None) -> list[Path]:
    """The Parquet files a folder or glob given as a table stands for (they are inputs too: an
    output written over one of them would destroy it)."""
    from cart_cytopenia.io.table_files import is_multi_file, parquet_files

    parts: list[Path] = []
    for given in inputs:
        if given is not None and is_multi_file(given):
            with contextlib.suppress(ParseError):  # (no file: the read reports it)
                parts += parquet_files(given)
    return parts


def output_file(out: Path, inputs: Iterable[Path | None] = ()) -> Path:
    """Check an output file before the work: writable folder, not a folder, not an input."""
    if out.is_dir():
        raise InputError(f"{out} is a folder; give a file name for the output")
    _writable_folder(out.parent if str(out.parent) else Path("."), out)
    not_an_input(out, inputs)
    return out


def output_dir(out: Path, inputs: Iterable[Path | None] = ()) -> Path:
    """Check an output directory (made later if missing, inside a folder that exists)."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file; give a folder for the output")
    if out.is_dir():
        _writable_folder(out, out)
    else:
        _writable_folder(out.parent if str(out.parent) else Path("."), out)
    not_an_input(out, inputs)
    return out


def input_file(path: Path, what: str = "file") -> Path:
    """An input that must be an existing, readable file (not a folder)."""
    if not path.exists():
        raise ParseError(f"{path} does not exist")
    if path.is_dir():
        raise ParseError(f"{path} is a folder; give the {what}")
    return path


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` through a temporary file beside ``path`` (nothing half-written)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path, doc: Any) -> None:
    write_text_atomic(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def unique_names(stems: Iterable[str], suffix: str = ".json") -> list[str]:
    """One file name per item, never the same name twice (case-insensitively, as on macOS and
    Windows file systems): a second ``a_b`` becomes ``a_b-2`` ..."""
    taken: set[str] = set()
    out: list[str] = []
    for stem in stems:
        name, n = f"{stem}{suffix}", 1
        while name.lower() in taken:
            n += 1
            name = f"{stem}-{n}{suffix}"
        taken.add(name.lower())
        out.append(name)
    return out
