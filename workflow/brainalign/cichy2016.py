"""Cichy et al. (2016, Sci Rep): the embedded demo and the glue of the MEG/fMRI analyses.

The numerics live elsewhere (:mod:`brainalign.decoding`, :mod:`brainalign.stats`,
:mod:`brainalign.searchlight`, :mod:`brainalign.io.meg`, :mod:`brainalign.io.fmri`); this
module turns their outputs into the paper's artifacts and tidy tables:

- :func:`write_demo` writes a synthetic Cichy-style dataset in the real formats (PNG
  stimuli, one MNE ``-epo.fif`` per subject, condition-wise NIfTI volumes with ROI masks
  and a localiser) with a planted answer taken from the ground-truth network
  (:mod:`brainalign.models.gtnet`): the MEG sensor patterns read out ``stage1`` around
  100 ms and ``stage5`` around 160 ms; the fMRI volumes read out ``stage1`` around one
  voxel (inside ROI "V1") and ``stage5`` around another (inside ROI "IT"), with the signal
  strongest at those two voxels, the planted searchlight peaks. ``truth.json`` records them.
- :func:`model_rdms` / :func:`write_model_rdms` / :func:`read_model_rdms`: one RDM per layer
  of a feature file (1 - Spearman as in the paper) plus the whole-network summary RDM.
- :func:`meg_rsa`, :func:`meg_group_stats`: time-resolved model-MEG RSA per subject and
  layer, then peak latencies (bootstrap CIs), Spearman(layer, peak latency) and cluster
  tests over time.
- :func:`roi_layer_stats`, :func:`searchlight_group`: the fMRI statistics.

Model RDMs: a layer whose raw features were kept (``extraction.raw_max_units``) gets the
exact RDM in the requested metric. A wider layer keeps only its sparse random projection
(SRP), which preserves correlations between stimuli but not ranks of units, so its RDM is
1 - Pearson from the projection (:meth:`brainalign.linking.LayerFeatures.pearson_rdm`);
the ``metric`` attribute of each layer records which one was used.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from brainalign.rdm import compare_rdms, compute_rdm
from brainalign.utils import InputError, atomic_path, check_ids_match, check_option, make_rng

__all__ = [
    "DEMO_ROI_STAGES",
    "check_config",
    "load_meg",
    "load_fmri",
    "variant_differences",
    "demo_paths",
    "write_demo",
    "select_layers",
    "model_rdms",
    "write_model_rdms",
    "read_model_rdms",
    "meg_rsa",
    "meg_group_stats",
    "roi_similarities",
    "roi_layer_stats",
    "searchlight_group",
]

DEMO_ROI_STAGES = {"V1": "stage1", "IT": "stage5"}
SUMMARY = "whole_network"  # the summary RDM's name in tables, next to the layers
_STR = h5py.string_dtype("utf-8")


# --------------------------------------------------------------------------- demo data


def demo_paths(root, subjects, n_conditions: int) -> dict:
    """The files :func:`write_demo` writes under ``root`` (subjects as ints)."""
    root = Path(root)
    subs = [f"{int(s):02d}" for s in subjects]
    return {
        "truth": root / "truth.json",
        "stimuli": [root / "stimuli" / f"img-{c:03d}.png" for c in range(1, n_conditions + 1)],
        "meg": {s: root / "meg" / f"sub-{s}-epo.fif" for s in subs},
        "fmri": {
            s: {
                "volumes": root / "fmri" / f"sub-{s}" / "conditions.nii.gz",
                "localizer": root / "fmri" / f"sub-{s}" / "localizer.nii.gz",
                **{roi: root / "fmri" / f"sub-{s}" / f"{roi}.nii.gz" for roi in DEMO_ROI_STAGES},
            }
            for s in subs
        },
    }


def _row_standardise(a: np.ndarray) -> np.ndarray:
    """Each condition's feature ranks centred and scaled to unit sd: Euclidean distances between
    rows are then sqrt(2 n (1 - Spearman)), the geometry of the paper's 1 - Spearman RDMs."""
    from scipy.stats import rankdata

    flat = rankdata(a.reshape(len(a), -1), axis=1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    return flat / (flat.std(axis=1, keepdims=True) + 1e-12)


def _projected(features: np.ndarray, n_out: int, rng) -> np.ndarray:
    """Random linear read-out (n_conditions, n_out), centred over conditions, unit overall sd."""
    w = rng.standard_normal((features.shape[1], n_out)) / np.sqrt(features.shape[1])
    p = features @ w
    p -= p.mean(axis=0)
    return p / p.std()


def _meg_subject(acts: dict, peaks: dict, times, *, n_trials, n_channels, width, noise_sd, rng):
    n_cond = len(next(iter(acts.values())))
    signal = np.zeros((n_cond, n_channels, len(times)))
    for stage, peak in peaks.items():
        pattern = _projected(acts[stage], n_channels, rng)  # (n_cond, n_channels)
        envelope = np.exp(-0.5 * ((times - peak) / width) ** 2)
        signal += pattern[:, :, None] * envelope[None, None, :]
    evoked = np.exp(-0.5 * ((times - 0.12) / 0.05) ** 2) * rng.standard_normal(n_channels)[:, None]
    noise = rng.normal(0.0, noise_sd, size=(n_cond, n_trials, n_channels, len(times)))
    return (signal[:, None] + evoked[None, None] + noise) * 1e-12  # tesla-like scale


def _fmri_subject(acts: dict, centres: dict, shape, *, sigma_vox, amplitude, noise_sd, rng):
    n_cond = len(next(iter(acts.values())))
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), axis=-1)
    volumes = rng.normal(0.0, noise_sd, size=(n_cond, *shape))
    localizer = rng.normal(0.0, 0.5, size=shape)
    for stage, centre in centres.items():
        d2 = ((grid - np.asarray(centre)) ** 2).sum(axis=-1)
        amp = amplitude * np.exp(-d2 / (2 * sigma_vox**2))  # (X, Y, Z)
        latent = _projected(acts[stage], 256, rng)  # (n_cond, 256): the stage's geometry
        readout = latent @ rng.standard_normal((256, int(np.prod(shape))))  # each voxel its own mix
        readout /= readout.std(axis=0, keepdims=True) + 1e-12
        volumes += readout.reshape(n_cond, *shape) * amp[None]
        localizer += 3.0 * amp / amplitude
    return volumes, localizer


def _roi_mask(shape, centre, radius_vox: float) -> np.ndarray:
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), axis=-1)
    return ((grid - np.asarray(centre)) ** 2).sum(axis=-1) <= radius_vox**2


def write_demo(
    root,
    *,
    subjects=(1, 2, 3),
    n_conditions: int = 32,
    n_categories: int = 6,
    n_trials: int = 20,
    n_channels: int = 30,
    sfreq: float = 200.0,
    tmin: float = -0.1,
    n_times: int = 70,
    meg_peaks: dict | None = None,
    meg_width: float = 0.02,
    meg_noise_sd: float = 4.0,
    fmri_shape=(20, 16, 12),
    voxel_mm: float = 3.0,
    fmri_noise_sd: float = 1.0,
    roi_radius_vox: float = 4.0,
    seed=0,
) -> dict:
    """Write the Cichy-style demo dataset under ``root`` and return its truth record.

    Conditions ``1..n_conditions`` are procedural images (:func:`brainalign.demo.make_images`)
    saved as ``stimuli/img-NNN.png``. Every subject gets

    - ``meg/sub-XX-epo.fif``: ``n_trials`` trials per condition (event code = condition id,
      trials interleaved at random), ``n_channels`` Neuromag-like channels, ``n_times``
      samples at ``sfreq`` from ``tmin``. Channel patterns are subject-specific random
      read-outs of the row-standardised ``gtnet`` stages in ``meg_peaks`` (default stage1 at
      0.10 s, stage5 at 0.16 s), each with a Gaussian time envelope of sd ``meg_width`` s,
      plus a condition-independent evoked response and white noise of sd ``meg_noise_sd``
      (in units of the planted pattern's sd);
    - ``fmri/sub-XX/conditions.nii.gz`` (4-D, conditions on the last axis in condition
      order), ``V1.nii.gz`` and ``IT.nii.gz`` (spheres of ``roi_radius_vox`` voxels) and
      ``localizer.nii.gz`` (a grand-average-like map). Each voxel is its own random read-out
      of stage1 (around the V1 centre) and of stage5 (around the IT centre), weighted by a
      Gaussian of 1.5 voxels around each centre, plus noise of sd ``fmri_noise_sd``.

    ``truth.json``: conditions, categories, planted MEG peak latencies, ROI -> stage, the
    planted searchlight peak of each stage (voxel indices and mm) and the ground-truth model.
    """
    import nibabel as nib
    from PIL import Image

    from brainalign.demo import CATEGORIES, gtnet_activations, make_images
    from brainalign.io.fmri import write_nifti, write_synthetic_condition_volumes
    from brainalign.io.meg import write_synthetic_epochs

    meg_peaks = {"stage1": 0.10, "stage5": 0.16} if meg_peaks is None else dict(meg_peaks)
    fmri_shape = tuple(int(s) for s in fmri_shape)
    if len(fmri_shape) != 3 or min(fmri_shape) < 8:
        raise InputError(f"cichy2016.demo.fmri_shape must be 3 sizes >= 8, got {list(fmri_shape)}.")
    if n_conditions < 4:
        raise InputError(f"cichy2016.demo.n_conditions must be >= 4, got {n_conditions}.")
    paths = demo_paths(root, subjects, n_conditions)
    rng = make_rng(seed)
    images, labels = make_images(n_conditions, n_categories=n_categories, seed=int(rng.integers(2**31)))
    for path, img in zip(paths["stimuli"], images, strict=True):
        with atomic_path(path) as tmp:
            Image.fromarray(img).save(tmp, format="PNG")
    stages = tuple(sorted(set(meg_peaks) | set(DEMO_ROI_STAGES.values())))
    acts = {s: _row_standardise(a) for s, a in gtnet_activations(images, stages=stages).items()}

    conditions = np.arange(1, n_conditions + 1)
    times = (np.round(tmin * sfreq) + np.arange(n_times)) / sfreq
    x, y, z = fmri_shape
    centres = {"stage1": (x // 4, y // 2, z // 2), "stage5": (x - 1 - x // 4, y // 2, z // 2)}
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = -voxel_mm * (np.asarray(fmri_shape) - 1) / 2  # grid centred on the origin
    for subject in paths["meg"]:
        data = _meg_subject(acts, meg_peaks, times, n_trials=n_trials, n_channels=n_channels,
                            width=meg_width, noise_sd=meg_noise_sd, rng=rng)
        write_synthetic_epochs(paths["meg"][subject], data, times, conditions=conditions,
                               seed=int(rng.integers(2**31)))
        volumes, localizer = _fmri_subject(acts, centres, fmri_shape, sigma_vox=2.0, amplitude=1.5,
                                           noise_sd=fmri_noise_sd, rng=rng)
        files = paths["fmri"][subject]
        out = write_synthetic_condition_volumes(files["volumes"].parent, volumes, affine, four_d=True,
                                                localizer=localizer)
        assert Path(out["volumes"]) == files["volumes"] and Path(out["localizer"]) == files["localizer"]
        for roi, stage in DEMO_ROI_STAGES.items():
            write_nifti(files[roi], _roi_mask(fmri_shape, centres[stage], roi_radius_vox).astype(np.uint8),
                        affine)
    peaks_mm = {s: nib.affines.apply_affine(affine, c).tolist() for s, c in centres.items()}
    truth = {
        "ground_truth_model": "gtnet",
        "subjects": [int(s) for s in subjects],
        "conditions": conditions.tolist(),
        "categories": [CATEGORIES[c] for c in labels],
        "meg_peak_latency_s": meg_peaks,
        "roi_stages": DEMO_ROI_STAGES,
        "searchlight_peak_voxel": {s: [int(v) for v in c] for s, c in centres.items()},
        "searchlight_peak_mm": peaks_mm,
    }
    with atomic_path(paths["truth"]) as tmp:
        tmp.write_text(json.dumps(truth, indent=1))
    return truth


# --------------------------------------------------------------------------- config


def _format(pattern: str, key: str, **values) -> str:
    try:
        return pattern.format(**values)
    except (KeyError, IndexError, ValueError) as err:
        raise InputError(
            f"config key {key}: cannot fill {pattern!r} ({type(err).__name__}: {err}); the only "
            f"placeholders allowed are {{{'}, {'.join(values)}}}."
        ) from err


def _per_subject(pattern: str, key: str, subject: str, n_subjects: int) -> str:
    if n_subjects > 1 and "{subject" not in pattern:
        raise InputError(
            f"config key {key}: {pattern!r} has no {{subject}} placeholder, so every subject would "
            "read the same file."
        )
    return _format(pattern, key, subject=subject)


def check_config(cfg: dict, *, demo: bool, demo_root) -> dict:
    """Resolve and check the input paths of the ``cichy2016`` config section at start-up.

    Returns ``{"stimuli": [image paths, condition order], "n_conditions": n, "subjects":
    {"01": {"meg": [files], "fmri": {"volumes": [files], "rois": {roi: file}, "localizer":
    [file] or [], "mask": [file] or []}}}}``. With ``demo`` the configured paths must be the
    demo's (:func:`demo_paths` under ``demo_root``), which the demo job writes; otherwise the
    stimulus images are globbed now. Raises :class:`InputError` naming the config key.
    """
    subjects = [f"{int(s):02d}" for s in cfg["subjects"]]
    n_sub = len(subjects)
    if demo:
        n_cond = int(cfg["demo"]["n_conditions"])
        stimuli = [str(p) for p in demo_paths(demo_root, cfg["subjects"], n_cond)["stimuli"]]
    else:
        folder = Path(cfg["stimuli"]["dir"])
        stimuli = sorted(str(p) for p in folder.glob(cfg["stimuli"]["pattern"]) if p.is_file())
        if not stimuli:
            raise InputError(
                f"config keys cichy2016.stimuli.dir / .pattern: no image matches "
                f"{cfg['stimuli']['pattern']!r} in {folder}; expected the stimulus images "
                "(file-name order = conditions 1..n)."
            )
        n_cond = len(stimuli)
    epochs = cfg["meg"]["epochs"]
    epochs = [epochs] if isinstance(epochs, str) else list(epochs)
    for e in epochs:
        if not (e.endswith("-epo.fif") or e.endswith("-epo.fif.gz") or e.endswith(".npz")):
            raise InputError(
                f"config key cichy2016.meg.epochs: {e!r} must end with -epo.fif (MNE epochs) or .npz "
                "(brainalign.io.meg array format)."
            )
    fmri = cfg["fmri"]
    out = {"stimuli": stimuli, "n_conditions": n_cond, "subjects": {}}
    for s in subjects:
        volumes = fmri["volumes"]
        if "{condition" in volumes:
            vols = [_format(volumes, "cichy2016.fmri.volumes", subject=s, condition=c)
                    for c in range(1, n_cond + 1)]
        else:
            vols = [_per_subject(volumes, "cichy2016.fmri.volumes", s, n_sub)]
        out["subjects"][s] = {
            "meg": [_per_subject(e, "cichy2016.meg.epochs", s, n_sub) for e in epochs],
            "fmri": {
                "volumes": vols,
                "rois": {roi: _per_subject(p, f"cichy2016.fmri.rois.{roi}", s, n_sub)
                         for roi, p in fmri["rois"].items()},
                "localizer": ([] if fmri["localizer"] is None else
                              [_per_subject(fmri["localizer"], "cichy2016.fmri.localizer", s, n_sub)]),
                "mask": ([] if fmri["searchlight_mask"] is None else
                         [_per_subject(fmri["searchlight_mask"], "cichy2016.fmri.searchlight_mask", s,
                                       n_sub)]),
            },
        }
    if demo:
        expected = demo_paths(demo_root, cfg["subjects"], n_cond)
        checks = {"cichy2016.stimuli.dir": (str(Path(cfg["stimuli"]["dir"])),
                                            str(Path(demo_root) / "stimuli"))}
        s0 = subjects[0]
        got = out["subjects"][s0]
        want = expected["fmri"][s0]
        checks["cichy2016.meg.epochs"] = (got["meg"], [str(expected["meg"][s0])])
        checks["cichy2016.fmri.volumes"] = (got["fmri"]["volumes"], [str(want["volumes"])])
        checks["cichy2016.fmri.localizer"] = (got["fmri"]["localizer"], [str(want["localizer"])])
        checks["cichy2016.fmri.rois"] = (
            got["fmri"]["rois"], {roi: str(want[roi]) for roi in DEMO_ROI_STAGES})
        for key, (have, demo_value) in checks.items():
            if have != demo_value:
                raise InputError(
                    f"config key {key} is {have!r}, but with demo.enabled the Cichy 2016 demo writes "
                    f"{demo_value!r}; keep the default, or set demo.enabled: false for real data."
                )
    return out


# --------------------------------------------------------------------------- loading


def load_meg(files, conditions, *, picks="meg", n_trials=None, baseline=(-0.1, 0.0),
             remove_baseline_mean=True, smooth_ms=20.0, baseline_std_normalize=True,
             baseline_std_scope="channel"):
    """Read one subject's epochs (sessions concatenated), keep ``conditions``, preprocess.

    ``files``: ``-epo.fif`` (condition = event code; other codes such as catch trials are
    left out) or ``.npz`` (:func:`brainalign.io.meg.read_meg_array`, its conditions must be
    exactly ``conditions``). Returns the preprocessed :class:`brainalign.io.meg.MEGData`.
    """
    from brainalign.io.meg import concatenate_trials, preprocess, read_meg_array, read_meg_epochs

    conditions = [int(c) for c in conditions]
    sessions = []
    for f in files:
        if str(f).endswith(".npz"):
            meg = read_meg_array(f)
            check_ids_match(meg.conditions, conditions, f, "the stimulus conditions 1..n")
            if n_trials is not None:
                meg.data = meg.data[:, :n_trials]
        else:
            meg = read_meg_epochs(f, conditions=conditions, n_trials=n_trials, picks=picks)
        sessions.append(meg)
    meg = concatenate_trials(sessions, names=[str(f) for f in files]) if len(sessions) > 1 else sessions[0]
    return preprocess(meg, baseline=tuple(baseline), remove_baseline_mean=remove_baseline_mean,
                      smooth_ms=smooth_ms, baseline_std_normalize=baseline_std_normalize,
                      baseline_std_scope=baseline_std_scope)


def load_fmri(files: dict, n_conditions: int, *, resample=False):
    """One subject's condition volumes, ROI masks, localiser and searchlight mask.

    ``files`` as :func:`check_config` resolves them. Returns ``(volumes, masks, localizer,
    searchlight_mask)``; the searchlight mask defaults to the voxels finite in every map.
    """
    from brainalign.io.fmri import load_condition_volumes, load_localizer, load_mask

    vols = files["volumes"]
    volumes = load_condition_volumes(vols[0] if len(vols) == 1 else vols)
    if volumes.data.shape[0] != n_conditions:
        raise InputError(
            f"{volumes.name}: {volumes.data.shape[0]} condition volumes, but the stimulus set has "
            f"{n_conditions} images (config key cichy2016.fmri.volumes)."
        )
    masks = {roi: load_mask(p, volumes, resample=resample) for roi, p in files["rois"].items()}
    localizer = (load_localizer(files["localizer"][0], volumes, resample=resample)
                 if files["localizer"] else None)
    if files["mask"]:
        sl_mask = load_mask(files["mask"][0], volumes, resample=resample)
    else:
        sl_mask = np.isfinite(volumes.data).all(axis=0)
    return volumes, masks, localizer, sl_mask


# --------------------------------------------------------------------------- model RDMs


def select_layers(available, spec, *, what: str = "cichy2016.layers") -> list[str]:
    """Layers to analyse: ``spec`` None/"all" = every layer, a list of names, or "re:<regex>"."""
    available = list(available)
    if spec is None or spec == "all":
        return available
    if isinstance(spec, str) and spec.startswith("re:"):
        chosen = [n for n in available if re.search(spec[3:], n)]
        if not chosen:
            raise InputError(f"{what}: {spec!r} matches no layer; layers: {available}.")
        return chosen
    names = [spec] if isinstance(spec, str) else list(spec)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise InputError(f"{what}: layers {unknown} are not in the feature file; layers: {available}.")
    return [n for n in available if n in names]


def _layer_matrix(d: dict) -> np.ndarray:
    """Raw features when kept, else the SRP (centring over stimuli commutes with it)."""
    return d["raw"] if d["raw"] is not None else d["srp"]


def model_rdms(features_path, *, layers=None, metric: str = "spearman", summary: bool = True) -> dict:
    """One condensed RDM per layer of a feature file, plus the whole-network summary RDM.

    Returns a dict: ``stimulus_ids``, ``layers`` (names in execution order), ``rdms``
    (n_layers, n_pairs), ``metrics`` (per layer: ``metric`` or ``"pearson_srp"`` for a layer
    without raw features, see the module doc), ``depth``, ``dropped`` (layers left out, with a
    warning, because some stimulus gives constant activations, so their RDM is undefined) and
    ``summary`` (per-layer PCA to n - 1 dims, concatenated, 1 - Spearman;
    :func:`brainalign.stats.summary_rdm`) or None.
    """
    from brainalign.linking import LayerFeatures
    from brainalign.models.extraction import feature_layers, read_feature_ids, read_layer
    from brainalign.stats import summary_rdm

    check_option("metric", metric, ("spearman", "pearson"))
    info = {name: (depth, n_units) for name, depth, n_units in feature_layers(features_path)}
    names = select_layers(list(info), layers)
    ids = read_feature_ids(features_path)
    everything = np.arange(len(ids))
    rdms, metrics, matrices, kept, dropped = [], [], [], [], []
    for index, name in enumerate(names):
        d = read_layer(features_path, name)
        if d["raw"] is not None:
            rdm = compute_rdm(d["raw"].astype(np.float64), metric)
            used = metric
        else:
            layer = LayerFeatures(name=name, depth=d["depth"], index=index, n_units=d["n_units"],
                                  srp=d["srp"], row_mean=d["row_mean"], ones_proj=d["ones_proj"])
            rdm, used = layer.pearson_rdm(everything), "pearson_srp"
        if not np.all(np.isfinite(rdm)):  # a stimulus with constant activations (e.g. all ReLUs off)
            warnings.warn(f"{features_path}: layer {name!r} is constant over the units for some stimuli; "
                          "its RDM is undefined and the layer is left out.", RuntimeWarning, stacklevel=2)
            dropped.append(name)
            continue
        rdms.append(rdm)
        metrics.append(used)
        kept.append(name)
        if summary:
            matrices.append(_layer_matrix(d))
    if not kept:
        raise InputError(f"{features_path}: every selected layer has an undefined RDM ({dropped}).")
    return {
        "stimulus_ids": ids,
        "layers": kept,
        "dropped": dropped,
        "rdms": np.stack(rdms),
        "metrics": metrics,
        "depth": np.array([info[n][0] for n in kept]),
        "summary": summary_rdm(matrices) if summary else None,
    }


def write_model_rdms(path, rdms: dict, *, model: str) -> None:
    """Write :func:`model_rdms` output to HDF5 (atomically)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["model"] = model
        f.attrs["layer_order"] = np.array(rdms["layers"], dtype=_STR)
        f.attrs["metrics"] = np.array(rdms["metrics"], dtype=_STR)
        f.attrs["dropped_layers"] = np.array(rdms.get("dropped", []), dtype=_STR)
        f.create_dataset("stimulus_ids", data=np.array([str(i) for i in rdms["stimulus_ids"]], dtype=_STR))
        f.create_dataset("rdms", data=rdms["rdms"])
        f.create_dataset("depth", data=rdms["depth"])
        if rdms["summary"] is not None:
            f.create_dataset("summary", data=rdms["summary"])


def read_model_rdms(path) -> dict:
    """Read a :func:`write_model_rdms` file (stimulus ids as str)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Model RDM file {path} does not exist.")
    with h5py.File(path, "r") as f:
        def names(key):
            return [v.decode() if isinstance(v, bytes) else str(v) for v in f.attrs[key]]

        return {
            "model": str(f.attrs["model"]),
            "layers": names("layer_order"),
            "metrics": names("metrics"),
            "stimulus_ids": f["stimulus_ids"].asstr()[()],
            "rdms": f["rdms"][()],
            "depth": f["depth"][()],
            "summary": f["summary"][()] if "summary" in f else None,
        }


def _with_summary(rdms: dict) -> tuple[list[str], np.ndarray]:
    names, mats = list(rdms["layers"]), [r for r in rdms["rdms"]]
    if rdms["summary"] is not None:
        names.append(SUMMARY)
        mats.append(rdms["summary"])
    return names, np.stack(mats)


# --------------------------------------------------------------------------- MEG


def meg_rsa(rdms: dict, decoding: dict, *, model: str, subject: str, method: str = "spearman",
            where: str = "the decoding file") -> pd.DataFrame:
    """Tidy model-MEG RSA time courses of one subject: every layer and the summary RDM.

    ``decoding`` is :func:`brainalign.artifacts.read_decoding_rdms` output; its conditions
    must be the model's stimulus ids in the same order.
    """
    from brainalign.stats import time_resolved_rsa

    check_ids_match(decoding["conditions"], rdms["stimulus_ids"], where, f"model RDMs of {model}")
    names, mats = _with_summary(rdms)
    times = np.asarray(decoding["times"], dtype=np.float64)
    acc = np.asarray(decoding["accuracy"], dtype=np.float64)
    frames = []
    for index, (name, rdm) in enumerate(zip(names, mats, strict=True)):
        r = time_resolved_rsa(rdm, acc, method)
        frames.append(pd.DataFrame({
            "model": model, "layer": name, "layer_index": index, "is_summary": name == SUMMARY,
            "subject": str(subject), "time": times, "r": r,
        }))
    return pd.concat(frames, ignore_index=True)


def _courses(rsa: pd.DataFrame, layer: str):
    wide = rsa[rsa["layer"] == layer].pivot(index="subject", columns="time", values="r")
    return wide.to_numpy(), wide.columns.to_numpy(dtype=np.float64), list(wide.index)


def meg_group_stats(rsa: pd.DataFrame, *, n_permutations=10000, n_bootstrap=1000, ci=0.95,
                    cluster_p=0.05, cluster_forming_p=0.05, cluster_statistic="extent", peak_tmin=None,
                    peak_tmax=None, seed=0):
    """Group statistics of one model's RSA time courses (Cichy et al. 2016, Fig. 3).

    Returns three tidy tables:

    - ``timecourses``: per layer and time, mean and SEM over subjects, one-sample t and
      ``significant`` (MNE cluster test over time: sign permutations, cluster-defining
      P ``cluster_forming_p``, cluster P ``cluster_p`` Bonferroni-corrected over the layers,
      the summary RDM included);
    - ``peaks``: per layer, the peak latency of the subject-mean time course with its
      bootstrap SEM and CI over subjects, and the per-subject peaks' mean;
    - ``layer_order``: Spearman(layer number, per-subject peak latency) averaged over
      subjects, with a sign-permutation p (summary RDM excluded).
    """
    from brainalign.stats import bootstrap_peak_latency, cluster_test, layer_order_correlation, peak_latency

    layers = rsa.drop_duplicates("layer").sort_values("layer_index")
    model = str(rsa["model"].iloc[0])
    n_tests = len(layers)
    rng = make_rng(seed)
    course_rows, peak_rows, per_subject_peaks, layer_names = [], [], [], []
    for _, row in layers.iterrows():
        x, times, subjects = _courses(rsa, row["layer"])
        n_sub = len(subjects)
        sem = x.std(axis=0, ddof=1) / np.sqrt(n_sub) if n_sub > 1 else np.full(x.shape[1], np.nan)
        significant = np.zeros(x.shape[1], dtype=bool)
        t_obs = np.full(x.shape[1], np.nan)
        if n_sub >= 3:
            res = cluster_test(x, n_permutations=n_permutations, cluster_p=cluster_p,
                               cluster_forming_p=cluster_forming_p, tail=1, bonferroni=n_tests,
                               seed=int(rng.integers(2**31)), statistic=cluster_statistic)
            significant, t_obs = res.mask, res.t_obs
        course_rows.append(pd.DataFrame({
            "model": model, "layer": row["layer"], "layer_index": row["layer_index"],
            "is_summary": row["is_summary"], "time": times, "mean": x.mean(axis=0), "sem": sem,
            "t": t_obs, "significant": significant, "n_subjects": n_sub,
        }))
        subject_peaks = np.atleast_1d(peak_latency(x, times, peak_tmin, peak_tmax))
        boot = (bootstrap_peak_latency(x, times, n_bootstrap=n_bootstrap, ci=ci,
                                       seed=int(rng.integers(2**31)), tmin=peak_tmin, tmax=peak_tmax)
                if n_sub >= 2 else None)
        peak_rows.append({
            "model": model, "layer": row["layer"], "layer_index": row["layer_index"],
            "is_summary": row["is_summary"],
            "peak_latency": boot.estimate if boot else float(subject_peaks[0]),
            "sem": boot.sem if boot else np.nan,
            "ci_low": boot.ci[0] if boot else np.nan, "ci_high": boot.ci[1] if boot else np.nan,
            "subject_peak_mean": float(subject_peaks.mean()), "n_subjects": n_sub,
        })
        if not row["is_summary"]:
            per_subject_peaks.append(subject_peaks)
            layer_names.append(row["layer"])
    order = {"model": model, "n_layers": len(layer_names), "n_subjects": len(per_subject_peaks[0]),
             "spearman_r": np.nan, "p": np.nan}
    if len(layer_names) >= 3 and len(per_subject_peaks[0]) >= 2:
        res = layer_order_correlation(np.stack(per_subject_peaks, axis=1), n_permutations=n_permutations,
                                      seed=int(rng.integers(2**31)))
        order.update(spearman_r=res.r, p=res.p)
    return pd.concat(course_rows, ignore_index=True), pd.DataFrame(peak_rows), pd.DataFrame([order])


# --------------------------------------------------------------------------- fMRI


def roi_similarities(roi_rdms: dict, rdms: dict, *, model: str, subject: str) -> pd.DataFrame:
    """Spearman between each ROI RDM (dict roi -> condensed RDM) and each layer / summary RDM."""
    names, mats = _with_summary(rdms)
    rows = []
    for roi, roi_rdm in roi_rdms.items():
        for index, (name, rdm) in enumerate(zip(names, mats, strict=True)):
            rows.append({"model": model, "subject": str(subject), "roi": roi, "layer": name,
                         "layer_index": index, "is_summary": name == SUMMARY,
                         "r": float(compare_rdms(roi_rdm, rdm, "spearman"))})
    return pd.DataFrame(rows)


def roi_layer_stats(sim: pd.DataFrame, *, n_permutations=10000, fdr_alpha=0.05, seed=0):
    """ROI x layer statistics (Cichy et al. 2016, Fig. 6).

    Returns ``(bars, order)``: per model, ROI and layer the mean and SEM over subjects, a
    one-sided sign-permutation p (similarity > 0) and its FDR correction over all layers and
    ROIs of the model; per model and ROI, Spearman(layer number, similarity) averaged over
    subjects with a two-sided sign-permutation p (summary RDM excluded).
    """
    from brainalign.stats import fdr, layer_order_correlation, sign_permutation_test

    rng = make_rng(seed)
    bars, order = [], []
    for model, m in sim.groupby("model", sort=False):
        rows = []
        for (roi, layer), g in m.groupby(["roi", "layer"], sort=False):
            r = g.sort_values("subject")["r"].to_numpy()
            p = (sign_permutation_test(r, n_permutations=n_permutations, seed=int(rng.integers(2**31)))
                 if len(r) >= 2 else np.nan)
            rows.append({"model": model, "roi": roi, "layer": layer,
                         "layer_index": int(g["layer_index"].iloc[0]),
                         "is_summary": bool(g["is_summary"].iloc[0]), "mean": r.mean(),
                         "sem": r.std(ddof=1) / np.sqrt(len(r)) if len(r) > 1 else np.nan,
                         "p": p, "n_subjects": len(r)})
        df = pd.DataFrame(rows)
        if df["p"].notna().all():
            df["significant"], df["p_fdr"] = fdr(df["p"].to_numpy(), alpha=fdr_alpha)
        else:
            df["significant"], df["p_fdr"] = False, np.nan
        bars.append(df)
        for roi, g in m[~m["is_summary"]].groupby("roi", sort=False):
            wide = g.pivot(index="subject", columns="layer_index", values="r").sort_index(axis=1)
            row = {"model": model, "roi": roi, "n_layers": wide.shape[1], "n_subjects": wide.shape[0],
                   "spearman_r": np.nan, "p": np.nan}
            if wide.shape[1] >= 3 and wide.shape[0] >= 2:
                res = layer_order_correlation(wide.to_numpy(), n_permutations=n_permutations,
                                              seed=int(rng.integers(2**31)))
                row.update(spearman_r=res.r, p=res.p)
            order.append(row)
    return pd.concat(bars, ignore_index=True), pd.DataFrame(order)


def searchlight_group(maps: np.ndarray, affine, layers, *, model: str, n_permutations=10000,
                      cluster_p=0.05, cluster_forming_p=0.05, cluster_statistic="extent", seed=0):
    """Group searchlight statistics: mean map, cluster-corrected significance, peak per layer.

    ``maps``: (n_subjects, n_layers, X, Y, Z), NaN outside the searchlight mask (the same
    voxels in every subject and layer). The cluster test (MNE, voxel face-adjacency inside
    the mask, sign permutations, Bonferroni over layers) needs at least 3 subjects.
    Returns ``(mean, significant, peaks)``: mean (n_layers, X, Y, Z), significant bool of the
    same shape, and a table with each layer's peak voxel (indices and mm) and value.
    """
    import nibabel as nib
    from sklearn.feature_extraction.image import grid_to_graph

    from brainalign.stats import cluster_test

    maps = np.asarray(maps, dtype=np.float64)
    n_sub, n_layers = maps.shape[:2]
    inside = np.isfinite(maps).all(axis=(0, 1))
    if not inside.any():
        raise InputError(f"searchlight maps of {model}: no voxel is finite in every subject and layer.")
    mean = np.where(inside, maps.mean(axis=0), np.nan)
    significant = np.zeros(mean.shape, dtype=bool)
    rng = make_rng(seed)
    if n_sub >= 3:
        adjacency = grid_to_graph(*inside.shape, mask=inside).tocsr()
        adjacency.setdiag(0)
        adjacency.eliminate_zeros()
        for k in range(n_layers):
            x = maps[:, k][:, inside]  # (n_subjects, n_inside)
            res = cluster_test(x, n_permutations=n_permutations, cluster_p=cluster_p,
                               cluster_forming_p=cluster_forming_p, tail=1, bonferroni=n_layers,
                               seed=int(rng.integers(2**31)), adjacency=adjacency,
                               statistic=cluster_statistic)
            significant[k][inside] = res.mask
    rows = []
    for k, layer in enumerate(layers):
        ijk = np.unravel_index(int(np.nanargmax(mean[k])), inside.shape)
        rows.append({"model": model, "layer": layer, "layer_index": k, "i": ijk[0], "j": ijk[1],
                     "k": ijk[2], **dict(zip(("x_mm", "y_mm", "z_mm"),
                                             nib.affines.apply_affine(affine, ijk).tolist(), strict=True)),
                     "peak_r": float(mean[k][ijk]), "n_significant_voxels": int(significant[k].sum()),
                     "n_subjects": n_sub})
    return mean, significant, pd.DataFrame(rows)


# --------------------------------------------------------------------------- DNN variants


def variant_differences(rsa: pd.DataFrame, *, reference: str, layer: str = SUMMARY,
                        n_permutations=10000, cluster_p=0.05, cluster_forming_p=0.05,
                        cluster_statistic="extent", seed=0):
    """Fig. 5b/c: each model's time course of ``layer`` (default the whole-network RDM) and
    its difference from ``reference`` (the object DNN), per time point.

    ``rsa``: :func:`meg_rsa` rows of several models (same subjects). Returns a table with
    model, time, mean, sem, ``significant`` (cluster test of the model's time course > 0)
    and ``diff_mean``, ``diff_sem``, ``diff_significant`` (two-sided cluster test of
    reference - model; NaN / False for the reference). Bonferroni over the models.
    """
    from brainalign.stats import cluster_test

    sub = rsa[rsa["layer"] == layer]
    models = list(dict.fromkeys(sub["model"]))
    if reference not in models:
        raise InputError(f"variant_differences: reference model {reference!r} not among {models}.")
    ref, times, ref_subjects = _courses(sub[sub["model"] == reference], layer)
    rng = make_rng(seed)
    frames = []
    for model in models:
        x, t, subjects = _courses(sub[sub["model"] == model], layer)
        if subjects != ref_subjects or not np.allclose(t, times):
            raise InputError(f"variant_differences: {model} and {reference} differ in subjects or times.")
        n = len(subjects)
        frame = pd.DataFrame({"model": model, "time": times, "mean": x.mean(0),
                              "sem": x.std(0, ddof=1) / np.sqrt(n) if n > 1 else np.nan,
                              "significant": False, "diff_mean": np.nan, "diff_sem": np.nan,
                              "diff_significant": False, "n_subjects": n})
        if n >= 3:
            frame["significant"] = cluster_test(
                x, n_permutations=n_permutations, cluster_p=cluster_p,
                cluster_forming_p=cluster_forming_p, tail=1, bonferroni=len(models),
                seed=int(rng.integers(2**31)), statistic=cluster_statistic).mask
        if model != reference:
            d = ref - x
            frame["diff_mean"] = d.mean(0)
            frame["diff_sem"] = d.std(0, ddof=1) / np.sqrt(n) if n > 1 else np.nan
            if n >= 3:
                frame["diff_significant"] = cluster_test(
                    d, n_permutations=n_permutations, cluster_p=cluster_p,
                    cluster_forming_p=cluster_forming_p, tail=0,
                    bonferroni=max(1, len(models) - 1), seed=int(rng.integers(2**31)),
                    statistic=cluster_statistic).mask
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
