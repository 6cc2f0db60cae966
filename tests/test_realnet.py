"""ReAlnet-fMRI: alignment head, loss (soft-rank Spearman), resumable training, evaluation."""

from __future__ import annotations

import copy
from collections import OrderedDict

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import pearsonr, rankdata, spearmanr
from torch import nn

from brainalign.models.cornet import cornet_s
from brainalign.rdm import compute_rdm
from brainalign.realnet import (
    LOG_COLUMNS,
    ReAlnet,
    _partial_by_lstsq,
    contrastive_term,
    dimension_partial_spearman,
    dimension_rdms,
    improvement_ratio,
    layer_rdms,
    make_teacher,
    pairwise_correlations,
    read_realnet_checkpoint,
    realnet_loss,
    rsa_max_over_layers,
    soft_rank,
    teacher_pseudo_labels,
    time_resolved_rsa,
    train_realnet,
)
from brainalign.utils import InputError

AREAS = ("V1", "V2", "V4", "IT")


def _block(cin, cout):
    return nn.Sequential(OrderedDict([
        ("conv", nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False)),
        ("norm", nn.BatchNorm2d(cout)),
        ("nonlin", nn.ReLU()),
        ("output", nn.Identity()),
    ]))


def tiny_net(seed=0, n_classes=10):
    """A CORnet-shaped toy (children V1, V2, V4, IT, decoder; BatchNorm included)."""
    torch.manual_seed(seed)
    return nn.Sequential(OrderedDict([
        ("V1", _block(3, 4)), ("V2", _block(4, 8)), ("V4", _block(8, 8)), ("IT", _block(8, 16)),
        ("decoder", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, n_classes))),
    ]))


def tiny_realnet(n_outputs=12, seed=0):
    return ReAlnet(tiny_net(seed), n_outputs=n_outputs, hidden=8, input_size=16, seed=seed)


def _children_outputs(net, x):
    out = {}
    for name, child in net.named_children():
        x = child(x)
        out[name] = x
    return out


@pytest.fixture(scope="module")
def cornet_once():
    torch.manual_seed(0)
    return cornet_s()  # untrained, seeded (building CORnet-S draws 53 M weights: do it once)


@pytest.fixture
def cornet(cornet_once):
    return copy.deepcopy(cornet_once)


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(1)
    images = torch.randn(10, 3, 16, 16, generator=g)
    fmri = np.random.default_rng(2).standard_normal((10, 12)).astype(np.float32)
    return images, fmri


# ---------------------------------------------------------------------------------- model


def test_head_sizes_at_224_inferred_not_hardcoded():
    with torch.device("meta"):  # shapes only: no weights drawn, no real compute
        model = ReAlnet(cornet_s())
    assert model.area_sizes == {"V1": 200704, "V2": 100352, "V4": 50176, "IT": 25088}
    assert [model.encoders[a][0].in_features for a in AREAS] == [200704, 100352, 50176, 25088]
    assert all(model.encoders[a][0].out_features == 128 for a in AREAS)
    assert isinstance(model.encoders["V1"][1], nn.ReLU)
    assert (model.fmri_head.in_features, model.fmri_head.out_features) == (512, 1024)


def test_forward_at_32px_matches_backbone(cornet):
    bn = cornet.V2.norm1_0.running_mean.clone()
    g0 = torch.get_rng_state()
    model = ReAlnet(cornet, n_outputs=16, input_size=32, seed=3)
    assert torch.equal(torch.get_rng_state(), g0)  # seeded head: global RNG untouched
    assert torch.equal(cornet.V2.norm1_0.running_mean, bn)  # size probe ran in eval mode
    assert cornet.training
    assert model.area_sizes == {"V1": 4096, "V2": 2048, "V4": 1024, "IT": 512}
    model.eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        logits, pred, feats = model(x)
        ref = _children_outputs(cornet, x)
        enc = torch.cat([model.encoders[a](ref[a].flatten(1)) for a in AREAS], 1)
    assert logits.shape == (3, 1000) and pred.shape == (3, 16)
    assert torch.equal(logits, ref["decoder"])
    for a in AREAS:
        assert torch.equal(feats[a], ref[a])
    torch.testing.assert_close(pred, model.fmri_head(enc))
    with pytest.raises(InputError, match="built for 32 px"):
        model(torch.randn(2, 3, 64, 64))
    # same seed, same head; the backbone called alone does not keep features
    other = ReAlnet(copy.deepcopy(cornet), n_outputs=16, input_size=32, seed=3)
    assert torch.equal(other.fmri_head.weight, model.fmri_head.weight)
    assert torch.equal(other.encoders["V1"][0].weight, model.encoders["V1"][0].weight)
    cornet(x[:2])
    assert model._capture.outputs == {}


def test_bad_areas():
    with pytest.raises(InputError, match="no submodule 'V3'.*'V1', 'V2', 'V4', 'IT', 'decoder'"):
        ReAlnet(tiny_net(), areas=("V1", "V3"), input_size=16)
    with pytest.raises(InputError, match="duplicates"):
        ReAlnet(tiny_net(), areas=("V1", "V1"), input_size=16)


def test_deepcopy_and_teacher():
    model = tiny_realnet()
    x = torch.randn(2, 3, 16, 16)
    model.eval()
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for a, b in zip(model(x), twin(x), strict=True):
            if isinstance(a, dict):
                assert all(torch.equal(a[k], b[k]) for k in a)
            else:
                assert torch.equal(a, b)
    teacher = make_teacher(model)
    assert not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())
    assert not any(p is q for p in teacher.parameters() for q in model.parameters())
    labels = teacher_pseudo_labels(teacher, x, batch_size=1)
    with torch.no_grad():
        np.testing.assert_array_equal(labels, model.backbone(x).argmax(1).numpy())


# ----------------------------------------------------------------------------------- loss


def test_soft_rank_tends_to_hard_rank():
    rng = np.random.default_rng(0)
    x = np.round(rng.standard_normal((3, 40)), 1)  # with ties
    hard = rankdata(x, axis=1)
    xt = torch.tensor(x)
    errors = [float((soft_rank(xt, tau) - torch.tensor(hard)).abs().max()) for tau in (1.0, 0.1, 1e-3, 1e-5)]
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < 1e-6
    assert errors[0] > 1
    # unstandardised input, same limit
    np.testing.assert_allclose(soft_rank(xt * 7 + 3, 1e-6, standardize=False).numpy(), hard * 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="tau"):
        soft_rank(xt, 0.0)


def test_pairwise_correlations_match_scipy():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 4, 30))
    at, bt = torch.tensor(a), torch.tensor(b)
    P = pairwise_correlations(at, bt, "pearson").numpy()
    S = pairwise_correlations(at, bt, "spearman", tau=1e-6).numpy()  # soft ranks ~ exact ranks
    for i in range(4):
        for j in range(4):
            assert P[i, j] == pytest.approx(pearsonr(a[i], b[j]).statistic, abs=1e-10)
            assert S[i, j] == pytest.approx(spearmanr(a[i], b[j]).statistic, abs=1e-10)
    soft = pairwise_correlations(at, bt, "spearman")  # default tau 0.1: close, not equal
    assert 1e-6 < np.abs(soft.numpy() - S).max() < 0.05


def test_contrastive_term_formula():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((2, 5, 20))
    r = np.array([[pearsonr(a[i], b[j]).statistic for j in range(5)] for i in range(5)])
    expected = 1 - np.mean(np.diag(r)) + np.mean(r[~np.eye(5, dtype=bool)])
    got = contrastive_term(torch.tensor(a), torch.tensor(b), "pearson")
    assert float(got) == pytest.approx(expected, abs=1e-10)
    one = contrastive_term(torch.tensor(a[:1]), torch.tensor(b[:1]), "pearson")  # no negatives
    assert float(one) == pytest.approx(1 - r[0, 0], abs=1e-10)


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_loss_parts_and_gradient(method):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 10, generator=g, requires_grad=True)
    labels = torch.randint(0, 10, (6,), generator=g)
    pred = torch.randn(6, 32, generator=g, requires_grad=True)
    fmri = torch.randn(6, 32, generator=g)
    out = realnet_loss(logits, labels, pred, fmri, beta=40.0, contrastive=method)
    ce = F.cross_entropy(logits, labels)
    mse = F.mse_loss(pred, fmri)
    assert torch.allclose(out.ce, ce) and torch.allclose(out.mse, mse)
    assert torch.allclose(out.contrastive, contrastive_term(pred, fmri, method))
    assert torch.allclose(out.total, ce + 40 * (mse + out.contrastive))
    assert not out.contrastive.requires_grad
    out.total.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    # the contrastive term alone carries gradient, and it is the right one
    p2 = pred.detach().double().requires_grad_()
    contrastive_term(p2, fmri.double(), method).backward()
    assert torch.isfinite(p2.grad).all() and p2.grad.abs().sum() > 0
    small = torch.randn(3, 6, dtype=torch.float64, generator=g, requires_grad=True)
    target = torch.randn(3, 6, dtype=torch.float64, generator=g)
    assert torch.autograd.gradcheck(lambda p: contrastive_term(p, target, method, 0.5), (small,))


def test_beta_zero_is_control():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 10, generator=g, requires_grad=True)
    labels = torch.randint(0, 10, (4,), generator=g)
    pred = torch.randn(4, 8, generator=g, requires_grad=True)
    out = realnet_loss(logits, labels, pred, torch.randn(4, 8, generator=g), beta=0)
    assert torch.equal(out.total, F.cross_entropy(logits, labels))
    assert out.mse > 0 and torch.isfinite(out.contrastive)
    out.total.backward()
    assert pred.grad is None
    with pytest.raises(ValueError, match="'contrastive'.*'spearman' and 'pearson'.*'kendall'"):
        realnet_loss(logits, labels, pred, pred.detach(), 1.0, "kendall")
    with pytest.raises(ValueError, match="beta"):
        realnet_loss(logits, labels, pred, pred.detach(), -1.0)


# ------------------------------------------------------------------------------- training


def _params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_resume_gives_identical_weights(tmp_path, data):
    images, fmri = data
    kw = dict(beta=10.0, batch_size=4, lr=1e-3, contrastive="spearman", seed=7, progress=False)
    full, teacher = tiny_realnet(), make_teacher(tiny_net())
    g0 = torch.get_rng_state()
    hist_full = train_realnet(full, teacher, images, fmri, epochs=2,
                              checkpoint_path=tmp_path / "full.pt", log_path=tmp_path / "full.tsv", **kw)
    assert torch.equal(torch.get_rng_state(), g0)  # training forks torch's RNG

    part = tiny_realnet()
    train_realnet(part, make_teacher(tiny_net()), images, fmri, epochs=1,
                  checkpoint_path=tmp_path / "part.pt", log_path=tmp_path / "part.tsv", **kw)
    assert read_realnet_checkpoint(tmp_path / "part.pt")["epoch"] == 1
    resumed = tiny_realnet(seed=99)  # different start: everything comes from the checkpoint
    hist_res = train_realnet(resumed, None, images, fmri, epochs=2,
                             checkpoint_path=tmp_path / "part.pt", log_path=tmp_path / "part.tsv", **kw)

    a, b = _params(full), _params(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert any(not torch.equal(a[k], v) for k, v in _params(tiny_realnet()).items())  # it trained
    drop = [c for c in LOG_COLUMNS if c != "seconds"]
    assert [{c: r[c] for c in drop} for r in hist_full] == [{c: r[c] for c in drop} for r in hist_res]
    log = pd.read_csv(tmp_path / "part.tsv", sep="\t")
    assert list(log.columns) == list(LOG_COLUMNS) and list(log.epoch) == [1, 2]
    assert list(log.n_samples) == [10, 10] and list(log.n_batches) == [3, 3]
    np.testing.assert_allclose(log.loss_total, log.loss_ce + 10 * (log.loss_mse + log.loss_contrastive))
    ckpt = read_realnet_checkpoint(tmp_path / "part.pt")
    assert ckpt["epoch"] == 2 and len(ckpt["history"]) == 2
    assert set(ckpt["rng"]) == {"torch", "cuda", "numpy"} and "state" in ckpt["optimizer"]

    # a finished checkpoint: nothing to do, weights loaded
    again = tiny_realnet(seed=5)
    train_realnet(again, None, images, fmri, epochs=2, checkpoint_path=tmp_path / "part.pt", **kw)
    assert all(torch.equal(v, a[k]) for k, v in _params(again).items())
    # mismatched settings or too many epochs are refused
    with pytest.raises(InputError, match="beta=10.0.*beta=20.0"):
        train_realnet(tiny_realnet(), None, images, fmri, epochs=3, checkpoint_path=tmp_path / "part.pt",
                      **{**kw, "beta": 20.0})
    with pytest.raises(InputError, match="2 completed epochs"):
        train_realnet(tiny_realnet(), None, images, fmri, epochs=1, checkpoint_path=tmp_path / "part.pt",
                      **kw)


def test_control_leaves_head_untouched_and_dataset_input(tmp_path, data):
    images, fmri = data
    labels = np.arange(10) % 10
    kw = dict(beta=0.0, epochs=1, batch_size=5, lr=1e-2, seed=0, progress=False, pseudo_labels=labels)
    model = tiny_realnet()
    head0 = _params(model.fmri_head)
    train_realnet(model, None, images, fmri, checkpoint_path=tmp_path / "a.pt", **kw)
    assert all(torch.equal(v, head0[k]) for k, v in _params(model.fmri_head).items())
    assert not torch.equal(model.backbone.decoder[2].weight, tiny_net().decoder[2].weight)

    dataset = [(images[i], i) for i in range(10)]  # map-style dataset of (image, target) tuples
    other = tiny_realnet()
    train_realnet(other, None, dataset, fmri, checkpoint_path=tmp_path / "b.pt", **kw)
    for k, v in _params(other).items():
        assert torch.equal(v, _params(model)[k]), k


def test_training_input_errors(tmp_path, data):
    images, fmri = data
    model = tiny_realnet()
    kw = dict(beta=1.0, epochs=1, seed=0, progress=False, checkpoint_path=tmp_path / "c.pt")
    with pytest.raises(InputError, match=r"fmri_train has shape \(10, 5\); expected \(10, 12\)"):
        train_realnet(model, make_teacher(model), images, fmri[:, :5], **kw)
    with pytest.raises(InputError, match="shares parameters"):
        train_realnet(model, model.backbone, images, fmri, **kw)
    with pytest.raises(InputError, match="frozen_teacher.*or pseudo_labels"):
        train_realnet(model, None, images, fmri, **kw)
    with pytest.raises(InputError, match=r"pseudo-labels must lie in \[0, 10\)"):
        train_realnet(model, None, images, fmri, pseudo_labels=np.full(10, 10), **kw)
    bad = fmri.copy()
    bad[3, 2] = np.nan
    with pytest.raises(InputError, match="non-finite"):
        train_realnet(model, None, images, bad, pseudo_labels=np.zeros(10, int), **kw)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="could not be read"):
        train_realnet(model, None, images, fmri, pseudo_labels=np.zeros(10, int),
                      **{**kw, "checkpoint_path": tmp_path / "junk.pt"})


def test_train_cornet_smoke(tmp_path, cornet):
    """One step of the real network at 32 px, pseudo-labels from the frozen teacher.

    V2, V4 and IT (51 M of the 53 M weights) are frozen to keep the optimizer state, the
    checkpoint and the test small: their weights must not move, while V1 below them still
    learns through them.
    """
    teacher = make_teacher(cornet)
    model = ReAlnet(cornet, n_outputs=16, input_size=32, seed=0)
    model.backbone.V2.requires_grad_(False)
    model.backbone.V4.requires_grad_(False)
    model.backbone.IT.requires_grad_(False)
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    fmri = np.random.default_rng(0).standard_normal((4, 16))
    v1 = model.backbone.V1.conv1.weight.detach().clone()
    v4 = model.backbone.V4.conv2.weight.detach().clone()
    hist = train_realnet(model, teacher, images, fmri, beta=40, epochs=1, batch_size=4, seed=0,
                         checkpoint_path=tmp_path / "cornet.pt", progress=False)
    assert len(hist) == 1 and np.isfinite(hist[0]["loss_total"])
    assert not torch.equal(model.backbone.V1.conv1.weight, v1)
    assert torch.equal(model.backbone.V4.conv2.weight, v4)
    ckpt = read_realnet_checkpoint(tmp_path / "cornet.pt")
    np.testing.assert_array_equal(ckpt["pseudo_labels"].numpy(), teacher_pseudo_labels(teacher, images))


# ----------------------------------------------------------------------------- evaluation


def test_layer_rdms_match_direct_features():
    model = tiny_realnet()
    model.train()
    x = torch.randn(7, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    rdms = layer_rdms(model, x, batch_size=3)
    assert model.training and list(rdms) == list(AREAS)
    model.eval()
    with torch.no_grad():
        ref = _children_outputs(model.backbone, x)
    for a in AREAS:
        np.testing.assert_allclose(rdms[a], compute_rdm(ref[a].flatten(1).numpy()), atol=1e-6)
    plain = layer_rdms(model.backbone, x, areas=("IT",), metric="euclidean", batch_size=7)
    np.testing.assert_allclose(plain["IT"], compute_rdm(ref["IT"].flatten(1).numpy(), "euclidean"),
                               rtol=1e-5)


def test_rsa_max_improvement_and_time_resolved():
    rng = np.random.default_rng(4)
    brain = rng.standard_normal(45)
    rdms = {"V1": rng.standard_normal(45), "V2": brain + rng.standard_normal(45),
            "IT": rng.standard_normal(45)}
    score, best, per_area = rsa_max_over_layers(rdms, brain)
    for a in rdms:
        assert per_area[a] == pytest.approx(spearmanr(rdms[a], brain).statistic, abs=1e-12)
    assert best == "V2" and score == per_area["V2"]
    assert rsa_max_over_layers({"a": np.ones(45)}, brain)[:2] == (pytest.approx(np.nan, nan_ok=True), None)

    assert improvement_ratio(0.3, 0.2) == pytest.approx(0.5)
    np.testing.assert_allclose(improvement_ratio([0.1, 0.4], [0.2, 0.2]), [-0.5, 1.0])

    eeg = rng.standard_normal((6, 45))
    tr = time_resolved_rsa(rdms["V2"], eeg)
    np.testing.assert_allclose(tr, [spearmanr(rdms["V2"], e).statistic for e in eeg], atol=1e-12)
    with pytest.raises(InputError, match="n_times, n_pairs"):
        time_resolved_rsa(rdms["V2"], eeg[0])


def _explicit_partial(y, D, d):
    """Rank, regress the other dimensions' rank-RDMs (and a constant) out of both, correlate."""
    ry, R = rankdata(y), rankdata(D, axis=0)
    A = np.column_stack([np.ones(len(ry)), np.delete(R, d, axis=1)])
    res_y = ry - A @ np.linalg.lstsq(A, ry, rcond=None)[0]
    res_x = R[:, d] - A @ np.linalg.lstsq(A, R[:, d], rcond=None)[0]
    return pearsonr(res_y, res_x).statistic


def test_dimension_partial_spearman_against_loop_and_closed_form():
    rng = np.random.default_rng(5)
    n, k = 15, 5
    V = rng.random((n, k))
    D = dimension_rdms(V)
    i, j = np.triu_indices(n, 1)
    np.testing.assert_array_equal(D[:, 2], np.abs(V[i, 2] - V[j, 2]))
    it = D @ rng.random(k) + 0.3 * rng.standard_normal(D.shape[0])
    rho, ev = dimension_partial_spearman(it, V)
    np.testing.assert_allclose(rho, [_explicit_partial(it, D, d) for d in range(k)], atol=1e-10)
    np.testing.assert_allclose(ev, rho**2)
    # the two engines agree
    R = rankdata(D, axis=0)
    Rc = R - R.mean(0)
    yc = rankdata(it) - rankdata(it).mean()
    np.testing.assert_allclose(_partial_by_lstsq(yc, Rc), rho, atol=1e-10)

    # one covariate: r_xy.z = (r_xy - r_xz r_yz) / sqrt((1 - r_xz^2)(1 - r_yz^2)), Spearman r's
    rho2, _ = dimension_partial_spearman(it, V[:, :2])
    rxy = spearmanr(it, D[:, 0]).statistic
    rxz = spearmanr(D[:, 0], D[:, 1]).statistic
    ryz = spearmanr(it, D[:, 1]).statistic
    assert rho2[0] == pytest.approx((rxy - rxz * ryz) / np.sqrt((1 - rxz**2) * (1 - ryz**2)), abs=1e-10)
    # one dimension: plain Spearman
    assert dimension_partial_spearman(it, V[:, :1])[0][0] == pytest.approx(rxy, abs=1e-10)


def test_dimension_partial_degenerate_dimensions():
    rng = np.random.default_rng(6)
    V = rng.random((12, 3))
    it = dimension_rdms(V) @ [1.0, 0.5, 0.2] + 0.2 * rng.standard_normal(66)
    base, _ = dimension_partial_spearman(it, V)
    # a constant dimension: NaN, the others unchanged
    rho, _ = dimension_partial_spearman(it, np.column_stack([V, np.full(12, 0.7)]))
    assert np.isnan(rho[3])
    np.testing.assert_allclose(rho[:3], base, atol=1e-10)
    # a duplicated dimension is fully explained by its twin: NaN for both (least-squares path)
    rho, _ = dimension_partial_spearman(it, np.column_stack([V, V[:, 0]]))
    assert np.isnan(rho[0]) and np.isnan(rho[3])
    np.testing.assert_allclose(rho[1:3], base[1:3], atol=1e-8)  # the twin adds nothing to their covariates
    with pytest.raises(InputError, match="12 images need a condensed RDM of 66"):
        dimension_partial_spearman(it[:10], V)
    p_rho, _ = dimension_partial_spearman(it, V, method="pearson")
    assert p_rho.shape == (3,) and not np.allclose(p_rho, base)
