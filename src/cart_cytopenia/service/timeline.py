"""The patient timeline as a server-rendered SVG (no JavaScript, no CDN).

Day since infusion on x. Three panels share it: ANC (log scale), platelets (log scale) and
haemoglobin (linear), each with its threshold lines (CTCAE / ICAHT cut-points, the
institution's transfusion thresholds). CRS and ICANS are shaded bands across all panels; a track
above shows G-CSF and TPO-RA courses as bars and marrow biopsies, stem cell boosts, HCT,
relapse and death as markers; transfusions are marked under the panel of their product.
Every point and marker has a tooltip with its value and day. The figure shows what was known
on the assessment day (a dashed line marks it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from cart_cytopenia.domain.catalogues import DrugClass
from cart_cytopenia.domain.course import (
    CRS,
    HCT,
    ICANS,
    IECHS,
    BoneMarrow,
    Course,
    Death,
    Infection,
    Medication,
    Relapse,
    StemCellBoost,
    Transfusion,
    TransfusionProduct,
)
from cart_cytopenia.rules.settings import Settings

WIDTH = 980
LEFT = 104
RIGHT = 24
TRACK_ROW = 17
PANEL_H = 104
PANEL_GAP = 16
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"

COLOURS = {
    "anc": "#1f5fa8",
    "platelets": "#b0600b",
    "hb": "#a3223a",
    "crs": "#f6d2a8",
    "icans": "#d9cdf0",
    "iec_hs": "#f3b8b8",
    "infection": "#c9e4d4",
    "gcsf": "#2b8a3e",
    "tpo": "#8a5a00",
    "grid": "#e3e7ec",
    "axis": "#6b7785",
    "text": "#243240",
    "threshold": "#c0392b",
    "today": "#111",
}


@dataclass(frozen=True)
class Panel:
    analyte: str
    label: str
    unit: str
    log: bool
    lo: float
    hi: float
    ticks: tuple[float, ...]
    thresholds: tuple[tuple[float, str], ...]


def _panels(settings: Settings) -> list[Panel]:
    tx = settings.transfusion
    return [
        Panel(
            "anc",
            "ANC",
            "/µL",
            True,
            10,
            20_000,
            (10, 100, 1000, 10000),
            ((1000, "1000"), (500, "500"), (100, "100")),
        ),
        Panel(
            "platelets",
            "Platelets",
            "×10³/µL",
            True,
            2,
            500,
            (5, 10, 20, 50, 100, 300),
            (
                (50, "50"),
                (20, "20"),
                (
                    tx.platelets_below_10e9_l,
                    f"transfuse < {tx.platelets_below_10e9_l:g}",
                ),
            ),
        ),
        Panel(
            "hb",
            "Hb",
            "g/dL",
            False,
            4,
            16,
            (4, 6, 8, 10, 12, 14, 16),
            ((8, "8"), (tx.rbc_hb_below_g_dl, f"transfuse < {tx.rbc_hb_below_g_dl:g}")),
        ),
    ]


def _fmt(v: float) -> str:
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


class _Scale:
    def __init__(self, d0: int, d1: int) -> None:
        self.d0, self.d1 = d0, d1
        self.w = WIDTH - LEFT - RIGHT

    def x(self, day: float) -> float:
        return LEFT + (day - self.d0) / max(1, self.d1 - self.d0) * self.w


def _y(panel: Panel, top: float, v: float) -> float:
    v = min(max(v, panel.lo), panel.hi)
    if panel.log:
        f = (math.log10(panel.hi) - math.log10(v)) / (math.log10(panel.hi) - math.log10(panel.lo))
    else:
        f = (panel.hi - v) / (panel.hi - panel.lo)
    return top + f * PANEL_H


def _day_ticks(d0: int, d1: int) -> list[int]:
    span = d1 - d0
    # at most 14 ticks; past 180-day steps (a course of more than seven years), whole years
    steps = (1, 2, 5, 7, 10, 14, 28, 30, 60, 90, 180)
    step = next((s for s in steps if span / s <= 14), 365 * max(1, math.ceil(span / 14 / 365)))
    first = math.ceil(d0 / step) * step
    return list(range(first, d1 + 1, step))


def _text(x: float, y: float, s: str, size: int = 11, anchor: str = "start", **kw: str) -> str:
    fill = kw.pop("fill", COLOURS["text"])
    attrs = " ".join(f'{k.replace("_", "-")}="{v}"' for k, v in kw.items())
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
        f'fill="{fill}" {attrs}>{escape(s)}</text>'
    )


@dataclass(frozen=True)
class _Frame:
    """Where things go: the day scale, the treatment tracks and the lab panels."""

    sc: _Scale
    day: int
    track_top: int
    panel_top0: int
    bottom: int  # lower edge of the last panel
    height: int


TRACK_ROWS = ("CRS · IEC-HS", "ICANS · infection", "G-CSF", "TPO-RA", "Marrow · boost")
BAND_KINDS: tuple[tuple[type, str, str], ...] = (
    (CRS, "crs", "CRS"),
    (ICANS, "icans", "ICANS"),
    (IECHS, "iec_hs", "IEC-HS"),
    (Infection, "infection", "Infection"),
)
BAND_LANES = {"crs": 0, "iec_hs": 0, "icans": 1, "infection": 1}


def timeline_svg(course: Course, day: int, settings: Settings | None = None) -> str:
    """The SVG document (a string) of ``course`` as known on ``day``: the inflammation bands,
    the treatment tracks, one panel per count with its thresholds, the day axis."""
    settings = settings or Settings()
    view = course.as_of(day)
    panels = _panels(settings)
    f = _frame(view, day, len(panels))
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {f.height}" '
        f'width="100%" role="img" aria-labelledby="tl-title" font-family="{FONT}" '
        f'class="timeline">',
        f'<title id="tl-title">Timeline of patient {escape(view.patient.id)} to day {day}: '
        "ANC, platelets, haemoglobin, inflammation and treatments</title>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{f.height}" fill="#fff"/>',
    ]
    out += _inflammation_bands(view, f)
    out += _treatment_tracks(view, f)
    ticks = _day_ticks(f.sc.d0, f.sc.d1)
    transfusions = view.events_of(Transfusion)
    for pi, panel in enumerate(panels):
        top = f.panel_top0 + pi * (PANEL_H + PANEL_GAP)
        out += _panel_frame(panel, top, f, ticks)
        out += _lab_series(view, panel, top, f)
        out += _transfusion_marks(transfusions, panel, top, f)
    out += _day_axis(f, ticks)
    out.append("</svg>")
    return "\n".join(out)


def _frame(view: Course, day: int, n_panels: int) -> _Frame:
    """The days shown (a few before day 0 to past the last lab) and the vertical layout."""
    lab_days = [lab.day for lab in view.labs if lab.day is not None]
    first = min([-5, *lab_days])
    last = max([day, 14, *lab_days])
    d0, d1 = first - 1, last + max(2, (last - first) // 30)
    track_top = 26
    panel_top0 = track_top + TRACK_ROW * len(TRACK_ROWS) + 14
    panels_h = n_panels * (PANEL_H + PANEL_GAP)
    return _Frame(
        _Scale(d0, d1), day, track_top, panel_top0, panel_top0 + panels_h - PANEL_GAP,
        panel_top0 + panels_h + 34,
    )  # fmt: skip


def _markers(view: Course) -> list[tuple[int, str, str, str]]:
    """(day, symbol, colour, tooltip) of the dated events: marrow, boost, HCT, relapse, death."""
    markers: list[tuple[int, str, str, str]] = []
    for bm in view.events_of(BoneMarrow):
        bits = [
            b
            for b in (
                bm.cellularity.value if bm.cellularity else None,
                f"{bm.cellularity_pct:g}% cellular" if bm.cellularity_pct is not None else None,
                "dysplasia" if bm.dysplasia else None,
                "disease present" if bm.disease_present else None,
            )
            if b
        ]
        markers.append((bm.day or 0, "◆", "#374151", "Bone marrow biopsy " + ", ".join(bits)))
    for b in view.events_of(StemCellBoost):
        markers.append(
            (b.day or 0, "★", "#0b7285", f"{b.source.value.capitalize()} stem cell boost")
        )
    for h in view.events_of(HCT):
        markers.append((h.day or 0, "▲", "#0b7285", f"{h.kind.value.capitalize()} HCT"))
    for r in view.events_of(Relapse):
        markers.append((r.day or 0, "R", "#b42318", "Relapse / progression"))
    for dth in view.events_of(Death):
        markers.append((dth.day or 0, "✝", "#111", "Death"))
    return markers


def _inflammation_bands(view: Course, f: _Frame) -> list[str]:
    """CRS, ICANS, IEC-HS and infections: a band behind the panels and a bar on their track."""
    out: list[str] = []
    day, sc = f.day, f.sc
    for cls, key, label in BAND_KINDS:
        for ev in view.events_of(cls):
            start = ev.start
            end = ev.end if ev.end is not None else day
            end = min(end, day)
            x0, x1 = sc.x(start - 0.5), sc.x(end + 0.5)
            grade = getattr(ev, "max_grade", None) or getattr(ev, "grade", None)
            name = f"{label} grade {grade}" if grade else label
            if key == "infection":
                org = getattr(ev, "organism", None)
                name = f"Infection{' (' + org + ')' if org else ''}"
            ongoing = " (ongoing)" if ev.end is None or ev.end > day else ""
            tip = f"{name}: day {start} to {end}{ongoing}"
            opacity = "0.35" if key == "infection" else "0.55"
            out.append(
                f'<rect x="{x0:.1f}" y="{f.panel_top0 - 4}" width="{max(2.0, x1 - x0):.1f}" '
                f'height="{f.bottom - f.panel_top0 + 8}" fill="{COLOURS[key]}" opacity="{opacity}">'
                f"<title>{escape(tip)}</title></rect>"
            )
            ty = f.track_top + 12 + BAND_LANES[key] * TRACK_ROW
            out.append(
                f'<rect x="{x0:.1f}" y="{ty - 10}" width="{max(2.0, x1 - x0):.1f}" height="13" '
                f'rx="3" fill="{COLOURS[key]}"><title>{escape(tip)}</title></rect>'
            )
            short = f"{label} G{grade}" if grade else label
            if x1 - x0 > 7 * len(short):
                out.append(_text(x0 + 3, ty, short, 10))
            else:
                out.append(_text(x1 + 3, ty, short, 10, fill=COLOURS["axis"]))
    return out


def _treatment_tracks(view: Course, f: _Frame) -> list[str]:
    """The track rows: growth factors and TPO-RAs as bars, marrow / boost / HCT as markers."""
    out: list[str] = []
    day, sc = f.day, f.sc
    meds = view.events_of(Medication)
    gcsf = [m for m in meds if DrugClass.GCSF in m.classes or DrugClass.GMCSF in m.classes]
    tpo = [m for m in meds if DrugClass.TPO_RA in m.classes]
    for i, name in enumerate(TRACK_ROWS):
        row_y = f.track_top + i * TRACK_ROW
        out.append(_text(LEFT - 8, row_y + 12, name, 10, "end", fill=COLOURS["axis"]))
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{row_y + TRACK_ROW - 1}" '
            f'y2="{row_y + TRACK_ROW - 1}" stroke="{COLOURS["grid"]}"/>'
        )
    for row, group, colour in ((2, gcsf, COLOURS["gcsf"]), (3, tpo, COLOURS["tpo"])):
        bar_y = f.track_top + row * TRACK_ROW + 3
        for m in group:
            end = min(m.end if m.end is not None else day, day)
            x0, x1 = sc.x(m.start - 0.4), sc.x(end + 0.4)
            dose = f" {m.dose:g} {m.dose_unit or ''}".rstrip() if m.dose is not None else ""
            ongoing = " (ongoing)" if m.end is None or m.end > day else ""
            tip = f"{m.drug}{dose}: day {m.start} to {end}{ongoing}"
            fill = "#c92a2a" if DrugClass.GMCSF in m.classes else colour
            out.append(
                f'<rect x="{x0:.1f}" y="{bar_y}" width="{max(3.0, x1 - x0):.1f}" height="10" rx="2" '
                f'fill="{fill}"><title>{escape(tip)}</title></rect>'
            )
            if x1 - x0 > 60:
                out.append(_text(x0 + 3, bar_y + 8.5, m.drug_id, 9, fill="#fff"))
    marker_y = f.track_top + 4 * TRACK_ROW + 13
    for mday, sym, colour, tip in _markers(view):
        out.append(
            f'<text x="{sc.x(mday):.1f}" y="{marker_y}" font-size="13" text-anchor="middle" '
            f'fill="{colour}"><title>{escape(f"Day {mday}: {tip}")}</title>{escape(sym)}</text>'
        )
    return out


def _panel_frame(panel: Panel, top: int, f: _Frame, ticks: list[int]) -> list[str]:
    """A count's panel: its box, day grid, value ticks, label and unit, threshold lines."""
    sc = f.sc
    out = [
        f'<rect x="{LEFT}" y="{top}" width="{WIDTH - LEFT - RIGHT}" height="{PANEL_H}" '
        f'fill="none" stroke="{COLOURS["grid"]}"/>'
    ]
    for t in ticks:
        out.append(
            f'<line x1="{sc.x(t):.1f}" x2="{sc.x(t):.1f}" y1="{top}" y2="{top + PANEL_H}" '
            f'stroke="{COLOURS["grid"]}" stroke-width="0.7"/>'
        )
    for v in panel.ticks:
        y = _y(panel, top, v)
        out.append(_text(LEFT - 6, y + 3.5, _fmt(v), 10, "end", fill=COLOURS["axis"]))
    out.append(_text(8, top + PANEL_H / 2 - 4, panel.label, 12, "start", font_weight="600"))
    out.append(_text(8, top + PANEL_H / 2 + 10, panel.unit, 10, fill=COLOURS["axis"]))
    if panel.log:
        out.append(_text(8, top + PANEL_H / 2 + 22, "log scale", 9, fill=COLOURS["axis"]))
    for k, (v, label) in enumerate(panel.thresholds):
        y = _y(panel, top, v)
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{COLOURS["threshold"]}" stroke-width="0.8" stroke-dasharray="4 3" '
            f'opacity="0.7"><title>{escape(label)}</title></line>'
        )
        # alternate right / left so that close lines (log scale) keep readable labels
        lx, anchor = (WIDTH - RIGHT - 3, "end") if k % 2 == 0 else (LEFT + 3, "start")
        out.append(
            _text(
                lx, y - 3, label, 9, anchor, fill=COLOURS["threshold"],
                stroke="#fff", stroke_width="3", paint_order="stroke",
            )
        )  # fmt: skip
    return out


def _lab_series(view: Course, panel: Panel, top: int, f: _Frame) -> list[str]:
    """The count's daily minimum (as graded) as a line with points; censored values ('<') as
    open points; no value at all said to be unknown, not normal."""
    sc = f.sc
    pts = sorted(
        (lab.day, lab.canonical_value(), lab.comparator is not None)
        for lab in view.labs
        if lab.day is not None and lab.analyte_code == panel.analyte
    )
    per_day: dict[int, tuple[float, bool]] = {}
    for d, v, censored in pts:
        if d not in per_day or v < per_day[d][0]:
            per_day[d] = (v, censored)
    series = sorted(per_day.items())
    colour = COLOURS[panel.analyte]
    out: list[str] = []
    if len(series) > 1:
        path = " ".join(
            f"{'M' if i == 0 else 'L'}{sc.x(d):.1f},{_y(panel, top, v):.1f}"
            for i, (d, (v, _)) in enumerate(series)
        )
        out.append(
            f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="1.8" '
            f'stroke-linejoin="round"/>'
        )
    for d, (v, censored) in series:
        x, y = sc.x(d), _y(panel, top, v)
        fill = "#fff" if censored else colour
        out.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.8" fill="{fill}" stroke="{colour}" '
            f'stroke-width="1.2"><title>Day {d}: {panel.label} '
            f"{'<' if censored else ''}{escape(_fmt(v))} {escape(panel.unit)}</title></circle>"
        )
    if not series:
        no_value = f"no {panel.label} value recorded — unknown, not normal"
        out.append(
            _text(LEFT + 12, top + PANEL_H / 2, no_value, 11, fill=COLOURS["axis"],
                  font_style="italic")
        )  # fmt: skip
    return out


def _transfusion_marks(
    transfusions: Sequence[Transfusion], panel: Panel, top: int, f: _Frame
) -> list[str]:
    """Platelet transfusions on the platelet panel, red cells on the haemoglobin panel."""
    product = {"platelets": TransfusionProduct.PLATELETS, "hb": TransfusionProduct.RBC}.get(
        panel.analyte
    )
    if product is None:
        return []
    out: list[str] = []
    colour = COLOURS[panel.analyte]
    for t in transfusions:
        if t.product == product and t.day is not None:
            x = f.sc.x(t.day)
            yb = top + PANEL_H - 2
            out.append(
                f'<path d="M{x - 4:.1f},{yb:.1f} L{x + 4:.1f},{yb:.1f} L{x:.1f},{yb - 7:.1f} Z" '
                f'fill="{colour}" opacity="0.85"><title>Day {t.day}: '
                f"{'red cell' if product == TransfusionProduct.RBC else 'platelet'} "
                f"transfusion, {t.units} unit(s)</title></path>"
            )
    return out


def _day_axis(f: _Frame, ticks: list[int]) -> list[str]:
    """The day axis, the infusion (day 0) and the assessment day."""
    axis_y = f.bottom + 4
    out = [_text(f.sc.x(t), axis_y + 12, str(t), 10, "middle", fill=COLOURS["axis"]) for t in ticks]
    out.append(
        _text(
            LEFT + (WIDTH - LEFT - RIGHT) / 2,
            axis_y + 27,
            "Day since CAR-T infusion (day 0)",
            11,
            "middle",
            fill=COLOURS["axis"],
        )
    )
    x0 = f.sc.x(0)
    out.append(
        f'<line x1="{x0:.1f}" x2="{x0:.1f}" y1="{f.track_top}" y2="{f.bottom}" stroke="#5b6b7b" '
        f'stroke-width="1"/>'
    )
    out.append(_text(x0 + 3, f.track_top - 6, "infusion", 10, fill=COLOURS["axis"]))
    xd = f.sc.x(f.day)
    out.append(
        f'<line x1="{xd:.1f}" x2="{xd:.1f}" y1="{f.track_top}" y2="{f.bottom}" '
        f'stroke="{COLOURS["today"]}" stroke-width="1.2" stroke-dasharray="5 3"/>'
    )
    out.append(_text(xd, f.track_top - 6, f"day {f.day}", 11, "middle", font_weight="600"))
    return out
