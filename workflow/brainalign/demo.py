"""The embedded demo: procedurally generated stimuli and synthetic subjects with a planted answer.

1. :func:`make_images` draws a few hundred 64 px images from several procedural
   categories (disks, gratings, checkerboards, rings, smooth textures, polygons).
2. :func:`planted_responses` runs the seeded ground-truth network
   (:mod:`brainalign.models.gtnet`) and makes every synthetic subject's
   **EVC** voxels a noisy linear read-out of an *early* stage (local receptive
   fields over ``stage1``) and its **OTC** voxels a read-out of a *late* stage
   (``stage5``), with independent noise on every repetition.
3. :func:`write_demo` writes everything in the real NSD formats (betas HDF5,
   design .mat, stimulus csv, ROI and ncsnr NIfTIs, the image brick), so the
   workflow reads it back through the same loaders it uses for real NSD data.

The workflow must recover the planted layers; the tests assert it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from brainalign.models.gtnet import GTNET_INPUT_SIZE, gtnet
from brainalign.utils import atomic_path, make_rng

__all__ = ["CATEGORIES", "make_images", "gtnet_activations", "planted_responses", "write_demo"]

CATEGORIES = ("disk", "grating", "checker", "ring", "texture", "polygon")


def _grid(size):
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / size
    return x, y


def _colour(rng):
    return rng.uniform(0.05, 0.95, size=3)


def _draw(category: str, size: int, rng: np.random.Generator) -> np.ndarray:
    x, y = _grid(size)
    bg, fg = _colour(rng), _colour(rng)
    cx, cy = rng.uniform(0.3, 0.7, size=2)
    r = np.hypot(x - cx, y - cy)
    if category == "disk":
        mask = (r < rng.uniform(0.12, 0.3)).astype(float)
    elif category == "grating":
        theta, freq = rng.uniform(0, np.pi), rng.uniform(3, 9)
        mask = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (x * np.cos(theta) + y * np.sin(theta))
                                  + rng.uniform(0, 2 * np.pi))
    elif category == "checker":
        theta, n = rng.uniform(0, np.pi / 2), rng.uniform(3, 8)
        u = x * np.cos(theta) + y * np.sin(theta)
        v = -x * np.sin(theta) + y * np.cos(theta)
        mask = ((np.floor(u * n) + np.floor(v * n)) % 2).astype(float)
    elif category == "ring":
        r0 = rng.uniform(0.15, 0.32)
        mask = (np.abs(r - r0) < rng.uniform(0.03, 0.07)).astype(float)
    elif category == "texture":
        from scipy.ndimage import gaussian_filter

        noise = gaussian_filter(rng.standard_normal((size, size)), sigma=rng.uniform(1.5, 4))
        mask = (noise - noise.min()) / (np.ptp(noise) + 1e-12)
    elif category == "polygon":
        k = int(rng.integers(3, 7))
        angle = np.arctan2(y - cy, x - cx) - rng.uniform(0, 2 * np.pi)
        # distance to a regular k-gon's edge in polar form
        edge = np.cos(np.pi / k) / np.cos((angle % (2 * np.pi / k)) - np.pi / k)
        mask = (r < rng.uniform(0.15, 0.3) * edge).astype(float)
    else:  # pragma: no cover - guarded by CATEGORIES
        raise ValueError(category)
    img = bg[None, None, :] * (1 - mask[..., None]) + fg[None, None, :] * mask[..., None]
    img += rng.normal(0, 0.02, size=img.shape)
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def make_images(n_images: int, *, size: int = GTNET_INPUT_SIZE, n_categories: int = 6, seed=0):
    """``n_images`` procedural RGB images (uint8 (n, size, size, 3)) and their category labels."""
    if not 1 <= n_categories <= len(CATEGORIES):
        raise ValueError(f"n_categories must be 1..{len(CATEGORIES)}, got {n_categories}.")
    rng = make_rng(seed)
    labels = np.arange(n_images) % n_categories
    rng.shuffle(labels)
    images = np.stack([_draw(CATEGORIES[c], size, rng) for c in labels])
    return images, labels


@torch.no_grad()
def gtnet_activations(images: np.ndarray, stages=("stage1", "stage5"), seed=None) -> dict:
    """Activations of the ground-truth network's stages for uint8 images (n, H, W, 3)."""
    net = gtnet() if seed is None else gtnet(seed=seed)
    out = {}
    hooks = [getattr(net, s).register_forward_hook(lambda m, i, o, s=s: out.__setitem__(s, o.clone()))
             for s in stages]
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    if x.shape[-1] != GTNET_INPUT_SIZE:
        x = torch.nn.functional.interpolate(x, size=GTNET_INPUT_SIZE, mode="bilinear", antialias=True)
    net(x)
    for h in hooks:
        h.remove()
    return {s: a.numpy().astype(np.float64) for s, a in out.items()}


def _zscore_columns(a):
    a = a - a.mean(axis=0)
    return a / (a.std(axis=0) + 1e-12)


def _evc_weights(shape, n_voxels, rng):
    """Local receptive fields: a Gaussian spatial profile times random channel weights."""
    c, h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    W = np.empty((n_voxels, c * h * w))
    for v in range(n_voxels):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        sigma = rng.uniform(1.5, 4.0)
        spatial = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
        W[v] = (rng.standard_normal(c)[:, None, None] * spatial[None]).ravel()
    return W


def planted_responses(images, *, subjects=(1, 2), n_reps=3, n_voxels=None, noise_sd=1.5,
                      signal_psc=1.5, planted_layers=None, seed=0):
    """Synthetic responses in % signal change: dict subject -> roi -> (n_reps, n_images, n_voxels).

    Each voxel's signal is z-scored over images, scaled to ``signal_psc`` and offset
    by a positive baseline; every repetition adds independent Gaussian noise with
    standard deviation ``noise_sd * signal_psc``.
    """
    n_voxels = {"EVC": 200, "OTC": 300} if n_voxels is None else dict(n_voxels)
    planted_layers = {"EVC": "stage1", "OTC": "stage5"} if planted_layers is None else dict(planted_layers)
    acts = gtnet_activations(images, stages=tuple(sorted(set(planted_layers.values()))))
    rng = make_rng(seed)
    out = {}
    for subject in subjects:
        out[int(subject)] = {}
        for roi, stage in planted_layers.items():
            a = acts[stage]
            flat = a.reshape(len(a), -1)
            if a.ndim == 4:
                W = _evc_weights(a.shape[1:], n_voxels[roi], rng)
            else:
                W = rng.standard_normal((n_voxels[roi], flat.shape[1]))
            signal = _zscore_columns(flat @ W.T) * signal_psc
            baseline = rng.uniform(0.5, 2.0, size=n_voxels[roi])
            noise = rng.normal(0, noise_sd * signal_psc, size=(n_reps,) + signal.shape)
            out[int(subject)][roi] = (signal[None] + baseline + noise).astype(np.float32)
    return out


def write_demo(root, *, n_images=300, n_categories=6, subjects=(1, 2), n_reps=3, n_voxels=None,
               noise_sd=1.5, planted_layers=None, seed=0) -> dict:
    """Write the demo's NSD-format dataset under ``root``; returns the truth record.

    ``root/truth.json`` records the planted layers, the image ids and their categories.
    """
    from brainalign.io.nsd import write_synthetic_nsd

    root = Path(root)
    rng = make_rng(seed)
    images, labels = make_images(n_images, n_categories=n_categories, seed=rng.integers(2**31))
    image_ids = np.sort(rng.choice(73000, size=n_images, replace=False))
    planted_layers = {"EVC": "stage1", "OTC": "stage5"} if planted_layers is None else dict(planted_layers)
    responses = planted_responses(images, subjects=subjects, n_reps=n_reps, n_voxels=n_voxels,
                                  noise_sd=noise_sd, planted_layers=planted_layers,
                                  seed=rng.integers(2**31))
    write_synthetic_nsd(root, image_ids=image_ids, responses=responses, images=images,
                        seed=int(rng.integers(2**31)))
    truth = {
        "planted_layers": planted_layers,
        "ground_truth_model": "gtnet",
        "subjects": [int(s) for s in subjects],
        "image_ids": image_ids.tolist(),
        "categories": [CATEGORIES[c] for c in labels],
    }
    with atomic_path(root / "truth.json") as tmp:
        tmp.write_text(json.dumps(truth, indent=1))
    return truth
