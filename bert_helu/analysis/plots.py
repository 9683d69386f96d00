"""PNG figures. matplotlib is imported lazily and with the Agg backend (no display here)."""

from __future__ import annotations

from pathlib import Path


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
