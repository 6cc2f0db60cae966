"""Arend 2018 figures (PNG + PDF): neural correlation with controls, per-layer curves,
matched-population decoding, depth of the best units."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from _bootstrap import rule_log  # noqa: E402

REGION_COLOURS = {"V4": "tab:blue", "IT": "tab:red"}


def save(fig, png):
    fig.tight_layout()
    fig.savefig(png, dpi=150)
    fig.savefig(Path(png).with_suffix(".pdf"))
    plt.close(fig)


def correlation(scores, png):
    regions = list(dict.fromkeys(scores["region"]))
    fig, axes = plt.subplots(1, len(regions), figsize=(4 + 0.7 * scores["model"].nunique() * len(regions), 4),
                             squeeze=False, sharey=True)
    for ax, region in zip(axes[0], regions, strict=True):
        s = scores[scores["region"] == region].reset_index(drop=True)
        x = np.arange(len(s))
        colour = REGION_COLOURS.get(region, "grey")
        ax.bar(x - 0.3, s["median_r"], 0.2, color=colour, label="model (in-sample)")
        ax.bar(x - 0.1, s["median_r_heldout"], 0.2, color=REGION_COLOURS.get(region, "grey"), alpha=0.5,
               label="model (held-out)")
        if "rotation_r" in s:
            ax.bar(x + 0.1, s["rotation_r"], 0.2, yerr=s["rotation_r_sd"], color="tab:green",
                   label="channel rotation")
        ax.bar(x + 0.3, s["random_r"], 0.2, color="tab:grey", label="random activations")
        if "pixels_r" in s:
            ax.axhline(s["pixels_r"].iloc[0], color="k", ls="--", lw=1, label="pixels")
        ax.set_xticks(x, s["model"], rotation=45, ha="right")
        ax.set_title(f"{region} ({int(s['n_sites'].iloc[0])} sites)")
        ax.set_ylim(min(0, float(np.nanmin(s[["median_r_heldout"]].to_numpy()))), 1)
    axes[0, 0].set_ylabel("neural correlation (median best r)")
    axes[0, -1].legend(fontsize=7, loc="upper right")
    save(fig, png)


def layer_curves(layers, png):
    models = list(dict.fromkeys(layers["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(4.5 * len(models), 3.8), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        m = layers[layers["model"] == model]
        for region, g in m.groupby("region", sort=False):
            c = REGION_COLOURS.get(region, "grey")
            ax.plot(g["depth"], g["median_r"], "o-", color=c, label=f"{region} in-sample")
            ax.plot(g["depth"], g["median_r_heldout"], "o--", color=c, alpha=0.5, label=f"{region} held-out")
            best = g.loc[g["median_r"].idxmax()]
            ax.annotate(best["layer"], (best["depth"], best["median_r"]), textcoords="offset points",
                        xytext=(0, 6), ha="center", fontsize=7, color=c)
        ax.set_title(model)
        ax.set_xlabel("layer depth (0 = first, 1 = last)")
        ax.set_ylabel("median best r within layer")
    axes[0, 0].legend(fontsize=7)
    save(fig, png)


def decoding_bars(dec, png):
    conds = [("neural", "neural (population)"), ("model", "(i) model"),
             ("model_to_neural", "(ii) model->neural"),
             ("neural_to_model", "(iii) neural->model")]
    base = {"model": "baseline", "model_to_neural": "baseline_to_neural",
            "neural_to_model": "neural_to_baseline"}
    keys = list(dict.fromkeys(zip(dec["model"], dec["region"], strict=True)))
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3.8), squeeze=False, sharey=True)
    for ax, (model, region) in zip(axes[0], keys, strict=True):
        d = dec[(dec["model"] == model) & (dec["region"] == region)].set_index("condition")
        x = np.arange(len(conds))
        ax.bar(x - 0.18, [d.loc[c, "accuracy"] for c, _ in conds], 0.36,
               yerr=[d.loc[c, "sd"] for c, _ in conds],
               color=REGION_COLOURS.get(region, "grey"), label="matched units")
        bx = [i for i, (c, _) in enumerate(conds) if c in base]
        ax.bar(np.array(bx) + 0.18, [d.loc[base[conds[i][0]], "accuracy"] for i in bx], 0.36,
               yerr=[d.loc[base[conds[i][0]], "sd"] for i in bx], color="tab:grey", label="random units")
        ax.axhline(0.125, color="k", ls=":", lw=1, label="chance (0.125)")
        ax.set_xticks(x, [label for _, label in conds], rotation=40, ha="right", fontsize=8)
        ax.set_title(f"{model}, {region}", fontsize=9)
        ax.set_ylim(0, 1)
    axes[0, 0].set_ylabel("8-category accuracy")
    axes[0, 0].legend(fontsize=7)
    save(fig, png)


def depth_histogram(units, png):
    models = list(dict.fromkeys(units["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(4.5 * len(models), 3.5), squeeze=False)
    bins = np.linspace(0, 1, 11)
    for ax, model in zip(axes[0], models, strict=True):
        u = units[units["model"] == model]
        for region, g in u.groupby("region", sort=False):
            ax.hist(g["depth"].dropna(), bins=bins, alpha=0.6, color=REGION_COLOURS.get(region, "grey"),
                    label=f"{region} (median {g['depth'].median():.2f})")
        ax.set_title(model)
        ax.set_xlabel("depth of the best-matching unit")
        ax.set_ylabel("sites")
        ax.legend(fontsize=7)
    save(fig, png)


with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    correlation(pd.read_csv(sm.input.scores), sm.output.correlation)
    layer_curves(pd.read_csv(sm.input.layers), sm.output.layers)
    decoding_bars(pd.read_csv(sm.input.decoding), sm.output.decoding)
    depth_histogram(pd.read_csv(sm.input.units), sm.output.depth)
