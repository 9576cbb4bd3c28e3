"""Half-open, gap-free bands: the one generic evaluator behind every value-to-grade table.

A band covers ``min .. max`` with explicit inclusivity on each side (default: ``min`` included,
``max`` excluded, i.e. ``[min, max)``, which is CTCAE's ``<``). ICAHT's ``<=`` bands set
``max_inclusive = true``. A table's bands are checked when loaded: ordered, no overlap, no gap.
Evaluation is vectorised (numpy), so one patient and a million go through the same code.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from cart_cytopenia.errors import RuleTableError


@dataclass(frozen=True)
class Band:
    value: int  # the grade or the points this band gives
    min: float = -math.inf
    max: float = math.inf
    min_inclusive: bool = True
    max_inclusive: bool = False
    text: str = ""

    def contains(self, x: float) -> bool:
        lo = x >= self.min if self.min_inclusive else x > self.min
        hi = x <= self.max if self.max_inclusive else x < self.max
        return lo and hi

    def describe(self, unit: str = "") -> str:
        lo = "" if self.min == -math.inf else f"{'≥' if self.min_inclusive else '>'} {self.min:g}"
        hi = "" if self.max == math.inf else f"{'≤' if self.max_inclusive else '<'} {self.max:g}"
        rng = " and ".join(p for p in (lo, hi) if p)
        return f"{rng} {unit}".strip()


@dataclass(frozen=True)
class BandTable:
    """Ordered bands covering a contiguous range; ``evaluate`` maps values to band values."""

    id: str
    bands: tuple[Band, ...]
    unit: str

    def __post_init__(self) -> None:
        ordered = sorted(self.bands, key=lambda b: (b.min, b.max))
        for b in ordered:
            if b.min > b.max or (b.min == b.max and not (b.min_inclusive and b.max_inclusive)):
                raise RuleTableError(f"{self.id}: empty band {b}")
        for a, b in itertools.pairwise(ordered):
            if a.max != b.min:
                kind = "gap" if a.max < b.min else "overlap"
                raise RuleTableError(
                    f"{self.id}: {kind} between bands ending {a.max} and starting {b.min}"
                )
            if a.max_inclusive == b.min_inclusive:
                what = "overlap at" if a.max_inclusive else "gap at"
                raise RuleTableError(f"{self.id}: {what} {a.max}: exactly one side must include it")
        object.__setattr__(self, "bands", tuple(ordered))

    @property
    def lowest(self) -> float:
        return self.bands[0].min

    @property
    def highest(self) -> float:
        return self.bands[-1].max

    def value_of(self, x: float) -> int | None:
        """The band value for a single number, or None when outside every band (or NaN)."""
        for b in self.bands:
            if b.contains(x):
                return b.value
        return None

    def band_of(self, x: float) -> Band | None:
        for b in self.bands:
            if b.contains(x):
                return b
        return None

    def evaluate(self, x: NDArray[np.float64], missing: int = -1) -> NDArray[np.int8]:
        """Vectorised: the band value for each element; ``missing`` for NaN / out of range."""
        out = np.full(x.shape, missing, dtype=np.int8)
        with np.errstate(invalid="ignore"):
            for b in self.bands:
                lo = x >= b.min if b.min_inclusive else x > b.min
                hi = x <= b.max if b.max_inclusive else x < b.max
                out[lo & hi] = b.value
        return out
