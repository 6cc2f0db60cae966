"""Figures drawn from the tidy score tables (matplotlib + seaborn, no numerics here)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from brainalign.utils import InputError, atomic_path  # noqa: E402

__all__ = ["plot_layer_profiles", "plot_model_comparison", "save_figure", "plot_rsa_timecourses",
           "plot_peak_latencies", "plot_variant_timecourses", "plot_roi_layers"]

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


def _explainable_variance_axis(ax, ceilings: pd.DataFrame, roi: str) -> None:
    """Right-hand axis in explainable variance explained: score^2 / (mean ceiling)^2."""
    c = ceilings.loc[ceilings["roi"] == roi, "ceiling"].mean()
    if np.isfinite(c) and c > 0:
        sec = ax.secondary_yaxis("right", functions=(lambda r: np.sign(r) * r**2 / c**2,
                                                     lambda v: np.sign(v) * np.sqrt(np.abs(v)) * c))
        sec.set_ylabel("explainable variance explained", fontsize=8)


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
        _explainable_variance_axis(ax, ceilings, roi)
    axes[0, 0].set_ylabel("score of selected layer (test, Pearson r)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, frameon=False, loc="upper center",
               bbox_to_anchor=(0.5, 0.0), ncol=len(labels))
    sns.despine(fig=fig, right=False)
    fig.suptitle("Model comparison (layer selected on train images, scored on test images)", fontsize=9)
    fig.tight_layout()
    return fig


CLASS_COLORS = {"CNN": "#4C72B0", "transformer": "#C44E52"}


def _class_color(c):
    return CLASS_COLORS.get(c, "0.4")


def _palette(group: str, levels):
    """Colour per level of ``group``: the fixed CNN/transformer colours, else a seaborn palette."""
    if group == "arch_class":
        return _class_color
    colors = dict(zip(levels, sns.color_palette("colorblind", len(levels)), strict=True))
    return lambda level: colors.get(str(level), "0.4")


def plot_group_comparison(per_subject: pd.DataFrame, ceilings: pd.DataFrame, *, roi: str,
                          group: str = "arch_class", title: str = "Architecture comparison",
                          n_boot: int = 1000, seed: int = 0):
    """Conwell Figs. 2-4 style: per-model cRSA (open) and veRSA (filled) boxes, group means.

    ``per_subject``: rows (model, subject, metric in {crsa, versa}, score, ``group``);
    ``group`` is the compared property: ``arch_class`` (Fig. 2), ``task`` (Fig. 3) or
    ``training_data`` (Fig. 4). Each box spans the bootstrap CI over subjects around the
    model mean (midline); the ribbons are group means with bootstrap CIs over models; the
    grey band is the noise ceiling; the right axis is explainable variance
    (score^2 / mean ceiling^2).
    """
    from brainalign.survey import bootstrap_ci

    d = per_subject[per_subject["metric"].isin(["crsa", "versa"])].dropna(subset=[group])
    if d.empty:
        raise InputError(f"plot_group_comparison: no cRSA/veRSA rows with a {group!r} value.")
    _group_color = _palette(group, sorted(d[group].astype(str).unique()))
    order = (d[d["metric"] == "versa"].groupby(["model", group])["score"].mean().reset_index()
             .sort_values([group, "score"], ascending=[True, False]))
    models = order["model"].tolist()
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(models) + 2), 4.5))
    _ceiling_band(ax, ceilings, roi)
    x_of = {m: i for i, m in enumerate(models)}
    for metric, filled in (("crsa", False), ("versa", True)):
        wide = d[d["metric"] == metric].pivot_table(index="subject", columns="model", values="score")
        wide = wide.reindex(columns=models).dropna(axis=1)
        cis = bootstrap_ci(wide, n_boot=n_boot, seed=seed, grand_mean_centered=wide.shape[1] > 1)
        for m, row in cis.iterrows():
            c = _group_color(order.set_index("model").at[m, group])
            ax.add_patch(plt.Rectangle((x_of[m] - 0.3, row["ci_low"]), 0.6,
                                       max(row["ci_high"] - row["ci_low"], 1e-3),
                                       facecolor=c if filled else "white", edgecolor=c, lw=1.2,
                                       alpha=0.85 if filled else 1))
            ax.plot([x_of[m] - 0.3, x_of[m] + 0.3], [row["mean"]] * 2, color="k", lw=1)
        # class means over models, with bootstrap CIs over models
        means = d[d["metric"] == metric].groupby(["model", group])["score"].mean().reset_index()
        rng = np.random.default_rng(seed)
        for cls, g in means.groupby(group):
            xs = [x_of[m] for m in g["model"] if m in x_of]
            vals = g["score"].to_numpy()
            boots = [rng.choice(vals, vals.size).mean() for _ in range(n_boot)]
            lo, hi = np.percentile(boots, [2.5, 97.5])
            ax.fill_between([min(xs) - 0.45, max(xs) + 0.45], lo, hi, color=_group_color(cls),
                            alpha=0.25 if filled else 0.1, hatch=None if filled else "//", lw=0)
    ax.set_xticks(range(len(models)))
    ax.set_xticklabels(models, rotation=90, fontsize=7)
    ax.set_xlim(-0.7, len(models) - 0.3)
    ax.set_ylabel(f"{roi} score of selected layer (test, Pearson r)")
    ax.axhline(0, color="0.3", lw=0.5)
    _explainable_variance_axis(ax, ceilings, roi)
    handles = [plt.Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="k", label="cRSA"),
               plt.Rectangle((0, 0), 1, 1, facecolor="0.5", edgecolor="k", label="veRSA")]
    handles += [plt.Rectangle((0, 0), 1, 1, color=_group_color(k), alpha=0.5, label=k)
                for k in sorted(order[group].unique())]
    ax.legend(handles=handles, fontsize=7, frameon=False, loc="lower left", ncol=min(len(handles), 4))
    ax.set_title(f"{title} ({roi}): boxes = bootstrap CIs over subjects, ribbons = group means",
                 fontsize=9)
    fig.tight_layout()
    return fig


def plot_survey_ranking(models: pd.DataFrame, breaks: dict | None, *, roi: str):
    """Conwell Fig. 5 style: rank-ordered veRSA with segmented fit; veRSA vs ED and size."""
    m = models.sort_values("versa", ascending=False).reset_index(drop=True)
    rank = np.arange(1, len(m) + 1)
    panels = [("effective_dim", "effective dimensionality (selected layer)", True),
              ("n_params", "parameters", True)]
    panels = [p for p in panels if p[0] in m and m[p[0]].notna().sum() >= 3]
    fig, axes = plt.subplots(1, 1 + len(panels), figsize=(4.2 * (1 + len(panels)), 3.8), squeeze=False)
    ax = axes[0, 0]
    ax.scatter(rank, m["versa"], c=[_class_color(c) for c in m["arch_class"]], s=18, zorder=3)
    ax.scatter(rank, m["crsa"], facecolors="none", edgecolors=[_class_color(c) for c in m["arch_class"]],
               s=18, zorder=3)
    if breaks:
        ax.plot(breaks["x"], breaks["fitted"], color="k", lw=1)
        for b in np.atleast_1d(breaks["breakpoints"]):
            ax.axvline(b, color="k", ls=":", lw=1)
    ax.set_xlabel("model rank (veRSA)")
    ax.set_ylabel(f"{roi} score (filled veRSA, open cRSA)")
    ax.set_title("Ranking and breakpoints", fontsize=9)
    for ax, (col, label, logx) in zip(axes[0, 1:], panels, strict=True):
        ax.scatter(m[col], m["versa"], c=[_class_color(c) for c in m["arch_class"]], s=18)
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("veRSA")
        ax.set_title(f"veRSA vs {label}", fontsize=9)
    fig.tight_layout()
    return fig


def plot_model_similarity(similarity: dict, mds: dict, meta: pd.DataFrame, *, group: str = "arch_class"):
    """Conwell Fig. 6 style: model-to-model RSM similarity histograms and MDS with hulls.

    ``similarity`` and ``mds`` map metric (crsa, versa) -> square similarity DataFrame /
    2-D coordinates DataFrame (index = model).
    """
    from scipy.spatial import ConvexHull

    metrics = [k for k in ("crsa", "versa") if k in similarity and len(similarity[k]) >= 2]
    if not metrics:  # one model (or none with a usable RDM): nothing to compare
        fig, ax = plt.subplots(figsize=(6, 1.6))
        ax.axis("off")
        ax.text(0.5, 0.5, "Model-to-model similarity needs >= 2 models with non-constant\n"
                "selected-layer RDMs; skipped.", ha="center", va="center", fontsize=10)
        print("plot_model_similarity: model similarity needs >= 2 models; skipped")
        return fig
    fig, axes = plt.subplots(len(metrics), 2, figsize=(9, 3.6 * len(metrics)), squeeze=False)
    groups = meta.set_index("model")[group]
    for row, metric in enumerate(metrics):
        sim = similarity[metric].to_numpy()
        iu = np.triu_indices_from(sim, k=1)
        axh, axm = axes[row]
        axh.hist(sim[iu], bins=20, color=METRIC_STYLE[metric]["color"])
        axh.set_xlabel(f"model-to-model {METRIC_STYLE[metric]['label']} RSM similarity (Pearson r)")
        axh.set_ylabel("model pairs")
        coords = mds[metric]
        for cls in sorted(groups.reindex(coords.index).dropna().unique()):
            pts = coords[groups.reindex(coords.index) == cls].to_numpy()
            axm.scatter(pts[:, 0], pts[:, 1], color=_class_color(cls), s=16, label=cls)
            if len(pts) >= 3:
                try:
                    hull = ConvexHull(pts)
                    axm.fill(pts[hull.vertices, 0], pts[hull.vertices, 1], color=_class_color(cls),
                             alpha=0.15)
                except Exception:  # noqa: BLE001 - collinear points: no hull to draw
                    pass
        axm.set_title(f"MDS of {METRIC_STYLE[metric]['label']} RSMs (selected layers)", fontsize=9)
        axm.legend(fontsize=7, frameon=False)
        axm.set_xticks([])
        axm.set_yticks([])
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- Cichy et al. 2016


def _layer_colors(names):
    return dict(zip(names, sns.color_palette("viridis", len(names)), strict=True))


def _significance_bars(ax, times_ms, mask, y, color) -> None:
    """Draw a thick horizontal segment at height ``y`` over every run of significant samples."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return
    step = np.median(np.diff(times_ms)) if len(times_ms) > 1 else 1.0
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(int), 0]))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        ax.plot([times_ms[start] - step / 2, times_ms[stop - 1] + step / 2], [y, y], color=color, lw=3,
                solid_capstyle="butt")


def plot_rsa_timecourses(courses: pd.DataFrame, planted: dict | None = None):
    """Cichy 2016 Fig. 3a: model-MEG RSA time course per layer (mean +- SEM over subjects).

    ``courses``: :func:`brainalign.cichy2016.meg_group_stats` time-course table of one model.
    Bars under the curves mark cluster-corrected significant time points, one row per layer;
    ``planted`` (demo) maps a layer name to its planted peak latency in seconds (dotted lines).
    """
    model = courses["model"].iloc[0]
    layers = courses.drop_duplicates("layer").sort_values("layer_index")
    names = layers.loc[~layers["is_summary"], "layer"].tolist()
    colors = _layer_colors(names)
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    low = float((courses["mean"] - courses["sem"].fillna(0)).min())
    high = float((courses["mean"] + courses["sem"].fillna(0)).max())
    span = max(high - low, 1e-3)
    for row, name in enumerate(layers["layer"]):
        d = courses[courses["layer"] == name].sort_values("time")
        t = d["time"].to_numpy() * 1000
        summary = name not in colors
        color = "0.3" if summary else colors[name]
        label = "whole network" if summary else name
        ax.plot(t, d["mean"], color=color, lw=1.6, ls="--" if summary else "-", label=label)
        ax.fill_between(t, d["mean"] - d["sem"].fillna(0), d["mean"] + d["sem"].fillna(0), color=color,
                        alpha=0.2, lw=0)
        _significance_bars(ax, t, d["significant"], low - span * (0.06 + 0.04 * row), color)
    for name, latency in (planted or {}).items():
        ax.axvline(latency * 1000, color=colors.get(name, "0.5"), ls=":", lw=1.2)
        ax.annotate(f"planted {name}", (latency * 1000, 1.0), xycoords=("data", "axes fraction"),
                    fontsize=7, ha="center", va="bottom")
    ax.axvline(0, color="0.6", lw=0.8)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("model-MEG similarity (Spearman R)")
    n = int(courses["n_subjects"].iloc[0])
    ax.set_title(f"{model}: layer RDMs vs MEG RDMs over time (n = {n}; bars: cluster-corrected P < 0.05)",
                 fontsize=9, pad=14)
    ax.legend(fontsize=7, frameon=False, ncol=2)
    fig.tight_layout()
    return fig


def plot_peak_latencies(peaks: pd.DataFrame, order: pd.DataFrame, planted: dict | None = None):
    """Cichy 2016 Fig. 3b: peak latency per layer with bootstrap CIs, and Spearman(layer, peak)."""
    model = peaks["model"].iloc[0]
    d = peaks[~peaks["is_summary"]].sort_values("layer_index")
    x = np.arange(1, len(d) + 1)
    y = d["peak_latency"].to_numpy() * 1000
    err = np.vstack([y - d["ci_low"].to_numpy() * 1000, d["ci_high"].to_numpy() * 1000 - y])
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.errorbar(x, y, yerr=np.where(np.isfinite(err), err, 0), fmt="o-", color="#4C72B0", capsize=3)
    for name, latency in (planted or {}).items():
        hit = np.flatnonzero(d["layer"].to_numpy() == name)
        if hit.size:
            ax.scatter([x[hit[0]]], [latency * 1000], marker="x", color="#C44E52", zorder=3,
                       label="planted" if name == next(iter(planted)) else None)
    ax.set_xticks(x, d["layer"], rotation=30, ha="right", fontsize=8)
    ax.set_xlabel("layer")
    ax.set_ylabel("peak latency (ms)")
    o = order.iloc[0]
    ax.set_title(f"{model}: Spearman(layer, peak latency) R = {o['spearman_r']:.2f}, P = {o['p']:.3g}\n"
                 f"(n = {int(o['n_subjects'])}; error bars: bootstrap CI over subjects)",
                 fontsize=9)
    if planted:
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def plot_variant_timecourses(table: pd.DataFrame):
    """Cichy 2016 Fig. 5b/c: whole-network RSA time courses of the DNN variants (left) and the
    reference (object DNN) minus each variant (right), with cluster-corrected significance bars."""
    models = list(dict.fromkeys(table["model"]))
    reference = table["reference"].iloc[0]
    colors = dict(zip(models, sns.color_palette("tab10", len(models)), strict=True))
    fig, (ax_b, ax_c) = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key in ((ax_b, ""), (ax_c, "diff_")):
        sub = table if not key else table[table["model"] != reference]
        low = float((sub[f"{key}mean"] - sub[f"{key}sem"].fillna(0)).min())
        high = float((sub[f"{key}mean"] + sub[f"{key}sem"].fillna(0)).max())
        span = max(high - low, 1e-3)
        for row, model in enumerate(dict.fromkeys(sub["model"])):
            d = sub[sub["model"] == model].sort_values("time")
            t = d["time"].to_numpy() * 1000
            m, s = d[f"{key}mean"].to_numpy(), d[f"{key}sem"].fillna(0).to_numpy()
            ax.plot(t, m, color=colors[model], label=model if not key else f"{reference} - {model}")
            ax.fill_between(t, m - s, m + s, color=colors[model], alpha=0.2, lw=0)
            _significance_bars(ax, t, d[f"{key}significant"], low - span * (0.06 + 0.04 * row), colors[model])
        ax.axvline(0, color="0.6", lw=0.8)
        ax.axhline(0, color="0.6", lw=0.8)
        ax.set_xlabel("time (ms)")
        ax.legend(fontsize=7, frameon=False)
    ax_b.set_ylabel("whole-network RDM vs MEG (Spearman R)")
    ax_b.set_title("b: DNN variants", fontsize=9)
    ax_c.set_ylabel("difference in Spearman R")
    ax_c.set_title(f"c: {reference} minus each variant", fontsize=9)
    fig.tight_layout()
    return fig


def plot_roi_layers(bars: pd.DataFrame, order: pd.DataFrame, planted: dict | None = None):
    """Cichy 2016 Fig. 6a: ROI x layer similarity (mean +- SEM over subjects), one panel per model
    and ROI; * = FDR-corrected sign-permutation P < alpha; titles give Spearman(layer, similarity).
    ``planted`` (demo) maps ROI -> planted layer, outlined in red."""
    models = list(dict.fromkeys(bars["model"]))
    rois = list(dict.fromkeys(bars["roi"]))
    fig, axes = plt.subplots(len(models), len(rois), figsize=(3.8 * len(rois), 3.4 * len(models)),
                             squeeze=False)
    for i, model in enumerate(models):
        for j, roi in enumerate(rois):
            ax = axes[i, j]
            d = bars[(bars["model"] == model) & (bars["roi"] == roi)].sort_values("layer_index")
            x = np.arange(len(d))
            names = ["whole net" if s else n for n, s in zip(d["layer"], d["is_summary"], strict=True)]
            colors = ["0.6" if s else c for s, c in zip(d["is_summary"], sns.color_palette("viridis", len(d)),
                                                       strict=True)]
            edge = ["#C44E52" if planted and planted.get(roi) == n else "none" for n in d["layer"]]
            ax.bar(x, d["mean"], yerr=d["sem"].fillna(0), color=colors, edgecolor=edge, linewidth=2,
                   capsize=2)
            top = (d["mean"] + d["sem"].fillna(0)).to_numpy()
            for k in np.flatnonzero(d["significant"].to_numpy(dtype=bool)):
                ax.text(x[k], top[k], "*", ha="center", va="bottom")
            ax.set_xticks(x, names, rotation=40, ha="right", fontsize=7)
            o = order[(order["model"] == model) & (order["roi"] == roi)]
            extra = f"\nR(layer) = {o['spearman_r'].iloc[0]:.2f}, P = {o['p'].iloc[0]:.3g}" if len(o) else ""
            ax.set_title(f"{model}, {roi}{extra}", fontsize=8)
            ax.axhline(0, color="0.6", lw=0.8)
            if j == 0:
                ax.set_ylabel("ROI-model similarity (Spearman R)")
    fig.tight_layout()
    return fig
