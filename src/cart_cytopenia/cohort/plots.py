"""Figures for cohort reports, drawn as the field draws them (matplotlib, PNG bytes).

Days since infusion on the x axis; ANC and platelets on log scales with the thresholds that
grade them (ANC 100 / 500 / 1000 /µL; platelets 20 / 50 ×10⁹/L); cumulative incidence curves
as steps with shaded 95% confidence bands and numbers at risk under the axis.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure

from cart_cytopenia.cohort.survival import Curve

GRADE_COLOURS = {
    "0": "#d9ead3",
    "1": "#fee391",
    "2": "#fdae61",
    "3": "#f46d43",
    "4": "#a50026",
    "cannot grade": "#c8c8c8",
}
PHENOTYPE_COLOURS = {
    "quick": "#1a9850",
    "intermittent": "#fdae61",
    "aplastic": "#b2182b",
    "not called": "#c8c8c8",
}
GROUP_COLOURS = [
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
]
DPI = 110


def png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _ink(colour: str) -> str:
    """Black or white text, whichever reads better on ``colour`` (relative luminance)."""
    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return "#000000" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.45 else "#ffffff"


def _style(ax: Axes) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", color="#eeeeee", linewidth=0.8)
    ax.set_axisbelow(True)


def stacked_shares(
    table: pl.DataFrame,
    group_col: str,
    panels: Sequence[tuple[str, str]],
    colours: dict[str, str],
    title: str,
) -> bytes:
    """Horizontal 100% bars: for each panel (column, label) the share of each category by group.

    ``table`` has the group column and, per panel, a category column (strings).
    """
    groups = table[group_col].unique().sort().to_list()
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.2 * len(panels), 0.45 * len(groups) + 1.6), sharey=True
    )
    axes = np.atleast_1d(axes)
    for ax, (col, label) in zip(axes, panels, strict=True):
        counts = table.group_by(group_col, col).len()
        totals = table.group_by(group_col).len().rename({"len": "total"})
        shares = counts.join(totals, on=group_col).with_columns(
            (pl.col("len") / pl.col("total")).alias("share")
        )
        left = np.zeros(len(groups))
        for cat, colour in colours.items():
            vals = np.array(
                [
                    shares.filter((pl.col(group_col) == g) & (pl.col(col) == cat))["share"].sum()
                    for g in groups
                ]
            )
            ax.barh(groups, vals, left=left, color=colour, edgecolor="white", label=cat)
            ink = _ink(colour)
            for y, (lft, v) in enumerate(zip(left, vals, strict=True)):
                if v >= 0.08:
                    ax.text(
                        lft + v / 2,
                        y,
                        f"{100 * v:.0f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color=ink,
                    )
            left += vals
        ax.set_xlim(0, 1)
        ax.set_xticks([0, 0.25, 0.5, 0.75, 1], ["0", "25", "50", "75", "100%"])
        ax.set_title(label, fontsize=10)
        ax.spines[["top", "right"]].set_visible(False)
        ax.invert_yaxis()
    n = table.group_by(group_col).len().sort(group_col)
    axes[0].set_yticks(range(len(groups)), [f"{g} (n={k:,})" for g, k in n.iter_rows()])
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="lower center",
        ncol=len(labels),
        frameon=False,
        fontsize=8,
        bbox_to_anchor=(0.5, -0.02),
    )
    fig.suptitle(title, fontsize=11, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    return png(fig)


def durations(
    table: pl.DataFrame, group_col: str, cols: Sequence[tuple[str, str]], title: str
) -> bytes:
    groups = table[group_col].unique().sort().to_list()
    fig, axes = plt.subplots(
        1, len(cols), figsize=(4.6 * len(cols), 0.42 * len(groups) + 1.6), sharey=True
    )
    axes = np.atleast_1d(axes)
    for ax, (col, label) in zip(axes, cols, strict=True):
        data = [table.filter(pl.col(group_col) == g)[col].drop_nulls().to_numpy() for g in groups]
        ax.boxplot(
            data,
            orientation="horizontal",
            widths=0.6,
            showfliers=False,
            medianprops={"color": "#b2182b", "linewidth": 2},
        )
        ax.set_yticks(range(1, len(groups) + 1), groups)
        ax.set_xlabel(label)
        ax.invert_yaxis()
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="x", color="#eeeeee")
    fig.suptitle(title, fontsize=11, x=0.01, ha="left")
    fig.tight_layout()
    return png(fig)


def _group_colour(name: str, k: int) -> str:
    fixed = {
        "high risk": "#c62828",
        "low risk": "#1565c0",
        "incomplete": "#9e9e9e",
        "all patients": "#263238",
    }
    return fixed.get(name, PHENOTYPE_COLOURS.get(name, GROUP_COLOURS[k % len(GROUP_COLOURS)]))


def cumulative_incidence(
    curves: dict[str, Curve],
    title: str,
    horizon: int,
    ylabel: str = "Cumulative incidence",
    at_risk_days: Sequence[int] | None = None,
) -> bytes:
    """Step curves with 95% bands, one per group, and numbers at risk under the axis."""
    if at_risk_days is None:
        at_risk_days = (
            (0, 7, 14, 21, 30, 60, 90) if horizon <= 90 else tuple(range(0, horizon + 1, 30))
        )
    n_rows = len(curves)
    fig = plt.figure(figsize=(7.4, 4.4 + 0.22 * n_rows))
    gs = fig.add_gridspec(2, 1, height_ratios=[4.2, 0.35 + 0.22 * n_rows], hspace=0.32)
    ax = fig.add_subplot(gs[0])
    tab = fig.add_subplot(gs[1], sharex=ax)
    days = [d for d in at_risk_days if d <= horizon]
    for k, (name, c) in enumerate(curves.items()):
        colour = _group_colour(name, k)
        keep = c.time <= horizon
        t = np.append(c.time[keep], horizon)
        est = np.append(c.estimate[keep], c.estimate[keep][-1])
        lo = np.append(c.lower[keep], c.lower[keep][-1])
        hi = np.append(c.upper[keep], c.upper[keep][-1])
        ax.step(t, est, where="post", color=colour, linewidth=1.8, label=f"{name} (n={c.n:,})")
        ok = np.isfinite(lo) & np.isfinite(hi)
        ax.fill_between(t, lo, hi, where=ok, step="post", color=colour, alpha=0.15, linewidth=0)
        i = np.searchsorted(c.time, days, side="left")
        y = n_rows - 1 - k
        tab.text(-0.06 * horizon, y, name, ha="right", va="center", fontsize=7, color=colour)
        for d, j in zip(days, i, strict=True):
            at = int(c.at_risk[j]) if j < c.time.size else 0
            tab.text(d, y, f"{at:,}", ha="center", va="center", fontsize=7)
    ax.set_xlim(0, horizon)
    ax.set_ylim(0, 1)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1], ["0", "25", "50", "75", "100%"])
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11, loc="left")
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    ax.set_xticks(days)
    ax.tick_params(labelbottom=True)
    ax.set_xlabel("Days since CAR-T infusion")
    _style(ax)
    tab.set_ylim(-0.6, n_rows - 0.4)
    tab.axis("off")
    tab.set_title("Number at risk", fontsize=8, loc="left", fontweight="bold")
    return png(fig)


ANC_BOUNDS = [0, 100.5, 500.5, 1000.5, 1500.5, 1e9]
ANC_COLOURS = ["#67001f", "#d6604d", "#f4a582", "#fddbc7", "#d1e5f0"]
ANC_LABELS = ["≤100", "101–500", "501–1000", "1001–1500", ">1500"]


def swimmer(
    sample: pl.DataFrame,
    order: list[str],
    labels: dict[str, str],
    events: pl.DataFrame,
    horizon: int,
    title: str,
) -> bytes:
    """One lane per patient: daily ANC band (gaps of up to 7 days interpolated), events."""
    n = len(order)
    fig, ax = plt.subplots(figsize=(9, 0.22 * n + 1.8))
    grid = np.full((n, horizon + 1), np.nan)
    pos = {p: i for i, p in enumerate(order)}
    s = sample.filter(pl.col("patient_id").is_in(order) & (pl.col("day") <= horizon))
    s = s.drop_nulls("anc_interp")
    grid[[pos[p] for p in s["patient_id"]], s["day"].to_numpy()] = s["anc_interp"].to_numpy()
    cmap = ListedColormap(ANC_COLOURS).with_extremes(bad="#ffffff")
    ax.imshow(
        np.ma.masked_invalid(grid),
        aspect="auto",
        cmap=cmap,
        norm=BoundaryNorm(ANC_BOUNDS, cmap.N),
        interpolation="nearest",
        extent=(-0.5, horizon + 0.5, n - 0.5, -0.5),
    )
    marks = {
        "gcsf": ("^", "#08519c", "G-CSF start"),
        "platelets": ("|", "#6a51a3", "platelet transfusion"),
        "rbc": ("|", "#006d2c", "red-cell transfusion"),
        "stem_cell_boost": ("*", "#000000", "stem cell boost"),
        "relapse": ("X", "#000000", "relapse / progression"),
        "death": ("s", "#000000", "death"),
    }
    ev = events.filter(
        pl.col("patient_id").is_in(order) & pl.col("start_day").is_between(0, horizon)
    )
    for key, (marker, colour, label) in marks.items():
        sub = ev.filter(pl.col("kind") == key)
        if sub.height:
            ax.scatter(
                sub["start_day"].to_numpy(),
                [pos[p] for p in sub["patient_id"]],
                marker=marker,
                color=colour,
                s=26 if marker != "|" else 40,
                linewidths=1.2,
                label=label,
                zorder=3,
            )
    ax.set_yticks(range(n), [labels.get(p, p) for p in order], fontsize=6)
    ax.set_xlabel("Days since CAR-T infusion")
    ax.set_title(title, fontsize=11, loc="left")
    from matplotlib.patches import Patch

    patches = [
        Patch(color=c, label=f"ANC {lab}/µL")
        for c, lab in zip(ANC_COLOURS, ANC_LABELS, strict=True)
    ]
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(
        handles=patches + handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.75 / (0.22 * n + 1.8)),
        ncol=4,
        frameon=False,
        fontsize=7,
    )
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return png(fig)


def heatmap(
    sample: pl.DataFrame, order: list[str], group_of: dict[str, str], horizon: int, title: str
) -> bytes:
    """Patients (rows, grouped) x days: log10 ANC (gaps of up to 7 days interpolated, as the
    grading does), white where unknown."""
    n = len(order)
    grid = np.full((n, horizon + 1), np.nan)
    pos = {p: i for i, p in enumerate(order)}
    s = sample.filter(pl.col("patient_id").is_in(order) & (pl.col("day") <= horizon))
    s = s.drop_nulls("anc_interp")
    grid[[pos[p] for p in s["patient_id"]], s["day"].to_numpy()] = np.log10(
        np.maximum(s["anc_interp"].to_numpy(), 10)
    )
    fig, ax = plt.subplots(figsize=(9, 6))
    im = ax.imshow(
        np.ma.masked_invalid(grid),
        aspect="auto",
        cmap="RdYlBu",
        vmin=1,
        vmax=np.log10(5000),
        interpolation="nearest",
        extent=(-0.5, horizon + 0.5, n - 0.5, -0.5),
    )
    cb = fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02)
    ticks = [10, 100, 500, 1000, 5000]
    cb.set_ticks(list(np.log10(ticks)), labels=[f"{t:,}" for t in ticks])
    cb.set_label("ANC (/µL, log scale)")
    # group separators, group names on the left
    groups = [group_of.get(p, "") for p in order]
    start = 0
    ticks_y, names = [], []
    for i in range(1, n + 1):
        if i == n or groups[i] != groups[start]:
            ax.axhline(i - 0.5, color="black", linewidth=0.8)
            ticks_y.append((start + i - 1) / 2)
            names.append(f"{groups[start]}\n(n={i - start})")
            start = i
    ax.set_yticks(ticks_y, names, fontsize=8)
    ax.tick_params(axis="y", length=0)
    ax.set_xlabel("Days since CAR-T infusion")
    ax.set_title(title, fontsize=11, loc="left")
    for d in (30, 90):
        ax.axvline(d, color="#555555", linestyle=":", linewidth=0.8)
    fig.tight_layout()
    return png(fig)


def trajectories(sample: pl.DataFrame, group_of: dict[str, str], horizon: int, title: str) -> bytes:
    """Median and interquartile range of daily ANC and platelets by group, log scales."""
    s = (
        sample.filter(pl.col("day") <= horizon)
        .with_columns(pl.col("patient_id").replace_strict(group_of, default=None).alias("group"))
        .drop_nulls("group")
    )
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    specs = [
        ("anc_interp", "ANC (/µL)", [(100, "100"), (500, "500"), (1000, "1000")], (10, 10000)),
        ("platelets_interp", "Platelets (×10⁹/L)", [(20, "20"), (50, "50")], (2, 500)),
    ]
    groups = [g for g in PHENOTYPE_COLOURS if g in set(s["group"].unique())]
    for ax, (col, label, lines, ylim) in zip(axes, specs, strict=True):
        q = (
            s.drop_nulls(col)
            .group_by("group", "day")
            .agg(
                pl.col(col).quantile(0.25).alias("q1"),
                pl.col(col).median().alias("med"),
                pl.col(col).quantile(0.75).alias("q3"),
                pl.len().alias("n"),
            )
            .filter(pl.col("n") >= 5)
            .sort("day")
        )
        for g in groups:
            sub = q.filter(pl.col("group") == g)
            colour = PHENOTYPE_COLOURS[g]
            d = sub["day"].to_numpy()
            ax.plot(
                d, np.maximum(sub["med"].to_numpy(), ylim[0]), color=colour, linewidth=1.8, label=g
            )
            ax.fill_between(
                d,
                np.maximum(sub["q1"].to_numpy(), ylim[0]),
                sub["q3"].to_numpy(),
                color=colour,
                alpha=0.15,
                linewidth=0,
            )
        for y, text in lines:
            ax.axhline(y, color="#444444", linestyle="--", linewidth=0.8)
            ax.text(horizon, y, f" {text}", va="center", fontsize=7, color="#444444")
        ax.set_yscale("log")
        ax.set_ylim(*ylim)
        ax.set_xlim(0, horizon)
        ax.set_xlabel("Days since CAR-T infusion")
        ax.set_ylabel(label)
        _style(ax)
    axes[0].legend(frameon=False, fontsize=8, title="median, IQR", title_fontsize=8)
    fig.suptitle(title, fontsize=11, x=0.01, ha="left")
    fig.tight_layout()
    return png(fig)
