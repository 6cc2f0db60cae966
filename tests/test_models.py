"""Model table: validation, the up-front check, loading (seeded, from local checkpoints)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from brainalign.models import (
    check_models,
    gtnet,
    load_model,
    read_model_table,
    resolve_checkpoint,
)
from brainalign.models.registry import MODEL_TABLE_COLUMNS
from brainalign.utils import InputError

CONFIG = Path(__file__).resolve().parents[1] / "config" / "models.csv"
HEADER = ",".join(MODEL_TABLE_COLUMNS)


def _csv(tmp_path, *rows, name="models.csv"):
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def _image(size=(300, 260)):
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _has_normalize(transform):
    return any(
        isinstance(t, transforms.Normalize) for t in getattr(transform, "transforms", [transform])
    )


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_default_table_is_valid():
    table = read_model_table(CONFIG)
    names = list(table["model"])
    for name in ["gtnet", "resnet18_random", "alexnet_random", "vgg16_random", "vit_small_random"]:
        assert name in names
    assert table["trained"].dtype == bool
    assert set(table["source"]) == {"timm", "torchvision", "brainalign"}
    assert set(table["arch_class"]) == {"CNN", "transformer"}
    trained = table[table["trained"]]
    # checkpoint entries are file names, resolved against models.checkpoint_dir
    assert len(trained) >= 4 and all(trained["checkpoint"].str.match(r"^[\w.-]+\.(pth|safetensors)$"))
    assert (table.loc[~table["trained"], "checkpoint"] == "").all()
    # every untrained architecture exists in its library (no checkpoint is needed for these)
    check_models(table, list(table.loc[~table["trained"], "model"]))


def test_bad_tables_name_file_line_and_column(tmp_path):
    path = _csv(
        tmp_path,
        "a,timm,resnet18,CNN,none,none,false,,,",
        "a,timm,resnet18,CNN,none,none,false,,,",
        "b,keras,resnet18,CNN,none,none,false,,,",
        "c,timm,resnet18,CNN,none,none,maybe,,,",
        "d,timm,resnet18,RNN,none,none,true,,,",
        "e,timm,resnet18,CNN,none,none,false,x.pth,12x,",
    )
    with pytest.raises(InputError) as err:
        read_model_table(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "line 3 (model 'a'), column 'model': duplicate name (first on line 2)" in msg
    assert "line 4 (model 'b'), column 'source': got 'keras'" in msg
    assert "line 5 (model 'c'), column 'trained': got 'maybe', expected true or false" in msg
    assert "line 6 (model 'd'), column 'arch_class'" in msg
    assert (
        "line 6 (model 'd'), column 'checkpoint': a trained model needs a local checkpoint" in msg
    )
    assert (
        "line 7 (model 'e'), column 'checkpoint': an untrained model must have no checkpoint" in msg
    )
    assert "line 7 (model 'e'), column 'n_params'" in msg
    with pytest.raises(InputError, match="lacks column"):
        bad = tmp_path / "cols.csv"
        bad.write_text("model,source\na,timm\n")
        read_model_table(bad)
    with pytest.raises(InputError, match="not found"):
        read_model_table(tmp_path / "nope.csv")


def test_check_models_reports_everything_at_once(tmp_path):
    path = _csv(
        tmp_path,
        "resnet18_random,timm,resnet18,CNN,none,none,false,,,",
        "resnet50_in1k,torchvision,resnet50.IMAGENET1K_V1,CNN,classification,ImageNet-1K,true,"
        "checkpoints/resnet50_in1k.pth,,",
        "typo_random,timm,resnet181,CNN,none,none,false,,,",
        "badtag,torchvision,alexnet.IMAGENET9K,CNN,none,none,true,w.pth,,",
    )
    table = read_model_table(path)
    with pytest.raises(InputError) as err:
        check_models(
            table,
            ["resnet18_randm", "resnet50_in1k", "typo_random", "badtag", "gtnet"],
            checkpoint_dir=tmp_path,
        )
    msg = str(err.value)
    assert "unknown model 'resnet18_randm'; did you mean 'resnet18_random'" in msg
    assert "unknown model 'gtnet'" in msg
    assert f"checkpoint file not found: {tmp_path / 'checkpoints' / 'resnet50_in1k.pth'}" in msg
    assert "timm has no model 'resnet181'" in msg
    assert "has no weights 'IMAGENET9K'" in msg
    assert str(path) in msg
    # the same check guards load_model
    with pytest.raises(InputError, match="checkpoint file not found"):
        load_model("resnet50_in1k", table, checkpoint_dir=tmp_path)
    assert resolve_checkpoint("/abs/w.pth", tmp_path) == Path("/abs/w.pth")


def test_gtnet_is_the_ground_truth_without_normalisation():
    table = read_model_table(CONFIG)
    model, tf = load_model("gtnet", table, seed=123)  # seed does not change the ground truth
    assert _same_weights(model, gtnet())
    assert not model.training
    x = tf(_image())
    assert x.shape == (3, 64, 64) and x.min() >= 0 and x.max() <= 1
    assert not _has_normalize(tf)


@pytest.mark.parametrize("name, size", [("resnet18_random", 224), ("alexnet_random", 224)])
def test_untrained_models_are_seeded_and_unnormalised(name, size):
    table = read_model_table(CONFIG)
    state = torch.random.get_rng_state()
    a, tf = load_model(name, table, seed=0)
    b, _ = load_model(name, table, seed=0)
    c, _ = load_model(name, table, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    assert _same_weights(a, b) and not _same_weights(a, c)
    x = tf(_image())
    assert x.shape == (3, size, size) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1  # resize, crop, to tensor; no normalisation
    assert not _has_normalize(tf)


def test_trained_timm_from_local_checkpoint(tmp_path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(7)
    source = timm.create_model("resnet18", pretrained=False)
    (tmp_path / "checkpoints").mkdir()
    save_file(source.state_dict(), tmp_path / "checkpoints" / "r18.safetensors")
    torch.save(source.state_dict(), tmp_path / "r18.pth")
    path = _csv(
        tmp_path,
        "r18_st,timm,resnet18.a1_in1k,CNN,classification,ImageNet-1K,true,"
        "checkpoints/r18.safetensors,,",
        "r18_pth,timm,resnet18.a1_in1k,CNN,classification,ImageNet-1K,true,"
        f"{tmp_path / 'r18.pth'},,",
    )
    table = read_model_table(path)
    for name in ("r18_st", "r18_pth"):
        model, tf = load_model(name, table, checkpoint_dir=tmp_path)
        assert _same_weights(model, source)
        assert _has_normalize(tf)  # trained models keep their own normalisation
        assert tf(_image()).shape == (3, 224, 224)


def test_trained_torchvision_from_local_state_dict(tmp_path):
    import torchvision

    torch.manual_seed(3)
    source = torchvision.models.mobilenet_v3_small(weights=None)
    # a wrapped DataParallel-style checkpoint: {"state_dict": {"module.<key>": ...}}
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}},
        tmp_path / "mv3.pth",
    )
    path = _csv(
        tmp_path,
        "mv3,torchvision,mobilenet_v3_small.IMAGENET1K_V1,CNN,classification,ImageNet-1K,true,mv3.pth,,",
        "mv3_wrong,torchvision,alexnet.IMAGENET1K_V1,CNN,classification,ImageNet-1K,true,mv3.pth,,",
    )
    table = read_model_table(path)
    model, tf = load_model("mv3", table, checkpoint_dir=tmp_path)
    assert _same_weights(model, source)
    ref = torchvision.models.get_model_weights("mobilenet_v3_small").IMAGENET1K_V1.transforms()
    img = _image()
    assert torch.equal(tf(img), ref(img))  # the weights' own (normalising) transform
    with pytest.raises(InputError, match="does not fit torchvision model 'alexnet'"):
        load_model("mv3_wrong", table, checkpoint_dir=tmp_path)


# --------------------------------------------------------------- issue 17: bad tables and weights


def test_truncated_table_is_refused(tmp_path):
    lines = CONFIG.read_text().splitlines()
    k = next(i for i, line in enumerate(lines) if i > 80 and ",true," in line)
    cut = lines[k][: lines[k].index(",true,") + 10]  # inside the checkpoint name
    path = tmp_path / "models.csv"
    path.write_text("\n".join([*lines[:k], cut]))  # no final newline: the write stopped
    with pytest.raises(InputError, match=rf"models.csv' is invalid:\n  line {k + 1} \(model "
                                         rf"'{cut.split(',')[0]}'\): 8 of 10 fields; expected "
                                         "10.*truncated"):
        read_model_table(path)
    # a complete last row without the final newline is fine
    path.write_text("\n".join(lines[:k]))
    assert len(read_model_table(path)) == k - 1


def test_short_row_in_the_middle_is_refused(tmp_path):
    path = _csv(
        tmp_path,
        "a,timm,resnet18,CNN,none,none,false,,,",
        "b,timm,resnet18,CNN,none,none,false",
        "c,timm,resnet18,CNN,none,none,false,,,",
    )
    with pytest.raises(InputError, match=r"line 3 \(model 'b'\): 7 of 10 fields; expected 10"):
        read_model_table(path)


def _gtnet_table(tmp_path, checkpoint="g.pth"):
    return read_model_table(_csv(
        tmp_path, f"g,brainalign,gtnet,CNN,demo,demo,true,{checkpoint},,", name="g.csv"))


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(tmp_path, value):
    state = gtnet().state_dict()
    key = next(k for k in state if k.endswith("weight"))
    state[key] = state[key].clone()
    state[key].view(-1)[3] = value
    torch.save(state, tmp_path / "g.pth")
    with pytest.raises(InputError, match=rf"g.pth' gives non-finite weights: 1 NaN or inf value"
                                         rf"\(s\) in {key.replace('.', '[.]')}"):
        load_model("g", _gtnet_table(tmp_path), checkpoint_dir=tmp_path)


def test_integer_weights_are_refused(tmp_path):
    state = {k: v.to(torch.int32) if v.is_floating_point() else v
             for k, v in gtnet().state_dict().items()}
    torch.save(state, tmp_path / "g.pth")
    with pytest.raises(InputError, match=r"g.pth' stores .* as torch.int32; expected a floating "
                                         r"dtype"):
        load_model("g", _gtnet_table(tmp_path), checkpoint_dir=tmp_path)


def test_integer_timm_weights_are_refused(tmp_path):
    import timm

    source = timm.create_model("resnet18", pretrained=False)
    torch.save({k: v.to(torch.int32) for k, v in source.state_dict().items()}, tmp_path / "r.pth")
    table = read_model_table(_csv(
        tmp_path, "r,timm,resnet18.a1_in1k,CNN,classification,ImageNet-1K,true,r.pth,,"))
    with pytest.raises(InputError, match=r"r.pth' stores .* as torch.int32; expected a floating"):
        load_model("r", table, checkpoint_dir=tmp_path)


def test_empty_timm_checkpoint(tmp_path):
    (tmp_path / "r.safetensors").write_bytes(b"")
    (tmp_path / "r.pth").write_bytes(b"")
    table = read_model_table(_csv(
        tmp_path,
        "r_st,timm,resnet18.a1_in1k,CNN,classification,ImageNet-1K,true,r.safetensors,,",
        "r_pth,timm,resnet18.a1_in1k,CNN,classification,ImageNet-1K,true,r.pth,,",
    ))
    for name, file in (("r_st", "r.safetensors"), ("r_pth", "r.pth")):
        with pytest.raises(InputError, match=rf"Checkpoint '.*{file}' is empty \(0 bytes\); expected "
                                             "a state dict"):
            load_model(name, table, checkpoint_dir=tmp_path)


def test_network_file_with_unknown_architecture_kwargs(tmp_path):
    from brainalign.models.registry import NETWORK_FILE_FORMAT

    torch.save({"format": NETWORK_FILE_FORMAT, "architecture": "alexnet8",
                "arch_kwargs": {"n_classes": 4, "width": 0.1, "widht": 2.0},
                "transform_kwargs": {}, "state_dict": {}}, tmp_path / "ax.pth")
    table = read_model_table(_csv(tmp_path, "ax,brainalign,alexnet8,CNN,cls,demo,true,ax.pth,,"))
    with pytest.raises(InputError, match=r"ax.pth' holds arch_kwargs \{.*'widht': 2.0\} that "
                                         r"brainalign network 'alexnet8' does not accept .*"
                                         r"unexpected keyword argument 'widht'.*accepted: n_classes, "
                                         "width"):
        load_model("ax", table, checkpoint_dir=tmp_path)
