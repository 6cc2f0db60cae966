"""Streamed feature extraction: exactness against materialised features, duplicates, schema."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torchvision import transforms

from brainalign.models import (
    extract_features,
    feature_layers,
    gtnet,
    list_layers,
    match_layers,
    read_feature_attrs,
    read_feature_ids,
    read_layer,
)
from brainalign.projection import StreamingSRP, jl_min_dim
from brainalign.utils import InputError

TO_TENSOR = transforms.ToTensor()


def _images(n, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)
    ]


def _batch(images, transform=TO_TENSOR):
    return torch.stack([transform(im) for im in images])


def _all_datasets(path):
    out = {}
    with h5py.File(path, "r") as h5:
        h5.visititems(
            lambda name, obj: (
                out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
            )
        )
        attrs = {k: np.asarray(v).tolist() for k, v in h5.attrs.items()}
    return out, attrs


class TupleOut(nn.Module):
    """A leaf returning a tuple; the first tensor is the layer's output."""

    def forward(self, x):
        return 2 * x, x.sum()


class NegateBright(nn.Module):
    """Negates the rows of stimuli whose first value is above 0.5 (else the identity)."""

    def forward(self, x):
        bright = (x.flatten(1)[:, 0] > 0.5).view(-1, *([1] * (x.ndim - 1)))
        return torch.where(bright, -x, x)


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.ident = nn.Identity()
        self.drop = nn.Dropout(0.5)
        self.pool = nn.AvgPool2d(2)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(4 * 8 * 8, 6)
        self.act = nn.ReLU()  # called twice
        self.tup = TupleOut()
        self.unused = nn.Linear(3, 3)  # never called
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def forward(self, x):
        x = self.relu(self.conv(x))
        x = self.drop(self.ident(x))
        x = self.flat(self.pool(x))
        x = self.act(self.fc(x))
        x, _ = self.tup(x)
        return self.act(x - 1.0)


def _explicit_outputs(model, images, batch_size=None, transform=TO_TENSOR):
    """Materialise every leaf output (cloned: in-place ops cannot touch the copies).

    Uses the same batches as the extraction, since torch's conv kernels give
    batch-size-dependent last bits.
    """
    batch_size = batch_size or len(images)
    outs: dict[str, list] = {}
    calls: dict[str, int] = {}

    def hook_for(name):
        def hook(module, inputs, output):
            t = output[0] if isinstance(output, tuple) else output
            c = calls.get(name, 0)
            calls[name] = c + 1
            key = name if c == 0 else f"{name}:{c}"
            outs.setdefault(key, []).append(t.detach().clone().reshape(t.shape[0], -1).numpy())

        return hook

    handles = [
        m.register_forward_hook(hook_for(n))
        for n, m in model.named_modules()
        if n and not list(m.children())
    ]
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            calls.clear()
            model.eval()(_batch(images[start : start + batch_size], transform))
    for h in handles:
        h.remove()
    return {k: np.concatenate(v) for k, v in outs.items()}


def test_gtnet_features_equal_explicit_projection(tmp_path):
    images = _images(10, size=64)
    model = gtnet()
    tf = transforms.Compose([transforms.Resize(64), transforms.ToTensor()])
    path = tmp_path / "gtnet.h5"
    kept = extract_features(
        model,
        tf,
        images,
        [f"im{i}" for i in range(10)],
        path,
        batch_size=4,
        srp_seed=3,
        progress=False,
        model_name="gtnet",
    )
    assert kept == ["stage1", "stage2", "stage3", "stage4", "stage5"]
    k = jl_min_dim(10, 0.1)
    explicit = _explicit_outputs(model, images, 4, tf)
    srp = StreamingSRP(k, seed=3)
    for name in kept:
        layer = read_layer(path, name)
        X = explicit[name].astype(np.float64)
        R = srp.matrix(X.shape[1]).astype(np.float64)  # float64 reference product
        np.testing.assert_allclose(
            layer["srp"], (R @ X.T).T, rtol=1e-4, atol=1e-4 * np.abs(X).max()
        )
        np.testing.assert_allclose(layer["row_mean"], X.mean(axis=1), rtol=1e-6)
        np.testing.assert_allclose(
            layer["row_norm"], np.linalg.norm(X - X.mean(1, keepdims=True), axis=1), rtol=1e-6
        )
        np.testing.assert_allclose(layer["ones_proj"], R.sum(axis=1), rtol=1e-5, atol=1e-6)
        centred = X - X.mean(1, keepdims=True)  # documented identity for row-centred features
        np.testing.assert_allclose(
            layer["srp"] - layer["row_mean"][:, None] * layer["ones_proj"],
            (R @ centred.T).T,
            rtol=1e-3,
            atol=1e-3 * np.abs(X).max(),
        )
        assert layer["n_units"] == X.shape[1] and layer["srp"].shape == (10, k)
        if X.shape[1] <= 4096:
            np.testing.assert_array_equal(layer["raw"], explicit[name])
        else:
            assert layer["raw"] is None
    assert [d for _, d, _ in feature_layers(path)] == [0.0, 0.25, 0.5, 0.75, 1.0]
    attrs = read_feature_attrs(path)
    assert attrs["model"] == "gtnet" and attrs["n_components"] == k and attrs["srp_seed"] == 3
    assert (
        attrs["srp_backend"] == "brainalign"
        and attrs["srp_density"] == "auto"
        and attrs["n_stimuli"] == 10
    )
    assert list(read_feature_ids(path)) == [f"im{i}" for i in range(10)]


def test_inplace_relu_duplicates_tuples_and_repeated_calls(tmp_path):
    model = SmallNet()
    images = _images(9)
    path = tmp_path / "small.h5"
    kept = extract_features(
        model,
        TO_TENSOR,
        images,
        list(range(100, 109)),
        path,
        batch_size=4,
        n_components=64,
        progress=False,
    )
    # ident, drop (eval) and flat repeat an earlier layer's features; 'unused' never ran
    assert kept == ["conv", "relu", "pool", "fc", "act", "tup", "act:1"]
    attrs = read_feature_attrs(path)
    assert dict(zip(attrs["duplicate_layers"], attrs["duplicate_of"], strict=True)) == {
        "ident": "relu",
        "drop": "relu",
        "flat": "pool",
    }
    explicit = _explicit_outputs(model, images, 4)
    conv = read_layer(path, "conv")["raw"]
    assert conv.min() < 0  # the pre-ReLU conv output, not corrupted by ReLU(inplace=True)
    np.testing.assert_array_equal(conv, explicit["conv"])
    np.testing.assert_array_equal(read_layer(path, "relu")["raw"], np.maximum(explicit["conv"], 0))
    np.testing.assert_array_equal(read_layer(path, "tup")["raw"], explicit["tup"])
    np.testing.assert_array_equal(read_layer(path, "act:1")["raw"], explicit["act:1"])
    depths = [d for _, d, _ in feature_layers(path)]
    assert depths[0] == 0 and depths[-1] == 1 and np.all(np.diff(depths) > 0)
    assert read_layer(path, "pool")["shape"] == (4, 8, 8)
    assert read_feature_ids(path).tolist() == list(range(100, 109))
    with pytest.raises(InputError, match="duplicate of 'relu'"):
        read_layer(path, "drop")


def test_layer_that_diverges_later_is_kept_with_all_rows(tmp_path):
    """NegateBright equals its input for the first batch only: its early rows are copied."""
    model = nn.Sequential(nn.Flatten(), NegateBright(), nn.Identity())
    dark = [Image.new("RGB", (4, 4), (10, 10, 10))] * 3
    mixed = _images(5, size=4, seed=1)
    images = dark + mixed
    first = np.asarray(_batch(images).flatten(1)[:, 0])
    assert first[:3].max() < 0.5 and first[3:].max() > 0.5
    path = tmp_path / "div.h5"
    kept = extract_features(
        model, TO_TENSOR, images, range(8), path, batch_size=3, n_components=20, progress=False
    )
    assert kept == ["0", "1"]
    ref = tmp_path / "ref.h5"
    extract_features(
        model,
        TO_TENSOR,
        images,
        range(8),
        ref,
        batch_size=3,
        n_components=20,
        drop_duplicates=False,
        progress=False,
    )
    assert [n for n, _, _ in feature_layers(ref)] == ["0", "1", "2"]
    for key in ("srp", "row_mean", "row_norm", "raw"):
        np.testing.assert_array_equal(read_layer(path, "1")[key], read_layer(ref, "1")[key])


def test_layer_selection_list_and_regex(tmp_path):
    model = SmallNet()
    images = _images(4)
    assert match_layers(model, "re:^(conv|fc)$") == ["conv", "fc"]
    assert match_layers(model, ["fc", "conv"]) == ["conv", "fc"]
    assert "unused" in list_layers(model)
    kept = extract_features(
        model,
        TO_TENSOR,
        images,
        range(4),
        tmp_path / "sel.h5",
        layers="re:^(conv|fc)$",
        n_components=16,
        progress=False,
    )
    assert kept == ["conv", "fc"]
    assert [d for _, d, _ in feature_layers(tmp_path / "sel.h5")] == [0.0, 1.0]
    with pytest.raises(InputError, match=r"unknown layer\(s\) 'cnv' \(did you mean 'conv'"):
        match_layers(model, ["cnv"])
    with pytest.raises(InputError, match="matches no leaf module"):
        match_layers(model, "re:^nothing$")
    with pytest.warns(UserWarning, match=r"\['unused'\] of model 'small' never ran"):
        kept = extract_features(
            model,
            TO_TENSOR,
            images,
            range(4),
            tmp_path / "un.h5",
            layers=["unused", "fc"],
            n_components=16,
            progress=False,
            model_name="small",
        )
    assert kept == ["fc"]


def test_batch_size_invariance_and_determinism(tmp_path):
    model = gtnet()
    images = _images(10, size=64)
    tf = TO_TENSOR
    paths = {}
    for name, bs in [("a", 3), ("b", 7), ("c", 3)]:
        paths[name] = tmp_path / f"{name}.h5"
        extract_features(
            model,
            tf,
            images,
            range(10),
            paths[name],
            batch_size=bs,
            n_components=200,
            progress=False,
        )
    a, attrs_a = _all_datasets(paths["a"])
    b, _ = _all_datasets(paths["b"])
    c, attrs_c = _all_datasets(paths["c"])
    assert a.keys() == b.keys() == c.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], c[key])  # same settings: bit-identical
        if a[key].dtype.kind == "f":
            # torch's conv kernels depend on the batch size in the last bits only
            np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-5)
        else:
            np.testing.assert_array_equal(a[key], b[key])
    assert attrs_a == attrs_c


def test_timm_resnet_and_vit(tmp_path):
    timm = pytest.importorskip("timm")
    images = _images(3, size=32)
    for arch in ("test_resnet", "test_vit"):
        torch.manual_seed(0)
        model = (
            timm.create_model(arch, pretrained=False, img_size=32)
            if arch == "test_vit"
            else timm.create_model(arch, pretrained=False)
        )
        path = tmp_path / f"{arch}.h5"
        kept = extract_features(
            model,
            TO_TENSOR,
            images,
            ["a", "b", "c"],
            path,
            batch_size=2,
            n_components=32,
            progress=False,
        )
        ran = _explicit_outputs(model, images, 2)
        assert set(kept) <= set(ran) and len(kept) > 10
        assert len(set(kept)) == len(kept)
        depths = [d for _, d, _ in feature_layers(path)]
        assert depths[0] == 0 and depths[-1] == 1 and np.all(np.diff(depths) > 0)
        name = kept[len(kept) // 2]
        X = ran[name].astype(np.float64)
        R = StreamingSRP(32, seed=0).matrix(X.shape[1]).toarray()
        np.testing.assert_allclose(
            read_layer(path, name)["srp"], X @ R.T, rtol=1e-4, atol=1e-4 * max(np.abs(X).max(), 1)
        )
        if arch == "test_vit":
            assert any(n.endswith("attn.qkv") for n in kept)


def test_torchvision_alexnet_small_input_drops_dropout(tmp_path):
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = tv.models.alexnet(weights=None)
    images = _images(2, size=64)
    kept = extract_features(
        model, TO_TENSOR, images, ["x", "y"], tmp_path / "alex.h5", n_components=16, progress=False
    )
    attrs = read_feature_attrs(tmp_path / "alex.h5")
    dup = dict(zip(attrs["duplicate_layers"], attrs["duplicate_of"], strict=True))
    assert dup == {"classifier.0": "avgpool", "classifier.3": "classifier.2"}
    assert kept[0] == "features.0" and kept[-1] == "classifier.6"
    assert len(kept) == 21 - 2


def test_input_errors_and_atomic_write(tmp_path):
    model = SmallNet()
    images = _images(3)
    with pytest.raises(InputError, match="3 images but 2 stimulus ids"):
        extract_features(model, TO_TENSOR, images, [1, 2], tmp_path / "x.h5", progress=False)
    with pytest.raises(InputError, match="unique"):
        extract_features(model, TO_TENSOR, images, [1, 1, 2], tmp_path / "x.h5", progress=False)
    with pytest.raises(ValueError, match="Allowed values are 'brainalign' and 'sklearn'"):
        extract_features(
            model,
            TO_TENSOR,
            images,
            [1, 2, 3],
            tmp_path / "x.h5",
            srp_backend="fast",
            progress=False,
        )

    def bad_transform(img):
        return np.asarray(img)

    with pytest.raises(InputError, match="expected a tensor"):
        extract_features(model, bad_transform, images, [1, 2, 3], tmp_path / "x.h5", progress=False)
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    with pytest.raises(InputError, match="not found"):
        read_feature_ids(tmp_path / "missing.h5")
    (tmp_path / "junk.h5").write_text("not hdf5")
    with pytest.raises(InputError, match="not a readable HDF5"):
        feature_layers(tmp_path / "junk.h5")
    path = tmp_path / "ok.h5"
    extract_features(
        model, TO_TENSOR, images, ["a", "b", "c"], path, n_components=8, progress=False
    )
    with pytest.raises(InputError, match="has no layer 'nope'"):
        read_layer(path, "nope")


def test_sklearn_backend_matches_sklearn(tmp_path):
    from sklearn.random_projection import SparseRandomProjection

    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 50))
    images = _images(6, size=8)
    path = tmp_path / "sk.h5"
    extract_features(
        model,
        TO_TENSOR,
        images,
        range(6),
        path,
        n_components=40,
        srp_seed=5,
        srp_backend="sklearn",
        progress=False,
    )
    X = _explicit_outputs(model, images)["1"]
    ref = SparseRandomProjection(40, random_state=5).fit_transform(X)
    np.testing.assert_array_equal(read_layer(path, "1")["srp"], ref)
