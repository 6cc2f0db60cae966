"""Figures of Kuzovkin et al. 2018, drawn from the tables of the kuzovkin_alignment rule.

- :func:`plot_mapping_grid`: the area x layer mapping matrix (fraction of the area's probes
  significant for the layer) of one model, one panel per band x window;
- :func:`plot_rho_align`: rho_align per band, one panel per window, one marker per model, with
  the split-half noise band;
- :func:`plot_layer_fractions`: fraction of visual-area probes significant for each layer, per
  band (lines), one panel per window x model.

Saved with :func:`brainalign.plots.save_figure` (PNG and PDF).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from brainalign.plots import save_figure

__all__ = ["plot_mapping_grid", "plot_rho_align", "plot_layer_fractions", "save_figure"]

BAND_LABELS = {"theta": "θ 5-8", "alpha": "α 9-14", "beta": "β 15-30", "lowgamma": "low γ 30-70",
               "highgamma": "high γ 70-150"}


def _ordered(values, order):
    values = list(dict.fromkeys(values))
    known = [v for v in order if v in values]
    return known + [v for v in values if v not in known]


def plot_mapping_grid(mapping: pd.DataFrame, *, model: str, bands, windows):
    """Grid (bands x windows) of area x layer heat maps of ``fraction`` for ``model``."""
    m = mapping[mapping["model"] == model]
    layers = m.sort_values("layer_index")["layer"].drop_duplicates().tolist()
    areas = m.sort_values("area_index")["area"].drop_duplicates().tolist()
    fig, axes = plt.subplots(len(bands), len(windows), squeeze=False, sharex=True, sharey=True,
                             figsize=(1.2 + 0.42 * len(layers) * len(windows), 0.9 + 1.5 * len(bands)))
    vmax = max(float(np.nanmax(m["fraction"].to_numpy(float))) if len(m) else 0.0, 1e-6)
    image = None
    for i, band in enumerate(bands):
        for j, window in enumerate(windows):
            ax = axes[i, j]
            t = m[(m["band"] == band) & (m["window"] == window)]
            grid = (t.pivot_table(index="area_index", columns="layer_index", values="fraction")
                    .reindex(index=range(len(areas)), columns=range(len(layers))).to_numpy(float))
            image = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis", vmin=0, vmax=vmax)
            if i == 0:
                ax.set_title(f"{window} ms", fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{BAND_LABELS.get(band, band)}\nBrodmann area", fontsize=8)
            ax.set_yticks(range(len(areas)), [str(a) for a in areas], fontsize=7)
            ax.set_xticks(range(len(layers)), layers, rotation=90, fontsize=6)
    fig.suptitle(f"{model}: fraction of probes significant per area x layer", fontsize=10)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label="fraction of the area's probes")
    return fig


def plot_rho_align(alignment: pd.DataFrame, *, bands, windows, models):
    """rho_align per band (x) and window (panels), one colour per model; error bars: the
    split-half noise band (sd of rho_align over random halves of the subjects); hollow markers:
    fewer significant points than ``min_points`` (not reliable)."""
    fig, axes = plt.subplots(1, len(windows), squeeze=False, sharey=True,
                             figsize=(1.5 + 0.9 * len(bands) * len(windows), 3.4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    width = 0.7 / max(len(models), 1)
    for j, window in enumerate(windows):
        ax = axes[0, j]
        for k, model in enumerate(models):
            t = alignment[(alignment["window"] == window) & (alignment["model"] == model)]
            t = t.set_index("band").reindex(bands)
            x = np.arange(len(bands)) + (k - (len(models) - 1) / 2) * width
            y = t["rho_align"].to_numpy(float)
            err = t["split_half_sd"].to_numpy(float)
            reliable = t["reliable"].fillna(False).to_numpy(bool)
            c = colors[k % len(colors)]
            ax.errorbar(x, y, yerr=err, fmt="none", ecolor=c, capsize=3, lw=1)
            ax.scatter(x[reliable], y[reliable], color=c, zorder=3, label=model if j == 0 else None)
            ax.scatter(x[~reliable], y[~reliable], facecolor="white", edgecolor=c, zorder=3)
        ax.axhline(0, color="0.6", lw=0.8)
        ax.set_xlim(-0.6, len(bands) - 0.4)
        ax.set_xticks(range(len(bands)), [BAND_LABELS.get(b, b) for b in bands], rotation=45,
                      ha="right", fontsize=8)
        ax.set_title(f"{window} ms", fontsize=9)
    axes[0, 0].set_ylabel(r"$\rho_{align}$ = Spearman(layer, area)")
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    fig.legend(loc="upper center", ncol=len(models), fontsize=8, frameon=False)
    return fig


def plot_layer_fractions(fractions: pd.DataFrame, *, bands, windows, models):
    """Fraction of visual-area probes significant for each layer: panels windows x models,
    one line per band."""
    fig, axes = plt.subplots(len(models), len(windows), squeeze=False, sharey=True,
                             figsize=(1.5 + 3.0 * len(windows), 0.8 + 2.4 * len(models)))
    for i, model in enumerate(models):
        for j, window in enumerate(windows):
            ax = axes[i, j]
            t = fractions[(fractions["model"] == model) & (fractions["window"] == window)]
            layers = t.sort_values("layer_index")["layer"].drop_duplicates().tolist()
            for band in bands:
                b = t[t["band"] == band].sort_values("layer_index")
                ax.plot(b["layer_index"], b["fraction"], marker="o", ms=3, label=BAND_LABELS.get(band, band))
            ax.set_xticks(range(len(layers)), layers, rotation=90, fontsize=7)
            ax.set_title(f"{model}, {window} ms", fontsize=9)
            if j == 0:
                ax.set_ylabel("fraction of probes significant")
    axes[0, -1].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig
