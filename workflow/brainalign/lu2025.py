"""Lu & Wang (2025) ReAlnet-fMRI in the workflow: inputs, demo data and evaluation (SPEC section 4).

The model, loss, training loop and RSA kernels live in :mod:`brainalign.realnet`; this module
adds what the workflow needs around them:

Inputs
    :func:`stimulus_list` (the stimuli of a Shen/Horikawa BData file, in the order of
    :func:`brainalign.io.bdata.load_bdata_rois`), :func:`find_images` (one image file per
    stimulus label under an image folder), :func:`load_images` (files -> normalised tensors
    at the training size), :func:`build_cornet` (the pretrained or seeded untrained CORnet-S),
    :func:`load_things_dimensions` (the 49 THINGS object dimensions of given concepts).

Demo (:func:`write_lu2025_demo`)
    Procedural images (:func:`brainalign.demo.make_images`, plus letters) and synthetic
    subjects written in the real formats: Shen 2019 BData files (training, natural test,
    artificial shapes, letters), Horikawa 2017 GOD files (the natural test images, other
    subjects), THINGS-EEG2 preprocessed ``.npy`` dicts with ``image_metadata.npy`` and test
    images, and a THINGS-dimension table. The planted answer: every voxel and every EEG
    channel is a noisy linear read-out of one fixed image feature, the coarse luminance layout
    (:func:`planted_feature`, mean luminance in a 4 x 4 grid). An untrained CORnet-S
    represents it only weakly (its RDMs are dominated by colour and texture), and learning it
    needs no invariance a few training steps cannot give, so aligning CORnet-S to one
    subject's training fMRI raises RSA with that subject's held-out test fMRI (and with other
    subjects and the EEG) above the Control model (beta = 0) trained on the same images.

Evaluation
    :func:`rsa_rows` (per layer and max-over-layers Spearman of model and brain RDMs),
    :func:`improvement_table` (ratios vs CORnet and vs Control).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from brainalign.io.bdata import read_bdata, stimulus_id_to_name, write_synthetic_bdata
from brainalign.io.things_eeg2 import THINGS_EEG2_CHANNELS, write_synthetic_things_eeg2
from brainalign.models.cornet import IMAGENET_MEAN, IMAGENET_STD, cornet_s
from brainalign.rdm import compare_rdms
from brainalign.utils import InputError, atomic_path, make_rng

__all__ = [
    "IMAGE_EXTENSIONS",
    "input_paths",
    "check_config",
    "stimulus_list",
    "find_images",
    "load_images",
    "build_cornet",
    "load_things_dimensions",
    "concept_name",
    "planted_feature",
    "letter_images",
    "write_lu2025_demo",
    "rsa_rows",
    "improvement_table",
    "model_name",
    "parse_model_name",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif")
#: ROIs the synthetic Shen subjects carry (disjoint voxel sets; LVC/HVC/VC are unions).
DEMO_SHEN_ROIS = ("ROI_V1", "ROI_V2", "ROI_V3", "ROI_hV4", "ROI_LOC", "ROI_FFA", "ROI_PPA")
DEMO_GOD_ROIS = ("ROI_V1", "ROI_V2", "ROI_V3", "ROI_V4", "ROI_LOC", "ROI_FFA", "ROI_PPA")


# --------------------------------------------------------------------------- model names


def model_name(subject: str | int | None, beta) -> str:
    """``"cornet"`` for the pretrained network, else ``"sub-01_beta-10"`` (beta 0 = Control)."""
    if subject is None:
        return "cornet"
    return f"sub-{int(subject):02d}_beta-{int(beta)}"


def parse_model_name(name: str) -> dict:
    """Inverse of :func:`model_name`: dict(model=cornet|control|realnet, model_subject, beta)."""
    if name == "cornet":
        return {"model": "cornet", "model_subject": "", "beta": np.nan}
    sub, beta = name.split("_beta-")
    beta = int(beta)
    return {"model": "control" if beta == 0 else "realnet", "model_subject": sub.removeprefix("sub-"),
            "beta": beta}


# --------------------------------------------------------------------------- inputs


def stimulus_list(path, *, label_key: str | None = None, data_type: int | None = None):
    """Sorted unique stimulus ids of a BData file and their labels (``load_bdata_rois`` order)."""
    bd = read_bdata(path)
    if label_key is None:
        label_key = next((k for k in ("stimulus_name", "stimulus_id") if k in bd.keys()), None)
        if label_key is None:
            raise InputError(f"{path}: no stimulus_name or stimulus_id key; available: {bd.keys()}.")
    rows = None
    if data_type is not None:
        rows = np.flatnonzero(bd.get("DataType") == float(data_type))
        if rows.size == 0:
            raise InputError(f"{path}: no trial has DataType == {data_type}.")
    values = bd.get(label_key, rows=rows, check_finite=False)
    ids = np.unique(values[np.isfinite(values)])
    table = bd.vmap(label_key)
    labels = np.array([table.get(float(v), stimulus_id_to_name(v)) for v in ids], dtype=str)
    return ids, labels


def find_images(image_dir, labels: Sequence[str], *, what: str = "lu2025 image_dir") -> list[Path]:
    """The file ``<image_dir>/<label>.<ext>`` (any of :data:`IMAGE_EXTENSIONS`) of every label.

    Raises :class:`InputError` naming the folder and the first missing labels.
    """
    folder = Path(image_dir)
    if not folder.is_dir():
        raise InputError(f"{what}: image folder {folder} not found.")
    index = {}
    for p in folder.iterdir():
        if p.suffix.lower() in IMAGE_EXTENSIONS:
            index.setdefault(p.stem, p)
    missing = [lab for lab in labels if lab not in index]
    if missing:
        raise InputError(
            f"{what}: {len(missing)} of {len(labels)} stimuli have no image in {folder}, e.g. "
            f"{', '.join(missing[:3])}; expected files named <stimulus label>.<jpg|png|...> "
            "(e.g. n01443537_22563.JPEG)."
        )
    return [index[lab] for lab in labels]


def load_images(paths: Sequence, size: int, *, normalize: bool = True) -> np.ndarray:
    """Images -> float32 (N, 3, size, size): resize the short side to ``round(size * 256 / 224)``,
    centre crop ``size`` (CORnet-S's 256/224 at ``size=224``), to [0, 1], ImageNet-normalise."""
    from PIL import Image

    size = int(size)
    resize = int(round(size * 256 / 224))
    out = np.empty((len(paths), 3, size, size), dtype=np.float32)
    for i, p in enumerate(paths):
        try:
            with Image.open(p) as im:
                im = im.convert("RGB")
                w, h = im.size
                s = resize / min(w, h)
                im = im.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BILINEAR)
                w, h = im.size
                left, top = (w - size) // 2, (h - size) // 2
                arr = np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.float32) / 255
        except OSError as err:
            raise InputError(f"{p}: cannot read as an image ({err}).") from err
        out[i] = arr.transpose(2, 0, 1)
    if normalize:
        out -= np.asarray(IMAGENET_MEAN, dtype=np.float32)[:, None, None]
        out /= np.asarray(IMAGENET_STD, dtype=np.float32)[:, None, None]
    return out


def build_cornet(checkpoint=None, *, width: float = 1.0, seed: int = 0, calibration_images=None,
                 batch_size: int = 32):
    """The pretrained CORnet-S (local ``checkpoint``) or, without one, a seeded untrained one.

    An untrained network's BatchNorm running statistics (mean 0, variance 1 at initialisation)
    are first set to the statistics of ``calibration_images`` (float (N, 3, H, W), e.g. the
    training images; cumulative average, no gradients), so that the eval-mode "pretrained"
    baseline and the networks trained from it normalise alike. Returned in training mode.
    """
    if checkpoint:
        if float(width) != 1.0:
            raise InputError(
                f"lu2025.model.width is {width}, but a checkpoint ({checkpoint}) is given; "
                "the published CORnet-S weights need width 1.0."
            )
        return cornet_s(weights=checkpoint)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        net = cornet_s(width=width)
    if calibration_images is not None:
        norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average over the batches
        net.train()
        x = torch.as_tensor(np.asarray(calibration_images, dtype=np.float32))
        with torch.no_grad():
            for s in range(0, len(x), batch_size):
                net(x[s:s + batch_size])
        for m, mom in zip(norms, momenta, strict=True):
            m.momentum = mom
    return net


def concept_name(concept: str) -> str:
    """THINGS-EEG2 concept folder ``"00001_aircraft_carrier"`` -> THINGS uniqueID ``"aircraft_carrier"``."""
    head, _, tail = str(concept).partition("_")
    return tail if head.isdigit() and tail else str(concept)


def load_things_dimensions(weights_path, concepts_path, concepts: Sequence[str]) -> np.ndarray:
    """The THINGS object dimensions (e.g. the 49 of SPoSE) of ``concepts``: (n_concepts, n_dims).

    ``weights_path``: whitespace-separated numbers, one row per THINGS concept (e.g.
    ``spose_embedding_49d_sorted.txt``). ``concepts_path``: the concept of each row, either a
    tab-separated table with a ``uniqueID`` column (``things_concepts.tsv``) or one name per line.
    ``concepts`` are matched after :func:`concept_name` (THINGS-EEG2 folder prefixes dropped).
    """
    for key, p in (("lu2025.dimensions.weights", weights_path),
                   ("lu2025.dimensions.concepts", concepts_path)):
        if not Path(p).is_file():
            raise InputError(f"{key}: file {p} not found.")
    try:
        W = np.loadtxt(weights_path, ndmin=2)
    except ValueError as err:
        raise InputError(f"{weights_path}: expected a whitespace-separated numeric table ({err}).") from err
    lines = Path(concepts_path).read_text().splitlines()
    header = lines[0].split("\t") if lines else []
    if "uniqueID" in header:
        names = pd.read_csv(concepts_path, sep="\t")["uniqueID"].astype(str).tolist()
    else:
        names = [ln.strip() for ln in lines if ln.strip()]
    if len(names) != W.shape[0]:
        raise InputError(
            f"{concepts_path} lists {len(names)} concepts but {weights_path} has {W.shape[0]} rows; "
            "expected one concept per row."
        )
    index = {n: i for i, n in enumerate(names)}
    wanted = [concept_name(c) for c in concepts]
    missing = [c for c in wanted if c not in index]
    if missing:
        raise InputError(
            f"{concepts_path}: {len(missing)} THINGS-EEG2 test concepts are not listed, e.g. "
            f"{', '.join(missing[:3])}."
        )
    out = W[[index[c] for c in wanted]]
    if not np.all(np.isfinite(out)):
        raise InputError(f"{weights_path}: non-finite dimension values.")
    return out


DEMO_TRUTH = "resources/demo/lu2025/truth.json"


def input_paths(section: Mapping) -> dict:
    """Every input path of the ``lu2025`` config section (existing or not).

    Keys: ``shen_train`` (subject "01" -> path), ``shen_test`` (subject -> set -> path),
    ``image_dir``, ``horikawa`` (subject "01" -> path; empty when disabled), ``eeg_metadata``,
    ``eeg`` (subject -> test .npy; empty when disabled), ``dims_weights``, ``dims_concepts``,
    ``checkpoint`` (or None), ``truth`` (the demo's truth record).
    """
    from brainalign.io.things_eeg2 import things_eeg2_paths

    shen = section["shen"]
    root = Path(shen["root"])
    subs = [int(s) for s in shen["subjects"]]
    out = {
        "shen_train": {f"{s:02d}": str(root / shen["train_file"].format(subject=f"{s:02d}")) for s in subs},
        "shen_test": {f"{s:02d}": {name: str(root / t.format(subject=f"{s:02d}"))
                                   for name, t in shen["test_files"].items()} for s in subs},
        "image_dir": str(shen["image_dir"]),
        "horikawa": {},
        "eeg_metadata": str(things_eeg2_paths(section["things_eeg2"]["root"])["metadata"]),
        "eeg": {},
        "dims_weights": str(section["dimensions"]["weights"]),
        "dims_concepts": str(section["dimensions"]["concepts"]),
        "checkpoint": section["model"]["checkpoint"],
        "truth": DEMO_TRUTH,
    }
    hk = section["horikawa"]
    if hk["enabled"]:
        out["horikawa"] = {f"{s:02d}": str(Path(hk["root"]) / hk["file"].format(subject=int(s)))
                           for s in hk["subjects"]}
    eeg = section["things_eeg2"]
    if eeg["enabled"]:
        out["eeg"] = {f"{s:02d}": str(things_eeg2_paths(eeg["root"], int(s))["eeg/test"])
                      for s in eeg["subjects"]}
    return out


def check_config(section: Mapping, *, demo: bool) -> None:
    """Start-up checks of the ``lu2025`` section; :class:`InputError` naming the key.

    Always: ``training.main_beta`` among ``training.betas``, ``model.width`` 1.0 with a
    checkpoint. With real data (``demo`` false): every input file and folder exists.
    """
    tr, model = section["training"], section["model"]
    if float(tr["main_beta"]) not in {float(b) for b in tr["betas"]}:
        raise InputError(
            f"config key lu2025.training.main_beta is {tr['main_beta']}; it must be one of "
            f"lu2025.training.betas {tr['betas']}."
        )
    if any(float(b) != int(b) for b in tr["betas"]):
        raise InputError(f"config key lu2025.training.betas {tr['betas']}: use whole numbers.")
    if model["checkpoint"] and float(model["width"]) != 1.0:
        raise InputError(
            f"config key lu2025.model.width is {model['width']}, but lu2025.model.checkpoint is "
            "given; the published CORnet-S weights need width 1.0."
        )
    if demo:
        if int(section["demo"]["image_size"]) % 4:
            raise InputError("config key lu2025.demo.image_size must be a multiple of 4.")
        return
    paths = input_paths(section)
    checks = [("lu2025.shen.train_file", p) for p in paths["shen_train"].values()]
    checks += [("lu2025.shen.test_files", p) for d in paths["shen_test"].values() for p in d.values()]
    checks += [("lu2025.horikawa.file", p) for p in paths["horikawa"].values()]
    if paths["eeg"]:
        checks += [("lu2025.things_eeg2.root", paths["eeg_metadata"])]
        checks += [("lu2025.things_eeg2.root", p) for p in paths["eeg"].values()]
        if section["dimensions"]["enabled"]:
            checks += [("lu2025.dimensions.weights", paths["dims_weights"]),
                       ("lu2025.dimensions.concepts", paths["dims_concepts"])]
    if paths["checkpoint"]:
        checks.append(("lu2025.model.checkpoint", paths["checkpoint"]))
    for key, p in checks:
        if not Path(p).is_file():
            raise InputError(f"config key {key}: file {p} not found.")
    if not Path(paths["image_dir"]).is_dir():
        raise InputError(f"config key lu2025.shen.image_dir: folder {paths['image_dir']} not found.")


# --------------------------------------------------------------------------- demo


def planted_feature(images: np.ndarray, grid: int = 4) -> np.ndarray:
    """Mean luminance of each cell of a ``grid`` x ``grid`` layout, z-scored over images.

    ``images``: uint8 (n, H, W, 3) with H and W divisible by ``grid``. Returns (n, grid**2).
    """
    n, h, w, _ = images.shape
    if h % grid or w % grid:
        raise ValueError(f"planted_feature: image size {h}x{w} is not divisible by grid {grid}.")
    lum = images.astype(np.float64).mean(axis=-1)
    cells = lum.reshape(n, grid, h // grid, grid, w // grid).mean(axis=(2, 4)).reshape(n, -1)
    return (cells - cells.mean(axis=0)) / (cells.std(axis=0) + 1e-12)


def letter_images(n: int, size: int, *, seed=0) -> tuple[np.ndarray, list[str]]:
    """``n`` images of capital letters (A, B, ...) in random colours on random backgrounds."""
    from PIL import Image, ImageDraw, ImageFont

    rng = make_rng(seed)
    font = ImageFont.load_default()
    imgs, names = [], []
    for i in range(n):
        letter = chr(ord("A") + i % 26)
        bg = tuple(int(v) for v in rng.integers(0, 256, 3))
        fg = tuple(int(v) for v in rng.integers(0, 256, 3))
        small = Image.new("RGB", (12, 12), bg)
        ImageDraw.Draw(small).text((3, 0), letter, fill=fg, font=font)
        shift = rng.integers(-1, 2, size=2)
        small = small.transform(small.size, Image.AFFINE, (1, 0, int(shift[0]), 0, 1, int(shift[1])),
                                fillcolor=bg)
        imgs.append(np.asarray(small.resize((size, size), Image.NEAREST), dtype=np.uint8))
        names.append(letter)
    return np.stack(imgs), names


def _readout(feature: np.ndarray, n_voxels: int, rng) -> np.ndarray:
    """z-scored linear read-out of ``feature`` (n, k) by ``n_voxels`` random voxels."""
    W = rng.standard_normal((feature.shape[1], n_voxels))
    s = feature @ W
    return (s - s.mean(axis=0)) / (s.std(axis=0) + 1e-12)


def _trials(signal: np.ndarray, n_reps: int, noise_sd: float, rng) -> np.ndarray:
    """(n_stim, n_reps, n_vox): signal + a positive voxel baseline + independent noise."""
    base = rng.uniform(0.5, 2.0, size=signal.shape[1])
    noise = rng.normal(0.0, noise_sd, size=(signal.shape[0], n_reps, signal.shape[1]))
    return signal[:, None, :] + base + noise


def _save_png(folder: Path, name: str, img: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(folder / f"{name}.png") as tmp:
        Image.fromarray(img).save(tmp, format="PNG")


def write_lu2025_demo(
    paths: Mapping[str, str],
    *,
    shen_subjects=(1,),
    horikawa_subjects=(1,),
    eeg_subjects=(1,),
    n_train: int = 192,
    n_test: int = 24,
    n_artificial: int = 8,
    n_letters: int = 4,
    n_reps_train: int = 2,
    n_reps_test: int = 4,
    n_voxels: int = 60,
    noise_sd: float = 1.0,
    n_eeg_images: int = 24,
    n_eeg_reps: int = 8,
    eeg_noise_sd: float = 1.0,
    n_dims: int = 49,
    image_size: int = 32,
    grid: int = 4,
    seed=0,
) -> dict:
    """Write the Lu 2025 demo dataset (module docstring) and return its truth record.

    ``paths``: ``shen_root``, ``horikawa_root``, ``eeg_root``, ``image_dir``, ``dims_weights``,
    ``dims_concepts``, ``truth`` (JSON), and the file-name templates ``shen_train``,
    ``shen_test`` (dict set -> template; sets ``natural``, ``artificial``, ``letter``) and
    ``horikawa_file``, formatted with ``subject`` (two digits for Shen, ``{subject}`` = 1, 2,
    ... for GOD files).
    """
    rng = make_rng(seed)
    image_dir = Path(paths["image_dir"])
    n_nat = n_train + n_test
    nat, cats = make_images(n_nat, size=image_size, seed=int(rng.integers(2**31)))
    art, _ = make_images(n_artificial, size=image_size, n_categories=3, seed=int(rng.integers(2**31)))
    let, letters = letter_images(n_letters, image_size, seed=int(rng.integers(2**31)))
    eeg_imgs, _ = make_images(n_eeg_images, size=image_size, seed=int(rng.integers(2**31)))

    # Stimulus ids as Shen/GOD floats WNID.imageID; labels n0WNID_imageID name the image files.
    ids = {
        "train": 1_000_000.0 + cats[:n_train] + (np.arange(n_train) + 1) / 1e6,
        "natural": 2_000_000.0 + cats[n_train:] + (np.arange(n_test) + 1) / 1e6,
        "artificial": 3_000_000.0 + (np.arange(n_artificial) + 1) / 1e6,
        "letter": 4_000_000.0 + (np.arange(n_letters) + 1) / 1e6,
    }
    images = {"train": nat[:n_train], "natural": nat[n_train:], "artificial": art, "letter": let}
    for key, arr in images.items():
        for v, img in zip(ids[key], arr, strict=True):
            _save_png(image_dir, stimulus_id_to_name(v), img)
    feats = {k: planted_feature(v, grid) for k, v in images.items()}
    feat_all = planted_feature(np.concatenate([images[k] for k in images]), grid)
    at = 0
    for k in images:  # z-scored jointly so every set shares one feature scale
        feats[k] = feat_all[at:at + len(images[k])]
        at += len(images[k])

    shen_root = Path(paths["shen_root"])
    for s in shen_subjects:
        sub = f"{int(s):02d}"
        srng = make_rng(int(rng.integers(2**31)))
        weights = {roi: srng.standard_normal((grid * grid, n_voxels)) for roi in DEMO_SHEN_ROIS}
        sets = [("train", paths["shen_train"], n_reps_train)] + [
            (name, paths["shen_test"][name], n_reps_test) for name in ("natural", "artificial", "letter")
        ]
        for name, template, reps in sets:
            resp = {}
            for roi in DEMO_SHEN_ROIS:
                sig = feats[name] @ weights[roi] / grid  # unit variance on average
                resp[roi] = _trials(sig, reps, noise_sd, srng)
            write_synthetic_bdata(shen_root / template.format(subject=sub), responses_by_roi=resp,
                                  stimulus_ids=ids[name], n_reps=reps, seed=int(srng.integers(2**31)),
                                  label_key="stimulus_name")

    god_root = Path(paths["horikawa_root"])
    god_ids = np.concatenate([ids["train"][:8], ids["natural"]])
    god_feat = np.concatenate([feats["train"][:8], feats["natural"]])
    god_type = np.r_[np.ones(8), np.full(n_test, 2.0)]
    for s in horikawa_subjects:
        grng = make_rng(int(rng.integers(2**31)))
        resp = {roi: _trials(_readout(god_feat, n_voxels, grng), n_reps_test, noise_sd, grng)
                for roi in DEMO_GOD_ROIS}
        write_synthetic_bdata(god_root / paths["horikawa_file"].format(subject=int(s)),
                              responses_by_roi=resp, stimulus_ids=god_ids, n_reps=n_reps_test,
                              seed=int(grng.integers(2**31)), label_key="stimulus_id",
                              data_type=god_type)

    # THINGS-EEG2: channels read out the feature with a bump peaking at 120 ms.
    times = np.round(np.arange(-20, 80) * 0.01, 2)
    envelope = np.exp(-0.5 * ((times - 0.12) / 0.04) ** 2) * (times > 0.02)
    eeg_feat = planted_feature(eeg_imgs, grid)
    data = {}
    for s in eeg_subjects:
        erng = make_rng(int(rng.integers(2**31)))
        topo = _readout(eeg_feat, len(THINGS_EEG2_CHANNELS), erng)  # (n_images, 17)
        sig = topo[:, None, :, None] * envelope[None, None, None, :]
        data[int(s)] = sig + erng.normal(0, eeg_noise_sd, size=(n_eeg_images, n_eeg_reps,
                                                                  len(THINGS_EEG2_CHANNELS), len(times)))
    write_synthetic_things_eeg2(paths["eeg_root"], data_by_subject=data, times=times,
                                images={"test": eeg_imgs})

    # THINGS dimensions (SPoSE-like, non-negative): the first 4 follow the planted feature's
    # quadrant luminance, the rest are noise; extra concepts not in the test set.
    n_extra = 6
    concepts = [f"concept{i + 1:05d}" for i in range(n_eeg_images + n_extra)]
    dims = np.abs(rng.gamma(1.0, 0.3, size=(len(concepts), n_dims)))
    quad = eeg_feat.reshape(n_eeg_images, 2, grid // 2, 2, grid // 2).mean(axis=(2, 4))
    quad = quad.reshape(n_eeg_images, 4)
    k = min(4, n_dims)
    dims[:n_eeg_images, :k] = np.maximum(quad[:, :k] + 2.0, 0) + 0.1 * rng.standard_normal((n_eeg_images, k))
    order = rng.permutation(len(concepts))
    with atomic_path(paths["dims_weights"]) as tmp:
        np.savetxt(tmp, dims[order], fmt="%.6f")
    with atomic_path(paths["dims_concepts"]) as tmp:
        pd.DataFrame({"Word": [concepts[i].replace("concept", "concept ") for i in order],
                      "uniqueID": [concepts[i] for i in order]}).to_csv(tmp, sep="\t", index=False)

    truth = {
        "planted_feature": f"mean luminance in a {grid}x{grid} grid (linear read-out + noise)",
        "shen_subjects": [int(s) for s in shen_subjects],
        "horikawa_subjects": [int(s) for s in horikawa_subjects],
        "eeg_subjects": [int(s) for s in eeg_subjects],
        "n_images": {k: len(v) for k, v in images.items()} | {"things_eeg2": int(n_eeg_images)},
        "planted_dimensions": list(range(k)),
        "teacher": "seeded untrained CORnet-S",
    }
    with atomic_path(paths["truth"]) as tmp:
        tmp.write_text(json.dumps(truth, indent=1))
    return truth


def make_images(n: int, *, size: int, seed, n_categories: int = 6):
    """Procedural images of :mod:`brainalign.demo` (imported lazily: it pulls in the demo nets)."""
    from brainalign.demo import make_images as _make

    return _make(n, size=size, n_categories=n_categories, seed=seed)


# --------------------------------------------------------------------------- evaluation


def rsa_rows(model_rdms: Mapping[str, np.ndarray], brain_rdm) -> list[dict]:
    """Spearman of every layer RDM with ``brain_rdm``, plus a ``layer="max"`` row (best layer)."""
    names = list(model_rdms)
    rho = np.atleast_1d(compare_rdms(brain_rdm, np.stack([model_rdms[a] for a in names]), "spearman"))
    rows = [{"layer": a, "score": float(r)} for a, r in zip(names, rho, strict=True)]
    k = int(np.nanargmax(rho)) if np.isfinite(rho).any() else 0
    rows.append({"layer": "max", "score": float(np.nanmax(rho)) if np.isfinite(rho).any() else np.nan,
                 "best_layer": names[k]})
    return rows


def improvement_table(scores: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Ratios ``(ReAlnet - CORnet) / CORnet`` and ``(ReAlnet - Control) / Control`` per group.

    ``scores`` has columns ``model`` (cornet|control|realnet), ``model_subject``, ``beta``,
    ``score`` and the grouping ``keys`` (e.g. dataset, roi); scores are first averaged over any
    other column (brain subjects, time points). One row per ReAlnet (model_subject, beta) and group.
    """
    keys = list(keys)
    mean = scores.groupby(keys + ["model", "model_subject", "beta"], dropna=False)["score"].mean()
    mean = mean.reset_index()
    cornet = mean[mean["model"] == "cornet"].set_index(keys)["score"]
    control = mean[mean["model"] == "control"].set_index(keys + ["model_subject"])["score"]
    rows = []
    for _, r in mean[mean["model"] == "realnet"].iterrows():
        g = tuple(r[k] for k in keys)
        base = cornet.get(g if len(g) > 1 else g[0], np.nan)
        ctrl = control.get(g + (r["model_subject"],), np.nan)
        rows.append({**{k: r[k] for k in keys}, "model_subject": r["model_subject"], "beta": r["beta"],
                     "realnet": r["score"], "cornet": base, "control": ctrl,
                     "diff_vs_cornet": r["score"] - base, "diff_vs_control": r["score"] - ctrl,
                     "ratio_vs_cornet": (r["score"] - base) / base if base else np.nan,
                     "ratio_vs_control": (r["score"] - ctrl) / ctrl if ctrl else np.nan})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- workflow helpers


def resolve_device(name: str) -> str:
    """``"auto"`` -> ``"cuda"`` when available, else ``"cpu"``; other names unchanged."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(name)


def save_backbone(path, backbone: torch.nn.Module, **meta) -> None:
    """The trained CORnet-S weights (state dict) and ``meta`` (width, beta, ...), atomically."""
    state = {k: v.detach().cpu() for k, v in backbone.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": state, "meta": meta}, tmp)


def load_backbone(path, *, width: float = 1.0) -> torch.nn.Module:
    """A CORnet-S written by :func:`save_backbone`."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise InputError(f"{path}: cannot read a trained CORnet-S ({err}).") from err
    width = float(obj.get("meta", {}).get("width", width))
    net = cornet_s(width=width)
    net.load_state_dict(obj["state_dict"])
    return net


def write_layer_rdms(path, rdms: Mapping[str, Mapping[str, np.ndarray]],
                     labels: Mapping[str, Sequence[str]], **attrs) -> None:
    """``rdms[stimset][layer]`` condensed RDMs and each stimset's image labels, to HDF5."""
    import h5py

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for k, v in attrs.items():
            f.attrs[k] = v
        for stimset, layers in rdms.items():
            g = f.create_group(stimset)
            g.create_dataset("labels", data=np.asarray(labels[stimset], dtype=object),
                             dtype=h5py.string_dtype())
            g.attrs["layers"] = list(layers)
            for layer, rdm in layers.items():
                g.create_dataset(f"rdm_{layer}", data=np.asarray(rdm, dtype=np.float64))


def read_layer_rdms(path) -> tuple[dict, dict]:
    """Inverse of :func:`write_layer_rdms`: (rdms[stimset][layer], labels[stimset])."""
    import h5py

    if not Path(path).is_file():
        raise InputError(f"Layer-RDM file {path} not found.")
    rdms, labels = {}, {}
    with h5py.File(path, "r") as f:
        for stimset, g in f.items():
            labels[stimset] = np.array([x.decode() if isinstance(x, bytes) else str(x)
                                        for x in g["labels"][()]])
            rdms[stimset] = {str(a): g[f"rdm_{a}"][()] for a in g.attrs["layers"]}
    return rdms, labels


def shen_test_stimuli(files: Mapping[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Labels and set name of every test stimulus, sets in ``files`` order."""
    labels, sets = [], []
    for name, path in files.items():
        _, lab = stimulus_list(path)
        labels += list(lab)
        sets += [name] * len(lab)
    return np.array(labels), np.array(sets)


def things_test_images(root) -> tuple[np.ndarray, list[Path], np.ndarray]:
    """THINGS-EEG2 test concepts (= the decoding conditions), image files and concepts."""
    from brainalign.io.things_eeg2 import load_image_metadata, things_eeg2_paths

    meta = load_image_metadata(root)
    folder = things_eeg2_paths(root)["images/test"]
    concepts = meta["test_img_concepts"]
    paths = [folder / c / f for c, f in zip(concepts, meta["test_img_files"], strict=True)]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise InputError(f"lu2025.things_eeg2.root: {len(missing)} test images missing, e.g. {missing[0]}.")
    return concepts, paths, concepts


def brain_rdms(path, rois: Sequence[str], *, data_type=None, order=None) -> dict[str, np.ndarray]:
    """1 - Pearson RDM per ROI of one BData file (repetitions averaged), rows in ``order`` (labels)."""
    from brainalign.io.bdata import load_bdata_rois
    from brainalign.rdm import compute_rdm

    d = load_bdata_rois(path, rois, data_type=data_type)
    labels = d["stimulus_labels"]
    idx = np.arange(len(labels))
    if order is not None:
        pos = {lab: i for i, lab in enumerate(labels)}
        missing = [lab for lab in order if lab not in pos]
        if missing:
            raise InputError(f"{path}: stimuli {missing[:3]} of the model RDMs are not in this file.")
        idx = np.array([pos[lab] for lab in order])
    return {roi: compute_rdm(d["responses"][roi][idx], "pearson") for roi in rois}
