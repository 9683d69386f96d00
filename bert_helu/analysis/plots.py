"""PNG figures. matplotlib is imported lazily and with the Agg backend (no display here)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from bert_helu.runtime.atomic import atomic_write_bytes


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_preactivation_histograms(stats_by_name: dict[str, dict], path: Path, band_alpha: float) -> Path:
    """Figure 2 style: density of FFN pre-activations (all layers pooled) per model, HeLU band shaded."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for name, stats in stats_by_name.items():
        counts, edges = _pooled_histogram(stats)
        if counts is None:
            continue
        total = sum(counts) or 1
        width = edges[1] - edges[0]
        density = [c / total / width for c in counts]
        centers = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]
        for ax in axes:
            ax.plot(centers, density, label=f"{name} (neg {stats['mean'].get('negative_fraction', 0):.0%})")
    for ax, (lo, hi), log in zip(axes, [(-8, 8), (-1, 1)], [True, False], strict=True):
        ax.axvspan(-band_alpha, 0, color="tab:red", alpha=0.25, label=f"HeLU band (-{band_alpha:g}, 0]")
        ax.axvline(0, color="black", lw=0.6)
        ax.set_xlim(lo, hi)
        ax.set_xlabel("FFN pre-activation")
        ax.set_ylabel("density" + (" (log)" if log else ""))
        if log:
            ax.set_yscale("log")
    axes[0].set_title("all layers pooled")
    axes[1].set_title("zoom on the HeLU band")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_layer_sparsity(stats_by_name: dict[str, dict], path: Path) -> Path:
    """Per layer: share of exact zeros after the activation, and dead-neuron rate."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for name, stats in stats_by_name.items():
        layers = [entry for entry in stats["layers"] if entry.get("zero_fraction") is not None]
        index = [entry["layer"] for entry in layers]
        axes[0].plot(index, [entry["zero_fraction"] for entry in layers], marker="o", label=name)
        axes[1].plot(index, [entry["dead_fraction"] for entry in layers], marker="o", label=name)
    axes[0].set_title("exact zeros after the FFN activation")
    axes[1].set_title("dead neurons (never positive over the data)")
    for ax in axes:
        ax.set_xlabel("layer")
        ax.set_ylim(-0.02, 1.02)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _pooled_histogram(stats: dict):
    hists = [entry["histogram"] for entry in stats["layers"] if entry.get("histogram")]
    if not hists:
        return None, None
    counts = [sum(values) for values in zip(*(h["counts"] for h in hists), strict=True)]
    return counts, hists[0]["edges"]


def plot_grouped_bars(
    rows: list[dict], group_key: str, series_key: str, value_key: str, error_key: str | None,
    path: Path, title: str, ylabel: str, log: bool = False,
) -> Path:  # fmt: skip
    """Grouped bar chart (groups on x, one bar per series, optional error bars)."""
    plt = _pyplot()
    groups = list(dict.fromkeys(row[group_key] for row in rows))
    series = list(dict.fromkeys(row[series_key] for row in rows))
    width = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(groups) * max(1, len(series) / 2)), 4))
    for i, name in enumerate(series):
        xs, ys, errs = [], [], []
        for g, group in enumerate(groups):
            match = [r for r in rows if r[group_key] == group and r[series_key] == name]
            if match:
                xs.append(g + (i - (len(series) - 1) / 2) * width)
                ys.append(match[0][value_key])
                errs.append(match[0][error_key] if error_key else 0)
        ax.bar(xs, ys, width, yerr=errs if error_key else None, capsize=2, label=str(name))
    ax.set_xticks(range(len(groups)), groups, rotation=20)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------- comparison (forest plot)


@dataclass(frozen=True)
class ForestPoint:
    """One interval of the comparison figure: a compared row's difference in one column."""

    row: str  # the compared row (one colour each)
    column: str  # task metric or average, one line of the figure each
    y: float  # vertical position: columns from the top, a row's points offset within their line
    difference: float
    low: float
    high: float
    significant: bool  # drawn filled; hollow otherwise


def forest_points(comparisons, level: float) -> list[ForestPoint]:
    """What ``plot_comparison`` draws, from ``glue_eval.significance.Comparison`` objects (anything
    with ``row``, ``label``, ``estimate`` and ``significant(level)``): columns in the order they come,
    task metrics before averages as ``compare`` gives them."""
    rows = list(dict.fromkeys(c.row for c in comparisons))
    columns = list(dict.fromkeys(c.label for c in comparisons))
    # rows share a column's band, spread over at most 0.4 of it so each point stays near its label
    step = 0.4 / (len(rows) - 1) if len(rows) > 1 else 0.0
    points = []
    for c in comparisons:
        offset = (rows.index(c.row) - (len(rows) - 1) / 2) * step
        points.append(
            ForestPoint(
                row=c.row,
                column=c.label,
                y=columns.index(c.label) + offset,
                difference=c.estimate.difference,
                low=c.estimate.low,
                high=c.estimate.high,
                significant=c.significant(level),
            )
        )
    return points


def plot_comparison(
    comparisons, path: str | Path, level: float, baseline: str | None, note: str = ""
) -> Path:
    """Forest plot of ``compare``'s result: per column, each row's difference from the baseline (or
    from 0) with its interval; filled markers where p < ``level``. Written atomically as PNG."""
    from matplotlib.lines import Line2D

    plt = _pyplot()
    points = forest_points(comparisons, level)
    rows = list(dict.fromkeys(p.row for p in points))
    columns = list(dict.fromkeys(p.column for p in points))
    colours = plt.get_cmap("tab10").colors
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.42 * max(len(columns), 1) * max(1, len(rows) / 2)))
    for p in points:
        colour = colours[rows.index(p.row) % len(colours)]
        ax.plot([p.low, p.high], [p.y, p.y], color=colour, lw=1.8, solid_capstyle="butt")
        ax.plot(
            p.difference,
            p.y,
            "o",
            ms=7,
            mec=colour,
            mew=1.6,
            mfc=colour if p.significant else "white",
            zorder=3,
        )
    for i in range(0, len(columns), 2):  # shaded bands tell which column a point belongs to
        ax.axhspan(i - 0.5, i + 0.5, color="0.95", zorder=0)
    ax.axvline(0, color="black", lw=0.8)
    averages = [i for i, c in enumerate(columns) if c.startswith("Avg")]
    if averages and averages[0] > 0:  # the averages below a rule: they summarise the lines above
        ax.axhline(averages[0] - 0.5, color="grey", lw=0.6, ls=":")
    ax.set_yticks(range(len(columns)), columns)
    ax.set_ylim(len(columns) - 0.5, -0.5)
    ax.grid(axis="x", color="0.85")
    ax.set_axisbelow(True)
    pct = f"{100 * (1 - level):g}%"
    against = f"row minus {baseline}" if baseline else "each row against 0"
    ax.set_xlabel(f"{against}, percentage points; bars: {pct} interval")
    handles = [
        Line2D([], [], color=colours[i % len(colours)], marker="o", lw=1.8, label=r)
        for i, r in enumerate(rows)
    ]
    handles += [
        Line2D([], [], color="0.3", marker="o", ls="", mfc="0.3", label=f"p < {level:g}"),
        Line2D([], [], color="0.3", marker="o", ls="", mfc="white", label=f"p \u2265 {level:g}"),
    ]
    # below the axes, so no interval is hidden behind it
    per_line = len(handles) if len(handles) <= 4 else 3
    fig.legend(handles=handles, fontsize=8, loc="lower center", ncol=per_line, frameon=False)
    title = f"Difference from {baseline}" if baseline else "Difference from 0"
    ax.set_title(title + (f"\n{note}" if note else ""), fontsize=10)
    legend_lines = -(-len(handles) // per_line)
    fig.tight_layout(rect=(0, 0.25 * legend_lines / fig.get_figheight(), 1, 1))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())
