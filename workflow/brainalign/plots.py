"""Figures drawn from the tidy score tables (matplotlib + seaborn, no numerics here)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from brainalign.utils import atomic_path  # noqa: E402

__all__ = ["plot_layer_profiles", "plot_model_comparison", "save_figure"]

METRIC_STYLE = {
    "crsa": {"color": "#4C72B0", "label": "cRSA"},
    "versa": {"color": "#DD8452", "label": "veRSA"},
    "encoding_r": {"color": "#55A868", "label": "encoding r (mean voxel)"},
}


def save_figure(fig, *paths) -> None:
    """Save ``fig`` atomically to every path (format from the suffix) and close it."""
    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight")
    plt.close(fig)


def _ceiling_band(ax, ceilings: pd.DataFrame, roi: str) -> None:
    c = ceilings.loc[ceilings["roi"] == roi, "ceiling"].to_numpy(dtype=float)
    if c.size and np.isfinite(c).any():
        ax.axhspan(np.nanmin(c), np.nanmax(c), color="0.85", zorder=0,
                   label="noise ceiling (subject range)")
        ax.axhline(np.nanmean(c), color="0.6", lw=1, zorder=0)


def plot_layer_profiles(layers: pd.DataFrame, selected: pd.DataFrame, ceilings: pd.DataFrame,
                        model: str, planted: dict | None = None, metrics=("crsa", "versa")):
    """Per-layer cRSA/veRSA profiles for one model, one panel per ROI.

    Lines: mean over subjects on test (solid) and train (dashed) images, shaded by
    the subject range; the layer selected on train is marked per metric; the noise
    ceiling is the grey band; a planted layer (demo) is a vertical dotted line.
    """
    df = layers[(layers["model"] == model) & layers["metric"].isin(metrics)]
    if df.empty:
        raise ValueError(f"No scores for model {model!r}.")
    rois = sorted(df["roi"].unique())
    order = df.drop_duplicates("layer").sort_values("layer_index")
    names = order["layer"].tolist()
    xpos = dict(zip(names, range(len(names)), strict=True))
    fig, axes = plt.subplots(1, len(rois), figsize=(max(6, 0.12 * len(names) + 4) * len(rois) / 1.4, 4),
                             sharey=True, squeeze=False)
    for ax, roi in zip(axes[0], rois, strict=True):
        _ceiling_band(ax, ceilings, roi)
        for metric in metrics:
            style = METRIC_STYLE[metric]
            for split, ls in (("test", "-"), ("train", "--")):
                d = df[(df["roi"] == roi) & (df["metric"] == metric) & (df["split"] == split)]
                if d.empty:
                    continue
                g = d.groupby("layer")["score"]
                mean = g.mean().reindex(names)
                x = np.arange(len(names))
                ax.plot(x, mean.to_numpy(), ls=ls, color=style["color"], lw=1.6 if split == "test" else 1,
                        label=f"{style['label']} ({split})")
                if split == "test":
                    ax.fill_between(x, g.min().reindex(names).to_numpy(), g.max().reindex(names).to_numpy(),
                                    color=style["color"], alpha=0.15, lw=0)
            sel = selected[(selected["model"] == model) & (selected["roi"] == roi)
                           & (selected["metric"] == metric)]
            for _, row in sel.iterrows():
                ax.plot(xpos[row["selected_layer"]], row["score"], marker="o", color=style["color"],
                        mec="k", ms=6, ls="none")
        if planted and roi in planted and planted[roi] in xpos:
            ax.axvline(xpos[planted[roi]], color="k", ls=":", lw=1.2, label=f"planted: {planted[roi]}")
        ax.set_title(f"{model} — {roi}")
        ax.set_xlabel("layer (execution order)")
        step = max(1, len(names) // 25)
        ax.set_xticks(range(0, len(names), step))
        ax.set_xticklabels(names[::step], rotation=90, fontsize=6)
        ax.set_ylim(min(-0.1, np.nanmin(df["score"]) - 0.05), 1.0)
        ax.axhline(0, color="0.3", lw=0.5)
    axes[0, 0].set_ylabel("score (Pearson r)")
    axes[0, -1].legend(fontsize=7, loc="lower right", frameon=False)
    fig.suptitle("Per-layer brain predictivity (dots: layer selected on train, scored on test)",
                 fontsize=9)
    fig.tight_layout()
    return fig


def plot_model_comparison(selected: pd.DataFrame, ceilings: pd.DataFrame, metrics=("crsa", "versa")):
    """Test score of each model's train-selected layer, per ROI: cRSA open, veRSA filled.

    Bars are subject means, dots single subjects; the grey band is the noise ceiling.
    A secondary axis gives explainable variance explained (score^2 / mean ceiling^2).
    """
    df = selected[selected["metric"].isin(metrics)].copy()
    rois = sorted(df["roi"].unique())
    models = (df[df["metric"] == metrics[-1]].groupby("model")["score"].mean()
              .sort_values(ascending=False).index.tolist())
    fig, axes = plt.subplots(1, len(rois), figsize=(1.1 * len(models) * len(rois) + 2.5, 4),
                             sharey=True, squeeze=False)
    width = 0.8 / len(metrics)
    for ax, roi in zip(axes[0], rois, strict=True):
        _ceiling_band(ax, ceilings, roi)
        for k, metric in enumerate(metrics):
            style = METRIC_STYLE[metric]
            d = df[(df["roi"] == roi) & (df["metric"] == metric)]
            means = d.groupby("model")["score"].mean().reindex(models)
            x = np.arange(len(models)) + (k - (len(metrics) - 1) / 2) * width
            filled = metric != "crsa"
            ax.bar(x, means.to_numpy(), width=width * 0.9, color=style["color"] if filled else "white",
                   edgecolor=style["color"], lw=1.5, label=style["label"])
            for i, m in enumerate(models):
                s = d.loc[d["model"] == m, "score"].to_numpy()
                ax.scatter(np.full(s.size, x[i]), s, s=10, color="k", zorder=3)
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels(models, rotation=30, ha="right")
        ax.set_title(roi)
        ax.axhline(0, color="0.3", lw=0.5)
        c = ceilings.loc[ceilings["roi"] == roi, "ceiling"].mean()
        if np.isfinite(c) and c > 0:
            sec = ax.secondary_yaxis("right", functions=(lambda r, c=c: np.sign(r) * r**2 / c**2,
                                                         lambda v, c=c: np.sign(v) * np.sqrt(np.abs(v)) * c))
            sec.set_ylabel("explainable variance explained", fontsize=8)
    axes[0, 0].set_ylabel("score of selected layer (test, Pearson r)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, frameon=False, loc="upper center",
               bbox_to_anchor=(0.5, 0.0), ncol=len(labels))
    sns.despine(fig=fig, right=False)
    fig.suptitle("Model comparison (layer selected on train images, scored on test images)", fontsize=9)
    fig.tight_layout()
    return fig
