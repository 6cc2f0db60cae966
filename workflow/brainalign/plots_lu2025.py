"""Figures of Lu & Wang 2025 (ReAlnet-fMRI), drawn from the tidy tables of lu2025_evaluate.

Analogues of the paper's Figs. 1B/C (training losses), 2 (Shen RSA per ROI), 3 (Horikawa,
across subjects), 4 (THINGS-EEG2 time courses) and 5 (THINGS dimensions, ReAlnet - CORnet).
Saved with :func:`brainalign.plots.save_figure`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from brainalign.plots import save_figure

__all__ = ["plot_lu_losses", "plot_lu_rsa", "plot_lu_eeg", "plot_lu_dimensions", "save_figure",
           "model_label"]

PALETTE = {"CORnet": "#4C72B0", "Control": "0.7"}


def model_label(model: str, beta) -> str:
    if model == "cornet":
        return "CORnet"
    if model == "control":
        return "Control"
    return f"ReAlnet β={int(beta)}"


def _labelled(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["label"] = [model_label(m, b) for m, b in zip(df["model"], df["beta"], strict=True)]
    return df


def _order(df: pd.DataFrame) -> list[str]:
    betas = sorted(df.loc[df["model"] == "realnet", "beta"].dropna().unique())
    return ["CORnet", "Control"] + [f"ReAlnet β={int(b)}" for b in betas]


def _colors(order):
    reds = sns.color_palette("Reds", max(1, len(order) - 2) + 1)[1:]
    return {lab: PALETTE.get(lab, reds[min(i, len(reds) - 1)]) for i, lab in
            enumerate(x for x in order if x not in PALETTE)} | {k: PALETTE[k] for k in PALETTE}


def _empty(title: str):
    fig, ax = plt.subplots(figsize=(4, 2))
    ax.text(0.5, 0.5, f"{title}: not evaluated in this configuration", ha="center", va="center", fontsize=8)
    ax.axis("off")
    return fig


def plot_lu_losses(losses: pd.DataFrame):
    """Fig. 1B/C analogue: per-epoch losses (total, CE, MSE, contrastive) of every model."""
    df = _labelled(losses)
    parts = [("loss_total", "total"), ("loss_ce", "classification (CE)"), ("loss_mse", "fMRI MSE"),
             ("loss_contrastive", "fMRI contrastive")]
    order = [o for o in _order(df) if o in set(df["label"])]
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
    for ax, (col, title) in zip(axes, parts, strict=True):
        sns.lineplot(df, x="epoch", y=col, hue="label", hue_order=order, style="model_subject",
                     markers=True, ax=ax, palette=_colors(order), legend=ax is axes[-1])
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("mean loss per image" if ax is axes[0] else "")
    if axes[-1].get_legend():
        sns.move_legend(axes[-1], "upper left", bbox_to_anchor=(1.02, 1), fontsize=7, frameon=False)
    sns.despine(fig=fig)
    fig.suptitle("Training losses (Control: beta = 0, fMRI terms logged but not trained)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_lu_rsa(scores: pd.DataFrame, dataset: str, title: str):
    """Figs. 2/3 analogue: best-layer Spearman RSA per ROI, bars = mean over brain subjects
    (and, for models, over the subjects they were trained on), dots = single values."""
    df = scores[(scores["dataset"] == dataset) & (scores["layer"] == "max")]
    if df.empty:
        return _empty(title)
    df = _labelled(df)
    order = _order(df)
    rois = list(dict.fromkeys(df["roi"]))
    fig, ax = plt.subplots(figsize=(1.2 * len(rois) * len(order) / 2 + 2.5, 3.6))
    sns.barplot(df, x="roi", y="score", hue="label", order=rois, hue_order=order, palette=_colors(order),
                errorbar=None, ax=ax)
    sns.stripplot(df, x="roi", y="score", hue="label", order=rois, hue_order=order, dodge=True,
                  color="k", size=2.5, legend=False, ax=ax)
    ax.axhline(0, color="0.3", lw=0.5)
    ax.set_ylabel("Spearman ρ (best of V1/V2/V4/IT)")
    ax.set_xlabel("ROI")
    ax.set_title(title, fontsize=9)
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), fontsize=7, frameon=False, title=None)
    sns.despine(fig=fig)
    fig.tight_layout()
    return fig


def plot_lu_eeg(eeg: pd.DataFrame):
    """Fig. 4 analogue: time-resolved RSA with the EEG decoding RDMs (best layer per time point)."""
    if eeg.empty:
        return _empty("THINGS-EEG2")
    df = _labelled(eeg[eeg["layer"] == "max"])
    order = _order(df)
    fig, ax = plt.subplots(figsize=(6, 3.4))
    sns.lineplot(df, x="time", y="score", hue="label", hue_order=order, palette=_colors(order),
                 errorbar=("pi", 100), ax=ax)
    ax.axhline(0, color="0.3", lw=0.5)
    ax.set_xlabel("time after image onset (s)")
    ax.set_ylabel("Spearman ρ with EEG RDM")
    ax.set_title("THINGS-EEG2: model-EEG similarity over time (mean over subjects; band = range)",
                 fontsize=9)
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), fontsize=7, frameon=False, title=None)
    sns.despine(fig=fig)
    fig.tight_layout()
    return fig


def plot_lu_dimensions(dims: pd.DataFrame, main_beta):
    """Fig. 5 analogue: explained variance (squared partial Spearman) per THINGS dimension,
    ReAlnet (main beta) minus CORnet; bars = mean over the ReAlnets of all subjects."""
    d = dims[(dims["model"] == "realnet") & (dims["beta"] == main_beta)] if len(dims) else dims
    if d.empty:
        return _empty("THINGS dimensions")
    mean = d.groupby("dimension")["diff_vs_cornet"].mean()
    fig, ax = plt.subplots(figsize=(max(6, 0.16 * len(mean) + 2), 3.2))
    colors = np.where(mean.to_numpy() >= 0, "#C44E52", "#4C72B0")
    ax.bar(mean.index, mean.to_numpy(), color=colors)
    for _, g in d.groupby("model_subject"):
        ax.scatter(g["dimension"], g["diff_vs_cornet"], s=6, color="k", zorder=3)
    ax.axhline(0, color="0.3", lw=0.5)
    ax.set_xlabel("THINGS dimension")
    ax.set_ylabel("Δ explained variance of IT RDM\n(ReAlnet − CORnet)")
    ax.set_title(f"Object dimensions in the IT layer (β = {main_beta}; partial Spearman², "
                 "controlling for the other dimensions)", fontsize=9)
    sns.despine(fig=fig)
    fig.tight_layout()
    return fig
