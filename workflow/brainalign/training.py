"""Training classifiers: the DNN variants of Cichy et al. 2016 (SPEC section 2), and the
checkpoint helpers every training loop of brainalign uses.

Training sets (map-style datasets of ``(image tensor, label)``)
    :class:`ImageFolder` -- one subfolder per class, as torchvision's ``ImageFolder`` (classes
    sorted by name are labels 0..n-1); the *object* and *scene* sets.
    :class:`ShuffledLabels` -- the *unecological* set: the object images with their labels
    permuted once across images (:func:`shuffled_labels`, seeded); class sizes are kept.
    :class:`NoiseImages` -- the *noise* set, generated on the fly: ``n_classes`` x
    ``images_per_class`` independent images (:func:`noise_image`: every pixel and channel
    U[0, 1], then a 2-D Gaussian filter, 10 x 10 px with sigma 80 px in the paper, 256 x 256 x 3),
    image ``i`` determined by ``(seed, i)``; class ``i // images_per_class``. The images being
    independent, this is the paper's random assignment of noise images to 1000 categories.

Optimisation (:func:`train_classifier`)
    Caffe's recipe as the paper gives it: SGD, lr 0.01 multiplied by 0.1 at each of
    ``lr_steps`` (the paper: every 100k of 450k iterations; :func:`lr_at`), momentum 0.9,
    weight decay 5e-4 (:func:`make_sgd`), softmax cross-entropy, random horizontal mirroring.
    One iteration is one batch; batches walk through a stream of seeded epoch permutations
    (:func:`batch_indices`), so the data order depends only on (seed, iteration). Not
    reproduced from Caffe: per-layer lr/decay multipliers for biases, random 227 px crops of
    256 px images (we resize and centre-crop), and Caffe's momentum update, which scales the
    velocity by the learning rate (identical to PyTorch's except across an lr step).

Checkpoints (used by :func:`train_classifier` and :func:`brainalign.realnet.train_realnet`)
    :func:`save_checkpoint` (atomic), :func:`read_checkpoint` (format and version checked),
    :func:`check_resume` (the resumed run has the same configuration),
    :func:`capture_rng_state` / :func:`restore_rng_state` and :func:`forked_rng`. A run killed
    at any point and started again resumes from its last checkpoint and ends with the same
    weights as an uninterrupted run (same device and thread count).

The workflow (``workflow/rules/cichy2016.smk``) calls :func:`train_cichy_variant` per variant and
writes the result with :func:`save_network`, a file :func:`brainalign.models.registry.load_model`
reads back (network size and input size included). :func:`write_demo_training_sets` makes the
demo's tiny object and scene folders.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from brainalign.utils import InputError, atomic_path, check_option

__all__ = [
    # checkpoints
    "save_checkpoint",
    "read_checkpoint",
    "check_resume",
    "capture_rng_state",
    "restore_rng_state",
    "forked_rng",
    # data
    "IMAGE_EXTENSIONS",
    "ImageFolder",
    "ShuffledLabels",
    "shuffled_labels",
    "CachedItems",
    "NoiseImages",
    "noise_image",
    "gaussian_kernel",
    "smooth_noise",
    # optimisation
    "lr_at",
    "make_sgd",
    "batch_indices",
    "train_classifier",
    "TRAIN_LOG_COLUMNS",
    # Cichy 2016 variants
    "CICHY_VARIANTS",
    "TRAINED_VARIANTS",
    "resolve_device",
    "check_training_folders",
    "cichy_training_set",
    "train_cichy_variant",
    "init_untrained_variant",
    "save_network",
    "write_demo_training_sets",
]

CHECKPOINT_FORMAT = "brainalign-classifier-checkpoint"
CHECKPOINT_VERSION = 1
#: Columns of the per-interval training log (tab-separated).
TRAIN_LOG_COLUMNS = ("iteration", "lr", "n_batches", "n_samples", "loss", "accuracy", "seconds")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")
#: The five variants of Cichy et al. 2016 (Fig. 5a), and those that are trained.
CICHY_VARIANTS = ("object", "scene", "unecological", "noise", "untrained")
TRAINED_VARIANTS = ("object", "scene", "unecological", "noise")
DEVICES = ("auto", "cpu", "cuda")
#: Training sets whose transformed images fit in this many bytes are kept in memory.
CACHE_BYTES = 1 << 30


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


def save_checkpoint(path, *, format: str, version: int, **state) -> None:
    """Write ``{"format", "format_version", **state}`` with ``torch.save``, atomically.

    ``state`` holds what a resume needs: ``model`` / ``optimizer`` state dicts, progress
    counters, ``rng`` (:func:`capture_rng_state`), loss history and ``config``
    (:func:`check_resume`). Plain Python containers, numbers, strings and tensors only, so that
    :func:`read_checkpoint` can load it with ``weights_only=True``.
    """
    with atomic_path(path) as tmp:
        torch.save({"format": format, "format_version": int(version), **state}, tmp)


def read_checkpoint(path, *, format: str, version: int, what: str = "training checkpoint") -> dict:
    """Load a :func:`save_checkpoint` file (CPU tensors); :class:`InputError` naming the file if it
    cannot be read, is not of ``format`` or has another format version."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, not a torch file, ...
        raise InputError(f"{what} {str(path)!r} could not be read: {err}") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != format:
        raise InputError(
            f"{str(path)!r} is not a {what} (format {format!r}); delete it or choose another "
            "checkpoint path."
        )
    if ckpt.get("format_version") != version:
        raise InputError(
            f"{what} {str(path)!r} has format_version {ckpt.get('format_version')!r}; this "
            f"brainalign reads version {version}."
        )
    return ckpt


def check_resume(ckpt: dict, config: dict, *, done: int, total: int, unit: str, path,
                 caller: str) -> None:
    """Refuse to resume from ``ckpt`` unless it was written with the same ``config`` (every key
    of ``config`` compared) and has at most ``total`` completed ``unit`` (epochs, iterations)."""
    old = ckpt.get("config", {})
    for key, value in config.items():
        if old.get(key) != value:
            raise InputError(
                f"{caller}: checkpoint {str(path)!r} was written with {key}={old.get(key)!r}, "
                f"but this call has {key}={value!r}; use the same settings to resume, or delete "
                "the checkpoint to start over."
            )
    if done > total:
        raise InputError(
            f"{caller}: checkpoint {str(path)!r} has {done} completed {unit}, more than the "
            f"{total} asked for; ask for at least {done} {unit} or delete the checkpoint."
        )


def capture_rng_state(device="cpu", numpy_rng: np.random.Generator | None = None) -> dict:
    """torch's CPU RNG state, the CUDA RNG state of ``device`` (None on CPU) and the state of
    ``numpy_rng`` (None without one)."""
    device = torch.device(device)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": numpy_rng.bit_generator.state if numpy_rng is not None else None,
    }


def restore_rng_state(state: dict, device="cpu", numpy_rng: np.random.Generator | None = None) -> None:
    """Put back what :func:`capture_rng_state` captured."""
    device = torch.device(device)
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)
    if numpy_rng is not None and state.get("numpy") is not None:
        numpy_rng.bit_generator.state = state["numpy"]


def forked_rng(device="cpu"):
    """Context: torch's CPU RNG (and ``device``'s CUDA RNG) restored on exit, so a training loop
    that seeds or restores them leaves the caller's global RNG untouched."""
    device = torch.device(device)
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    return torch.random.fork_rng(devices=devices)


# --------------------------------------------------------------------------------------------
# Training sets
# --------------------------------------------------------------------------------------------


def _where(root, key) -> str:
    return f"{str(root)!r}" + (f" (config key {key})" if key else "")


class ImageFolder(Dataset):
    """Images in ``root/<class>/...`` (any depth below the class folder); labels are the class
    folders sorted by name, as torchvision's ``ImageFolder``. Items: ``(transform(image), label)``.

    ``key`` names the config key the folder came from, for error messages. Raises
    :class:`InputError` for a missing folder, fewer than two class folders or a class folder
    without images; an unreadable image raises when it is loaded, naming the file.
    """

    def __init__(self, root, transform=None, *, key: str | None = None):
        root = Path(root)
        if not root.is_dir():
            raise InputError(
                f"Training image folder {_where(root, key)} does not exist; expected one "
                "subfolder of images per class."
            )
        classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if len(classes) < 2:
            raise InputError(
                f"Training image folder {_where(root, key)} has {len(classes)} class subfolder(s); "
                "expected one subfolder of images per class, at least two."
            )
        samples, empty = [], []
        for label, name in enumerate(classes):
            files = sorted(
                p for p in (root / name).rglob("*")
                if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
            )
            if not files:
                empty.append(name)
            samples += [(str(p), label) for p in files]
        if empty:
            shown = ", ".join(repr(e) for e in empty[:5]) + (" ..." if len(empty) > 5 else "")
            raise InputError(
                f"Training image folder {_where(root, key)}: {len(empty)} class folder(s) hold no "
                f"images ({shown}); expected files ending in {', '.join(IMAGE_EXTENSIONS)}."
            )
        self.root, self.key, self.transform = root, key, transform
        self.classes = classes
        self.samples = samples
        self.targets = np.array([label for _, label in samples], dtype=np.int64)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        path, label = self.samples[i]
        try:
            with Image.open(path) as im:
                img = im.convert("RGB")
        except (OSError, ValueError) as err:
            raise InputError(f"Training image {path!r} could not be read as an image: {err}") from err
        return (self.transform(img) if self.transform is not None else img), label


def shuffled_labels(labels, seed: int) -> np.ndarray:
    """``labels`` permuted once across images: image ``i`` gets ``labels[perm[i]]`` with
    ``perm = np.random.default_rng(seed).permutation(len(labels))``. Every class keeps its size."""
    labels = np.asarray(labels)
    return labels[np.random.default_rng(int(seed)).permutation(len(labels))]


class _Wrapped(Dataset):
    """A dataset over another one: same length, classes and number of classes."""

    def __init__(self, dataset, targets):
        self.dataset = dataset
        self.targets = targets
        self.classes = getattr(dataset, "classes", None)

    @property
    def n_classes(self) -> int:
        return int(self.dataset.n_classes)

    def __len__(self):
        return len(self.dataset)


class ShuffledLabels(_Wrapped):
    """``dataset`` with its labels shuffled once across images (:func:`shuffled_labels`)."""

    def __init__(self, dataset, seed: int):
        super().__init__(dataset, shuffled_labels(dataset.targets, seed))

    def __getitem__(self, i):
        image, _ = self.dataset[i]
        return image, int(self.targets[i])


class CachedItems(_Wrapped):
    """``dataset`` with every item kept in memory after its first load (for small training sets,
    e.g. the demo's, whose items are deterministic: decoding PNGs or generating noise then
    happens once instead of once per epoch). Each DataLoader worker keeps its own cache."""

    def __init__(self, dataset):
        super().__init__(dataset, dataset.targets)
        self._items: dict[int, tuple] = {}

    def __getitem__(self, i):
        item = self._items.get(i)
        if item is None:
            item = self._items[i] = self.dataset[i]
        return item


def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian of ``size`` taps centred on ``(size - 1) / 2``; its outer product
    with itself is MATLAB's ``fspecial('gaussian', [size size], sigma)``."""
    x = np.arange(int(size)) - (int(size) - 1) / 2
    w = np.exp(-0.5 * (x / float(sigma)) ** 2)
    return w / w.sum()


def smooth_noise(noise: np.ndarray, kernel_size: int = 10, sigma: float = 80.0,
                 mode: str = "reflect") -> np.ndarray:
    """Filter ``noise`` (H, W, C) with the 2-D Gaussian ``kernel_size`` x ``kernel_size`` of
    ``sigma`` px, per channel (separable; boundary ``mode`` of :mod:`scipy.ndimage`). For an odd
    ``kernel_size = 2r + 1`` this is ``scipy.ndimage.gaussian_filter(noise, (sigma, sigma, 0),
    radius=(r, r, 0), mode=mode)``; an even size is centred as MATLAB's ``imfilter`` centres it
    (tap ``size // 2 - 1``)."""
    w = gaussian_kernel(kernel_size, sigma)
    origin = -1 if len(w) % 2 == 0 else 0
    out = ndimage.correlate1d(noise, w, axis=0, mode=mode, origin=origin)
    return ndimage.correlate1d(out, w, axis=1, mode=mode, origin=origin)


def noise_image(seed: int, index: int = 0, *, size: int = 256, kernel_size: int = 10,
                sigma: float = 80.0) -> np.ndarray:
    """Noise image ``index`` of the set ``seed``: float64 (size, size, 3) in [0, 1], every pixel
    and channel U[0, 1] from ``np.random.default_rng([seed, index])``, then
    :func:`smooth_noise`."""
    rng = np.random.default_rng([int(seed), int(index)])
    return smooth_noise(rng.random((int(size), int(size), 3)), kernel_size, sigma)


class NoiseImages(Dataset):
    """The noise training set, generated on the fly: image ``i`` is :func:`noise_image` of
    ``(seed, i)`` as an 8-bit RGB image, its label ``i // images_per_class``."""

    def __init__(self, n_classes: int = 1000, images_per_class: int = 1300, *, size: int = 256,
                 kernel_size: int = 10, sigma: float = 80.0, seed: int = 0, transform=None):
        for name, value in (("n_classes", n_classes), ("images_per_class", images_per_class),
                            ("size", size), ("kernel_size", kernel_size)):
            _check_positive_int(f"NoiseImages {name}", value)
        if n_classes < 2:
            raise InputError(f"NoiseImages n_classes must be at least 2, got {n_classes}.")
        if not (math.isfinite(sigma) and sigma > 0):
            raise InputError(f"NoiseImages sigma must be a positive number, got {sigma!r}.")
        self.classes = [f"noise{c:04d}" for c in range(n_classes)]
        self.images_per_class = int(images_per_class)
        self.size, self.kernel_size, self.sigma, self.seed = int(size), int(kernel_size), sigma, seed
        self.transform = transform
        self.targets = np.arange(n_classes * images_per_class, dtype=np.int64) // images_per_class

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def __len__(self):
        return len(self.targets)

    def image(self, i: int) -> Image.Image:
        x = noise_image(self.seed, i, size=self.size, kernel_size=self.kernel_size, sigma=self.sigma)
        return Image.fromarray(np.round(x * 255).astype(np.uint8))

    def __getitem__(self, i):
        if not 0 <= i < len(self):
            raise IndexError(i)
        img = self.image(i)
        return (self.transform(img) if self.transform is not None else img), int(self.targets[i])


# --------------------------------------------------------------------------------------------
# Optimisation
# --------------------------------------------------------------------------------------------


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}.")


def lr_at(iteration: int, *, lr: float = 0.01, steps: Sequence[int] = (), gamma: float = 0.1) -> float:
    """Learning rate of (0-based) ``iteration``: ``lr * gamma ** (number of steps <= iteration)``
    (Caffe's "multistep" policy; the paper's "step" policy every 100k is steps 100k, 200k, ...)."""
    return float(lr) * float(gamma) ** sum(1 for s in steps if iteration >= s)


def make_sgd(model: nn.Module, *, lr: float = 0.01, momentum: float = 0.9,
             weight_decay: float = 5e-4) -> torch.optim.SGD:
    """SGD with the paper's momentum and weight decay (every parameter decays)."""
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)


class _EpochPermutations:
    """Permutation of epoch ``e`` = ``default_rng([seed, e]).permutation(n)``; the last is cached."""

    def __init__(self, n, seed):
        self.n, self.seed, self._cached = n, int(seed), (None, None)

    def __call__(self, epoch):
        if self._cached[0] != epoch:
            self._cached = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n))
        return self._cached[1]


def batch_indices(iteration: int, batch_size: int, n: int, seed: int) -> np.ndarray:
    """Sample indices of batch ``iteration``: items ``iteration * batch_size`` onwards of the
    concatenated seeded epoch permutations (a batch may span two epochs)."""
    return _batch(iteration, batch_size, n, _EpochPermutations(n, seed))


def _batch(iteration, batch_size, n, perms) -> np.ndarray:
    out, pos = [], iteration * batch_size
    while sum(len(o) for o in out) < batch_size:
        epoch, offset = divmod(pos, n)
        take = min(batch_size - sum(len(o) for o in out), n - offset)
        out.append(perms(epoch)[offset:offset + take])
        pos += take
    return np.concatenate(out)


class _IterationBatches(Sampler):
    def __init__(self, start, stop, batch_size, n, seed):
        self.start, self.stop, self.batch_size, self.n = start, stop, batch_size, n
        self.perms = _EpochPermutations(n, seed)

    def __iter__(self):
        for it in range(self.start, self.stop):
            yield _batch(it, self.batch_size, self.n, self.perms).tolist()

    def __len__(self):
        return self.stop - self.start


def check_label_range(labels, n_classes: int, what: str) -> None:
    """Raise unless every class label lies in ``[0, n_classes)`` (the model's outputs)."""
    labels = torch.as_tensor(labels)
    bad = (labels < 0) | (labels >= n_classes)
    if bad.any():
        raise InputError(
            f"{what} must lie in [0, {n_classes}) (the model's outputs); {int(bad.sum())} do not, "
            f"e.g. {int(labels[bad][0])}."
        )


def write_loss_log(path, history: list[dict], columns) -> None:
    """Write ``history`` (one dict per logged step or epoch) as a tsv of ``columns``, atomically.

    Integers are written as such, everything else with ``repr(float)`` (round-trips exactly).
    """
    with atomic_path(path) as tmp:
        with open(tmp, "w") as fh:
            fh.write("\t".join(columns) + "\n")
            for row in history:
                fh.write("\t".join(_fmt(row[c]) for c in columns) + "\n")


def _fmt(v) -> str:
    return str(v) if isinstance(v, (int, np.integer)) else repr(float(v))


def _progress(iterable, enabled, **kw):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, mininterval=5.0, **kw)


def _new_interval() -> dict:
    return {"loss": 0.0, "correct": 0, "samples": 0, "batches": 0, "seconds": 0.0}


def train_classifier(
    model: nn.Module,
    dataset,
    *,
    iterations: int,
    batch_size: int,
    seed: int,
    checkpoint_path,
    checkpoint_every: int,
    log_path=None,
    log_every: int | None = None,
    lr: float = 0.01,
    lr_steps: Sequence[int] = (),
    gamma: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    mirror: bool = True,
    device="cpu",
    num_workers: int = 0,
    progress: bool = True,
) -> list[dict]:
    """Train ``model`` (in place) to classify ``dataset`` with SGD; resumable.

    Parameters
    ----------
    model : nn.Module mapping (B, 3, H, W) to (B, n_classes) logits.
    dataset : map-style dataset of ``(image tensor (3, H, W), int label)``.
    iterations : total SGD steps (one batch each; a resumed run counts the checkpoint's).
    batch_size : images per step.
    seed : seeds the data order (:func:`batch_indices`) and torch's RNG (mirroring, dropout)
        inside training; the caller's global RNG is left untouched.
    checkpoint_path : written atomically every ``checkpoint_every`` iterations and at the end
        (model, optimizer, iteration, RNG states, log rows, config). If it exists, training
        resumes from it and ends with the same weights as an uninterrupted run; its config
        (lr, steps, batch size, seed, number of samples, ...) must match the call's.
    log_path, log_every : a tab-separated row (:data:`TRAIN_LOG_COLUMNS`) per ``log_every``
        iterations (default ``checkpoint_every``): mean loss and batch accuracy over the interval.
    lr, lr_steps, gamma, momentum, weight_decay : the paper's 0.01, x0.1 steps, 0.9, 5e-4.
    mirror : flip each image horizontally with probability 1/2.
    device : torch device; num_workers : DataLoader worker processes (the order stays seeded).

    Returns
    -------
    history : the log rows (dicts), all of them including those of resumed runs.

    Raises
    ------
    InputError
        Bad arguments, labels outside the model's outputs, a checkpoint from another
        configuration or with more iterations than asked.
    FloatingPointError
        The loss becomes non-finite (names the iteration).
    """
    for name, value in (("iterations", iterations), ("batch_size", batch_size),
                        ("checkpoint_every", checkpoint_every)):
        _check_positive_int(f"train_classifier: {name}", value)
    log_every = checkpoint_every if log_every is None else log_every
    _check_positive_int("train_classifier: log_every", log_every)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"train_classifier: seed must be an int, got {seed!r}.")
    if isinstance(num_workers, bool) or not isinstance(num_workers, (int, np.integer)) or num_workers < 0:
        raise InputError(f"train_classifier: num_workers must be an integer >= 0, got {num_workers!r}.")
    for name, value in (("lr", lr), ("gamma", gamma)):
        if not (math.isfinite(float(value)) and float(value) > 0):
            raise InputError(f"train_classifier: {name} must be a positive number, got {value!r}.")
    steps = [int(s) for s in lr_steps]
    if any(s < 1 for s in steps) or steps != sorted(steps):
        raise InputError(f"train_classifier: lr_steps must be increasing positive iterations, got {steps}.")
    n = len(dataset)
    if n < 1:
        raise InputError("train_classifier: the training set is empty.")

    config = {
        "lr": float(lr), "lr_steps": steps, "gamma": float(gamma), "momentum": float(momentum),
        "weight_decay": float(weight_decay), "batch_size": int(batch_size), "seed": int(seed),
        "n_samples": n, "mirror": bool(mirror), "log_every": int(log_every),
    }
    checkpoint_path = Path(checkpoint_path)
    ckpt = None
    if checkpoint_path.exists():
        ckpt = read_checkpoint(checkpoint_path, format=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION,
                               what="classifier training checkpoint")
        check_resume(ckpt, config, done=int(ckpt["iteration"]), total=iterations, unit="iterations",
                     path=checkpoint_path, caller="train_classifier")

    device = torch.device(device)
    model.to(device)
    optimizer = make_sgd(model, lr=lr, momentum=momentum, weight_decay=weight_decay)
    start, history, interval = 0, [], _new_interval()
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start = int(ckpt["iteration"])
        history = [dict(row) for row in ckpt["history"]]
        interval = dict(ckpt["interval"])
    dtype = next(model.parameters()).dtype

    def save(iteration):
        save_checkpoint(
            checkpoint_path, format=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION,
            iteration=iteration, model=model.state_dict(), optimizer=optimizer.state_dict(),
            rng=capture_rng_state(device), history=history, interval=interval, config=config,
        )

    with forked_rng(device):
        if ckpt is not None:
            restore_rng_state(ckpt["rng"], device)
        else:
            torch.manual_seed(int(seed))
        # (its own generator: creating the loader's iterator must not draw from the restored RNG)
        loader = DataLoader(dataset, batch_sampler=_IterationBatches(start, iterations, batch_size, n, seed),
                            num_workers=int(num_workers), pin_memory=device.type == "cuda",
                            generator=torch.Generator().manual_seed(int(seed)))
        it = start
        t0 = time.perf_counter()
        n_classes = None
        for x, y in _progress(loader, progress, total=iterations, initial=start, desc="train",
                              unit="it"):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(it, lr=lr, steps=steps, gamma=gamma)
            model.train()
            x = x.to(device, dtype, non_blocking=True)
            y = torch.as_tensor(y).to(device, non_blocking=True)
            if mirror:
                flip = (torch.rand(len(x)) < 0.5).to(device)
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            optimizer.zero_grad(set_to_none=True)
            logits = model(x)
            if n_classes is None:
                n_classes = logits.shape[1]
                check_label_range(y, n_classes, "train_classifier: labels")
            loss = F.cross_entropy(logits, y)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"train_classifier: non-finite loss at iteration {it + 1}; lower lr or check "
                    "the inputs."
                )
            loss.backward()
            optimizer.step()
            it += 1
            k = len(y)
            interval["loss"] += k * loss.item()
            interval["correct"] += int((logits.argmax(1) == y).sum())
            interval["samples"] += k
            interval["batches"] += 1
            now = time.perf_counter()
            interval["seconds"] += now - t0
            t0 = now
            if it % log_every == 0 or it == iterations:
                history.append({
                    "iteration": it, "lr": lr_at(it - 1, lr=lr, steps=steps, gamma=gamma),
                    "n_batches": interval["batches"], "n_samples": interval["samples"],
                    "loss": interval["loss"] / interval["samples"],
                    "accuracy": interval["correct"] / interval["samples"],
                    "seconds": interval["seconds"],
                })
                interval = _new_interval()
                if log_path is not None:
                    write_loss_log(log_path, history, TRAIN_LOG_COLUMNS)
            if it % checkpoint_every == 0 or it == iterations:
                save(it)
                t0 = time.perf_counter()
    if start == iterations and log_path is not None:
        write_loss_log(log_path, history, TRAIN_LOG_COLUMNS)  # a finished rerun: still leave the log
    model.eval()
    return history


# --------------------------------------------------------------------------------------------
# The variants of Cichy et al. 2016
# --------------------------------------------------------------------------------------------


def resolve_device(device: str = "auto", key: str = "device") -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; ``cuda`` without one raises."""
    check_option(key, device, DEVICES)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError(f"config key {key} is 'cuda', but no GPU is visible; use 'auto' or 'cpu'.")
    return device


def check_training_folders(variants, *, object_dir, scene_dir, prefix="cichy2016.training") -> None:
    """Cheap start-up check: the folders the ``variants`` train on exist and hold class folders
    (one :class:`InputError` naming the config key); images are listed when training starts."""
    needs = {"object_dir": object_dir if {"object", "unecological", "untrained"} & set(variants) else None,
             "scene_dir": scene_dir if "scene" in variants else None}
    problems = []
    for name, folder in needs.items():
        if folder is None:
            continue
        folder = Path(folder)
        if not folder.is_dir():
            problems.append(f"config key {prefix}.{name}: folder {str(folder)!r} does not exist")
        elif not any(d.is_dir() for d in folder.iterdir()):
            problems.append(f"config key {prefix}.{name}: folder {str(folder)!r} has no class subfolders")
    if problems:
        raise InputError(
            "Training image folders for the Cichy 2016 variants are missing:\n  "
            + "\n  ".join(problems)
            + "\nExpected one subfolder of images per class (as torchvision ImageFolder)."
        )


def cichy_training_set(variant: str, *, object_dir=None, scene_dir=None, noise: dict | None = None,
                       image_size: int = 227, seed: int = 0, prefix="cichy2016.training"):
    """The training set of a trained variant: ``object`` / ``scene`` (image folders),
    ``unecological`` (object images, labels shuffled with ``seed``) or ``noise``
    (:class:`NoiseImages` with ``noise`` = {n_classes, images_per_class, size, kernel_size,
    sigma}, images seeded by ``seed``). Images pass through the network's evaluation
    transform at ``image_size`` (the one feature extraction uses)."""
    from brainalign.models.alexnet8 import alexnet8_transform

    check_option("variant", variant, TRAINED_VARIANTS)
    transform = alexnet8_transform(image_size)
    if variant in ("object", "unecological"):
        data = ImageFolder(object_dir, transform, key=f"{prefix}.object_dir")
    elif variant == "scene":
        data = ImageFolder(scene_dir, transform, key=f"{prefix}.scene_dir")
    else:
        noise = dict(noise or {})
        data = NoiseImages(noise.get("n_classes", 1000), noise.get("images_per_class", 1300),
                           size=noise.get("size", 256), kernel_size=noise.get("kernel_size", 10),
                           sigma=float(noise.get("sigma", 80.0)), seed=seed, transform=transform)
    if len(data) * 3 * image_size**2 * 4 <= CACHE_BYTES:
        data = CachedItems(data)
    return ShuffledLabels(data, seed) if variant == "unecological" else data


def save_network(path, model: nn.Module, *, architecture: str, transform_kwargs: dict | None = None,
                 arch_kwargs: dict | None = None) -> None:
    """Write a brainalign network file (atomic): weights plus the constructor and transform
    arguments that :func:`brainalign.models.registry.load_model` needs to rebuild the network."""
    from brainalign.models.registry import NETWORK_FILE_FORMAT

    arch_kwargs = dict(arch_kwargs if arch_kwargs is not None else model.arch_kwargs)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"format": NETWORK_FILE_FORMAT, "architecture": architecture,
                    "arch_kwargs": arch_kwargs, "transform_kwargs": dict(transform_kwargs or {}),
                    "state_dict": state}, tmp)


def init_untrained_variant(model_path, *, n_classes: int = 1000, width: float = 1.0,
                           image_size: int = 227, seed: int = 0):
    """The untrained variant: AlexNet8 at its seeded initialisation (the same start as the
    trained variants), saved with :func:`save_network`."""
    from brainalign.models.alexnet8 import alexnet8

    model = alexnet8(n_classes, width=width, seed=seed)
    save_network(model_path, model, architecture="alexnet8", transform_kwargs={"input_size": image_size})
    return model


def train_cichy_variant(
    variant: str,
    *,
    model_path,
    checkpoint_path,
    log_path,
    object_dir=None,
    scene_dir=None,
    noise: dict | None = None,
    iterations: int = 450_000,
    lr: float = 0.01,
    lr_steps: Sequence[int] = (100_000, 200_000, 300_000, 400_000),
    batch_size: int = 256,
    image_size: int = 227,
    width: float = 1.0,
    checkpoint_every: int = 10_000,
    log_every: int = 1_000,
    device: str = "auto",
    num_workers: int = 0,
    seed: int = 0,
    progress: bool = True,
) -> list[dict]:
    """Train one Cichy 2016 variant (AlexNet8 from its seeded init, :func:`train_classifier`) and
    write it to ``model_path`` (:func:`save_network`). Defaults are the paper's."""
    from brainalign.models.alexnet8 import alexnet8

    data = cichy_training_set(variant, object_dir=object_dir, scene_dir=scene_dir, noise=noise,
                              image_size=image_size, seed=seed)
    device = resolve_device(device, "cichy2016.training.device")
    model = alexnet8(data.n_classes, width=width, seed=seed)
    print(f"{variant}: {len(data)} images, {data.n_classes} classes, {iterations} iterations of "
          f"{batch_size} on {device}")
    history = train_classifier(
        model, data, iterations=iterations, batch_size=batch_size, seed=seed,
        checkpoint_path=checkpoint_path, checkpoint_every=checkpoint_every, log_path=log_path,
        log_every=log_every, lr=lr, lr_steps=lr_steps, device=device, num_workers=num_workers,
        progress=progress,
    )
    save_network(model_path, model, architecture="alexnet8", transform_kwargs={"input_size": image_size})
    return history


# --------------------------------------------------------------------------------------------
# Demo training folders
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _atomic_dir(path):
    """Yield a temporary directory next to ``path``; it replaces ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


#: The demo's scene classes: an object category above another (procedural "layouts").
DEMO_SCENES = (("disk", "grating"), ("grating", "disk"), ("checker", "ring"), ("texture", "polygon"))


def write_demo_training_sets(object_dir, scene_dir, *, images_per_class: int = 40, size: int = 64,
                             seed: int = 0) -> dict:
    """The demo's training folders (PNG, one folder per class), each written atomically.

    object: the procedural categories of :func:`brainalign.demo.make_images` (disk, grating,
    checker, ring, texture, polygon), ``images_per_class`` each, ``size`` px.
    scene: :data:`DEMO_SCENES`, each a 2 x 2 mosaic whose top two tiles are images of one
    category and bottom two of another (e.g. ``disk-over-grating``); a different labelling of
    procedural content, as scenes are arrangements of objects. Returns class counts.
    """
    from brainalign.demo import CATEGORIES, make_images

    _check_positive_int("images_per_class", images_per_class)
    rng = np.random.default_rng(int(seed))
    k = len(CATEGORIES)
    images, labels = make_images(k * images_per_class, size=size, n_categories=k,
                                 seed=int(rng.integers(2**31)))
    with _atomic_dir(object_dir) as tmp:
        for c, name in enumerate(CATEGORIES):
            (tmp / name).mkdir()
            for j, i in enumerate(np.flatnonzero(labels == c)):
                Image.fromarray(images[i]).save(tmp / name / f"{name}_{j:04d}.png")
    half = size // 2
    uses = [sum((top == name) + (bottom == name) for top, bottom in DEMO_SCENES) for name in CATEGORIES]
    n_tiles = k * 2 * images_per_class * max(uses)  # enough tiles of every category
    tiles, tile_labels = make_images(n_tiles, size=half, n_categories=k, seed=int(rng.integers(2**31)))
    pools = {name: list(tiles[tile_labels == c]) for c, name in enumerate(CATEGORIES)}
    with _atomic_dir(scene_dir) as tmp:
        for top, bottom in DEMO_SCENES:
            name = f"{top}-over-{bottom}"
            (tmp / name).mkdir()
            for j in range(images_per_class):
                t = [pools[top].pop() for _ in range(2)]
                b = [pools[bottom].pop() for _ in range(2)]
                mosaic = np.concatenate([np.concatenate(t, 1), np.concatenate(b, 1)], 0)
                if mosaic.shape[0] != size:
                    mosaic = np.asarray(Image.fromarray(mosaic).resize((size, size)))
                Image.fromarray(mosaic).save(tmp / name / f"{name}_{j:04d}.png")
    return {"object": {c: images_per_class for c in CATEGORIES},
            "scene": {f"{a}-over-{b}": images_per_class for a, b in DEMO_SCENES}}
