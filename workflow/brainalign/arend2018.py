"""Arend et al. 2018: single DNN units matched to macaque V4/IT sites (the paper's glue).

The numerics live in :mod:`brainalign.unit_matching` (streamed best-unit search, controls)
and :mod:`brainalign.population_decoding`; the data reader in
:mod:`brainalign.io.majajhong2015`. This module holds what ties them to the workflow:

- :func:`input_paths` / :func:`check_config`: the ``arend2018`` config section's files and
  start-up checks (:class:`~brainalign.utils.InputError` naming the config key);
- :func:`write_demo`: a synthetic MajajHong2015-format assembly, stimulus-set CSV and images
  whose **V4** sites copy (with noise) known units of an *early* layer of the seeded
  ground-truth network ``gtnet`` and whose **IT** sites copy known units of a *late* layer;
  the truth (planted layer and unit per site) goes to ``truth.json``;
- :func:`stream_network`: a registry model run over the stimulus images batch by batch,
  forward hooks handing each layer's batch to consumers (a :class:`UnitMatcher`, several
  matchers of rotated activations, a :class:`UnitGatherer`); images x units is never held;
- :func:`match_model`, :func:`match_rotated`, :func:`match_random_activations`,
  :func:`match_pixels`: the paper's metric and its three controls;
- :func:`decode_model`: matched-population decoding (i)-(iii) with the random-unit baseline;
- :func:`scores_table`, :func:`layer_table`, :func:`units_table`: the tables.

Layers are the leaf modules of the network that run (``extraction.match_layers``); a leaf
called several times per forward pass gives one layer per call (``<name>:<j>``), as in
feature extraction. Leaves that only copy their input in evaluation mode (``Dropout``,
``Identity``, ``Flatten``) are skipped: their units duplicate the layer before.
Depths are layer ranks spaced linearly from 0 to 1 in execution order (the paper's Fig. S7).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from brainalign.utils import InputError, atomic_path, make_rng

__all__ = [
    "KEY",
    "DEMO_ROOT",
    "CHANCE",
    "input_paths",
    "check_config",
    "write_demo",
    "ImageList",
    "stream_network",
    "network_layer_shapes",
    "match_model",
    "match_rotated",
    "match_random_activations",
    "match_pixels",
    "gather_units",
    "decode_model",
    "scores_table",
    "layer_table",
    "units_table",
    "load_inputs",
    "control_rows",
]

KEY = "arend2018"
DEMO_ROOT = "resources/demo/arend2018"
CHANCE = 0.125
_SKIPPED_LEAVES = ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "Identity", "Flatten")


# --------------------------------------------------------------------------- config


def input_paths(section: Mapping) -> dict:
    """The input files of the ``arend2018`` section: assembly, stimulus CSV, image folder, truth."""
    return {
        "assembly": str(section["assembly"]),
        "stimulus_csv": str(section["stimulus_csv"]),
        "image_dir": str(section["image_dir"]),
        "truth": str(Path(DEMO_ROOT) / "truth.json"),
    }


def check_config(section: Mapping, *, demo: bool) -> None:
    """Start-up checks of the ``arend2018`` section; :class:`InputError` naming the key.

    Always: at least one model, known regions, positive run counts, a non-empty C grid,
    planted layers that are gtnet stages (demo). With real data (``demo`` false): the
    assembly, the stimulus-set CSV and the image folder exist.
    """
    if not list(section["models"]):
        raise InputError("config key arend2018.models: list at least one model.")
    bad = [r for r in section["regions"] if r not in ("V4", "IT")]
    if bad or not section["regions"]:
        raise InputError(f"config key arend2018.regions: {bad or '[]'}; use V4 and/or IT.")
    rot = section["controls"].get("rotation_models")
    unknown = [m for m in (rot or []) if m not in list(section["models"])]
    if unknown:
        raise InputError(f"config key arend2018.controls.rotation_models: {unknown} not in arend2018.models.")
    dec = section["decoding"]
    for key in ("n_runs_within", "n_runs_across", "n_cv_splits"):
        if int(dec[key]) < 1:
            raise InputError(f"config key arend2018.decoding.{key} must be >= 1, got {dec[key]}.")
    if not list(dec["c_grid"]) or any(float(c) <= 0 for c in dec["c_grid"]):
        raise InputError(
            f"config key arend2018.decoding.c_grid must be positive numbers, got {dec['c_grid']}."
        )
    if demo:
        stages = ("stage1", "stage2", "stage3", "stage4", "stage5")
        for region in ("v4_layer", "it_layer"):
            if section["demo"][region] not in stages:
                raise InputError(
                    f"config key arend2018.demo.{region} is {section['demo'][region]!r}; it must be a "
                    f"gtnet stage {list(stages)}."
                )
        return
    paths = input_paths(section)
    for key in ("assembly", "stimulus_csv"):
        if not Path(paths[key]).is_file():
            raise InputError(f"config key arend2018.{key}: file {paths[key]} not found.")
    if not Path(paths["image_dir"]).is_dir():
        raise InputError(f"config key arend2018.image_dir: folder {paths['image_dir']} not found.")


# --------------------------------------------------------------------------- images


class ImageList:
    """Lazily opened stimulus images (``len`` + indexing), RGB (grayscale replicated)."""

    def __init__(self, paths: Sequence):
        self.paths = [Path(p) for p in paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            return im.convert("RGB")

    def gray_array(self, start: int, stop: int) -> np.ndarray:
        """uint8 (B, H, W) grayscale pixels of images ``start..stop-1``."""
        from PIL import Image

        out = []
        for p in self.paths[start:stop]:
            with Image.open(p) as im:
                out.append(np.asarray(im.convert("L")))
        try:
            return np.stack(out)
        except ValueError as err:
            raise InputError(f"Stimulus images {start}..{stop - 1} differ in size: {err}") from err


# --------------------------------------------------------------------------- streaming


def _leaf_names(model, layers="all") -> list[str]:
    from brainalign.models.extraction import match_layers

    mods = dict(model.named_modules())
    chosen = match_layers(model, layers)
    kind = {n: type(mods.get("" if n == "model" else n, model)).__name__ for n in chosen}
    return [n for n in chosen if kind[n] not in _SKIPPED_LEAVES]


def stream_network(
    model,
    transform,
    images,
    consumers: Sequence[Callable],
    *,
    layers="all",
    only: set | None = None,
    batch_size: int = 32,
    device="cpu",
    progress: bool = True,
    desc: str = "",
    limit: int | None = None,
) -> list[str]:
    """Run ``model`` over ``images`` batch by batch; hand every layer batch to ``consumers``.

    Each consumer is called as ``consumer(layer, activations, start)`` with float32 numpy
    activations ``(B, *shape)`` (a copy, so in-place operations later in the network cannot
    change them). ``only`` restricts the layers handed on (one pass of several);
    ``limit`` runs only the first ``limit`` images (the shape probe). Returns the layer
    names in execution order.
    """
    import torch
    from tqdm.auto import tqdm

    from brainalign.models.extraction import _first_tensor, _load_batch

    names = _leaf_names(model, layers)
    mods = dict(model.named_modules())
    order: list[str] = []
    calls: dict[str, int] = {}
    state = {"start": 0, "size": 0}

    def hook_for(name):
        def hook(_module, _inputs, output):
            j = calls.get(name, 0)
            calls[name] = j + 1
            key = name if j == 0 else f"{name}:{j}"
            t = _first_tensor(output)
            if t is None or t.ndim < 1 or t.shape[0] != state["size"]:
                return
            if key not in order:
                order.append(key)
            if only is not None and key not in only:
                return
            x = t.detach().float().cpu().numpy().astype(np.float32, copy=True)
            for c in consumers:
                c(key, x, state["start"])

        return hook

    n = len(images) if limit is None else min(int(limit), len(images))
    model.to(device).eval()
    handles = [mods["" if nm == "model" else nm].register_forward_hook(hook_for(nm)) for nm in names]
    try:
        bar = tqdm(range(0, n, int(batch_size)), desc=desc or "units", unit="batch", file=sys.stderr,
                   disable=not progress)
        with torch.no_grad():
            for start in bar:
                stop = min(start + int(batch_size), n)
                calls.clear()
                state.update(start=start, size=stop - start)
                model(_load_batch(images, transform, start, stop).to(device))
    finally:
        for h in handles:
            h.remove()
    return order


def network_layer_shapes(model, transform, images, *, layers="all", device="cpu") -> dict[str, tuple]:
    """Per-stimulus output shape of every layer (execution order), from one image."""
    shapes: dict[str, tuple] = {}

    def record(name, x, _start):
        shapes[name] = tuple(int(s) for s in x.shape[1:])

    stream_network(model, transform, images, [record], layers=layers, batch_size=1, device=device,
                   progress=False, limit=1)
    if not shapes:
        raise InputError("No layer of the network gave a batch-major tensor output.")
    return shapes


def _passes(shapes, n_sites, budget_bytes, copies=1):
    from brainalign.unit_matching import plan_passes

    units = {k: int(np.prod(v, dtype=np.int64)) for k, v in shapes.items()}
    return plan_passes(units, n_sites, max(1, int(budget_bytes) // max(1, copies)), holdout=True)


def match_model(model, transform, images, responses, *, layers="all", batch_size=32, device="cpu",
                memory_budget_bytes=8 * 2**30, progress=True, desc="", **matcher_kwargs):
    """The paper's neural correlation for one network (:class:`MatchResult`), streamed.

    Layers are grouped into passes over the images whose accumulators fit
    ``memory_budget_bytes`` (:func:`~brainalign.unit_matching.plan_passes`); every pass
    feeds one :class:`~brainalign.unit_matching.UnitMatcher`. ``matcher_kwargs`` go to it
    (``top_k``, ``holdout``, ``holdout_seed``, ``strata``).
    """
    from brainalign.unit_matching import UnitMatcher

    shapes = network_layer_shapes(model, transform, images, layers=layers, device=device)
    order = list(shapes)
    matcher = UnitMatcher(responses, layer_order=order, **matcher_kwargs)
    for i, group in enumerate(_passes(shapes, matcher.n_sites, memory_budget_bytes)):
        stream_network(model, transform, images, [matcher.update], layers=layers, only=set(group),
                       batch_size=batch_size, device=device, progress=progress,
                       desc=f"{desc} pass {i + 1}".strip())
    return matcher.result()


def _rotations(shapes, n_runs, seed):
    """Per run, a Haar-random rotation of the channels of every conv layer (4-D outputs)."""
    from brainalign.unit_matching import random_rotation

    out = []
    for run in range(int(n_runs)):
        rots = {}
        for j, (name, shape) in enumerate(shapes.items()):
            if len(shape) == 3 and shape[0] >= 2:
                rots[name] = random_rotation(shape[0], np.random.default_rng([int(seed), run, j]))
        out.append(rots)
    return out


def match_rotated(model, transform, images, responses, *, n_runs=10, seed=0, layers="all", batch_size=32,
                  device="cpu", memory_budget_bytes=8 * 2**30, progress=True, desc="", **matcher_kwargs):
    """The rotation control: ``n_runs`` results, each with every conv layer's channels rotated.

    Run ``k`` rotates the channel vector at every spatial location of conv layer ``j`` by a
    Haar-random R in SO(C) seeded by ``(seed, k, j)``; layers that are not conv maps
    (``(C, H, W)`` per stimulus) are matched unrotated. All runs share each forward pass.
    """
    from brainalign.unit_matching import UnitMatcher, rotate_channels

    shapes = network_layer_shapes(model, transform, images, layers=layers, device=device)
    rots = _rotations(shapes, n_runs, seed)
    matchers = [UnitMatcher(responses, layer_order=list(shapes), **matcher_kwargs) for _ in rots]

    def feed(name, x, start):
        for m, r in zip(matchers, rots, strict=True):
            m.update(name, rotate_channels(x, r[name]) if name in r else x, start)

    for i, group in enumerate(_passes(shapes, matchers[0].n_sites, memory_budget_bytes, len(rots))):
        stream_network(model, transform, images, [feed], layers=layers, only=set(group),
                       batch_size=batch_size,
                       device=device, progress=progress, desc=f"{desc} rotations pass {i + 1}".strip())
    return [m.result() for m in matchers]


def match_random_activations(responses, layer_shapes: Mapping, *, seed=0, batch_size=64, **matcher_kwargs):
    """The random-activation control: N(0, 1) units with the given layer shapes."""
    from brainalign.unit_matching import RandomActivations, UnitMatcher

    ra = RandomActivations(layer_shapes, seed=int(seed))
    m = UnitMatcher(responses, layer_order=ra.layers, **matcher_kwargs)
    n = m.n_stimuli
    for name in ra.layers:
        for start in range(0, n, int(batch_size)):
            rows = np.arange(start, min(start + int(batch_size), n))
            m.update(name, ra.batch(name, rows), rows)
    return m.result()


def match_pixels(images: ImageList, responses, *, batch_size=64, **matcher_kwargs):
    """The pixels control: the grayscale pixels of the stimulus images as units (one layer)."""
    from brainalign.unit_matching import UnitMatcher, pixels_layer

    m = UnitMatcher(responses, **matcher_kwargs)
    for start in range(0, len(images), int(batch_size)):
        stop = min(start + int(batch_size), len(images))
        m.update("pixels", pixels_layer(images.gray_array(start, stop)), start)
    return m.result()


def gather_units(model, transform, images, unit_sets: Mapping[str, tuple], *, layers="all", batch_size=32,
                 device="cpu", progress=True, desc="") -> dict[str, np.ndarray]:
    """Activations ``(n_images, n_columns)`` of chosen units, one pass: ``{name: (layers, units)}``."""
    from brainalign.unit_matching import UnitGatherer

    gatherers = {k: UnitGatherer(len(images), lay, units) for k, (lay, units) in unit_sets.items()}
    wanted = {name for g in gatherers.values() for name in g.layers}
    stream_network(model, transform, images, [g.update for g in gatherers.values()], layers=layers,
                   only=wanted, batch_size=batch_size, device=device, progress=progress,
                   desc=f"{desc} gather".strip())
    return {k: g.result() for k, g in gatherers.items()}


# --------------------------------------------------------------------------- decoding


def decode_model(matched, baseline, neural, labels, regions, *, n_runs_within=25, n_runs_across=5,
                 C_grid=(1e-3, 1e-2, 1e-1, 1.0, 10.0), n_cv_splits=10, classifier="linear_svc", seed=0,
                 region_order=("V4", "IT")) -> pd.DataFrame:
    """Matched-population decoding per region; one row per (region, condition).

    Conditions: ``neural`` (population bar), ``model`` (i), ``model_to_neural`` (ii),
    ``neural_to_model`` (iii) and their ``baseline*`` versions with random unmatched units.
    """
    from brainalign.population_decoding import matched_decoding

    regions = np.asarray(regions)
    rows = []
    for i, region in enumerate(r for r in region_order if (regions == r).any()):
        cols = regions == region
        res = matched_decoding(
            matched[:, cols], neural[:, cols], labels, baseline_units=baseline[:, cols],
            n_runs_within=n_runs_within, n_runs_across=n_runs_across, seed=int(seed) + 1000 * i,
            C_grid=tuple(float(c) for c in C_grid), n_cv_splits=n_cv_splits, classifier=classifier,
        )
        for cond, r in res.items():
            rows.append({"region": region, "condition": cond, "accuracy": r.mean, "sd": r.std,
                         "n_runs": len(r.accuracy), "median_C": float(np.median(r.C)), "chance": CHANCE})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- tables


def scores_table(model: str, result, regions, controls: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per region: median best r in-sample and held-out, best layer, control scores.

    ``controls``: long table (:func:`control_rows`) of control, run, region, median_r,
    median_r_heldout; each control gives ``<control>_r`` / ``<control>_r_heldout`` (mean
    over runs) and ``<control>_r_sd`` (sd over runs, ddof 1; 0 for one run).
    """
    regions = np.asarray(regions)
    score, held = result.score(regions), result.heldout_score(regions)
    best, best_h = result.best_layers(regions), result.best_layers(regions, heldout=True)
    depth = dict(zip(result.layers, result.depths.tolist(), strict=True))
    rows = []
    for region in score:
        row = {"model": model, "region": region, "n_sites": int((regions == region).sum()),
               "median_r": score[region], "median_r_heldout": held[region],
               "best_layer": best[region], "best_layer_depth": depth[best[region]],
               "best_layer_heldout": best_h[region],
               "median_best_unit_depth": float(np.nanmedian(result.best_depth[regions == region]))}
        if controls is not None:
            for name, g in controls[controls["region"] == region].groupby("control", sort=False):
                row[f"{name}_r"] = float(g["median_r"].mean())
                row[f"{name}_r_sd"] = float(g["median_r"].std(ddof=1)) if len(g) > 1 else 0.0
                row[f"{name}_r_heldout"] = float(g["median_r_heldout"].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def layer_table(model: str, result, regions) -> pd.DataFrame:
    """Per-layer best r: one row per (region, layer), median over sites, in-sample and held-out."""
    regions = np.asarray(regions)
    ins, held = result.layer_scores(regions), result.layer_scores(regions, heldout=True)
    rows = []
    for region in ins:
        for j, layer in enumerate(result.layers):
            rows.append({"model": model, "region": region, "layer": layer, "layer_index": j,
                         "depth": float(result.depths[j]), "median_r": float(ins[region][j]),
                         "median_r_heldout": float(held[region][j])})
    return pd.DataFrame(rows)


def units_table(model: str, result, regions, neuroid_ids) -> pd.DataFrame:
    """One row per site: its best unit (layer, feature map, location, depth) and r."""
    layers = np.asarray(result.layers)
    ok = result.best_layer >= 0
    return pd.DataFrame({
        "model": model, "neuroid_id": np.asarray(neuroid_ids), "region": np.asarray(regions),
        "best_r": result.best_r, "heldout_r": result.heldout_r,
        "layer": np.where(ok, layers[np.maximum(result.best_layer, 0)], ""),
        "unit": result.best_unit, "channel": result.best_channel, "y": result.best_y, "x": result.best_x,
        "depth": result.best_depth,
    })


# --------------------------------------------------------------------------- demo


def _gtnet_activations(images: ImageList, stages) -> dict[str, np.ndarray]:
    from brainalign.models.registry import BRAINALIGN_MODELS

    ctor, tf = BRAINALIGN_MODELS["gtnet"]()
    acts = {s: [] for s in stages}

    def keep(name, x, _start):
        if name in acts:
            acts[name].append(x.reshape(len(x), -1).astype(np.float64))

    stream_network(ctor(), tf(), images, [keep], layers=list(stages), batch_size=128, progress=False)
    return {s: np.concatenate(v) for s, v in acts.items()}


def write_demo(out_dir, *, n_v4=20, n_it=30, noise_sd=0.5, v4_layer="stage1", it_layer="stage4",
               objects_per_category=6, images_per_object=3, image_size=64, n_repetitions=2,
               repetition_sd=1.0, seed=0) -> dict:
    """Write the demo's stimulus set, assembly (``assembly.nc``) and ``truth.json`` under ``out_dir``.

    The images are run through ``gtnet`` exactly as the workflow runs a registry model
    (the registry's transform, the images read back from disk). V4 site ``i`` is
    ``z(unit) + noise_sd * e`` of a distinct random unit of ``v4_layer`` (z-scored over
    stimuli; units with an sd below half the layer's median sd are not chosen), IT sites
    likewise from ``it_layer``; each site is then scaled and offset like a firing rate.
    Repetitions add ``repetition_sd`` noise that the repetition average removes exactly.
    Returns the truth record.
    """
    from brainalign.io.majajhong2015_synthetic import make_synthetic_assembly, write_stimulus_set

    rng = make_rng(seed)
    out_dir = Path(out_dir)
    stim = write_stimulus_set(out_dir, objects_per_category=objects_per_category,
                              images_per_object=images_per_object, size=image_size, seed=rng)
    # the workflow's row order: stimulus ids sorted as strings (load_majajhong2015)
    order = np.argsort(stim.stimulus_ids)
    images = ImageList([Path(stim.image_dir) / f for f in stim.filenames[order]])
    acts = _gtnet_activations(images, (v4_layer, it_layer))
    sites, truth_sites = [], []
    for region, layer, n in (("V4", v4_layer, n_v4), ("IT", it_layer, n_it)):
        a = acts[layer]
        sd = a.std(axis=0)
        live = np.flatnonzero(sd > 0.5 * np.median(sd[sd > 0]))
        if len(live) < n:
            raise InputError(f"write_demo: {layer} has {len(live)} usable units; {n} {region} sites asked.")
        units = np.sort(rng.choice(live, size=n, replace=False))
        z = (a[:, units] - a[:, units].mean(axis=0)) / sd[units]
        sites.append(z + noise_sd * rng.standard_normal(z.shape))
        truth_sites += [{"region": region, "layer": layer, "unit": int(u)} for u in units]
    y = np.concatenate(sites, axis=1)
    y = y * rng.uniform(5, 15, y.shape[1]) + rng.uniform(20, 40, y.shape[1])
    regions = ["V4"] * n_v4 + ["IT"] * n_it
    st_sorted = {"stimulus_ids": stim.stimulus_ids[order], "category_name": stim.category_name[order],
                 "object_name": stim.object_name[order], "variation": stim.variation[order]}
    make_synthetic_assembly(out_dir / "assembly.nc", y, stimuli=st_sorted, regions=regions,
                            n_repetitions=n_repetitions, noise_sd=repetition_sd, seed=rng)
    truth = {"planted_layers": {"V4": v4_layer, "IT": it_layer}, "noise_sd": noise_sd,
             "expected_r": 1.0 / float(np.sqrt(1.0 + noise_sd**2)), "sites": truth_sites,
             "n_stimuli": int(len(order))}
    with atomic_path(out_dir / "truth.json") as tmp:
        Path(tmp).write_text(json.dumps(truth, indent=1))
    return truth


# --------------------------------------------------------------------------- script helpers


def load_inputs(assembly, stimulus_csv, image_dir, *, variation=None, regions=("V4", "IT")):
    """The assembly (sites of ``regions`` only) and its images, in the assembly's stimulus order."""
    from brainalign.io.majajhong2015 import load_majajhong2015, load_stimulus_set

    data = load_majajhong2015(assembly, variation=variation)
    keep = np.isin(data.region, list(regions))
    if not keep.any():
        raise InputError(
            f"{assembly}: no site of the regions {list(regions)} (config key arend2018.regions)."
        )
    import dataclasses

    data = dataclasses.replace(data, responses=data.responses[:, keep], neuroid_id=data.neuroid_id[keep],
                               region=data.region[keep], animal=data.animal[keep], arr=data.arr[keep])
    return data, ImageList(load_stimulus_set(stimulus_csv, image_dir, data.stimulus_ids))


def control_rows(control: str, results: Sequence, regions) -> pd.DataFrame:
    """Long table of a control's scores: control, run, region, median_r, median_r_heldout."""
    rows = []
    for k, r in enumerate(results):
        s, h = r.score(regions), r.heldout_score(regions)
        rows += [{"control": control, "run": k, "region": g, "median_r": s[g], "median_r_heldout": h[g]}
                 for g in s]
    return pd.DataFrame(rows)
