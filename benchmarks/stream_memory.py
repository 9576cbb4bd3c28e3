"""Memory of a streamed ``grade`` chunk by chunk (issue 14): where resident memory steps up.

    python benchmarks/stream_memory.py COHORT_DIR [--chunk 20000] [--out trace.csv]  (grades to trace.parquet)

Grades the cohort (``patients``/``labs``/``events``.parquet) in-process as ``grade
--chunk-patients`` does, with the command's allocator settings (``cli/batch.py``; off with
``CART_CYTOPENIA_BATCH_TUNING=off``), and after each chunk is written records: CPU seconds so
far, resident memory now and its peak so far (``/proc/self/status``), the Arrow memory pool's
bytes (``pyarrow.total_allocated_bytes``: what the Parquet reader holds), and glibc's heap (its
size and the part free but kept, ``mallinfo2``; glibc only). With peak memory set by the chunk
size, every column is flat from the first few chunks on; a column that rises chunk after chunk
names the holder (the Arrow column found pyarrow's read cache, fixed in ``io/patient_rows.py``).
"""

from __future__ import annotations

import argparse
import csv
import ctypes
import sys
import time
from pathlib import Path
from typing import Any

MB = 1 << 20


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def _glibc_heap() -> tuple[int, int] | None:
    """(heap size, free part kept) in MB, or None off glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
    except (OSError, AttributeError):
        return None
    info = libc.mallinfo2()
    return info.arena // MB, info.fordblks // MB


def _status() -> dict[str, int]:
    """VmRSS and VmHWM in MB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) // 1024
    return out


def trace(cohort: Path, chunk: int, out: Path) -> list[dict[str, Any]]:
    import pyarrow as pa

    from cart_cytopenia.io import streaming

    rows: list[dict[str, Any]] = []
    write = streaming._Writer.write
    t0 = time.process_time()

    def recorded(self: Any, table: Any) -> None:
        write(self, table)
        status, heap = _status(), _glibc_heap()
        rows.append(
            {
                "chunk": len(rows),
                "cpu_s": round(time.process_time() - t0, 1),
                "rss_mb": status["VmRSS"],
                "peak_mb": status["VmHWM"],
                "arrow_mb": pa.total_allocated_bytes() // MB,
                "heap_mb": heap[0] if heap else "",
                "heap_free_mb": heap[1] if heap else "",
            }
        )
        print(rows[-1], file=sys.stderr, flush=True)

    streaming._Writer.write = recorded  # type: ignore[method-assign]
    try:
        streaming.grade_streaming(
            cohort / "labs.parquet",
            cohort / "patients.parquet",
            out.with_suffix(".parquet"),
            cohort / "events.parquet",
            chunk_patients=chunk,
        )
    finally:
        streaming._Writer.write = write  # type: ignore[method-assign]
    return rows


def main() -> None:
    from cart_cytopenia.cli import batch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cohort", type=Path)
    ap.add_argument("--chunk", type=int, default=20_000)
    ap.add_argument("--out", type=Path, default=Path("stream-memory.csv"))
    args = ap.parse_args()
    tuned = batch.tune_allocator()
    rows = trace(args.cohort, args.chunk, args.out)
    with args.out.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    first = rows[min(2, len(rows) - 1)]
    last = rows[-2] if len(rows) > 2 else rows[-1]  # (the last chunk is often short)
    print(
        f"{len(rows)} chunks (allocator settings {'on' if tuned else 'off'}); peak "
        f"{rows[-1]['peak_mb']} MB; after chunk {first['chunk']} -> {last['chunk']}: resident "
        f"{first['rss_mb']} -> {last['rss_mb']} MB, Arrow {first['arrow_mb']} -> "
        f"{last['arrow_mb']} MB, glibc heap {first['heap_mb']} -> {last['heap_mb']} MB; "
        f"-> {args.out}"
    )


if __name__ == "__main__":
    main()
