"""Arend 2018 glue: demo writer through the real reader, the streamed driver against
UnitMatcher fed materialised activations, the controls, config errors."""

import copy
import json

import numpy as np
import pytest
import torch
import yaml

from brainalign import arend2018 as A
from brainalign.io.majajhong2015 import load_stimulus_set
from brainalign.models.registry import BRAINALIGN_MODELS
from brainalign.unit_matching import match_units, rotate_channels
from brainalign.utils import InputError


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("arend_demo")
    truth = A.write_demo(out, n_v4=4, n_it=6, objects_per_category=2, images_per_object=1, seed=3)
    data, images = A.load_inputs(out / "assembly.nc", out / "stimulus_set.csv", out / "images")
    return out, truth, data, images


@pytest.fixture(scope="module")
def gtnet_model():
    ctor, tf = BRAINALIGN_MODELS["gtnet"]()
    return ctor(), tf()


def _materialise(model, transform, images, batch_size=None):
    """Every layer's activations over all images as one array, the brute-force reference
    (the network run in the same batches as the streamed driver, so the float32 outputs are
    bit-identical and only the matching differs)."""
    acts = {}

    def keep(name, x, _start):
        acts.setdefault(name, []).append(x)

    A.stream_network(model, transform, images, [keep], batch_size=batch_size or len(images), progress=False)
    return {k: np.concatenate(v) for k, v in acts.items()}


def test_demo_round_trip(demo, gtnet_model):
    out, truth, data, images = demo
    assert data.responses.shape == (48, 10)
    assert list(data.region) == ["V4"] * 4 + ["IT"] * 6
    assert (data.n_repetitions == 2).all()
    assert json.loads((out / "truth.json").read_text()) == truth
    paths = load_stimulus_set(out / "stimulus_set.csv", out / "images", data.stimulus_ids)
    assert [p.name for p in paths] == [f"{s}.png" for s in data.stimulus_ids]
    # independent reference: the planted unit from gtnet on the images as read back
    acts = _materialise(*gtnet_model, images)
    for i, site in enumerate(truth["sites"]):
        unit = acts[site["layer"]].reshape(48, -1)[:, site["unit"]]
        r = np.corrcoef(unit, data.responses[:, i])[0, 1]
        assert r > 0.6, (i, r)  # expected 1 / sqrt(1 + 0.5^2) = 0.89 up to sampling
    assert truth["planted_layers"] == {"V4": "stage1", "IT": "stage4"}


def test_match_model_equals_unit_matcher_on_materialised(demo, gtnet_model):
    _, _, data, images = demo
    model, tf = gtnet_model
    kw = dict(top_k=5, holdout=True, holdout_seed=1, strata=data.object_name)
    streamed = A.match_model(model, tf, images, data.responses, batch_size=7, progress=False,
                             memory_budget_bytes=2**20, **kw)  # tiny budget: one pass per layer
    ref = match_units(data.responses, _materialise(model, tf, images, 7), **kw)
    assert streamed.layers == ref.layers == ["stage1", "stage2", "stage3", "stage4", "stage5"]
    np.testing.assert_allclose(streamed.best_r, ref.best_r, rtol=1e-10)
    np.testing.assert_array_equal(streamed.best_unit, ref.best_unit)
    np.testing.assert_array_equal(streamed.best_layer, ref.best_layer)
    np.testing.assert_allclose(streamed.heldout_r, ref.heldout_r, rtol=1e-10)
    np.testing.assert_allclose(streamed.layer_best_r, ref.layer_best_r, rtol=1e-10)


def test_rotation_control_equals_reference(demo, gtnet_model):
    _, _, data, images = demo
    model, tf = gtnet_model
    runs = A.match_rotated(model, tf, images, data.responses, n_runs=2, seed=5, batch_size=16, progress=False,
                           top_k=3)
    acts = _materialise(model, tf, images, 16)
    rots = A._rotations({k: v.shape[1:] for k, v in acts.items()}, 2, 5)
    assert set(rots[0]) == {"stage1", "stage2", "stage3", "stage4"}  # conv maps only
    for run, rot in zip(runs, rots, strict=True):
        for R in rot.values():
            assert np.isclose(np.linalg.det(R), 1.0)
            np.testing.assert_allclose(R @ R.T, np.eye(len(R)), atol=1e-10)
        rotated = {k: rotate_channels(v, rot[k]) if k in rot else v for k, v in acts.items()}
        ref = match_units(data.responses, rotated, top_k=3)
        np.testing.assert_allclose(run.best_r, ref.best_r, rtol=1e-6)
    assert not np.allclose(runs[0].best_r, runs[1].best_r)


def test_random_and_pixels_controls(demo):
    _, _, data, images = demo
    shapes = {"a": (3, 4, 4), "b": (10,)}
    r1 = A.match_random_activations(data.responses, shapes, seed=2, batch_size=5, top_k=3)
    r2 = A.match_random_activations(data.responses, shapes, seed=2, batch_size=48, top_k=3)
    np.testing.assert_array_equal(r1.best_r, r2.best_r)  # independent of batching
    px = A.match_pixels(images, data.responses, batch_size=9, top_k=2)
    gray = images.gray_array(0, len(images)).reshape(len(images), -1).astype(np.float64)
    ref = match_units(data.responses, {"pixels": gray}, top_k=2)
    np.testing.assert_allclose(px.best_r, ref.best_r, rtol=1e-10)


def test_gather_units_and_decoding(demo, gtnet_model):
    _, _, data, images = demo
    model, tf = gtnet_model
    acts = _materialise(model, tf, images, 10)
    sets = {"m": (["stage1", "stage5", "stage1"], [3, 7, 100])}
    got = A.gather_units(model, tf, images, sets, batch_size=10, progress=False)["m"]
    s1 = acts["stage1"].reshape(48, -1)
    ref = np.stack([s1[:, 3], acts["stage5"][:, 7], s1[:, 100]], 1)
    np.testing.assert_allclose(got, ref)
    dec = A.decode_model(data.responses, data.responses[:, ::-1], data.responses, data.category_name,
                         data.region,
                         n_runs_within=2, n_runs_across=1, n_cv_splits=2, C_grid=(1.0,))
    assert set(dec["condition"]) == {"neural", "model", "model_to_neural", "neural_to_model", "baseline",
                                     "baseline_to_neural", "neural_to_baseline"}
    assert list(dict.fromkeys(dec["region"])) == ["V4", "IT"]
    assert (dec["chance"] == 0.125).all()


def test_stream_network_skips_copies_and_survives_inplace_relu():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(inplace=True), torch.nn.Dropout(),
                              torch.nn.Flatten(), torch.nn.Identity()).eval()
    from PIL import Image

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)) for _ in range(5)]
    from torchvision import transforms

    got = {}
    order = A.stream_network(net, transforms.ToTensor(), images, [lambda n, x, s: got.setdefault(n, x)],
                             batch_size=5, progress=False)
    assert order == ["0", "1"]
    assert (got["0"] < 0).any()  # the conv output as it was, before the in-place ReLU


def _section():
    cfg = yaml.safe_load(open("config/config.yaml"))
    return copy.deepcopy(cfg["arend2018"])


@pytest.mark.parametrize(
    "change, key",
    [
        (lambda s: s.update(models=[]), "arend2018.models"),
        (lambda s: s.update(regions=["V1"]), "arend2018.regions"),
        (lambda s: s["decoding"].update(n_runs_within=0), "arend2018.decoding.n_runs_within"),
        (lambda s: s["decoding"].update(c_grid=[0]), "arend2018.decoding.c_grid"),
        (lambda s: s["controls"].update(rotation_models=["vgg16_random"]),
         "arend2018.controls.rotation_models"),
        (lambda s: s["demo"].update(it_layer="fc"), "arend2018.demo.it_layer"),
    ],
)
def test_config_errors(change, key, monkeypatch):
    monkeypatch.chdir(A.__file__.rsplit("/workflow/", 1)[0])
    s = _section()
    change(s)
    with pytest.raises(InputError, match=key.replace(".", r"\.")):
        A.check_config(s, demo=True)


def test_config_missing_real_inputs(tmp_path, monkeypatch):
    monkeypatch.chdir(A.__file__.rsplit("/workflow/", 1)[0])
    s = _section()
    s.update(assembly=str(tmp_path / "a.nc"), stimulus_csv=str(tmp_path / "s.csv"),
             image_dir=str(tmp_path / "im"))
    with pytest.raises(InputError, match=r"arend2018\.assembly"):
        A.check_config(s, demo=False)
    (tmp_path / "a.nc").touch()
    (tmp_path / "s.csv").touch()
    with pytest.raises(InputError, match=r"arend2018\.image_dir"):
        A.check_config(s, demo=False)
    (tmp_path / "im").mkdir()
    A.check_config(s, demo=False)
