"""Kuzovkin et al. (2018, Commun Biol): the glue of the intracranial analysis.

The numerics live in :mod:`brainalign.intracranial` (RSA, permutation test, alignment,
mapping matrices, split-half noise) and the reader in :mod:`brainalign.io.kuzovkin2018`;
this module turns them into the paper's artifacts:

- :func:`check_config` resolves the ``kuzovkin2018`` config section at start-up: the band x
  window folders, the subject files of each, the stimulus images (``InputError`` naming the
  config key);
- :func:`write_demo` writes synthetic subjects in the real ``.mat`` layout (alternately
  MATLAB v5 and v7.3), one folder per band x window, with a planted answer taken from the
  ground-truth network (:mod:`brainalign.models.gtnet`): probes in Brodmann areas 17/18 whose
  high-gamma power reads out ``stage1``, areas 37/20 ``stage5``, area 19 both; every
  other band (and every probe outside the visual areas) is noise; some trials rejected;
- :func:`layer_rdms` / :func:`pixel_rdm`: one RDM per layer of a feature file, in the paper's
  metric: **Euclidean distance** between activation vectors (the authors' ``RDM.py`` runs
  ``pdist(..., 'euclidean')`` for pixels, DNN layers and probes alike). A layer whose raw
  features were not kept (wider than ``extraction.raw_max_units``) gets the Euclidean
  distance between its sparse random projections, which preserve Euclidean distances
  within the projection's ``eps`` (Johnson-Lindenstrauss); ``metrics`` records which;
- :func:`probe_layer_table`: the permutation test of every probe x layer of every subject of
  one band x window (one call of :func:`brainalign.intracranial.permutation_test` per subject,
  all models' layers at once, the same permutations for every subject, band and model);
- :func:`alignment_table`, :func:`mapping_table`, :func:`layer_fraction_table`: rho_align
  and Kendall tau with the split-half noise band, the area x layer mapping matrices and the
  fraction of significant probes per layer, per band x window x model.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from brainalign.intracranial import (
    VISUAL_AREAS,
    alignment,
    mapping_matrix,
    permutation_test,
    split_half_alignment,
)
from brainalign.io.kuzovkin2018 import (
    BANDS,
    FOLDER_TEMPLATE,
    WINDOWS,
    band_window_folder,
    load_intracranial,
    subject_files,
)
from brainalign.utils import InputError, atomic_path, check_ids_match, make_rng

__all__ = [
    "DEMO_AREA_STAGES",
    "DEMO_BAND",
    "PIXELS",
    "check_config",
    "demo_paths",
    "write_demo",
    "pixel_rdm",
    "layer_rdms",
    "write_layer_rdms",
    "read_layer_rdms",
    "probe_layer_table",
    "alignment_table",
    "mapping_table",
    "layer_fraction_table",
]

#: Planted gtnet stage(s) of each visual area in the demo: 17/18 early, 37/20 late, 19 in
#: between (the sum of an early and a late read-out; "+" joins stages).
DEMO_AREA_STAGES = {17: "stage1", 18: "stage1", 19: "stage1+stage5", 37: "stage5", 20: "stage5"}
#: The band whose probes carry the planted read-out in the demo.
DEMO_BAND = "highgamma"
#: Name of the pixel "layer" (layer index 0, before the network's layers).
PIXELS = "pixels"
_OTHER_AREAS = (21, 0)  # areas of the demo's non-visual probes (0 = no Brodmann area)
_STR = h5py.string_dtype("utf-8")


# --------------------------------------------------------------------------- config


def _names(value, key: str, allowed: dict) -> list[str]:
    names = [value] if isinstance(value, str) else list(value)
    unknown = [v for v in names if v not in allowed]
    if unknown or not names:
        raise InputError(
            f"config key {key}: unknown or empty {unknown or names}; expected names from "
            f"{list(allowed)}."
        )
    return names


def demo_paths(root, *, subjects, bands, windows, n_stimuli: int, n_categories: int = 5,
               template: str = FOLDER_TEMPLATE) -> dict:
    """The files :func:`write_demo` writes under ``root``.

    ``{"truth": path, "stimuli": [png paths], "data_root": root/"data", "files":
    {(band, window): {subject: path}}}``; subjects are named ``S01``, ``S02`` ...
    """
    root = Path(root)
    per = _per_category(n_stimuli, n_categories)
    names = _demo_image_names(n_categories, per)
    subs = [_demo_subject(s) for s in subjects]
    files = {}
    for b in bands:
        for w in windows:
            folder = band_window_folder(root / "data", b, w, template)
            files[(b, w)] = {s: folder / f"{s}.mat" for s in subs}
    return {
        "truth": root / "truth.json",
        "stimuli": [root / "stimuli" / f"{n}.png" for n in names],
        "data_root": root / "data",
        "files": files,
    }


def _demo_subject(s) -> str:
    return f"S{int(s):02d}"


def _per_category(n_stimuli: int, n_categories: int) -> int:
    if n_stimuli % n_categories or n_stimuli < 2 * n_categories:
        raise InputError(
            f"config key kuzovkin2018.demo.n_images: {n_stimuli} is not a multiple (>= 2x) of "
            f"kuzovkin2018.demo.n_categories = {n_categories}."
        )
    return n_stimuli // n_categories


def _demo_image_names(n_categories: int, per: int) -> list[str]:
    from brainalign.demo import CATEGORIES

    return [f"{CATEGORIES[c]}{k + 1:02d}" for c in range(n_categories) for k in range(per)]


def check_config(cfg: dict, *, demo: bool, demo_root) -> dict:
    """Resolve the ``kuzovkin2018`` section at start-up; raise :class:`InputError` naming the key.

    Returns ``{"bands": [...], "windows": [...], "subjects": [names], "stimuli": [image
    paths], "n_stimuli": n, "files": {(band, window): {subject: path}}}``. With ``demo`` the
    paths are the demo's (the demo job writes them) and ``root`` / ``stimuli.dir`` must be the
    demo's; otherwise the folders are listed now (:func:`brainalign.io.kuzovkin2018.subject_files`)
    and ``subjects`` (``all`` or a list of file stems) picked from them.
    """
    bands = _names(cfg["bands"], "kuzovkin2018.bands", BANDS)
    windows = _names(cfg["windows"], "kuzovkin2018.windows", WINDOWS)
    template = cfg["folder_template"]
    try:
        band_window_folder(".", bands[0], windows[0], template)
    except InputError as err:
        raise InputError(f"config key kuzovkin2018.folder_template: {err}") from None
    models = list(cfg["models"])
    if not models:
        raise InputError("config key kuzovkin2018.models: name at least one model.")
    if demo:
        d = cfg["demo"]
        paths = demo_paths(demo_root, subjects=range(1, int(d["n_subjects"]) + 1), bands=bands,
                           windows=windows, n_stimuli=int(d["n_images"]),
                           n_categories=int(d["n_categories"]), template=template)
        for key, have, want in (("kuzovkin2018.root", cfg["root"], paths["data_root"]),
                                ("kuzovkin2018.stimuli.dir", cfg["stimuli"]["dir"],
                                 Path(demo_root) / "stimuli")):
            if Path(have) != Path(want):
                raise InputError(
                    f"config key {key} is {have!r}, but with demo.enabled the Kuzovkin 2018 demo "
                    f"writes {str(want)!r}; keep the default, or set demo.enabled: false for real data."
                )
        if int(cfg["n_stimuli"]) != int(d["n_images"]):
            raise InputError(
                f"config key kuzovkin2018.n_stimuli is {cfg['n_stimuli']}, but the demo writes "
                f"kuzovkin2018.demo.n_images = {d['n_images']} images; set both to the same number."
            )
        files = paths["files"]
        stimuli = [str(p) for p in paths["stimuli"]]
    else:
        root = Path(cfg["root"])
        if not root.is_dir():
            raise InputError(f"config key kuzovkin2018.root: folder {root} not found; expected one "
                             "folder per band x window (kuzovkin2018.folder_template) under it.")
        try:
            files = subject_files(root, bands, windows, template)
        except InputError as err:
            raise InputError(f"config keys kuzovkin2018.root / .folder_template: {err}") from None
        folder = Path(cfg["stimuli"]["dir"])
        stimuli = sorted(str(p) for p in folder.glob(cfg["stimuli"]["pattern"]) if p.is_file())
        if not stimuli:
            raise InputError(
                f"config keys kuzovkin2018.stimuli.dir / .pattern: no image matches "
                f"{cfg['stimuli']['pattern']!r} in {folder}; expected the stimulus images, named as "
                "in s.stimseq (<name>.<ext>)."
            )
        n = cfg["n_stimuli"]
        if n is not None and len(stimuli) != int(n):
            raise InputError(
                f"config keys kuzovkin2018.stimuli.dir / .n_stimuli: {len(stimuli)} images match "
                f"{cfg['stimuli']['pattern']!r} in {folder}, expected {n}."
            )
    available = sorted(next(iter(files.values())))
    wanted = cfg["subjects"]
    if wanted == "all":
        subjects = available
    else:
        subjects = [_demo_subject(s) if isinstance(s, int) else str(s) for s in wanted]
        missing = [s for s in subjects if s not in available]
        if missing:
            raise InputError(
                f"config key kuzovkin2018.subjects: {missing} not found; subjects (file stems) are "
                f"{available[:20]}{' ...' if len(available) > 20 else ''}."
            )
    if len(subjects) < 2:
        raise InputError(
            f"config key kuzovkin2018.subjects: {len(subjects)} subject(s); the split-half noise "
            "estimate needs at least 2."
        )
    files = {k: {s: str(v[s]) for s in subjects} for k, v in files.items()}
    return {"bands": bands, "windows": windows, "subjects": subjects, "stimuli": stimuli,
            "n_stimuli": len(stimuli), "files": files}


# --------------------------------------------------------------------------- demo


def _centred(a: np.ndarray) -> np.ndarray:
    x = a.reshape(len(a), -1).astype(np.float64)
    return x - x.mean(axis=0)


def _top_components(x: np.ndarray, k: int) -> np.ndarray:
    u, _, _ = np.linalg.svd(x, full_matrices=False)
    return u[:, :k]


def _planted_components(images, stages, *, residual_pcs: int, n_components: int = 3) -> dict:
    """Per planted stage: its top principal components (unit sd) after projecting out the top
    ``residual_pcs`` components of the pixels and of the other end of the hierarchy.

    gtnet's stage1-4 RDMs are nearly the same (Spearman ~0.97), and every layer's Euclidean
    RDM shares the images' contrast structure with the pixels; reading out a stage's own part
    keeps the planted layer identifiable (early probes reach stage1-4, late ones stage5).
    """
    from brainalign.demo import gtnet_activations

    acts = gtnet_activations(images, stages=tuple(sorted(set(stages) | {"stage1", "stage5"})))
    feats = {PIXELS: _centred(images), **{s: _centred(a) for s, a in acts.items()}}
    out = {}
    for stage in set(stages):
        others = [PIXELS, "stage1" if stage == "stage5" else "stage5"]
        x = feats[stage]
        if residual_pcs:
            q, _ = np.linalg.qr(np.hstack([_top_components(feats[o], residual_pcs) for o in others]))
            x = x - q @ (q.T @ x)
        u = _top_components(x, n_components)
        out[stage] = u / u.std(axis=0)
    return out


def write_demo(root, *, n_subjects: int = 6, n_images: int = 125, n_categories: int = 5,
               probes_per_area: int = 4, n_other_probes: int = 4, noise_sd: float = 0.2,
               residual_pcs: int = 4, reject_fraction: float = 0.02, bands=None, windows=None,
               template: str = FOLDER_TEMPLATE, seed=0) -> dict:
    """Write the Kuzovkin-style demo under ``root`` and return its truth record.

    - ``stimuli/<category><k>.png``: ``n_images`` procedural images, ``n_categories``
      categories of equal size (:func:`brainalign.demo.make_images`);
    - ``data/<band x window folder>/S01.mat`` ...: one file per subject and band x window, in
      the authors' layout (:func:`brainalign.io.kuzovkin2018_synthetic.write_intracranial_mat`),
      odd subjects MATLAB v5, even ones v7.3, each with its own random presentation order
      (``stimseq``). Every subject has ``probes_per_area`` probes in each of the areas 17, 18,
      19, 37, 20 and ``n_other_probes`` outside them. In the high-gamma folders a visual
      probe's power is ``1 + 0.3 (s + noise_sd e)``: ``s`` a random mix (unit sd) of the
      planted stage's own top components (:data:`DEMO_AREA_STAGES`,
      :func:`_planted_components`), ``e`` independent N(0, 1) noise per band x window; in every
      other folder, and for the other probes, ``s = 0`` (noise only).
    - Rejected trials (``-123456``): ``reject_fraction`` of the trials of every subject for
      all its probes, 10 % more for one probe, and 80 % for one non-visual probe (fewer valid
      trials than any sensible ``min_valid``: dropped by the analysis).

    ``truth.json``: planted band, area -> stage, subjects and their MATLAB versions, images.
    """
    from PIL import Image

    from brainalign.demo import make_images
    from brainalign.io.kuzovkin2018_synthetic import write_intracranial_mat

    bands = list(BANDS) if bands is None else list(bands)
    windows = list(WINDOWS) if windows is None else list(windows)
    paths = demo_paths(root, subjects=range(1, n_subjects + 1), bands=bands, windows=windows,
                       n_stimuli=n_images, n_categories=n_categories, template=template)
    per = n_images // n_categories
    names = np.array(_demo_image_names(n_categories, per))
    rng = make_rng(seed)
    images, labels = make_images(n_images, n_categories=n_categories, seed=int(rng.integers(2**31)))
    order = np.argsort(labels, kind="stable")  # image k of category c -> names[c * per + k]
    images, labels = images[order], labels[order]
    for path, img in zip(paths["stimuli"], images, strict=True):
        with atomic_path(path) as tmp:
            Image.fromarray(img).save(tmp, format="PNG")
    stages = {st for v in DEMO_AREA_STAGES.values() for st in v.split("+")}
    comps = _planted_components(images, stages, residual_pcs=residual_pcs)

    areas = [a for a in DEMO_AREA_STAGES for _ in range(probes_per_area)]
    areas += [_OTHER_AREAS[k % len(_OTHER_AREAS)] for k in range(n_other_probes)]
    areas = np.array(areas)
    n_probes = len(areas)
    versions = {}
    for s in range(1, n_subjects + 1):
        subject = _demo_subject(s)
        versions[subject] = "5" if s % 2 else "7.3"
        signal = np.zeros((n_images, n_probes))
        for p, area in enumerate(areas):
            if area in DEMO_AREA_STAGES:
                sig = np.zeros(n_images)
                for stage in DEMO_AREA_STAGES[area].split("+"):
                    w = np.array([1.0, 0.5, 0.25]) * rng.choice([-1.0, 1.0], 3) * rng.uniform(0.5, 1.5, 3)
                    part = comps[stage] @ w
                    sig += part / part.std()
                signal[:, p] = sig / sig.std()
        rejected = np.zeros((n_images, n_probes), dtype=bool)
        rejected[rng.random(n_images) < reject_fraction] = True
        if n_probes > 1:
            rejected[rng.random(n_images) < 0.1, 0] = True
        if n_other_probes:
            rejected[rng.random(n_images) < 0.8, n_probes - 1] = True
        presentation = rng.permutation(n_images)  # row i of the file = image presentation[i]
        rods = [chr(ord("A") + p // 3) for p in range(n_probes)]
        probe_ids = [p % 3 + 1 for p in range(n_probes)]
        mni = np.round(rng.uniform(-60, 60, (n_probes, 3)), 2)
        for (band, _window), files in paths["files"].items():
            planted = signal if band == DEMO_BAND else np.zeros_like(signal)
            data = 1.0 + 0.3 * (planted + noise_sd * rng.standard_normal(signal.shape))
            data[rejected] = np.nan
            write_intracranial_mat(
                files[subject], version=versions[subject], data=data[presentation],
                stimseq=names[presentation], rod_names=rods, probe_ids=probe_ids, mni=mni,
                areas=areas, name=subject, stimgroups=10 * (labels[presentation] + 1),
            )
    truth = {
        "ground_truth_model": "gtnet",
        "planted_band": DEMO_BAND,
        "area_stages": {str(a): s for a, s in DEMO_AREA_STAGES.items()},
        "subjects": list(versions),
        "mat_versions": versions,
        "images": names.tolist(),
        "probes_per_area": probes_per_area,
        "noise_sd": noise_sd,
    }
    with atomic_path(paths["truth"]) as tmp:
        tmp.write_text(json.dumps(truth, indent=1))
    return truth


# --------------------------------------------------------------------------- layer RDMs


def pixel_rdm(images, size: int) -> np.ndarray:
    """Euclidean RDM of the images' RGB pixels (0..1) after resizing to ``size`` x ``size``."""
    from PIL import Image

    rows = []
    for img in images:
        im = img if isinstance(img, Image.Image) else Image.fromarray(np.asarray(img))
        im = im.convert("RGB").resize((int(size), int(size)), Image.BILINEAR)
        rows.append(np.asarray(im, dtype=np.float64).reshape(-1) / 255.0)
    from brainalign.rdm import compute_rdm

    return compute_rdm(np.stack(rows), "euclidean")


def layer_rdms(features_path, *, layers=None, pixels: np.ndarray | None = None) -> dict:
    """Euclidean RDM of every selected layer of a feature file, in execution (depth) order.

    ``pixels`` (a condensed RDM over the same stimuli, :func:`pixel_rdm`) becomes layer 0,
    named :data:`PIXELS`. Returns ``{"stimulus_ids", "layers", "rdms" (n_layers, n_pairs),
    "metrics" ("euclidean", or "euclidean_srp" for a layer without raw features)}``. A layer
    whose RDM is constant (all stimuli give the same activations) is left out.
    """
    from brainalign.cichy2016 import select_layers
    from brainalign.models.extraction import feature_layers, read_feature_ids, read_layer
    from brainalign.rdm import compute_rdm

    names = select_layers([n for n, _, _ in feature_layers(features_path)], layers,
                          what="kuzovkin2018.layers")
    ids = np.asarray(read_feature_ids(features_path)).astype(str)
    out_names, rdms, metrics = [], [], []
    if pixels is not None:
        out_names.append(PIXELS)
        rdms.append(np.asarray(pixels, dtype=np.float64))
        metrics.append("euclidean")
    for name in names:
        d = read_layer(features_path, name)
        if d["raw"] is not None:
            rdm, used = compute_rdm(d["raw"].astype(np.float64), "euclidean"), "euclidean"
        else:
            rdm, used = compute_rdm(d["srp"].astype(np.float64), "euclidean"), "euclidean_srp"
        if np.ptp(rdm) == 0:
            print(f"{features_path}: layer {name!r} has a constant RDM; left out.")
            continue
        out_names.append(name)
        rdms.append(rdm)
        metrics.append(used)
    k = len(ids) * (len(ids) - 1) // 2
    if pixels is not None and rdms[0].shape != (k,):
        raise InputError(f"pixel RDM has {rdms[0].size} pairs; the feature file has {len(ids)} stimuli.")
    return {"stimulus_ids": ids, "layers": out_names, "rdms": np.stack(rdms), "metrics": metrics}


def write_layer_rdms(path, rdms: dict, *, model: str) -> None:
    """Write :func:`layer_rdms` output to HDF5 (atomically)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["model"] = model
        f.attrs["layer_order"] = np.array(rdms["layers"], dtype=_STR)
        f.attrs["metrics"] = np.array(rdms["metrics"], dtype=_STR)
        f.create_dataset("stimulus_ids", data=np.array(rdms["stimulus_ids"], dtype=_STR))
        f.create_dataset("rdms", data=rdms["rdms"])


def read_layer_rdms(path) -> dict:
    """Read a :func:`write_layer_rdms` file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Layer RDM file {path} does not exist.")
    with h5py.File(path, "r") as f:
        def names(key):
            return [v.decode() if isinstance(v, bytes) else str(v) for v in f.attrs[key]]

        return {"model": str(f.attrs["model"]), "layers": names("layer_order"),
                "metrics": names("metrics"), "stimulus_ids": f["stimulus_ids"].asstr()[()],
                "rdms": f["rdms"][()]}


# --------------------------------------------------------------------------- tests per probe


def _stimulus_ids(subject, ids: np.ndarray) -> np.ndarray:
    """The model's stimulus order in the subject's terms: numeric ``stimseq`` (1..n) names the
    images by their position in file-name order (the stimulus table's order)."""
    if subject.stimseq.dtype.kind in "iu":
        return (np.argsort(np.argsort(ids)) + 1).astype(str)  # rank of each id in name order
    return ids


def probe_layer_table(files: dict, model_rdms: dict, *, band: str, window: str,
                      n_stimuli: int | None = None, n_permutations: int = 10000, alpha: float = 0.001,
                      min_valid: int = 50, null: str = "valid", seed=0, n_jobs: int = 1) -> pd.DataFrame:
    """Permutation test of every probe x layer of every subject of one band x window.

    Parameters
    ----------
    files : dict subject -> .mat path
    model_rdms : dict model -> :func:`layer_rdms` output (same stimuli, any order)
    n_stimuli, n_permutations, alpha, min_valid, null, seed, n_jobs
        See :func:`brainalign.io.kuzovkin2018.load_intracranial` and
        :func:`brainalign.intracranial.permutation_test`; every subject uses the same seed.

    Returns
    -------
    DataFrame, one row per subject x probe x model x layer: band, window, subject, probe
    (0-based column of ``s.data``), rod, probe_id, area, mni_x/y/z, n_valid, kept, model,
    layer, layer_index (depth order within the model), rho, p, significant.
    """
    models = list(model_rdms)
    ref = model_rdms[models[0]]
    ids = np.asarray(ref["stimulus_ids"]).astype(str)
    stacked, columns = [], []
    for m in models:
        r = model_rdms[m]
        check_ids_match(np.asarray(r["stimulus_ids"]).astype(str), ids, f"layer RDMs of {m}",
                        f"layer RDMs of {models[0]}")
        stacked.append(r["rdms"])
        columns += [(m, layer, k) for k, layer in enumerate(r["layers"])]
    rdms = np.vstack(stacked)
    frames = []
    for subject, path in files.items():
        subj = load_intracranial(path, n_stimuli=n_stimuli)
        x = subj.responses(_stimulus_ids(subj, ids))
        res = permutation_test(x, rdms, n_permutations=n_permutations, seed=seed, min_valid=min_valid,
                               alpha=alpha, null=null, n_jobs=n_jobs)
        print(f"{band} {window} {subject} (MATLAB {subj.mat_version}): {subj.n_probes} probes, "
              f"{int(res.kept.sum())} kept ({res.n_dropped_few_trials} with fewer than {min_valid} "
              f"valid trials, {res.n_dropped_constant} constant), "
              f"{int(np.isnan(subj.data).sum())} rejected trials, "
              f"{int(res.significant.sum())} significant probe-layer pairs")
        n_p, n_l = res.rho.shape
        probe = np.repeat(np.arange(n_p), n_l)
        col = np.tile(np.arange(n_l), n_p)
        frames.append(pd.DataFrame({
            "band": band, "window": window, "subject": subject, "probe": probe,
            "rod": subj.rod_names[probe], "probe_id": subj.probe_ids[probe], "area": subj.areas[probe],
            "mni_x": subj.mni[probe, 0], "mni_y": subj.mni[probe, 1], "mni_z": subj.mni[probe, 2],
            "n_valid": res.n_valid[probe], "kept": res.kept[probe],
            "model": [columns[c][0] for c in col], "layer": [columns[c][1] for c in col],
            "layer_index": [columns[c][2] for c in col],
            "rho": res.rho.reshape(-1), "p": res.p.reshape(-1), "significant": res.significant.reshape(-1),
        }))
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- assembly


def _matrices(table: pd.DataFrame):
    """Per subject (sorted): significant (n_probes, n_layers), areas, kept, rho; and layer names."""
    layers = (table[["layer_index", "layer"]].drop_duplicates().sort_values("layer_index")["layer"]
              .tolist())
    sig, areas, kept, rho, subjects = [], [], [], [], []
    for subject, t in table.groupby("subject", sort=True):
        t = t.sort_values(["probe", "layer_index"])
        n_l = len(layers)
        n_p = len(t) // n_l
        if n_p * n_l != len(t):
            raise InputError(f"subject {subject}: {len(t)} rows are not probes x {n_l} layers.")
        sig.append(t["significant"].to_numpy(bool).reshape(n_p, n_l))
        rho.append(t["rho"].to_numpy(float).reshape(n_p, n_l))
        areas.append(t["area"].to_numpy(int).reshape(n_p, n_l)[:, 0])
        kept.append(t["kept"].to_numpy(bool).reshape(n_p, n_l)[:, 0])
        subjects.append(subject)
    return subjects, layers, sig, areas, kept, rho


def _groups(table: pd.DataFrame):
    for (band, window, model), t in table.groupby(["band", "window", "model"], sort=False):
        yield band, window, model, t


def alignment_table(table: pd.DataFrame, *, n_splits: int = 1000, seed=0, min_points: int = 10,
                    visual_areas=VISUAL_AREAS) -> pd.DataFrame:
    """rho_align and Kendall tau per band x window x model, with the split-half noise band.

    ``table``: :func:`probe_layer_table` rows (several bands, windows, models). rho_align
    (:func:`brainalign.intracranial.alignment`) runs over the significant probe-layer pairs of
    all subjects' probes in ``visual_areas``; ``reliable`` is ``n_points >= min_points`` (a
    correlation over a handful of chance points means nothing; the paper had thousands). The
    noise band: rho_align of each half of ``n_splits`` random balanced halves of the subjects
    (:func:`brainalign.intracranial.split_half_alignment`): its mean, sd and 2.5/97.5 %
    percentiles.
    """
    rows = []
    for band, window, model, t in _groups(table):
        subjects, layers, sig, areas, _, _ = _matrices(t)
        a = alignment(np.vstack(sig), np.concatenate(areas), visual_areas)
        half = split_half_alignment(sig, areas, n_splits=n_splits, seed=seed, visual_areas=visual_areas)
        finite = half.rho[np.isfinite(half.rho)]
        lo, hi = (np.percentile(finite, [2.5, 97.5]) if finite.size else (np.nan, np.nan))
        rows.append({
            "band": band, "window": window, "model": model, "n_subjects": len(subjects),
            "n_layers": len(layers), "n_points": a.n_points, "reliable": a.n_points >= min_points,
            "rho_align": a.rho, "rho_p": a.rho_p, "tau": a.tau, "tau_p": a.tau_p,
            "split_half_mean": half.rho_mean, "split_half_sd": half.rho_sd,
            "split_half_lo": lo, "split_half_hi": hi,
            "split_half_tau_mean": float(np.nanmean(half.tau)) if np.isfinite(half.tau).any() else np.nan,
        })
    return pd.DataFrame(rows)


def mapping_table(table: pd.DataFrame, *, visual_areas=VISUAL_AREAS) -> pd.DataFrame:
    """The area x layer mapping matrices (fraction of the area's kept probes significant for the
    layer; :func:`brainalign.intracranial.mapping_matrix`) per band x window x model, long."""
    rows = []
    for band, window, model, t in _groups(table):
        _, layers, sig, areas, kept, rho = _matrices(t)
        m = mapping_matrix(np.vstack(sig), np.concatenate(areas), rho=np.vstack(rho),
                           kept=np.concatenate(kept), area_list=visual_areas)
        for i, area in enumerate(m.areas):
            for j, layer in enumerate(layers):
                rows.append({"band": band, "window": window, "model": model, "area": area,
                             "area_index": i, "layer": layer, "layer_index": j,
                             "count": int(m.counts[i, j]), "n_probes": int(m.n_probes[i]),
                             "fraction": m.fraction[i, j], "score": m.score[i, j]})
    return pd.DataFrame(rows)


def layer_fraction_table(table: pd.DataFrame, *, visual_areas=VISUAL_AREAS) -> pd.DataFrame:
    """Per band x window x model x layer: kept visual-area probes significant for the layer."""
    rows = []
    for band, window, model, t in _groups(table):
        t = t[t["kept"] & t["area"].isin(list(visual_areas))]
        for (index, layer), g in t.groupby(["layer_index", "layer"], sort=True):
            n = g[["subject", "probe"]].drop_duplicates().shape[0]
            k = int(g["significant"].sum())
            rows.append({"band": band, "window": window, "model": model, "layer": layer,
                         "layer_index": int(index), "n_significant": k, "n_probes": n,
                         "fraction": k / n if n else np.nan})
    return pd.DataFrame(rows)
