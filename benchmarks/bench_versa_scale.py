"""Per-layer veRSA at NSD scale: brainalign vs the DeepNSD-style path, in one run.

Data: n = 1000 images (500 train / 500 test, even/odd), 4 subjects x ``--voxels`` voxels
each (default 8000), one layer of ``--units`` units (default 200,000) whose responses
linearly drive the voxels plus noise.

- brainalign: the layer arrives already projected (streamed SRP at extraction time), and
  one RidgeGCV fit (Pearson-scored exact LOO, alphas 1e1..1e7) covers all 4 x 8000 voxels;
  predicted RSMs and scores per subject (``brainalign.linking.versa``).
- DeepNSD-style: scikit-learn SparseRandomProjection fit+transform on the materialised
  layer, then scikit-learn RidgeCV(alpha_per_target=True, MSE-GCV, the closest stock
  equivalent) per subject, predict test, Pearson RSMs, score.

Prints wall times, the ratio and peak memory (tracemalloc) of each path.

    python benchmarks/bench_versa_scale.py [--voxels 8000] [--units 200000]
"""

import argparse
import time
import tracemalloc

import numpy as np
from scipy.spatial.distance import pdist
from sklearn.linear_model import RidgeCV
from sklearn.random_projection import SparseRandomProjection, johnson_lindenstrauss_min_dim

from brainalign.linking import BrainTarget, split_train_test, versa
from brainalign.projection import StreamingSRP
from brainalign.rdm import compute_rdm


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--voxels", type=int, default=8000)
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--units", type=int, default=200_000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n = args.images
    latent = rng.standard_normal((n, 50)).astype(np.float32)
    X = np.maximum(latent @ rng.standard_normal((50, args.units)).astype(np.float32), 0)  # the layer
    Ys = [(latent @ rng.standard_normal((50, args.voxels)) + 2 * rng.standard_normal((n, args.voxels)))
          .astype(np.float32) for _ in range(args.subjects)]
    train, test = split_train_test(n)
    alphas = np.logspace(1, 7, 7)
    k = johnson_lindenstrauss_min_dim(n, eps=0.1)
    print(f"{n} images, {args.subjects} subjects x {args.voxels} voxels, layer of {args.units} units, "
          f"k = {k}")

    # brainalign: the SRP happens batch by batch during extraction (timed here for fairness)
    tracemalloc.start()
    t0 = time.perf_counter()
    srp = StreamingSRP(k, seed=0)
    F = np.concatenate([srp.transform(X[i:i + 32]) for i in range(0, n, 32)])
    t_proj = time.perf_counter() - t0
    targets = [BrainTarget(str(s), "OTC", Y) for s, Y in enumerate(Ys)]
    for t in targets:
        t.rdm_train = compute_rdm(t.responses[train], "pearson")
        t.rdm_test = compute_rdm(t.responses[test], "pearson")
    res = versa(F, targets, train, test, alphas=alphas, scoring="pearson", n_targets_batch=8000)
    t_ours = time.perf_counter() - t0
    peak_ours = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"brainalign: {t_ours:7.1f} s (projection {t_proj:.1f} s), "
          f"peak traced {peak_ours / 2**20:,.0f} MiB; veRSA test {[round(r['versa_test'], 3) for r in res]}")

    tracemalloc.start()
    t0 = time.perf_counter()
    F2 = SparseRandomProjection(k, random_state=0).fit_transform(X)
    t_proj2 = time.perf_counter() - t0
    scores = []
    for Y in Ys:
        model = RidgeCV(alphas=alphas, alpha_per_target=True).fit(F2[train], Y[train])
        pred = model.predict(F2[test])
        scores.append(np.corrcoef(pdist(pred, "correlation"), pdist(Y[test], "correlation"))[0, 1])
    t_ref = time.perf_counter() - t0
    peak_ref = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"DeepNSD-style (sklearn SRP + RidgeCV per subject): {t_ref:7.1f} s (projection {t_proj2:.1f} s), "
          f"peak traced {peak_ref / 2**20:,.0f} MiB; veRSA test {[round(float(s), 3) for s in scores]}")
    print(f"speed-up: {t_ref / t_ours:.1f}x (MSE-GCV in the reference; ours selects alphas by Pearson r "
          "as the paper)")


if __name__ == "__main__":
    main()
