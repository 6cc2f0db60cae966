"""GSN-like RSM noise ceiling: exact pieces against brute force, and simulations with a known truth."""

import numpy as np
import pytest

from brainalign.noise_ceiling import (
    _gsn_coordinates,
    _gsn_fit,
    _gsn_model,
    _GsnSimulation,
    gsn_ceiling,
    split_half_ceiling,
)
from brainalign.rdm import compute_rdm
from brainalign.utils import InputError

K = 3


class GaussianWorld:
    """Known generative model: signal N(mu, L L^T + iso^2 I), noise N(0, sigma^2 (Ln Ln^T + D))."""

    def __init__(self, *, v, sigma, n_factors=8, iso=0.3, seed=0):
        rng = np.random.default_rng(seed)
        self.v, self.sigma, self.iso = v, sigma, iso
        self.mu = 0.7 * rng.standard_normal(v)
        self.L = rng.standard_normal((v, n_factors)) / np.sqrt(n_factors)
        self.Ln = 0.5 * rng.standard_normal((v, 3))
        self.noise_var = rng.uniform(0.5, 1.5, v)

    def draw(self, rng, n, k=K):
        """Noiseless patterns (n, v) and k noisy repetitions (k, n, v)."""
        S = self.mu + rng.standard_normal((n, self.L.shape[1])) @ self.L.T
        S = S + self.iso * rng.standard_normal((n, self.v))
        noise = rng.standard_normal((k, n, 3)) @ self.Ln.T
        noise = noise + rng.standard_normal((k, n, self.v)) * np.sqrt(self.noise_var)
        return S, S[None] + self.sigma * noise

    def covariances(self):
        """Mean and covariances, centred across voxels (what a Pearson RSM sees)."""
        C = np.eye(self.v) - 1.0 / self.v
        cov_s = C @ (self.L @ self.L.T + self.iso**2 * np.eye(self.v)) @ C
        cov_n = C @ (self.sigma**2 * (self.Ln @ self.Ln.T + np.diag(self.noise_var))) @ C
        return C @ self.mu, cov_s, cov_n

    def true_ceiling(self, n, n_draws=100, seed=12345):
        """Mean correlation of the noiseless RSM with the RSM of the k-repetition average."""
        rng = np.random.default_rng(seed)
        iu = np.triu_indices(n, 1)
        r = []
        for _ in range(n_draws):
            S, reps = self.draw(rng, n)
            r.append(np.corrcoef(np.corrcoef(S)[iu], np.corrcoef(reps.mean(0))[iu])[0, 1])
        return float(np.mean(r))


def _eig(cov):
    lam, vecs = np.linalg.eigh(cov)
    keep = lam > 1e-10 * lam[-1]
    return vecs[:, keep], np.sqrt(lam[keep])


# ---- exact pieces ------------------------------------------------------------------------


@pytest.mark.parametrize("v", [40, 200])  # voxel coordinates (v <= kn + 1), Cholesky of the Gram
def test_coordinates_keep_inner_products(v):
    reps = GaussianWorld(v=v, sigma=1.0).draw(np.random.default_rng(1), 30)[1]
    xbar, resid, single = _gsn_coordinates(reps)
    D = reps - reps.mean(axis=2, keepdims=True)
    Dbar = D.mean(0)
    np.testing.assert_allclose(xbar @ xbar.T, Dbar @ Dbar.T, rtol=1e-9, atol=1e-9)
    for r in range(K):
        np.testing.assert_allclose(single[r] @ single[r].T, D[r] @ D[r].T, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(single[r] @ xbar.T, D[r] @ Dbar.T, rtol=1e-9, atol=1e-9)
    # the residual contrasts carry the within-image scatter
    scatter = np.einsum("rip,riq->pq", single - xbar, single - xbar)
    np.testing.assert_allclose(resid.T @ resid, scatter, rtol=1e-9, atol=1e-9)


def test_fit_matches_voxel_space_estimates():
    """In voxel coordinates the model's covariances are the textbook estimates."""
    n, v = 50, 60
    reps = GaussianWorld(v=v, sigma=1.0).draw(np.random.default_rng(2), n)[1]
    xbar, resid, _ = _gsn_coordinates(reps)
    model = _gsn_fit(xbar, resid, K)
    D = reps - reps.mean(axis=2, keepdims=True)
    cov_n = np.mean([np.cov(D[:, i, :].T) for i in range(n)], axis=0)
    cov_s = np.cov(D.mean(0).T) - cov_n / K
    lam, vecs = np.linalg.eigh(cov_s)
    cov_s_psd = (vecs * np.clip(lam, 0, None)) @ vecs.T
    Vn, sn = model["noise_vecs"], model["noise_sd"]
    Vs, ss = model["signal_vecs"], model["signal_sd"]
    np.testing.assert_allclose((Vn * sn**2) @ Vn.T, cov_n, atol=1e-10)
    np.testing.assert_allclose((Vs * ss**2) @ Vs.T, cov_s_psd, atol=1e-10)
    np.testing.assert_allclose(model["mu"], D.mean(axis=(0, 1)), atol=1e-12)
    assert model["signal_sd"].size == np.sum(lam > 1e-10 * lam[-1]) <= n - 1


def test_simulation_gram_pieces_match_explicit_patterns():
    """The O(n^2) RSMs of a simulation equal compute_rdm on explicitly built patterns."""
    n, v, h = 20, 30, 1
    mu, cov_s, cov_n = GaussianWorld(v=v, sigma=1.5).covariances()
    model = _gsn_model(mu, *_eig(cov_s), *_eig(cov_n))
    sim = _GsnSimulation(model, n, h, K, np.random.default_rng(7))
    rng = np.random.default_rng(7)  # replay the same draws
    z = rng.standard_normal((n, model["signal_sd"].size)) * model["signal_sd"]
    S = z @ model["signal_vecs"].T
    E = [
        (rng.standard_normal((n, model["noise_sd"].size)) * model["noise_sd"] / np.sqrt(h))
        @ model["noise_vecs"].T
        for _ in range(2)
    ]
    for scale in (0.3, 1.0, 2.5):
        a = np.sqrt(scale)
        expected = {
            "noiseless": mu + a * S,
            "half0": mu + a * S + E[0],
            "half1": mu + a * S + E[1],
            "average": mu + a * S + sim.c_avg * E[0],
        }
        got = {
            "noiseless": sim._rsm(scale, None),
            "half0": sim._rsm(scale, 0),
            "half1": sim._rsm(scale, 1),
            "average": sim._rsm(scale, 0, sim.c_avg),
        }
        for key, patterns in expected.items():
            np.testing.assert_allclose(1 - got[key], compute_rdm(patterns, "pearson"), atol=1e-10)


@pytest.mark.parametrize("sigma", [1.0, 2.0])
def test_simulation_with_true_parameters_reproduces_truth(sigma):
    """Given the true mean and covariances, the Monte Carlo gives the true ceiling."""
    n, v = 60, 80
    world = GaussianWorld(v=v, sigma=sigma)
    mu, cov_s, cov_n = world.covariances()
    model = _gsn_model(mu, *_eig(cov_s), *_eig(cov_n))
    rng = np.random.default_rng(3)
    sims = [_GsnSimulation(model, n, 1, K, rng) for _ in range(100)]
    simulated = np.mean([s.ceiling(1.0, "pearson") for s in sims])
    assert simulated == pytest.approx(world.true_ceiling(n, n_draws=200), abs=0.01)


# ---- against a known truth --------------------------------------------------------------


@pytest.fixture(scope="module")
def accuracy_runs():
    """gsn and split-half ceilings on 4 data sets per noise level, and the true ceiling."""
    n, v = 120, 400  # v > 3 n: the Cholesky (reduced-space) path
    out = {}
    for label, sigma in (("low", 0.5), ("high", 2.0)):
        world = GaussianWorld(v=v, sigma=sigma)
        gsn, split = [], []
        for d in range(4):
            _, reps = world.draw(np.random.default_rng(100 + d), n)
            gsn.append(gsn_ceiling(reps, seed=d)["ceiling"])
            split.append(split_half_ceiling(reps)["ceiling"])
        out[label] = (world.true_ceiling(n), np.mean(gsn), np.mean(split))
    return out


@pytest.mark.parametrize("label", ["low", "high"])
def test_gsn_matches_true_ceiling(accuracy_runs, label):
    truth, gsn, _ = accuracy_runs[label]
    assert gsn == pytest.approx(truth, abs=0.02)


def test_split_half_underestimates_at_high_noise_where_gsn_does_not(accuracy_runs):
    truth, gsn, split = accuracy_runs["high"]
    assert 0.4 < truth < 0.7
    assert truth - split > 0.1  # Spearman-Brown on RSMs is first order in the noise
    assert abs(gsn - truth) < 0.2 * (truth - split)


def test_reports_fit_details():
    _, reps = GaussianWorld(v=100, sigma=1.0).draw(np.random.default_rng(4), 40)
    out = gsn_ceiling(reps, n_sims=10, seed=0)
    assert out["method"] == "gsn-like"
    assert out["n_reps"] == 3 and out["split_trials"] == 1 and out["n_sims"] == 10
    assert 0 < out["ceiling"] <= 1 and out["ceiling_sd"] > 0
    assert out["simulated_reliability"] == pytest.approx(out["reliability"], abs=1e-4)
    assert out["scale"] > 0
    assert 0 < out["signal_rank"] <= 39
    D = reps - reps.mean(axis=2, keepdims=True)
    iu = np.triu_indices(40, 1)
    rsms = [np.corrcoef(D[r])[iu] for r in range(3)]
    pairs = [np.corrcoef(rsms[a], rsms[b])[0, 1] for a, b in ((0, 1), (0, 2), (1, 2))]
    assert out["reliability"] == pytest.approx(np.mean(pairs), abs=1e-10)


def test_spearman_compare_and_even_repetitions():
    world = GaussianWorld(v=80, sigma=1.0)
    _, reps = world.draw(np.random.default_rng(5), 30, k=4)
    out = gsn_ceiling(reps, n_sims=8, compare="spearman")
    assert out["split_trials"] == 2
    assert 0.5 < out["ceiling"] <= 1


# ---- invariances, determinism, edge cases ------------------------------------------------


def test_deterministic_given_seed():
    _, reps = GaussianWorld(v=150, sigma=1.0).draw(np.random.default_rng(6), 40)
    a = gsn_ceiling(reps, n_sims=6, seed=3)
    b = gsn_ceiling(reps, n_sims=6, seed=3)
    c = gsn_ceiling(reps, n_sims=6, seed=4)
    assert a == b
    assert a["ceiling"] != c["ceiling"]
    assert a["ceiling"] == pytest.approx(c["ceiling"], abs=0.05)


def test_invariant_to_voxel_order_scale_and_pattern_offsets():
    _, reps = GaussianWorld(v=150, sigma=1.0).draw(np.random.default_rng(8), 40)
    rng = np.random.default_rng(0)
    base = gsn_ceiling(reps, n_sims=6)
    moved = reps[:, :, rng.permutation(150)] * 3.0 + rng.normal(size=(3, 40, 1))
    other = gsn_ceiling(moved, n_sims=6)
    for key in ("ceiling", "reliability", "scale"):
        assert other[key] == pytest.approx(base[key], rel=1e-6)


def test_noiseless_and_pure_noise():
    S, _ = GaussianWorld(v=60, sigma=1.0).draw(np.random.default_rng(9), 25)
    out = gsn_ceiling(np.stack([S, S, S]), n_sims=4)
    assert out["ceiling"] == 1.0 and out["reliability"] == pytest.approx(1.0)
    noise = np.random.default_rng(10).standard_normal((3, 40, 100))
    assert gsn_ceiling(noise, n_sims=6)["ceiling"] < 0.3


@pytest.mark.parametrize(
    "reps, match",
    [
        (np.zeros((1, 5, 4)), r"n_reps >= 2"),
        (np.zeros((3, 2, 4)), r"n_images >= 3"),
        (np.zeros((5, 4)), r"expected \(n_reps"),
        (np.array([[["a"] * 4] * 5] * 3), r"dtype"),
    ],
)
def test_bad_shapes(reps, match):
    with pytest.raises(InputError, match=match):
        gsn_ceiling(reps)


def test_nan_and_constant_image():
    _, reps = GaussianWorld(v=30, sigma=1.0).draw(np.random.default_rng(11), 10)
    bad = reps.copy()
    bad[1, 2, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        gsn_ceiling(bad)
    bad = reps.copy()
    bad[2, 7] = 4.0
    with pytest.raises(InputError, match=r"index \(2, 7\) is constant"):
        gsn_ceiling(bad)


def test_bad_options():
    _, reps = GaussianWorld(v=30, sigma=1.0).draw(np.random.default_rng(12), 10)
    with pytest.raises(ValueError, match="'rdm_metric'.*'pearson'.*'spearman'"):
        gsn_ceiling(reps, rdm_metric="spearman")
    with pytest.raises(ValueError, match="'compare'.*'kendall'"):
        gsn_ceiling(reps, compare="kendall")
    with pytest.raises(ValueError, match="n_sims"):
        gsn_ceiling(reps, n_sims=1)
    with pytest.raises(ValueError, match="seed is required"):
        gsn_ceiling(reps, seed=None)
