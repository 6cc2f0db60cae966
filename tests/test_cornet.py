"""CORnet-S: published architecture and names, checkpoint loading, registry, extraction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision import transforms

from brainalign.models import extract_features, list_layers, load_model, read_feature_attrs
from brainalign.models.cornet import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CORblock_S,
    CORnetS,
    cornet_s,
    load_cornet_s_weights,
)
from brainalign.models.registry import MODEL_TABLE_COLUMNS, read_model_table
from brainalign.utils import InputError

CONFIG = Path(__file__).resolve().parents[1] / "config" / "models.csv"
BLOCKS = {"V2": (64, 128, 2), "V4": (128, 256, 4), "IT": (256, 512, 2)}  # in, out, times
V1_NAMES = ["conv1", "norm1", "nonlin1", "pool", "conv2", "norm2", "nonlin2", "output"]


def _n_params(in_c, out_c, times):
    """Parameters of a published CORblock_S: convs (no bias) and BatchNorm weight + bias."""
    w = 4 * out_c
    convs = in_c * out_c + out_c * out_c + out_c * w + w * w * 9 + w * out_c
    norms = 2 * out_c + times * 2 * (w + w + out_c)
    return convs + norms


#: V1 (two convs, two BNs) + V2/V4/IT + decoder linear: 53,416,616 (the published "53.4 M").
N_PARAMS = (
    3 * 64 * 49 + 2 * 64 + 64 * 64 * 9 + 2 * 64
    + sum(_n_params(*b) for b in BLOCKS.values())
    + 512 * 1000 + 1000
)  # fmt: skip


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return cornet_s().eval()


@pytest.fixture(scope="module")
def published(model, tmp_path_factory):
    """``model`` saved once (214 MB) as the published file, in the published layout."""
    path = tmp_path_factory.mktemp("checkpoints") / "cornet_s-1d3f7974.pth"
    torch.save(_published(model.state_dict()), path)
    return path


def _published(state):
    """The published checkpoint layout: DataParallel keys under "state_dict" (plus extras)."""
    return {"epoch": 43, "arch": "CORnet_S", "state_dict": {f"module.{k}": v for k, v in state.items()}}


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _image(size=(300, 260)):
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def test_published_structure_and_parameter_names(model):
    assert [n for n, _ in model.named_children()] == ["V1", "V2", "V4", "IT", "decoder"]
    assert [n for n, _ in model.V1.named_children()] == V1_NAMES
    assert [n for n, _ in model.decoder.named_children()] == ["avgpool", "flatten", "linear", "output"]
    assert model.V1.conv1.kernel_size == (7, 7) and model.V1.conv1.stride == (2, 2)
    assert model.V1.conv1.bias is None and model.V1.conv2.bias is None
    for name, (c_in, c_out, times) in BLOCKS.items():
        block = getattr(model, name)
        assert isinstance(block, CORblock_S) and block.times == times
        assert block.conv_input.in_channels == c_in and block.conv_input.out_channels == c_out
        assert block.conv1.out_channels == 4 * c_out and block.conv3.out_channels == c_out
        assert block.skip.stride == (2, 2) and block.conv2.kernel_size == (3, 3)
        norms = [n for n, m in block.named_children() if isinstance(m, nn.BatchNorm2d)]
        assert len(norms) == 3 * times + 1
        assert norms[0] == "norm_skip" and f"norm3_{times - 1}" in norms
        assert sum(p.numel() for p in block.parameters()) == _n_params(c_in, c_out, times)
    assert sum(p.numel() for p in model.parameters()) == N_PARAMS == 53_416_616
    keys = set(model.state_dict())
    for key in [
        "V1.conv1.weight", "V1.norm1.running_var", "V1.conv2.weight", "V2.conv_input.weight",
        "V2.skip.weight", "V2.norm_skip.bias", "V2.norm1_0.running_mean", "V2.norm3_1.weight",
        "V4.norm2_3.running_var", "IT.conv2.weight", "IT.conv3.weight",
        "decoder.linear.weight", "decoder.linear.bias",
    ]:  # fmt: skip
        assert key in keys, key
    assert "V2.norm1_2.weight" not in keys and "V4.norm1_4.weight" not in keys


def test_area_sizes_and_logits_at_224(model):
    outputs = {}
    handles = [
        getattr(model, a).output.register_forward_hook(
            lambda m, i, o, a=a: outputs.setdefault(a, []).append(o.detach().clone())
        )
        for a in ("V1", "V2", "V4", "IT")
    ]
    areas = {}
    handles += [
        getattr(model, a).register_forward_hook(lambda m, i, o, a=a: areas.__setitem__(a, o))
        for a in ("V1", "V2", "V4", "IT")
    ]
    torch.manual_seed(1)
    x = torch.randn(2, 3, 224, 224)
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        for h in handles:
            h.remove()
    assert logits.shape == (2, 1000) and torch.isfinite(logits).all()
    sizes = {a: areas[a].reshape(2, -1).shape[1] for a in areas}
    assert sizes == {"V1": 200704, "V2": 100352, "V4": 50176, "IT": 25088}
    # the block's `output` Identity runs once per time step; its last call is the area output
    assert {a: len(v) for a, v in outputs.items()} == {"V1": 1, "V2": 2, "V4": 4, "IT": 2}
    for a in areas:
        assert torch.equal(outputs[a][-1], areas[a])
    assert outputs["V4"][0].shape == outputs["V4"][-1].shape == (2, 256, 14, 14)


def _reference_block(block, x):
    """CORblock_S written out from the published description, in eval mode (running stats)."""

    def bn(name, y):
        m = getattr(block, name)
        return F.batch_norm(y, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)

    x = F.conv2d(x, block.conv_input.weight)
    for t in range(block.times):
        skip = bn("norm_skip", F.conv2d(x, block.skip.weight, stride=2)) if t == 0 else x
        x = F.relu(bn(f"norm1_{t}", F.conv2d(x, block.conv1.weight)))
        x = F.relu(bn(f"norm2_{t}", F.conv2d(x, block.conv2.weight, stride=2 if t == 0 else 1, padding=1)))
        x = F.relu(bn(f"norm3_{t}", F.conv2d(x, block.conv3.weight)) + skip)
    return x


def test_recurrent_block_matches_the_published_computation():
    torch.manual_seed(2)
    block = CORblock_S(8, 16, times=3)
    for m in block.modules():  # non-trivial running statistics and affine parameters
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    block.eval()
    strides = []
    block.conv2.register_forward_hook(lambda m, i, o: strides.append(o.shape[-1]))
    x = torch.randn(2, 8, 12, 12)
    with torch.no_grad():
        out = block(x)
        ref = _reference_block(block, x)
    assert out.shape == (2, 16, 6, 6)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert strides == [6, 6, 6]  # stride 2 at t = 0 only (12 -> 6), then 1
    assert block.conv2.stride == (1, 1)  # the module is not mutated between calls


def test_published_checkpoint_loads_nested_and_bare(tmp_path, model, published):
    torch.manual_seed(99)
    loaded = cornet_s(weights=published)
    assert isinstance(loaded, CORnetS) and _same_weights(loaded, model)
    # a bare state dict, without the num_batches_tracked buffers of PyTorch < 0.4.1 checkpoints
    old = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(old, tmp_path / "old.pth")
    state = cornet_s(weights=str(tmp_path / "old.pth")).state_dict()
    assert all(torch.equal(state[k], v) for k, v in old.items())


def test_bad_checkpoints_raise_input_error_naming_file_and_keys(tmp_path, model):
    broken = dict(model.state_dict())
    del broken["V2.norm1_0.running_mean"]
    broken["V4.norm1_9.weight"] = torch.ones(1024)
    torch.save(_published(broken), tmp_path / "broken.pth")
    with pytest.raises(InputError) as err:
        cornet_s(weights=tmp_path / "broken.pth")
    msg = str(err.value)
    assert str(tmp_path / "broken.pth") in msg
    assert "1 missing key(s), first: V2.norm1_0.running_mean" in msg
    assert "1 unexpected key(s), first: V4.norm1_9.weight" in msg
    # the same file through the model table
    header = ",".join(MODEL_TABLE_COLUMNS)
    table = tmp_path / "models.csv"
    table.write_text(f"{header}\nc,brainalign,cornet_s,CNN,c,ImageNet-1K,true,broken.pth,,\n")
    with pytest.raises(InputError, match=r"broken\.pth.*does not fit brainalign network 'cornet_s'"):
        load_model("c", table, checkpoint_dir=tmp_path)

    target = CORnetS()
    before = {k: v.clone() for k, v in target.state_dict().items()}
    shaped = dict(model.state_dict(), **{"decoder.linear.weight": torch.zeros(10, 512)})
    for bad, match in [
        (broken, "the given state dict does not fit CORnet-S: 1 missing"),
        (shaped, r"1 wrongly shaped key\(s\), first: decoder.linear.weight \(10, 512\)"),
    ]:
        with pytest.raises(InputError, match=match):
            load_cornet_s_weights(target, bad)
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())  # untouched

    with pytest.raises(InputError, match="not found"):
        cornet_s(weights=tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="could not be read"):
        cornet_s(weights=tmp_path / "junk.pth")
    torch.save({"epoch": 3}, tmp_path / "meta.pth")
    with pytest.raises(InputError, match="not a state dict"):
        cornet_s(weights=tmp_path / "meta.pth")


def test_registry_rows_trained_and_untrained(model, published):
    table = read_model_table(CONFIG)
    rows = table.set_index("model").loc[["cornet_s", "cornet_s_in1k"]]
    assert list(rows["trained"]) == [False, True]
    assert rows.loc["cornet_s_in1k", "checkpoint"] == published.name == "cornet_s-1d3f7974.pth"
    assert (rows["n_params"] == N_PARAMS).all()

    trained, tf = load_model("cornet_s_in1k", table, checkpoint_dir=published.parent)
    assert _same_weights(trained, model) and not trained.training
    ref = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    img = _image()
    assert torch.equal(tf(img), ref(img))

    state = torch.random.get_rng_state()
    a, tf_a = load_model("cornet_s", table, seed=0)
    b, _ = load_model("cornet_s", table, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    assert _same_weights(a, model) and not _same_weights(a, b)  # same as torch.manual_seed(0)
    x = tf_a(img)
    assert x.shape == (3, 224, 224) and x.min() >= 0 and x.max() <= 1  # no normalisation


def test_layers_and_repeated_calls_in_extraction(tmp_path, model):
    leaves = list_layers(model)
    for name in ["V1.conv1", "V1.output", "V2.conv_input", "V4.norm1_3", "IT.conv3", "decoder.linear"]:
        assert name in leaves, name
    assert leaves.count("V4.conv1") == 1  # a leaf is listed once, however often it runs

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(2)]
    kept = extract_features(
        model,
        transforms.ToTensor(),
        images,
        ["a", "b"],
        tmp_path / "f.h5",
        layers="re:^V[24]\\.(conv|skip)",
        n_components=8,
        progress=False,
    )
    assert [k for k in kept if k.startswith("V4.conv1")] == [
        "V4.conv1", "V4.conv1:1", "V4.conv1:2", "V4.conv1:3"
    ]  # fmt: skip
    assert [k for k in kept if k.startswith("V2.conv2")] == ["V2.conv2", "V2.conv2:1"]
    assert "V2.skip" in kept and "V2.skip:1" not in kept  # the skip conv runs at t = 0 only
    assert read_feature_attrs(tmp_path / "f.h5")["layer_order"] == kept
