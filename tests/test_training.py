"""Cichy 2016 DNN variants: AlexNet8, the training sets (image folders, shuffled labels, noise),
the SGD recipe, checkpoints with exact resume, and the workflow's training rules."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import copy_workflow, run_snakemake, skip_unless_ran
from PIL import Image
from scipy import ndimage
from torch.utils.data import Dataset

from brainalign.models.alexnet8 import ALEXNET8_LAYERS, alexnet8
from brainalign.models.extraction import list_layers
from brainalign.models.registry import load_model, read_model_table
from brainalign.training import (
    CICHY_VARIANTS,
    TRAINED_VARIANTS,
    ImageFolder,
    NoiseImages,
    ShuffledLabels,
    batch_indices,
    check_training_folders,
    cichy_training_set,
    gaussian_kernel,
    lr_at,
    make_sgd,
    noise_image,
    read_checkpoint,
    resolve_device,
    save_network,
    shuffled_labels,
    smooth_noise,
    train_cichy_variant,
    train_classifier,
    write_demo_training_sets,
)
from brainalign.utils import InputError

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
MODELS_CSV = ROOT / "config" / "models.csv"
CKPT_FORMAT = "brainalign-classifier-checkpoint"


# --------------------------------------------------------------------------- helpers


class ToySet(Dataset):
    """Two learnable classes at 40 px: smooth random patterns tinted red (0) or blue (1), with
    random brightness; fixed per index."""

    def __init__(self, n=48, size=40, seed=0):
        rng = np.random.default_rng(seed)
        self.targets = np.arange(n) % 2
        base = ndimage.gaussian_filter(rng.standard_normal((n, 1, size, size)), (0, 0, 3, 3)) * 4
        tint = np.zeros((n, 3, 1, 1))
        tint[self.targets == 0, 0] = 1.0
        tint[self.targets == 1, 2] = 1.0
        images = base + tint + rng.uniform(-0.5, 0.5, (n, 1, 1, 1))
        images = images + 0.3 * rng.standard_normal((n, 3, size, size))
        self.images = torch.as_tensor(images, dtype=torch.float32)

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.images[i], int(self.targets[i])


class Killed(Exception):
    pass


class KillAfter(Dataset):
    """Raises :class:`Killed` on the ``limit``-th item load: a job killed mid-iteration."""

    def __init__(self, dataset, limit):
        self.dataset, self.limit, self.loads = dataset, limit, 0
        self.targets = dataset.targets

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        self.loads += 1
        if self.loads >= self.limit:
            raise Killed(f"killed at load {self.loads}")
        return self.dataset[i]


def _tiny(seed=0, n_classes=2):
    return alexnet8(n_classes, width=0.0625, seed=seed)


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _image_folder(root, classes, n=3, size=48):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


# --------------------------------------------------------------------------- AlexNet8


def test_alexnet8_layers_shapes_and_table():
    model = alexnet8(683, seed=0).eval()
    assert list_layers(model) == list(ALEXNET8_LAYERS)  # one leaf per layer, in order
    shapes = {}
    x = torch.zeros(1, 3, 227, 227)
    with torch.no_grad():
        for name in ALEXNET8_LAYERS:
            x = getattr(model, name)(x)
            shapes[name] = tuple(x.shape[1:])
    assert shapes == {"conv1": (96, 27, 27), "conv2": (256, 13, 13), "conv3": (384, 13, 13),
                      "conv4": (384, 13, 13), "conv5": (256, 13, 13), "fc6": (4096,), "fc7": (4096,),
                      "fc8": (683,)}
    # parameter counts in models.csv (CaffeNet: 60,965,224 at 1000 classes)
    table = read_model_table(MODELS_CSV).set_index("model")
    for variant, n_classes in [("object", 683), ("scene", 216), ("unecological", 683), ("noise", 1000),
                               ("untrained", 1000)]:
        n = sum(p.numel() for p in alexnet8(n_classes).parameters())
        assert table.at[f"alexnet8_{variant}", "n_params"] == n, variant
        assert table.at[f"alexnet8_{variant}", "architecture"] == "alexnet8"
    # tiny, small input: the adaptive pool keeps fc6's input fixed
    tiny = alexnet8(6, width=0.125, seed=0).eval()
    assert tiny(torch.zeros(2, 3, 64, 64)).shape == (2, 6)
    assert tiny.fc6.weight.shape == (512, 32 * 36)
    with pytest.raises(ValueError, match="at least 39 x 39"):
        tiny(torch.zeros(1, 3, 32, 32))


def test_alexnet8_seeded_and_loaded_through_the_registry(tmp_path):
    state = torch.random.get_rng_state()
    a, b, c = (alexnet8(6, width=0.125, seed=s) for s in (0, 0, 1))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert _same_weights(a, b) and not _same_weights(a, c)
    table = read_model_table(MODELS_CSV)
    path = tmp_path / "model.pt"
    save_network(path, a, architecture="alexnet8", transform_kwargs={"input_size": 64})
    model, tf = load_model("alexnet8_object", table, checkpoint=path)
    assert _same_weights(model, a) and model.n_classes == 6 and not model.training
    img = Image.fromarray(np.full((80, 90, 3), 200, np.uint8))
    x = tf(img)
    assert x.shape == (3, 64, 64) and x.min() > 1  # ImageNet normalisation
    untrained, tf0 = load_model("alexnet8_untrained", table, seed=0)  # no file: paper size, 227 px
    assert untrained.n_classes == 1000 and tf0(img).shape == (3, 227, 227)
    with pytest.raises(InputError, match="holds a brainalign 'alexnet8' network, not 'gtnet'"):
        load_model("gtnet", table, checkpoint=path)


# --------------------------------------------------------------------------- training sets


@pytest.mark.parametrize("radius", [2, 5])
def test_noise_smoothing_equals_scipy_gaussian_filter(radius):
    u = np.random.default_rng(3).random((40, 36, 3))
    for sigma in (1.5, 80.0):
        ours = smooth_noise(u, 2 * radius + 1, sigma)
        ref = ndimage.gaussian_filter(u, sigma=(sigma, sigma, 0), radius=(radius, radius, 0), mode="reflect")
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)


def test_noise_images_are_the_paper_generator():
    # the paper's 10 x 10 filter (even size): MATLAB's fspecial kernel, centred as imfilter centres it
    u = np.random.default_rng(0).random((256, 256, 3))
    x, y = np.meshgrid(np.arange(10) - 4.5, np.arange(10) - 4.5)
    fspecial = np.exp(-(x**2 + y**2) / (2 * 80.0**2))
    fspecial /= fspecial.sum()
    np.testing.assert_allclose(np.outer(gaussian_kernel(10, 80.0), gaussian_kernel(10, 80.0)), fspecial)
    ref = np.stack([ndimage.correlate(u[..., c], fspecial, mode="reflect", origin=-1) for c in range(3)], -1)
    np.testing.assert_allclose(smooth_noise(u, 10, 80.0), ref, atol=1e-12)
    # image i of set s: uniform noise from default_rng([s, i]), then the filter; 256 x 256 x 3
    img = noise_image(7, 12)
    assert img.shape == (256, 256, 3) and 0 <= img.min() and img.max() <= 1
    np.testing.assert_array_equal(img, smooth_noise(np.random.default_rng([7, 12]).random((256, 256, 3))))
    assert np.array_equal(img, noise_image(7, 12)) and not np.array_equal(img, noise_image(7, 13))
    assert 0.01 < img.std() < 0.05  # "small but perceptible spatial gradients"
    # the data set: labels i // images_per_class, images generated on the fly, deterministic
    data = NoiseImages(3, 4, size=32, seed=7, transform=lambda im: np.asarray(im))
    assert len(data) == 12 and list(data.targets) == [0] * 4 + [1] * 4 + [2] * 4
    im, label = data[5]
    assert label == 1 and im.shape == (32, 32, 3) and im.dtype == np.uint8
    np.testing.assert_array_equal(im, np.round(noise_image(7, 5, size=32) * 255).astype(np.uint8))
    with pytest.raises(IndexError):
        data[12]


def test_unecological_labels_are_a_seeded_permutation(tmp_path):
    labels = np.repeat(np.arange(5), 7)
    a = shuffled_labels(labels, 3)
    np.testing.assert_array_equal(a, labels[np.random.default_rng(3).permutation(35)])
    np.testing.assert_array_equal(a, shuffled_labels(labels, 3))  # deterministic
    assert not np.array_equal(a, shuffled_labels(labels, 4)) and not np.array_equal(a, labels)
    np.testing.assert_array_equal(np.bincount(a), np.bincount(labels))  # class sizes kept
    folder = ImageFolder(_image_folder(tmp_path / "obj", ["b", "a", "c"], n=4), transform=np.asarray)
    assert folder.classes == ["a", "b", "c"] and list(folder.targets) == [0] * 4 + [1] * 4 + [2] * 4
    shuffled = ShuffledLabels(folder, seed=0)
    np.testing.assert_array_equal(shuffled.targets, shuffled_labels(folder.targets, 0))
    for i in range(len(folder)):
        img, label = shuffled[i]
        np.testing.assert_array_equal(img, folder[i][0])  # same image, shuffled label
        assert label == shuffled.targets[i]
    assert shuffled.n_classes == 3


def test_demo_training_sets(tmp_path):
    counts = write_demo_training_sets(tmp_path / "obj", tmp_path / "scene", images_per_class=3, size=48,
                                      seed=1)
    obj = ImageFolder(tmp_path / "obj")
    scene = ImageFolder(tmp_path / "scene")
    assert obj.classes == sorted(counts["object"]) and len(obj) == 18
    assert scene.classes == sorted(counts["scene"]) and len(scene) == 12
    assert "disk-over-grating" in scene.classes and scene[0][0].size == (48, 48)
    write_demo_training_sets(tmp_path / "o2", tmp_path / "s2", images_per_class=3, size=48, seed=1)
    again = ImageFolder(tmp_path / "s2")
    assert all(np.array_equal(np.asarray(scene[i][0]), np.asarray(again[i][0])) for i in range(12))


# --------------------------------------------------------------------------- optimisation


def test_sgd_recipe_and_lr_schedule(tmp_path):
    opt = make_sgd(_tiny())
    (group,) = opt.param_groups
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.01, 0.9, 5e-4)
    assert group["dampening"] == 0 and not group["nesterov"]
    paper = [100_000, 200_000, 300_000, 400_000]
    for it, lr in [(0, 0.01), (99_999, 0.01), (100_000, 1e-3), (250_000, 1e-4), (449_999, 1e-6)]:
        assert lr_at(it, lr=0.01, steps=paper) == pytest.approx(lr, rel=1e-12)
    # the workflow's defaults are the paper's
    defaults = {k: v.default for k, v in inspect.signature(train_cichy_variant).parameters.items()}
    assert defaults["iterations"] == 450_000 and defaults["lr"] == 0.01
    assert list(defaults["lr_steps"]) == paper
    assert (defaults["batch_size"], defaults["image_size"], defaults["width"]) == (256, 227, 1.0)
    # the loop applies the schedule per iteration and keeps the recipe in its checkpoint
    history = train_classifier(_tiny(), ToySet(8), iterations=5, batch_size=4, seed=0, lr_steps=[2, 4],
                               checkpoint_path=tmp_path / "c.pt", checkpoint_every=5, log_every=1,
                               progress=False)
    assert [r["lr"] for r in history] == pytest.approx([0.01, 0.01, 1e-3, 1e-3, 1e-4])
    ckpt = read_checkpoint(tmp_path / "c.pt", format=CKPT_FORMAT, version=1)
    (saved,) = ckpt["optimizer"]["param_groups"]
    assert (saved["momentum"], saved["weight_decay"]) == (0.9, 5e-4) and saved["lr"] == pytest.approx(1e-4)
    assert ckpt["config"]["lr_steps"] == [2, 4] and ckpt["iteration"] == 5


def test_batches_walk_seeded_epoch_permutations():
    n, b = 10, 4
    stream = np.concatenate([np.random.default_rng([5, e]).permutation(n) for e in range(3)])
    for it in range(6):
        np.testing.assert_array_equal(batch_indices(it, b, n, 5), stream[it * b:(it + 1) * b])


def test_kill_and_resume_equals_uninterrupted_run(tmp_path):
    data = ToySet(20)
    kw = dict(iterations=12, batch_size=4, seed=3, checkpoint_every=4, log_every=2, lr=0.05,
              lr_steps=[6], progress=False)  # dropout and mirroring draw random numbers
    full = _tiny(seed=0)
    ref = train_classifier(full, data, checkpoint_path=tmp_path / "full.pt", log_path=tmp_path / "full.tsv",
                           **kw)
    # killed during iteration 10: the last checkpoint holds 8 iterations
    with pytest.raises(Killed):
        train_classifier(_tiny(seed=0), KillAfter(data, 4 * 9 + 2), checkpoint_path=tmp_path / "part.pt",
                         log_path=tmp_path / "part.tsv", **kw)
    assert read_checkpoint(tmp_path / "part.pt", format=CKPT_FORMAT, version=1)["iteration"] == 8
    resumed = _tiny(seed=99)  # a different start: everything comes from the checkpoint
    rows = train_classifier(resumed, data, checkpoint_path=tmp_path / "part.pt",
                            log_path=tmp_path / "part.tsv", **kw)
    assert _same_weights(resumed, full)
    assert [(r["iteration"], r["loss"], r["accuracy"], r["lr"]) for r in rows] == \
        [(r["iteration"], r["loss"], r["accuracy"], r["lr"]) for r in ref]

    def log(path):
        lines = path.read_text().splitlines()
        return [line.split("\t")[:-1] for line in lines]  # all but seconds

    assert log(tmp_path / "part.tsv") == log(tmp_path / "full.tsv") and len(log(tmp_path / "full.tsv")) == 7
    # a finished checkpoint: nothing left to do, the weights are loaded
    again = _tiny(seed=5)
    train_classifier(again, data, checkpoint_path=tmp_path / "part.pt", **kw)
    assert _same_weights(again, full)
    # a longer run continues from it
    train_classifier(_tiny(), data, checkpoint_path=tmp_path / "part.pt", **{**kw, "iterations": 14})


@pytest.mark.planted
def test_tiny_training_lowers_the_loss(tmp_path):
    model = _tiny(seed=0)
    history = train_classifier(model, ToySet(48), iterations=30, batch_size=16, seed=0,
                               checkpoint_path=tmp_path / "c.pt", checkpoint_every=30, log_every=10,
                               progress=False)
    first, last = history[0], history[-1]
    assert first["loss"] > 0.4 and last["loss"] < 0.25 * first["loss"], history
    with torch.no_grad():
        data = ToySet(48, seed=1)  # new images
        acc = (model(data.images).argmax(1).numpy() == data.targets).mean()
    assert acc > 0.9


# --------------------------------------------------------------------------- errors


def test_bad_folders_and_settings_give_clear_errors(tmp_path):
    key = "cichy2016.training.object_dir"
    with pytest.raises(InputError, match=rf"nope' \(config key {re.escape(key)}\) does not exist"):
        ImageFolder(tmp_path / "nope", key=key)
    _image_folder(tmp_path / "one", ["a"])
    with pytest.raises(InputError, match="has 1 class subfolder"):
        ImageFolder(tmp_path / "one")
    root = _image_folder(tmp_path / "two", ["a", "b"])
    (root / "c").mkdir()
    (root / "c" / "notes.txt").write_text("x")
    with pytest.raises(InputError, match=r"1 class folder\(s\) hold no images \('c'\)"):
        ImageFolder(root)
    (root / "c" / "broken.png").write_bytes(b"not a png")
    data = ImageFolder(root)
    with pytest.raises(InputError, match=r"broken\.png' could not be read"):
        data[len(data) - 1]
    with pytest.raises(InputError, match=rf"{re.escape(key)}: folder .*nope' does not exist"):
        check_training_folders(["untrained"], object_dir=tmp_path / "nope", scene_dir=None)
    with pytest.raises(InputError, match=r"cichy2016\.training\.scene_dir: folder .* has no class"):
        check_training_folders(["scene"], object_dir=None, scene_dir=tmp_path / "one" / "a")
    check_training_folders(["noise"], object_dir=None, scene_dir=None)  # noise needs no folder
    with pytest.raises(ValueError, match="'variant'.*'noise', but got 'untrained'"):
        cichy_training_set("untrained")
    with pytest.raises(ValueError, match="'device'.*'auto', 'cpu' and 'cuda', but got 'gpu'"):
        resolve_device("gpu", "device")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="cichy2016.training.device is 'cuda', but no GPU"):
            resolve_device("cuda", "cichy2016.training.device")

    data = ToySet(8)
    kw = dict(batch_size=4, seed=0, checkpoint_every=2, progress=False)
    with pytest.raises(InputError, match="iterations must be a positive integer, got 0"):
        train_classifier(_tiny(), data, iterations=0, checkpoint_path=tmp_path / "x.pt", **kw)
    with pytest.raises(InputError, match="lr_steps must be increasing"):
        train_classifier(_tiny(), data, iterations=2, lr_steps=[5, 3], checkpoint_path=tmp_path / "x.pt",
                         **kw)
    with pytest.raises(InputError, match=r"labels must lie in \[0, 2\)"):
        train_classifier(_tiny(n_classes=2), ShiftedLabels(data), iterations=2,
                         checkpoint_path=tmp_path / "x.pt", **kw)
    train_classifier(_tiny(), data, iterations=2, checkpoint_path=tmp_path / "c.pt", **kw)
    with pytest.raises(InputError, match="batch_size=4, but this call has batch_size=2"):
        train_classifier(_tiny(), data, iterations=4, checkpoint_path=tmp_path / "c.pt",
                         **{**kw, "batch_size": 2})
    with pytest.raises(InputError, match="2 completed iterations, more than the 1 asked for"):
        train_classifier(_tiny(), data, iterations=1, checkpoint_path=tmp_path / "c.pt", **kw)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(InputError, match="junk.pt' could not be read"):
        train_classifier(_tiny(), data, iterations=2, checkpoint_path=tmp_path / "junk.pt", **kw)
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="is not a classifier training checkpoint"):
        train_classifier(_tiny(), data, iterations=2, checkpoint_path=tmp_path / "other.pt", **kw)


class ShiftedLabels(Dataset):
    def __init__(self, data):
        self.data, self.targets = data, data.targets + 5

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.data[i][0], int(self.targets[i])


# --------------------------------------------------------------------------- workflow


def test_training_rules_in_the_dag(tmp_path):
    """Dry run: every variant has its job, training requests a GPU, extraction waits for it."""
    wd = copy_workflow(tmp_path)
    targets = [f"results/cichy2016/training/{v}/model.pt" for v in CICHY_VARIANTS]
    targets.append("results/features/cichy2016/alexnet8_noise.h5")
    res = run_snakemake(["-n", "--cores", "2", *targets], wd, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    jobs = re.findall(r"^(?:local)?rule (\w+):\n((?:    .*\n)+)", out, flags=re.M)
    train = {m.group(1): body for name, body in jobs if name == "train_cichy_variant"
             for m in [re.search(r"wildcards: variant=(\w+)", body)]}
    assert sorted(train) == ["noise", "object", "scene", "unecological"]
    for body in train.values():
        assert re.search(r"resources: .*\bgpu=1\b", body) and "mem_mb=4000" in body
        assert not re.search(r"threads: ([2-9]|\d\d)", body)  # one thread for tiny networks
    names = [name for name, _ in jobs]
    assert names.count("init_cichy_untrained") == 1 and names.count("demo_training_sets") == 1
    extract = [body for name, body in jobs if name == "extract_features"]
    assert any("results/cichy2016/training/noise/model.pt" in body for body in extract)


@pytest.mark.planted
@pytest.mark.slow
def test_demo_trains_the_variants(demo_run):
    """The demo's tiny variants: 300 iterations each, loss logs, loadable as alexnet8_<variant>."""
    wd = demo_run
    skip_unless_ran(wd, "cichy2016")
    import pandas as pd
    import yaml

    opts = yaml.safe_load((wd / "config" / "config.yaml").read_text())["cichy2016"]["training"]
    table = read_model_table(wd / "config" / "models.csv")
    out = wd / "results" / "cichy2016" / "training"
    for variant in CICHY_VARIANTS:
        model, tf = load_model(f"alexnet8_{variant}", table, checkpoint=out / variant / "model.pt")
        assert list_layers(model) == list(ALEXNET8_LAYERS)
        assert model.width == opts["width"] and tf(Image.new("RGB", (80, 80))).shape[-1] == opts["image_size"]
    for variant in TRAINED_VARIANTS:
        log = pd.read_csv(out / variant / "loss.tsv", sep="\t")
        every = opts["log_every"]
        assert list(log["iteration"]) == list(range(every, opts["iterations"] + 1, every))
        if variant in ("object", "scene"):  # real labels: learnt
            assert log["loss"].iloc[-1] < 0.85 * log["loss"].iloc[0], log
